"""Audio loading, the lhotse feature types, and the feature stage's dump and merge."""
from __future__ import annotations

import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT
from ser.audio import load_audio
from ser.errors import AudioError, SerError
from ser.features import build_extractor, extract_features, feature_names

SR = 16000


def tone(seconds=0.5, freq=440.0, sr=SR, amplitude=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("name, dim", [("fbank", 80), ("mfcc", 13)])
def test_dimensions_names_and_determinism(name, dim):
    extractor = build_extractor(name)
    feats = extract_features(extractor, tone(1.0), "x")
    assert feats.shape == (100, dim) and feats.dtype == np.float32
    assert len(feature_names(extractor, name)) == dim
    np.testing.assert_array_equal(feats, extract_features(build_extractor(name), tone(1.0), "x"))


def test_options_override_the_conf_file():
    extractor = build_extractor("fbank", num_filters=40, frame_shift=0.02)
    assert extract_features(extractor, tone(1.0), "x").shape == (50, 40)
    with pytest.raises(SerError, match="bad options"):
        build_extractor("fbank", no_such_option=1)
    with pytest.raises(SerError, match="unknown feature type"):
        build_extractor("nope")


def test_resampling_and_downmix(tmp_path):
    sr = 44100
    left = tone(1.0, 1000.0, sr)
    sf.write(tmp_path / "stereo.wav", np.stack([left, left], axis=1), sr)
    samples = load_audio(tmp_path / "stereo.wav")
    assert samples.ndim == 1 and abs(len(samples) - SR) <= 1
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * SR / len(samples) - 1000.0) < 2.0
    # Opposite channels cancel: the mix-down is the mean, not the first channel.
    sf.write(tmp_path / "opposite.wav", np.stack([left, -left], axis=1), sr)
    assert np.max(np.abs(load_audio(tmp_path / "opposite.wav"))) < 1e-3


def test_bad_audio_gets_a_reason(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    sf.write(tmp_path / "nosamples.wav", np.zeros(0, dtype=np.float32), SR)
    sf.write(tmp_path / "short.wav", np.zeros(100, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="empty file"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(tmp_path / "corrupt.wav")
    with pytest.raises(AudioError, match="empty audio"):
        load_audio(tmp_path / "nosamples.wav")
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="too short"):
        extract_features(build_extractor("fbank"), load_audio(tmp_path / "short.wav"), "short.wav")


def test_silent_and_clipped_audio_are_processed():
    extractor = build_extractor("fbank")
    silent = extract_features(extractor, np.zeros(SR, dtype=np.float32), "silent")
    clipped = extract_features(extractor, np.clip(tone(1.0, amplitude=5.0), -1, 1), "clipped")
    assert np.all(np.isfinite(silent)) and np.all(np.isfinite(clipped))


def make_data_dir(tmp_path: Path, num_good: int, num_bad: int) -> Path:
    data = tmp_path / "data"
    (data / "wav").mkdir(parents=True)
    lines = []
    for i in range(num_good):
        path = data / "wav" / f"good{i}.wav"
        sf.write(path, tone(0.3 + 0.1 * i, 200.0 + 50 * i), SR)
        lines.append(f"spk-good{i} {path}")
    for i in range(num_bad):
        path = data / "wav" / f"bad{i}.wav"
        path.write_bytes(b"RIFF garbage")
        lines.append(f"spk-zbad{i} {path}")
    (data / "wav.scp").write_text("\n".join(sorted(lines)) + "\n")
    (data / ".done").write_text("stage=hand-made\n")  # the feature stage reads prepared dirs only
    return data


def make_feats(data: Path, feat_dir: Path, *opts: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "steps" / "make_feats.sh"), "--nj", "2", "--feat", "fbank",
                           *opts, str(data), str(feat_dir)], capture_output=True, text=True)


def test_feature_stage_round_trip_and_failed_list(tmp_path):
    data = make_data_dir(tmp_path, num_good=5, num_bad=1)
    feat_dir = tmp_path / "feats"
    out = make_feats(data, feat_dir, "--max-fail-share", "0.5")
    assert out.returncode == 0, out.stderr
    feats = dict(kaldiio.load_scp(str(feat_dir / "feats.scp")))
    assert sorted(feats) == [f"spk-good{i}" for i in range(5)]
    extractor = build_extractor("fbank")
    for i in range(5):
        direct = extract_features(extractor, load_audio(data / "wav" / f"good{i}.wav"), "x")
        np.testing.assert_array_equal(feats[f"spk-good{i}"], direct)
    failed = (feat_dir / "failed.txt").read_text().split("\t")
    assert failed[0] == "spk-zbad0" and failed[1].endswith("bad0.wav") and "cannot decode" in failed[2]
    assert (feat_dir / "feat_dim").read_text().strip() == "80"
    assert float((feat_dir / "frame_shift").read_text()) == 0.01
    assert len((feat_dir / "feat_names.txt").read_text().split()) == 80
    frames = dict(line.split() for line in (feat_dir / "utt2num_frames").read_text().splitlines())
    assert int(frames["spk-good0"]) == feats["spk-good0"].shape[0]
    # Done: a second run does nothing.
    mtime = (feat_dir / "feats.scp").stat().st_mtime_ns
    out = make_feats(data, feat_dir, "--max-fail-share", "0.5")
    assert "complete; skipping" in out.stderr
    assert (feat_dir / "feats.scp").stat().st_mtime_ns == mtime


def test_jobs_get_equal_audio_and_sorted_splits(tmp_path):
    """Utterances go to the split with the least audio so far (copies sp<f>-<utt> count
    dur/f): round-robin would give job 1 the two long files here."""
    data = make_data_dir(tmp_path, num_good=4, num_bad=0)  # 0.3, 0.4, 0.5, 0.6 s
    durations = {"spk-good0": 3.0, "spk-good1": 0.5, "spk-good2": 3.0, "spk-good3": 0.5}
    (data / "utt2dur").write_text("".join(f"{u} {d}\n" for u, d in durations.items()))
    feat_dir = tmp_path / "feats"
    assert make_feats(data, feat_dir).returncode == 0
    splits = [(feat_dir / "split" / f"wav.{j}.scp").read_text().split("\n")[:-1] for j in (1, 2)]
    keys = [[line.split()[0] for line in split] for split in splits]
    assert keys == [["spk-good0", "spk-good3"], ["spk-good1", "spk-good2"]]
    # Copies: the 0.5 ones last twice as long, the 2 ones half as long.
    (data / "utt2dur").write_text("spk-good0 0.5\nspk-good1 0.5\nspk-good2 0.5\nspk-good3 1.0\n")
    copies = tmp_path / "copies"
    assert make_feats(data, copies, "--speed-perturb", "0.5 2").returncode == 0
    keys = [[line.split()[0] for line in (copies / "split" / f"wav.{j}.scp").read_text().splitlines()]
            for j in (1, 2)]
    assert keys == [["sp0.5-spk-good0", "sp0.5-spk-good2", "sp2-spk-good0", "sp2-spk-good1",
                     "sp2-spk-good2", "sp2-spk-good3"], ["sp0.5-spk-good1", "sp0.5-spk-good3"]]
    assert (copies / "utt2dur").read_text().splitlines()[:2] == ["sp0.5-spk-good0 1.0000", "sp0.5-spk-good1 1.0000"]
    assert all(k == sorted(k) for k in keys)


def test_too_many_failures_fail_the_stage_without_a_product(tmp_path):
    data = make_data_dir(tmp_path, num_good=2, num_bad=2)
    feat_dir = tmp_path / "feats"
    out = make_feats(data, feat_dir, "--max-fail-share", "0.1")
    assert out.returncode != 0
    assert "2 of 4 files failed" in out.stderr and str(feat_dir / "failed.txt") in out.stderr
    assert not (feat_dir / "feats.scp").exists() and not (feat_dir / ".done").exists()


@pytest.mark.slow
def test_changed_settings_rebuild_never_mix(tmp_path):
    data = make_data_dir(tmp_path, num_good=2, num_bad=0)
    feat_dir = tmp_path / "feats"
    assert make_feats(data, feat_dir).returncode == 0
    out = make_feats(data, feat_dir, "--feat-opts", "num_filters=40")
    assert out.returncode == 0, out.stderr
    assert "was made from other inputs or settings" in out.stderr and "feat_opts=num_filters=40" in out.stderr
    assert "rebuilding" in out.stderr
    assert {m.shape[1] for _, m in kaldiio.load_scp(str(feat_dir / "feats.scp")).items()} == {40}
    assert "feat_opts=num_filters=40" in (feat_dir / ".done").read_text()
    # A changed input is a changed record too: the data dir prepared again.
    (data / ".done").write_text("stage=hand-made again\n")
    out = make_feats(data, feat_dir, "--feat-opts", "num_filters=40")
    assert out.returncode == 0 and "rebuilding" in out.stderr


