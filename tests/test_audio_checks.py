"""Stage 1's audio checks: a low sample rate, (near) silence, heavy clipping and a
file cut short are listed in audio_warnings.txt with the reason, low-rate files can be
excluded, and a clean file is never listed."""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.audio import wav_scp_entry
from ser.audio_checks import CLIPPED, LOW_RATE, SILENT, TRUNCATED, UNREADABLE, check_audio
from ser.bin import prepare_data
from ser.datadir import read_table

SR = 16000


def speech_like(seconds: float = 0.5, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a slow envelope and a little noise, well below full scale."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    signal = voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    return (amplitude * signal / np.abs(signal).max()).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A CASIA tree: speaker "a" with a clean file in each of angry and sad, and a
    low-rate (8 kHz, made with sox), a digitally silent, a near-silent and a clipped one."""
    root = tmp_path_factory.mktemp("checks") / "casia"
    (root / "a" / "angry").mkdir(parents=True)
    (root / "a" / "sad").mkdir(parents=True)
    sf.write(root / "a" / "angry" / "clean.wav", speech_like(), SR, subtype="PCM_16")
    sf.write(root / "a" / "sad" / "clean.wav", speech_like(seed=1), SR, subtype="PCM_16")
    subprocess.run(["sox", str(root / "a" / "angry" / "clean.wav"), "-r", "8000",
                    str(root / "a" / "angry" / "narrow.wav")], check=True, capture_output=True)
    sf.write(root / "a" / "angry" / "zeros.wav", np.zeros(SR // 2, np.float32), SR, subtype="PCM_16")
    sf.write(root / "a" / "sad" / "quiet.wav", speech_like(amplitude=3e-4), SR, subtype="PCM_16")
    sf.write(root / "a" / "sad" / "clipped.wav", np.clip(speech_like(amplitude=4.0), -1, 1), SR,
             subtype="PCM_16")
    return root


def test_each_problem_is_found(corpus):
    angry, sad = corpus / "a" / "angry", corpus / "a" / "sad"
    assert check_audio(angry / "clean.wav") == {} and check_audio(sad / "clean.wav") == {}
    assert set(check_audio(angry / "narrow.wav")) == {LOW_RATE}
    assert "sample rate 8000 Hz is below 16000 Hz" in check_audio(angry / "narrow.wav")[LOW_RATE]
    assert check_audio(angry / "zeros.wav") == {SILENT: "digital silence: every sample is 0"}
    assert check_audio(sad / "quiet.wav")[SILENT].startswith("near-silent: RMS -")
    assert set(check_audio(sad / "clipped.wav")) == {CLIPPED}
    assert "of full scale (more than 1%)" in check_audio(sad / "clipped.wav")[CLIPPED]


def test_thresholds_are_options(corpus):
    angry, sad = corpus / "a" / "angry", corpus / "a" / "sad"
    assert check_audio(angry / "narrow.wav", min_sample_rate=8000) == {}
    assert check_audio(sad / "quiet.wav", silence_rms_dbfs=-90) == {}
    assert check_audio(sad / "clipped.wav", clip_share=0.9) == {}
    assert set(check_audio(sad / "clean.wav", clip_level=0.2)) == {CLIPPED}


def test_unreadable_and_pipe_entries(corpus, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    assert "cannot decode" in check_audio(tmp_path / "bad.wav")[UNREADABLE]
    narrow = corpus / "a" / "angry" / "narrow.wav"
    assert set(check_audio(f"sox {narrow} -t wav - |")) == {LOW_RATE}


def warnings_of(data: Path) -> dict[str, tuple[str, str]]:
    lines = (data / "audio_warnings.txt").read_text().splitlines()
    return {utt: (path, reason) for utt, path, reason in (line.split("\t") for line in lines)}


def test_stage_lists_the_warnings(corpus, tmp_path, caplog):
    data = tmp_path / "data"
    with caplog.at_level(logging.WARNING):
        prepare_data.main(["--corpus", "casia", "--corpus-dir", str(corpus), "--data-dir", str(data)])
    warnings = warnings_of(data)
    assert sorted(warnings) == ["a-angry-narrow", "a-angry-zeros", "a-sad-clipped", "a-sad-quiet"]
    assert warnings["a-angry-narrow"][0] == str(corpus / "a" / "angry" / "narrow.wav")
    assert "sample rate 8000 Hz" in warnings["a-angry-narrow"][1]
    assert "digital silence" in warnings["a-angry-zeros"][1]
    assert "near-silent" in warnings["a-sad-quiet"][1]
    assert "clipped" in warnings["a-sad-clipped"][1]
    assert f"4 file(s) with audio warnings, see {data / 'audio_warnings.txt'}" in caplog.text
    assert "a-angry-narrow" in read_table(data / "wav.scp")  # warned, not excluded


def test_stage_excludes_low_rate_files(corpus, tmp_path):
    data = tmp_path / "data"
    prepare_data.main(["--corpus", "casia", "--corpus-dir", str(corpus), "--data-dir", str(data),
                       "--exclude-low-rate"])
    assert "a-angry-narrow" not in read_table(data / "wav.scp")
    assert "a-angry-narrow" not in warnings_of(data)
    assert len(read_table(data / "wav.scp")) == 5
    excluded = (data / "manifests" / "casia_excluded.txt").read_text().splitlines()
    assert excluded == [f"a-angry-narrow\t{corpus / 'a' / 'angry' / 'narrow.wav'}\t"
                        "sample rate 8000 Hz is below 16000 Hz: upsampled, it has no energy "
                        "above 4000 Hz"]
    # With a lower bound, nothing is excluded, and the narrow file is not warned about.
    prepare_data.main(["--corpus", "casia", "--corpus-dir", str(corpus), "--data-dir", str(data),
                       "--exclude-low-rate", "--min-sample-rate", "8000"])
    assert "a-angry-narrow" in read_table(data / "wav.scp")
    assert "a-angry-narrow" not in warnings_of(data)
    assert (data / "manifests" / "casia_excluded.txt").read_text() == ""


def test_clean_corpus_has_an_empty_list(corpus, tmp_path):
    clean = tmp_path / "casia"
    for emotion in ("angry", "sad"):
        (clean / "a" / emotion).mkdir(parents=True)
        (clean / "a" / emotion / "clean.wav").symlink_to(corpus / "a" / emotion / "clean.wav")
    prepare_data.main(["--corpus", "casia", "--corpus-dir", str(clean), "--data-dir", str(tmp_path / "d")])
    assert (tmp_path / "d" / "audio_warnings.txt").read_text() == ""


def cut_short(whole: Path, cut: Path, seconds: float) -> None:
    """A copy of a 16-bit mono 16 kHz wav that ends after ``seconds``, header unchanged."""
    data = whole.read_bytes()
    start = data.index(b"data") + 8
    cut.write_bytes(data[:start + 2 * round(seconds * SR)])


def test_a_truncated_wav_is_listed(tmp_path):
    # sox reads it with "Premature EOF", libsndfile without a word: 0.31 s where 1.40 s were recorded.
    root = tmp_path / "casia"
    (root / "a" / "angry").mkdir(parents=True)
    (root / "a" / "sad").mkdir(parents=True)
    whole, cut = root / "a" / "sad" / "whole.wav", root / "a" / "angry" / "cut.wav"
    sf.write(whole, speech_like(1.4), SR, subtype="PCM_16")
    cut_short(whole, cut, 0.31)
    reason = "truncated: the header promises 1.40 s of audio, the file holds 0.31 s"
    assert check_audio(whole) == {} and check_audio(cut) == {TRUNCATED: reason}
    spaced = tmp_path / "a b.wav"
    spaced.write_bytes(cut.read_bytes())
    assert check_audio(wav_scp_entry(spaced)) == {TRUNCATED: reason}  # the pipe of a path with a space
    data = tmp_path / "data"
    prepare_data.main(["--corpus", "casia", "--corpus-dir", str(root), "--data-dir", str(data)])
    assert warnings_of(data) == {"a-angry-cut": (str(cut), reason)}
    # A header written for streaming (data size 0xFFFFFFFF) promises nothing.
    stream = bytearray(whole.read_bytes())
    at = stream.index(b"data") + 4
    stream[at:at + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "stream.wav").write_bytes(bytes(stream))
    assert check_audio(tmp_path / "stream.wav") == {}


def test_exclusion_warnings_name_the_file_that_lists_them(corpus, tmp_path, caplog):
    from fixtures_corpora import make_emodb

    data = tmp_path / "data"
    with caplog.at_level(logging.WARNING):
        prepare_data.main(["--corpus", "casia", "--corpus-dir", str(corpus), "--data-dir", str(data),
                           "--exclude-low-rate"])
    listed = data / "manifests" / "casia_excluded.txt"
    assert f"1 file(s) of a sample rate below 16000 Hz excluded, e.g. {corpus}/a/angry/narrow.wav; " \
           f"all are listed with the reason in {listed}" in caplog.text
    assert "a-angry-narrow" in listed.read_text()
    caplog.clear()
    emodb = make_emodb(tmp_path)  # with a corrupt file
    with caplog.at_level(logging.WARNING):
        prepare_data.main(["--corpus", "emodb", "--corpus-dir", str(emodb), "--data-dir", str(tmp_path / "e")])
    listed = tmp_path / "e" / "manifests" / "emodb_excluded.txt"
    assert f"1 unreadable file(s) excluded, e.g. {emodb}/wav/03a02Wb.wav; all are listed with the reason in " \
           f"{listed}" in caplog.text
    assert "03a02Wb" in listed.read_text()
