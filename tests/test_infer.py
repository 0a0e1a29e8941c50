"""Stage 7 and inference: the final model's bundle classifies audio exactly as the
recipe scores it, loads without the recipe, refuses tampered files, and `ser infer`
handles bad, stereo 44.1 kHz, long and many files."""
from __future__ import annotations

import csv
import inspect
import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from conftest import ROOT, TINY, TINY_SYSTEM, build_once, run_recipe
from ser import EmotionClassifier
from ser.audio import SAMPLE_RATE, load_audio
from ser.bin.infer import get_parser
from ser.bin.infer import main as infer_main
from ser.cmvn import Normalizer
from ser.datadir import read_data_dir
from ser.errors import SerError
from ser.export import save_extractor, script_model
from ser.features import build_extractor
from ser.inference import load_extractor
from ser.model import MODEL_VARIANTS, build_model
from ser.train import load_fold_data, predict

SYSTEM = TINY_SYSTEM


@pytest.fixture(scope="module")
def bundle(tiny_recipe) -> Path:
    build_once("the tiny bundle", lambda: run_recipe(tiny_recipe, "--stage", "7", "--stop-stage", "7", *TINY))
    return tiny_recipe / SYSTEM / "final"


@pytest.fixture(scope="module")
def classifier(bundle) -> EmotionClassifier:
    return EmotionClassifier.load(bundle)


@pytest.fixture(scope="module")
def wavs(tiny_recipe) -> dict[str, str]:
    return read_data_dir(tiny_recipe / "data" / "synth").wav


def infer(capsys, *args) -> tuple[int, str, str]:
    """`ser infer ARGS` in this process (a new one would spend seconds on imports)."""
    with pytest.raises(SystemExit) as exit_info:
        infer_main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def matrix(predictions, labels) -> np.ndarray:
    return np.array([[p.posteriors[label] for label in labels] for p in predictions])


@pytest.mark.slow
def test_bundle_predicts_as_the_recipe_scores(tiny_recipe, bundle, classifier):
    data = read_data_dir(tiny_recipe / "data" / "synth")
    best = torch.load(tiny_recipe / SYSTEM / "final_train/seed1/fold1/best.pt", weights_only=True)
    model = build_model(**best["model_config"])
    model.load_state_dict(best["model"])
    feat_dir = tiny_recipe / "data/synth/feats/fbank"
    normalizer = Normalizer.load("train", feat_dir / "cmvn/all/fold1.npz")
    utts = load_fold_data(data, feat_dir, data.utts, normalizer)
    expected = predict(model, utts, 128, "cpu")
    got = classifier.predict_batch([data.wav[u] for u in utts.ids])
    np.testing.assert_allclose(matrix(got, data.emotions), expected, atol=1e-4)
    assert [p.label for p in got] == [data.emotions[i] for i in expected.argmax(1)]

    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["labels"] == data.emotions and meta["cmvn"]["mode"] == "train"
    assert meta["training"]["corpus"] == "synth" and meta["training"]["folds_dir"].endswith("folds/all")
    assert meta["training"]["num_train"] + meta["training"]["num_valid"] == len(data.utts)
    assert meta["training"]["train_config"]["epochs"] == 2 and meta["model"]["config"]["hidden_size"] == 32
    assert meta["cv_results"] == ["summary.json", "RESULTS.md"]
    assert "loso" in json.loads((bundle / "summary.json").read_text())


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_torchscript_matches_eager_model_for_any_length(variant):
    torch.manual_seed(0)
    model = build_model(input_dim=6, num_classes=4, variant=variant, hidden_size=8, fc_dim=8).eval()
    scripted = script_model(model)
    for lengths in ([2], [250, 17, 1]):  # lengths that script_model's own check did not use
        lengths = torch.tensor(lengths)
        feats = torch.randn(len(lengths), int(lengths.max()), 6)
        with torch.no_grad():
            torch.testing.assert_close(scripted(feats, lengths), model(feats, lengths), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_bundle_loads_without_the_recipe(tiny_recipe, bundle, classifier, wavs, tmp_path):
    wav = next(iter(wavs.values()))
    shutil.copytree(bundle, tmp_path / "bundle")
    shutil.copyfile(wav, tmp_path / "clip.wav")
    expected = classifier.predict(wav).posteriors
    moved = tiny_recipe.with_name("recipe.moved")
    tiny_recipe.rename(moved)
    try:
        out = subprocess.run([ROOT / "local/infer.sh", "--model", "bundle", "--format", "json", "clip.wav"],
                             cwd=tmp_path, capture_output=True, text=True)
    finally:
        moved.rename(tiny_recipe)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["posteriors"]
    assert got.keys() == expected.keys()
    np.testing.assert_allclose(list(got.values()), list(expected.values()), atol=1e-6)


def test_opensmile_config_travels_in_the_bundle(tmp_path):
    pytest.importorskip("opensmile")
    extractor = build_extractor("lld93")
    features = json.loads(json.dumps(save_extractor(extractor, "lld93", {}, tmp_path)))
    assert features["files"] == {"feature_set": "feats/lld93.conf"}
    assert (tmp_path / "feats/lld93.conf").read_bytes() == (ROOT / "conf/feats/lld93.conf").read_bytes()
    loaded = load_extractor(features, tmp_path)
    assert loaded.config.feature_set == str(tmp_path / "feats/lld93.conf")
    samples = 0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    np.testing.assert_array_equal(loaded.extract(samples, SAMPLE_RATE), extractor.extract(samples, SAMPLE_RATE))


@pytest.mark.slow
def test_cli_reports_bad_files_and_resamples_stereo(bundle, classifier, wavs, tmp_path, capsys):
    wav = next(iter(wavs.values()))
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "corrupt.wav").write_bytes(b"RIFF not really a wav file" * 40)
    (inputs / "empty.flac").touch()
    (inputs / "notes.txt").write_text("not audio: skipped")
    mono = load_audio(wav)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    sf.write(inputs / "sub" / "stereo44k.wav", resample_poly(stereo, 441, 160, axis=0), 44100)
    status, out, err = infer(capsys, "--model", bundle, "--format", "json", inputs, wav)
    assert status == 1, err
    lines = {line["id"]: line for line in map(json.loads, out.splitlines())}
    assert sorted(lines) == sorted([str(inputs / n) for n in ("corrupt.wav", "empty.flac", "sub/stereo44k.wav")]
                                   + [wav])
    assert "cannot decode" in lines[str(inputs / "corrupt.wav")]["error"]
    assert lines[str(inputs / "empty.flac")]["error"] == "empty file (0 bytes)"
    for path in (wav, str(inputs / "sub" / "stereo44k.wav")):
        assert lines[path]["error"] is None
        samples, rate = sf.read(path, always_2d=True)
        expected = classifier.predict(samples, sample_rate=rate)  # resampled by the same code
        assert lines[path]["emotion"] == expected.label
        np.testing.assert_allclose(list(lines[path]["posteriors"].values()),
                                   list(expected.posteriors.values()), atol=1e-6)
    assert infer(capsys, "--model", bundle, wav)[0] == 0
    assert infer(capsys, "--model", tmp_path / "no-bundle", wav)[0] == 2
    assert infer(capsys, "--model", bundle, inputs / "sub" / "nothing-here")[0] == 1
    (inputs / "no-audio").mkdir()
    assert infer(capsys, "--model", bundle, inputs / "no-audio")[0] == 2


@pytest.mark.slow
def test_a_truncated_wav_is_classified_with_a_warning(bundle, wavs, tmp_path, capsys, caplog):
    wav = Path(next(iter(wavs.values())))
    data = wav.read_bytes()
    start = data.index(b"data") + 8
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:start + (len(data) - start) // 4 * 2])  # half the samples
    with caplog.at_level(logging.WARNING):
        status, out, err = infer(capsys, "--model", bundle, cut, wav)
    assert status == 0, err
    warned = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"{cut}: truncated: the header promises "), warned
    assert warned[0].endswith("; classified on what it holds")


@pytest.mark.slow
def test_batch_and_single_file_inference_agree(tiny_recipe, bundle, classifier, wavs, tmp_path, capsys):
    utts = list(wavs)[:12]
    single = [classifier.predict(wavs[u]) for u in utts]
    batch = classifier.predict_batch([wavs[u] for u in utts])
    assert [p.label for p in batch] == [p.label for p in single]
    np.testing.assert_allclose(matrix(batch, classifier.labels), matrix(single, classifier.labels), atol=1e-5)

    status, _, err = infer(capsys, "--model", bundle, "--batch-size", "5", "--output", tmp_path / "out.csv",
                           tiny_recipe / "data/synth/wav.scp")
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert [r["id"] for r in rows] == list(wavs) and all(r["error"] == "" for r in rows)
    by_id = {r["id"]: r for r in rows}
    for utt, expected in zip(utts, single, strict=True):
        assert by_id[utt]["emotion"] == expected.label
        np.testing.assert_allclose([float(by_id[utt][label]) for label in classifier.labels],
                                   list(expected.posteriors.values()), atol=1e-6)


@pytest.mark.slow
def test_long_file_is_classified_in_chunks(bundle, classifier, wavs, tmp_path, capsys):
    clips = [load_audio(p) for p in list(wavs.values())[:20]]
    samples = np.concatenate(clips * 10)[:25 * SAMPLE_RATE]
    sf.write(tmp_path / "long.wav", samples, SAMPLE_RATE, subtype="FLOAT")
    result = classifier.predict(tmp_path / "long.wav")
    assert result.num_chunks == 3  # 10 s chunks at 0, 9 and 15 s
    chunks = [classifier.predict(samples[s * SAMPLE_RATE:(s + 10) * SAMPLE_RATE], SAMPLE_RATE) for s in (0, 9, 15)]
    np.testing.assert_allclose(list(result.posteriors.values()),
                               matrix(chunks, classifier.labels).mean(0), atol=1e-6)
    status, out, _ = infer(capsys, "--model", bundle, tmp_path / "long.wav")
    assert status == 0 and len(out.splitlines()) == 2  # header and one line


def test_the_runtime_loads_without_the_trainer_and_the_exporter():
    check = ("import sys, ser.bin.infer; loaded = [m for m in ('ser.train', 'ser.export', 'ser.model') "
             "if m in sys.modules]; assert not loaded, loaded")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_ser_infer_takes_the_classifiers_defaults():
    defaults = inspect.signature(EmotionClassifier.__init__).parameters
    parser = get_parser()
    for option in ("batch_size", "chunk_seconds", "chunk_overlap"):
        assert parser.get_default(option) == defaults[option].default
    with pytest.raises(SerError, match="batch size must be positive"):
        EmotionClassifier(Path("."), None, None, Normalizer("none"), {"labels": [], "model": {}}, batch_size=0)


@pytest.mark.slow
def test_tampered_bundle_is_refused(bundle, wavs, tmp_path, capsys):
    tampered = shutil.copytree(bundle, tmp_path / "bundle")
    with open(tampered / "cmvn.npz", "ab") as f:
        f.write(b"\0")
    with pytest.raises(SerError, match=r"cmvn\.npz: sha256 mismatch"):
        EmotionClassifier.load(tampered)
    status, out, err = infer(capsys, "--model", tampered, next(iter(wavs.values())))
    assert status == 2 and "cmvn.npz: sha256 mismatch" in err and out == ""
    shutil.copyfile(bundle / "cmvn.npz", tampered / "cmvn.npz")
    (tampered / "model.pt").unlink()
    with pytest.raises(SerError, match=r"model\.pt: missing"):
        EmotionClassifier.load(tampered)
