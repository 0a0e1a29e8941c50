"""Pasted features (ser/paste_features.py): frames of several feature types side by side on
the first one's frame rate; ``whisper_lld93`` is Whisper tiny.en's frames with the paper's 93
descriptors interpolated onto them. Then the recipe end to end on them, bundle included."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, copy_recipe, run_recipe
from ser.audio import SAMPLE_RATE
from ser.errors import SerError
from ser.export import save_extractor
from ser.features import (build_extractor, conf_files, extract_features, extractor_from_dict, feature_names,
                          frame_length, runs_on_device)
from ser.inference import load_extractor
from ser.paste_features import frame_centres, paste, resample_frames

ROOT = Path(__file__).resolve().parents[1]


def speech_like(seconds: float) -> np.ndarray:
    """A voiced tone whose pitch rises and whose loudness swells, with a little noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 150 + 60 * t / seconds
    envelope = 0.2 + 0.15 * np.sin(2 * np.pi * t / seconds)
    rng = np.random.default_rng(0)
    return (envelope * np.sin(2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE)
            + 0.005 * rng.normal(size=t.size)).astype(np.float32)


def test_frames_are_interpolated_at_the_first_members_frame_centres():
    # A member every 16 ms (window 32 ms) holding its own centre times, onto 20 ms frames (window 25 ms).
    centres16 = frame_centres(50, 0.016, 0.032)
    member = np.stack([centres16, 2 * centres16 + 1], axis=1)
    target = frame_centres(40, 0.02, 0.025)
    out = resample_frames(member, 0.016, 0.032, target)
    assert out.shape == (40, 2) and out.dtype == np.float32
    inside = (target >= centres16[0]) & (target <= centres16[-1])
    np.testing.assert_allclose(out[inside, 0], target[inside], atol=1e-6)  # linear: exact
    np.testing.assert_allclose(out[inside, 1], 2 * target[inside] + 1, atol=1e-5)
    # Before the member's first centre its first frame is repeated, not extrapolated.
    assert not inside[0] and out[0, 0] == pytest.approx(centres16[0])


def test_paste_keeps_the_first_members_frames_and_appends_the_others():
    first = np.arange(30, dtype=np.float32).reshape(10, 3)
    other = np.ones((13, 2), np.float32) * np.arange(13)[:, None]
    out = paste([(first, 0.02, 0.025), (other, 0.016, 0.032)])
    assert out.shape == (10, 5)
    np.testing.assert_array_equal(out[:, :3], first)
    assert np.all(np.diff(out[:, 3]) > 0)  # the other member's rising values, on 10 frames


def test_a_member_normalised_per_utterance_has_zero_mean_and_unit_variance():
    rng = np.random.default_rng(1)
    first = rng.normal(5.0, 3.0, (20, 2)).astype(np.float32)
    other = rng.normal(200.0, 40.0, (25, 3)).astype(np.float32)
    out = paste([(first, 0.02, 0.025), (other, 0.016, 0.032)], (False, True))
    np.testing.assert_array_equal(out[:, :2], first)  # the first member as it was
    np.testing.assert_allclose(out[:, 2:].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:, 2:].std(0), 1.0, atol=1e-4)


def test_bad_frames_and_options_are_named():
    with pytest.raises(ValueError, match=r"must be \(T > 0, D\)"):
        resample_frames(np.zeros((0, 4)), 0.01, 0.025, np.array([0.1]))
    with pytest.raises(SerError, match=r"option 'lld93model' is not <member>.<option>"):
        build_extractor("whisper_lld93", lld93model=1)
    with pytest.raises(SerError, match=r"option 'mfcc.num_ceps' is not <member>.<option>"):
        build_extractor("whisper_lld93", **{"mfcc.num_ceps": 13})
    with pytest.raises(SerError, match="at least two members"):
        build_extractor("whisper_lld93", members=["lld93"], utt_normalised=[])
    with pytest.raises(SerError, match=r"utt_normalised \['mfcc'\] names no member of \['whisper', 'lld93'\]"):
        build_extractor("whisper_lld93", utt_normalised=["mfcc"])


def test_a_pasted_type_is_defined_by_its_members_configs_too():
    names = [p.name for p in conf_files("whisper_lld93")]
    assert names == ["whisper_lld93.yaml", "whisper.yaml", "lld93.conf", "lld93.yaml"]
    assert [p.name for p in conf_files("lld93")] == ["lld93.conf", "lld93.yaml"]
    assert runs_on_device("whisper_lld93")


@pytest.fixture(scope="module")
def whisper_lld93():
    return build_extractor("whisper_lld93")


def test_whisper_lld93_is_whispers_frames_with_the_descriptors_beside_them(whisper_lld93):
    audio = speech_like(1.7)
    feats = extract_features(whisper_lld93, audio, "speech")
    whisper = extract_features(build_extractor("whisper"), audio, "speech")
    lld93 = extract_features(build_extractor("lld93"), audio, "speech")
    assert feats.shape == (whisper.shape[0], 384 + 93) and whisper_lld93.frame_shift == 0.02
    np.testing.assert_array_equal(feats[:, :384], whisper)
    # The descriptors, interpolated at Whisper's frame centres: within each one's own range.
    np.testing.assert_allclose(feats[:, 384:], resample_frames(lld93, 0.016, 0.032, frame_centres(len(feats), 0.02, 0.025)))
    assert np.all(feats[:, 384:].min(0) >= lld93.min(0) - 1e-4) and np.all(feats[:, 384:].max(0) <= lld93.max(0) + 1e-4)
    names = feature_names(whisper_lld93, "whisper_lld93")
    assert len(names) == 477 and names[0] == "whisper_0" and names[384] == "voiceProb"
    assert frame_length(whisper_lld93) == 0.032  # lld93's window is the longer one
    assert whisper_lld93.feature_dim(SAMPLE_RATE) == 477
    # A member's option by <member>.<option>, the encoder's device from the top.
    chunked = build_extractor("whisper_lld93", **{"whisper.chunk_seconds": 1.0})
    assert chunked.extractors[0].config.chunk_seconds == 1.0 and chunked.extractors[0].config.device == "cpu"


def test_whisper_lld93_goes_into_a_bundle_and_back(whisper_lld93, tmp_path):
    features = json.loads(json.dumps(save_extractor(whisper_lld93, "whisper_lld93", {}, tmp_path)))
    assert features["files"] == {"members.1.extractor.feature_set": "feats/lld93.conf"}
    assert (tmp_path / "feats/lld93.conf").read_text() == (ROOT / "conf/feats/lld93.conf").read_text()
    assert features["extractor"]["members"][1]["extractor"]["feature_set"] == "feats/lld93.conf"
    moved = tmp_path.parent / "moved_bundle"
    shutil.copytree(tmp_path, moved)
    loaded = load_extractor(features, moved)
    assert loaded.extractors[1].config.feature_set == str(moved / "feats/lld93.conf")
    audio = speech_like(1.2)
    np.testing.assert_array_equal(extract_features(loaded, audio, "a"), extract_features(whisper_lld93, audio, "a"))
    assert extractor_from_dict(whisper_lld93.to_dict()).feature_dim(SAMPLE_RATE) == 477


WHISPER_LLD93 = [*TINY[:TINY.index("--feat")], "--feat", "whisper_lld93", *TINY[TINY.index("--feat") + 2:]]


@pytest.mark.slow
def test_recipe_trains_bundles_and_infers_on_whisper_lld93(tiny_recipe, tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    shutil.copytree(tiny_recipe / "data", recipe / "data", ignore=shutil.ignore_patterns("feats"))
    run_recipe(recipe, "--stage", "3", "--stop-stage", "7", *WHISPER_LLD93)
    feat_dir = recipe / "data/synth/feats/whisper_lld93"
    assert (feat_dir / "feat_dim").read_text().strip() == "477"
    assert float((feat_dir / "frame_shift").read_text()) == 0.02
    exp = recipe / "exp/synth/whisper_lld93_lstm_hidden_size32_num_layers1_batch_size16_epochs2"
    assert json.loads((exp / "loso/seed1/fold1/results.json").read_text())["num_utts"] == 24
    bundle = json.loads((exp / "final/bundle.json").read_text())
    assert bundle["features"]["feat"] == "whisper_lld93"
    assert bundle["features"]["files"] == {"members.1.extractor.feature_set": "feats/lld93.conf"}
    wav = next(iter((recipe / "data/synth/wav.scp").read_text().splitlines())).split(None, 1)[1]
    out = subprocess.run(["local/infer.sh", "--model", str(exp / "final"), wav], cwd=recipe,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert any(e in out.stdout for e in ("angry", "fear", "happy", "neutral", "sad", "surprise"))
    # A member's config is part of the feature's record: changing it makes the features anew.
    (recipe / "conf/feats/lld93.yaml").write_text(
        (recipe / "conf/feats/lld93.yaml").read_text().replace("frame_shift: 0.016", "frame_shift: 0.02"))
    out = run_recipe(recipe, "--stage", "3", "--stop-stage", "3", *WHISPER_LLD93)
    assert "computing whisper_lld93 features" in out.stderr
