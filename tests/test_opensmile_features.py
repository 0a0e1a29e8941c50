"""The openSMILE feature types: lld93 (our config) and the stock eGeMAPS/ComParE LLDs."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import opensmile
import pytest

from conftest import ROOT
from ser.errors import SerError
from ser.features import build_extractor, extract_features, extractor_from_dict, feature_names, frame_length
from ser.opensmile_features import LLD93_CONF, OpenSmileLld

SR = 16000
LLD93_NAMES = (
    ["voiceProb", "logHNR", "F0_sma", "F0raw", "F0env",
     "jitterLocal", "jitterDDP", "shimmerLocal", "harmonicERMS", "noiseERMS",
     "pcm_loudness", "pcm_loudness_de"]
    + [f"mfcc[{i}]" for i in range(15)] + [f"mfcc_de[{i}]" for i in range(15)]
    + [f"melspec[{i}]" for i in range(26)] + [f"logMelFreqBand[{i}]" for i in range(8)]
    + [f"lpcCoeff[{i}]" for i in range(8)] + [f"lspFreq[{i}]" for i in range(8)]
    + ["pcm_zcr"])


@pytest.fixture(scope="module")
def extractors() -> dict:
    return {name: build_extractor(name) for name in ("lld93", "egemaps_lld", "compare_lld")}


def voiced(seconds: float, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A vowel-like signal: harmonics of f0 with falling amplitudes, a little noise."""
    t = np.arange(round(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 12))
    return (0.2 * x + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def num_frames(num_samples: int, length: float, shift: float) -> int:
    return (num_samples - round(length * SR)) // round(shift * SR) + 1


def test_lld93_names_dims_and_grid(extractors):
    e = extractors["lld93"]
    assert feature_names(e, "lld93") == LLD93_NAMES and e.feature_dim(SR) == 93
    assert (e.frame_length, e.frame_shift) == (0.032, 0.016) and frame_length(e) == 0.032
    for n in (512, 767, 768, 16000, 16001):
        feats = extract_features(e, voiced(n / SR), "x")
        assert feats.shape == (num_frames(n, 0.032, 0.016), 93) and feats.dtype == np.float32
    # A 140 Hz vowel: voiced with F0 near 140 Hz in the middle.
    assert np.median(feats[5:-5, 0]) > 0.8 and abs(np.median(feats[5:-5, 3]) - 140) < 10


def test_lld93_branches_share_the_frame_grid(extractors):
    """Frame n of the short branch is x[n*shift : n*shift + length]; the pitch branch's
    frame n is the pitch window centred on it (edge samples repeated outside the input)."""
    options = extractors["lld93"].config.options
    x = np.arange(3000, dtype=np.float32) / 32768  # as int16, sample i is i

    def frames(level):  # the frames of one level of our config, as int16 values
        smile = opensmile.Smile(str(LLD93_CONF), level, options=options)
        return np.rint(smile(x[None], SR)[0].T * 32768).astype(int)

    short, long = frames("frames"), frames("framesp")
    for n in range(num_frames(3000, 0.032, 0.016)):
        np.testing.assert_array_equal(short[n], np.arange(n * 256, n * 256 + 512))
        np.testing.assert_array_equal(long[n], np.clip(np.arange(n * 256 - 224, n * 256 + 736), 0, 2999))


@pytest.mark.parametrize("name, dim, first", [("egemaps_lld", 25, "Loudness_sma3"),
                                              ("compare_lld", 65, "F0final_sma")])
def test_stock_sets(extractors, name, dim, first):
    e = extractors[name]
    names = feature_names(e, name)
    assert len(names) == e.feature_dim(SR) == dim and names[0] == first
    assert (e.frame_shift, frame_length(e)) == (0.01, 0.06)
    for n, frames in [(960, 2), (16000, 96)]:  # floor((n - 960) / 160) + 2
        feats = extract_features(e, voiced(n / SR), "x")
        assert feats.shape == (frames, dim) and np.all(np.isfinite(feats))


@pytest.mark.parametrize("options", [
    dict(frame_length=0.025, frame_shift=0.010),
    dict(frame_shift=0.032),
    dict(frame_length=0.020, frame_shift=0.010, pitch_frame_length=0.1),
])
def test_lld93_frame_options(options):
    e = build_extractor("lld93", **options)
    length, shift = e.frame_length, e.frame_shift
    assert (length, shift) == (options.get("frame_length", 0.032), options["frame_shift"])
    for n in (round(length * SR), 1000, 8000):
        feats = extract_features(e, voiced(n / SR), "x")
        assert feats.shape == (num_frames(n, length, shift), 93) and np.all(np.isfinite(feats))


@pytest.mark.slow
def test_determinism_across_calls_and_processes(extractors, tmp_path):
    x = voiced(1.3, seed=3)
    np.save(tmp_path / "x.npy", x)
    feats = {name: extract_features(e, x, "x") for name, e in extractors.items()}
    for name, e in extractors.items():
        np.testing.assert_array_equal(feats[name], extract_features(e, x, "x"))
    code = ("import sys, numpy as np; from ser.features import build_extractor, extract_features; "
            "x = np.load(sys.argv[1]); "
            "np.save(sys.argv[2], extract_features(build_extractor('lld93'), x, 'x'))")
    subprocess.run([sys.executable, "-c", code, tmp_path / "x.npy", tmp_path / "y.npy"],
                   cwd=ROOT, check=True)
    np.testing.assert_array_equal(feats["lld93"], np.load(tmp_path / "y.npy"))


@pytest.mark.parametrize("signal", ["silence", "dc", "clipped", "full_scale_square", "noise"])
def test_hard_signals_stay_finite(extractors, signal):
    t = np.arange(SR) / SR
    x = {"silence": np.zeros(SR),
         "dc": np.full(SR, 0.5),
         "clipped": np.clip(5 * voiced(1.0), -1, 1),
         "full_scale_square": np.sign(np.sin(2 * np.pi * 150 * t)),  # +1.0 must not wrap to -1
         "noise": np.random.default_rng(0).uniform(-1, 1, SR)}[signal].astype(np.float32)
    for name, e in extractors.items():
        for samples in (x, x[:round(frame_length(e) * SR)]):  # also exactly one window long
            feats = extract_features(e, samples, "x")
            assert feats.shape[1] == e.feature_dim(SR) and np.all(np.isfinite(feats)), name
    if signal == "full_scale_square":  # +1.0 is clipped to the largest int16 value
        e = extractors["lld93"]
        np.testing.assert_array_equal(extract_features(e, x, "x"),
                                      extract_features(e, np.clip(x, -1, 32767 / 32768), "x"))


@pytest.mark.parametrize("name, options, message", [
    ("lld93", dict(frame_shift=0.05), "exceeds frame_length"),
    ("lld93", dict(frame_length=0.0333), "whole number of samples"),
    ("lld93", dict(frame_length="long"), "whole number of samples"),
    ("lld93", dict(frame_length=0), "whole number of samples"),
    ("lld93", dict(pitch_frame_length=0.02), "shorter than frame_length"),
    ("lld93", dict(frame_size=0.025), "bad options"),
    ("egemaps_lld", dict(frame_shift=0.02), "bad options"),
])
def test_bad_options(name, options, message):
    with pytest.raises(SerError, match=message):
        build_extractor(name, **options)


def test_round_trip_and_sampling_rate(extractors):
    e = extractors["lld93"]
    copy = OpenSmileLld.from_dict(e.to_dict())
    assert copy.config == e.config and copy.feature_names == e.feature_names
    with pytest.raises(ValueError, match="16000 Hz"):
        e.extract(voiced(0.1), 8000)


def test_bundles_made_with_lhotses_config_load(extractors):
    """Bundles made when OpenSmileLld subclassed Lhotse's OpenSmileExtractor hold the
    fields of Lhotse's OpenSmileConfig (and ours): every one of them must load."""
    from lhotse.features.opensmile import OpenSmileConfig
    e = extractors["lld93"]
    lhotse_fields = {f.name for f in dataclasses.fields(OpenSmileConfig)}
    saved = e.to_dict()
    assert lhotse_fields <= set(saved)
    copy = extractor_from_dict(saved)
    assert type(copy) is OpenSmileLld and copy.config == e.config


def test_feature_jobs_do_not_import_torch():
    """A feature job's start-up is a share of the two-job speed-up (bench_features.sh);
    torch (through Lhotse) would add 2 s to each."""
    code = ("import sys, ser.bin.compute_feats; from ser.features import build_extractor; "
            "build_extractor('lld93'); build_extractor('compare_functionals'); "
            "print(sorted(m for m in ('torch', 'lhotse') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
