"""Per-utterance normalisation (cmvn mode ``utt``) and the mode table."""
from __future__ import annotations

import numpy as np
import pytest

from ser.cmvn import CMVN_MODES, USES_TEST_SPEAKER_STATS, Normalizer, stats_path, utterance_cmvn
from ser.errors import SerError


def test_utt_mode_gives_zero_mean_unit_variance_per_utterance():
    rng = np.random.default_rng(0)
    feats = rng.normal(5.0, 3.0, (40, 4)) * np.array([1.0, 10.0, 0.1, 1.0])
    out = Normalizer.load("utt", None)(feats, "any-speaker")
    assert out.dtype == np.float32 and out.shape == feats.shape
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-4)


def test_utt_mode_centres_constant_dimensions_without_scaling_them_up():
    feats = np.column_stack([np.full(10, 7.0), np.arange(10.0)])
    out = utterance_cmvn(feats)
    assert np.all(out[:, 0] == 0.0) and np.isfinite(out).all()
    single = utterance_cmvn(np.array([[3.0, -1.0]]))  # one frame: every dimension constant
    assert np.all(single == 0.0)


def test_utt_mode_needs_no_statistics_and_no_test_speaker_data():
    assert "utt" in CMVN_MODES and USES_TEST_SPEAKER_STATS["utt"] is False
    assert stats_path("/any/dir", "utt", "fold1") is None
    assert Normalizer("utt").state() == {"mode": "utt", "shift": {}, "scale": {}}


def test_modes_that_need_statistics_still_ask_for_them(tmp_path):
    with pytest.raises(SerError, match="needs statistics"):
        Normalizer("train")
    with pytest.raises(SerError, match="not found"):
        Normalizer.load("speaker", tmp_path / "speaker.npz")
    with pytest.raises(SerError, match="unknown cmvn mode"):
        Normalizer("global")
