"""The openSMILE + SVM baseline: ComParE functionals as one row per utterance, the SVM's
model selection on the validation split, and its bundle classifying audio."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from ser.audio import SAMPLE_RATE, load_audio
from ser.cmvn import Normalizer, accumulate, save_stats
from ser.errors import AudioError, SerError
from ser.features import build_extractor, extract_features, feature_names, frame_length
from ser.svm import DEFAULTS, check_config, load_svm, train_svm, utterance_matrix
from ser.batching import Utterances

LABELS = ["angry", "neutral", "sad"]
GRID = {"c_grid": [1e-3, 1e-2, 1e-1, 1.0]}


def voiced(seconds: float, f0: float, seed: int) -> np.ndarray:
    """Harmonics of f0 with falling amplitudes and a little noise."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 10))
    return (0.2 * x + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def gaussian(n: int, seed: int, dim: int = 20, shift: float = 0.0, frames: int = 1,
             num_classes: int = 3, spread: float = 3.0) -> Utterances:
    """Class k centred on ``spread`` * e_k, every feature shifted by ``shift``; ``frames``
    rows per utterance."""
    rng = np.random.default_rng(seed)
    labels = [i % num_classes for i in range(n)]
    means = spread * np.eye(num_classes, dim)
    feats = [(means[k] + shift + rng.standard_normal((frames, dim))).astype(np.float32) for k in labels]
    return Utterances([f"u{i}" for i in range(n)], feats, labels)


@pytest.fixture(scope="module")
def compare_functionals():
    return build_extractor("compare_functionals")


def test_compare_functionals_is_one_row_per_utterance(compare_functionals):
    e = compare_functionals
    names = feature_names(e, "compare_functionals")
    assert len(names) == e.feature_dim(SAMPLE_RATE) == 6373 and len(set(names)) == 6373
    assert names[0] == "audspec_lengthL1norm_sma_range"
    assert (e.frame_shift, frame_length(e)) == (0.01, 0.06)
    short, long = voiced(0.06, 140, 0), voiced(1.5, 140, 0)
    for samples in (short, long):
        feats = extract_features(e, samples, "x")
        assert feats.shape == (1, 6373) and feats.dtype == np.float32 and np.all(np.isfinite(feats))
    # Functionals of different audio differ; the same audio gives the same row.
    assert not np.array_equal(extract_features(e, long, "x"), extract_features(e, voiced(1.5, 250, 0), "x"))
    np.testing.assert_array_equal(extract_features(e, long, "x"), extract_features(e, long, "x"))
    with pytest.raises(AudioError, match="too short: 959 samples"):
        extract_features(e, short[:959], "short.wav")


@pytest.mark.parametrize("signal", ["silence", "dc", "full_scale_square", "noise"])
def test_compare_functionals_of_hard_signals_are_finite(compare_functionals, signal):
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    x = {"silence": np.zeros(SAMPLE_RATE), "dc": np.full(SAMPLE_RATE, 0.5),
         "full_scale_square": np.sign(np.sin(2 * np.pi * 150 * t)),
         "noise": np.random.default_rng(0).uniform(-1, 1, SAMPLE_RATE)}[signal].astype(np.float32)
    for samples in (x, x[:960]):  # also exactly one descriptor frame long
        feats = extract_features(compare_functionals, samples, signal)  # AudioError on NaN
        assert feats.shape == (1, 6373)


def test_compare_functionals_round_trip_and_bad_level(compare_functionals):
    from ser.features import extractor_from_dict
    from ser.opensmile_features import OpenSmileFunctionals, OpenSmileLldConfig

    copy = extractor_from_dict(compare_functionals.to_dict())
    assert type(copy) is OpenSmileFunctionals and copy.config == compare_functionals.config
    x = voiced(0.4, 180, 1)
    np.testing.assert_array_equal(copy.extract(x, SAMPLE_RATE), compare_functionals.extract(x, SAMPLE_RATE))
    with pytest.raises(SerError, match="feature level 'lld' is not 'func'"):
        OpenSmileFunctionals(OpenSmileLldConfig(feature_set="ComParE_2016", feature_level="lld"))


def test_train_svm_selects_c_on_validation_and_scores_well(tmp_path):
    train, valid, test = gaussian(120, 0), gaussian(45, 1), gaussian(60, 2)
    best = train_svm(tmp_path, train, valid, LABELS, {"variant": "svm", **GRID}, seed=1)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["C"] for h in history["history"]] == GRID["c_grid"]
    assert [h["epoch"] for h in history["history"]] == [1, 2, 3, 4]
    assert history["selected"] == best and best["C"] in GRID["c_grid"]
    top = max(h["valid_uar"] for h in history["history"])
    assert best["valid_uar"] == top
    assert best["C"] == min(h["C"] for h in history["history"] if h["valid_uar"] == top)
    assert set(best) == {"epoch", "C", "train_acc", "valid_uar", "valid_wa", "seconds", "converged"}
    assert best["valid_uar"] > 0.9 and best["train_acc"] > 0.9
    assert (tmp_path / "svm.joblib").is_file() and (tmp_path / "learning_curve.png").is_file()
    assert not list(tmp_path.glob("*.tmp"))

    svm = load_svm(tmp_path)
    assert svm.labels == LABELS and svm.C == best["C"] and svm.epoch == best["epoch"] and svm.input_dim == 20
    posteriors = svm.posteriors(test.feats)
    assert posteriors.shape == (60, 3) and posteriors.dtype == np.float32
    np.testing.assert_allclose(posteriors.sum(1), 1, atol=1e-6)
    assert np.mean(posteriors.argmax(1) == np.array(test.labels)) > 0.9
    # The softmax keeps the SVM's own decision; one-row features pool to themselves and a zero std.
    assert svm.pooling == "mean_std"
    x = np.concatenate([np.concatenate(test.feats), np.zeros((60, 20))], axis=1)
    np.testing.assert_array_equal(posteriors.argmax(1), svm.pipeline.predict(x))
    np.testing.assert_array_equal(svm.predict(test.feats), svm.pipeline.predict(x))


def test_ties_go_to_the_smaller_c(tmp_path):
    # Far apart classes: every C separates the validation split perfectly.
    train, valid = gaussian(60, 0, spread=30), gaussian(30, 1, spread=30)
    best = train_svm(tmp_path, train, valid, LABELS, {"c_grid": [1.0, 0.1, 0.01]}, seed=1)
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert [h["valid_uar"] for h in history] == [1.0, 1.0, 1.0]
    assert best["C"] == 0.01 and best["epoch"] == 3


def test_scaler_is_fitted_on_the_training_part_only(tmp_path):
    train = gaussian(60, 0)
    runs = {}
    for shift in (0.0, 100.0):  # shifted validation data must not move the scaler
        out = tmp_path / f"shift{shift:g}"
        train_svm(out, train, gaussian(30, 1, shift=shift), LABELS, GRID, seed=1)
        runs[shift] = load_svm(out).pipeline.named_steps["scaler"]
    np.testing.assert_array_equal(runs[0.0].mean_, runs[100.0].mean_)
    means = np.concatenate(train.feats).mean(0)  # one-row features: their std half is zero
    np.testing.assert_allclose(runs[0.0].mean_, np.concatenate([means, np.zeros_like(means)]), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(runs[0.0].scale_, runs[100.0].scale_)


def test_same_seed_same_model(tmp_path):
    train, valid, test = gaussian(90, 0), gaussian(30, 1), gaussian(30, 2)
    for name in ("a", "b"):
        train_svm(tmp_path / name, train, valid, LABELS, GRID, seed=7)
    a, b = load_svm(tmp_path / "a"), load_svm(tmp_path / "b")
    np.testing.assert_array_equal(a.pipeline.named_steps["svm"].coef_, b.pipeline.named_steps["svm"].coef_)
    np.testing.assert_array_equal(a.posteriors(test.feats), b.posteriors(test.feats))
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h["history"]]  # noqa: E731
    assert strip(json.loads((tmp_path / "a/history.json").read_text())) == \
        strip(json.loads((tmp_path / "b/history.json").read_text()))


def test_frames_are_pooled_and_unseen_classes_get_zero(tmp_path):
    # Frame-level input (T, D): with pooling mean, the SVM sees each utterance's mean frame ...
    train, valid = gaussian(60, 0, frames=5), gaussian(30, 1, frames=3)
    labels = LABELS + ["happy"]  # never in training
    train_svm(tmp_path / "frames", train, valid, labels, {**GRID, "pooling": "mean"}, seed=1)
    svm = load_svm(tmp_path / "frames")
    assert svm.pooling == "mean" and svm.input_dim == 20
    means = [f.mean(0, keepdims=True) for f in valid.feats]
    np.testing.assert_allclose(svm.posteriors(valid.feats), svm.posteriors(means), atol=1e-6)
    # ... and with mean_std (the default) the means, then the standard deviations, of each dimension.
    train_svm(tmp_path / "mean_std", train, valid, labels, GRID, seed=1)
    pooled = load_svm(tmp_path / "mean_std")
    assert pooled.pooling == "mean_std" and pooled.input_dim == 20
    assert pooled.pipeline.named_steps["scaler"].mean_.shape == (40,)
    x = np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in valid.feats])
    np.testing.assert_array_equal(pooled.predict(valid.feats), pooled.pipeline.predict(x))
    with pytest.raises(SerError, match="18 features, the SVM takes 20"):
        pooled.predict([f[:, :18] for f in valid.feats])
    posteriors = svm.posteriors(valid.feats)
    assert posteriors.shape == (30, 4) and np.all(posteriors[:, 3] == 0)
    # Two classes: LinearSVC's single margin d becomes the scores (0, d).
    train2, valid2 = gaussian(40, 3, num_classes=2), gaussian(20, 4, num_classes=2)
    train_svm(tmp_path / "binary", train2, valid2, ["a", "b"], GRID, seed=1)
    svm2 = load_svm(tmp_path / "binary")
    x = utterance_matrix(valid2.feats, 20, "mean_std")
    np.testing.assert_array_equal(svm2.posteriors(valid2.feats).argmax(1), svm2.pipeline.predict(x))
    margins = svm2.pipeline.decision_function(x)
    np.testing.assert_allclose(svm2.posteriors(valid2.feats)[:, 1], 1 / (1 + np.exp(-margins)), rtol=1e-5)


@pytest.mark.parametrize("options, message", [
    ({"c_grid": [0.1, -1]}, r"c_grid value -1 is not a positive number"),
    ({"c_grid": [0.1, "abc"]}, r"c_grid value 'abc' is not a positive number"),
    ({"c_grid": [True]}, r"c_grid value True"),
    ({"c_grid": [float("inf")]}, r"c_grid value inf"),
    ({"c_grid": []}, r"c_grid is empty"),
    ({"pooling": "max"}, r"pooling 'max' is not one of"),
    ({"c_grid": [0.1, 0.1]}, r"repeats a value"),
    ({"class_weight": "auto"}, r"class_weight 'auto'"),
    ({"max_iter": 0}, r"max_iter 0"),
    ({"kernel": "rbf"}, r"unknown svm option\(s\) \['kernel'\]"),
    ({"variant": "lstm"}, r"variant 'lstm', not 'svm'"),
])
def test_bad_config(tmp_path, options, message):
    with pytest.raises(SerError, match=message):
        train_svm(tmp_path, gaussian(30, 0), gaussian(15, 1), LABELS, options, seed=1)
    assert not (tmp_path / "svm.joblib").exists()


def test_config_forms():
    assert check_config({})["c_grid"] == DEFAULTS["c_grid"]
    # --model-opts c_grid=0.1 gives one number; PyYAML reads 1e-3 as a string.
    assert check_config({"c_grid": 0.1})["c_grid"] == [0.1]
    assert check_config({"c_grid": ["1e-3", 1]})["c_grid"] == [1e-3, 1.0]
    assert check_config({"class_weight": None})["class_weight"] is None


def test_bad_data(tmp_path):
    empty = Utterances([], [], [])
    with pytest.raises(SerError, match=r"empty training \(0\) or validation \(15\) set"):
        train_svm(tmp_path, empty, gaussian(15, 1), LABELS, GRID, seed=1)
    with pytest.raises(SerError, match=r"empty training \(30\) or validation \(0\) set"):
        train_svm(tmp_path, gaussian(30, 0), empty, LABELS, GRID, seed=1)
    one_class = gaussian(10, 0, num_classes=1)
    with pytest.raises(SerError, match="one class only \\(angry\\)"):
        train_svm(tmp_path, one_class, gaussian(15, 1), LABELS, GRID, seed=1)
    with pytest.raises(SerError, match="utterance 0: 8 features, the SVM takes 20"):
        train_svm(tmp_path, gaussian(30, 0), gaussian(15, 1, dim=8), LABELS, GRID, seed=1)
    bad = gaussian(30, 0)
    bad.feats[4] = bad.feats[4].copy()
    bad.feats[4][0, 2] = np.nan
    with pytest.raises(SerError, match="NaN"):
        train_svm(tmp_path, bad, gaussian(15, 1), LABELS, GRID, seed=1)
    with pytest.raises(SerError, match="no trained SVM"):
        load_svm(tmp_path)
    (tmp_path / "svm.joblib").write_bytes(b"not a joblib file")
    with pytest.raises(SerError, match="svm.joblib: cannot load the SVM"):
        load_svm(tmp_path)
    train_svm(tmp_path / "ok", gaussian(30, 0), gaussian(15, 1), LABELS, GRID, seed=1)
    with pytest.raises(SerError, match="utterance 0: 5 features, the SVM takes 20"):
        load_svm(tmp_path / "ok").posteriors([np.zeros((1, 5), np.float32)])


# --- the bundle: an svm run as the training stage writes it, exported and used ---

F0 = {"angry": 300.0, "neutral": 140.0, "sad": 90.0}


@pytest.fixture(scope="module")
def svm_run(tmp_path_factory, compare_functionals) -> Path:
    """A data dir of generated wavs (pitch carries the emotion), compare_functionals
    features, --cmvn train statistics and a trained svm run dir with run_config.json,
    svm.joblib, history.json and .done, as steps/train.sh writes them."""
    root = tmp_path_factory.mktemp("svm_recipe")
    data_dir, feat_dir, run_dir = root / "data/toy", root / "data/toy/feats/compare_functionals", \
        root / "exp/toy/compare_functionals_svm/final_train/seed1/fold1"
    (data_dir / "wavs").mkdir(parents=True)
    feat_dir.mkdir(parents=True)
    wavs, labels = {}, {}
    for i in range(30):
        emotion = LABELS[i % 3]
        utt = f"spk{i % 2}_{emotion}_{i:02d}"
        f0 = F0[emotion] * (1 + 0.05 * np.random.default_rng(i).standard_normal())
        path = data_dir / "wavs" / f"{utt}.wav"
        sf.write(path, voiced(0.4 + 0.02 * i, f0, i), SAMPLE_RATE)
        wavs[utt], labels[utt] = str(path), LABELS.index(emotion)
    (data_dir / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in wavs.items()))
    feats = {u: extract_features(compare_functionals, load_audio(p), p) for u, p in wavs.items()}
    with kaldiio.WriteHelper(f"ark,scp:{feat_dir}/feats.ark,{feat_dir}/feats.scp") as writer:
        for utt, matrix in feats.items():
            writer(utt, matrix)
    (feat_dir / "feat_conf.yaml").write_text("feat: compare_functionals\n")
    utts = list(wavs)
    train_utts, valid_utts = utts[:21], utts[21:]
    stats_file = feat_dir / "cmvn/all/fold1.npz"
    save_stats(accumulate(train_utts, feats.__getitem__, lambda u: "train"), stats_file, "train")
    normalizer = Normalizer.load("train", stats_file)

    def utterances(ids):
        return Utterances(ids, [normalizer(feats[u]) for u in ids], [labels[u] for u in ids])

    model_config = {"variant": "svm", **GRID}
    best = train_svm(run_dir, utterances(train_utts), utterances(valid_utts), LABELS, model_config, seed=1)
    run_config = {"data_dir": str(data_dir), "feat_dir": str(feat_dir),
                  "folds_dir": str(data_dir / "folds/all"), "fold": "fold1", "cmvn": "train",
                  "cmvn_stats": str(stats_file), "model": "svm", "model_config": model_config,
                  "train_config": {"seed": 1}, "labels": LABELS,
                  "num_train": len(train_utts), "num_valid": len(valid_utts)}
    (run_dir / "run_config.json").write_text(json.dumps(run_config))
    (run_dir / ".done").write_text(json.dumps(best) + "\n")
    return run_dir


@pytest.fixture(scope="module")
def svm_bundle(svm_run) -> Path:
    from ser.bin.export_model import main as export_main
    out = svm_run.parents[2] / "final"
    export_main(["--run-dir", str(svm_run), "--out", str(out)])
    return out


def test_svm_bundle_holds_the_svm(svm_run, svm_bundle):
    meta = json.loads((svm_bundle / "bundle.json").read_text())
    assert meta["model"]["kind"] == "svm" and meta["model"]["name"] == "svm"
    assert meta["model"]["config"]["C"] == load_svm(svm_run).C
    assert meta["labels"] == LABELS and meta["features"]["feat"] == "compare_functionals"
    assert meta["training"]["selected"] == json.loads((svm_run / "history.json").read_text())["selected"]
    listed = [line.split("  ")[1] for line in (svm_bundle / "SHA256SUMS").read_text().splitlines()]
    assert "svm.joblib" in listed and "model.pt" not in listed and "cmvn.npz" in listed
    assert (svm_bundle / "svm.joblib").read_bytes() == (svm_run / "svm.joblib").read_bytes()


def test_svm_bundle_classifies_audio_as_the_run_does(svm_run, svm_bundle, compare_functionals, tmp_path, capsys):
    from ser import EmotionClassifier
    from ser.bin.infer import main as infer_main

    classifier = EmotionClassifier.load(svm_bundle)
    assert classifier.kind == "svm" and classifier.labels == LABELS
    run_config = json.loads((svm_run / "run_config.json").read_text())
    normalizer = Normalizer.load("train", run_config["cmvn_stats"])
    svm = load_svm(svm_run)
    correct = 0
    for i, emotion in enumerate(LABELS * 2):
        path = tmp_path / f"new{i}.wav"
        sf.write(path, voiced(0.8, F0[emotion] * (1.03 if i > 2 else 0.97), 100 + i), SAMPLE_RATE)
        prediction = classifier.predict(path)
        expected = svm.posteriors([normalizer(extract_features(compare_functionals, load_audio(path), path))])[0]
        assert list(prediction.posteriors) == LABELS and prediction.num_chunks == 1
        np.testing.assert_allclose(list(prediction.posteriors.values()), expected, atol=1e-6)
        assert prediction.label == LABELS[int(expected.argmax())]
        correct += prediction.label == emotion
    assert correct >= 5  # pitch separates these three cleanly

    with pytest.raises(SystemExit) as exit_info:
        infer_main(["--model", str(svm_bundle), "--format", "json", str(tmp_path / "new0.wav")])
    assert exit_info.value.code == 0
    line = json.loads(capsys.readouterr().out)
    assert line["emotion"] == classifier.predict(tmp_path / "new0.wav").label and line["error"] is None


def test_tampered_or_incomplete_svm_bundle_is_refused(svm_run, svm_bundle, tmp_path):
    from ser import EmotionClassifier

    tampered = shutil.copytree(svm_bundle, tmp_path / "bundle")
    with open(tampered / "svm.joblib", "ab") as f:
        f.write(b"\0")
    with pytest.raises(SerError, match=r"svm\.joblib: sha256 mismatch"):
        EmotionClassifier.load(tampered)
    shutil.copyfile(svm_bundle / "svm.joblib", tampered / "svm.joblib")
    sums = tampered / "SHA256SUMS"
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if "svm.joblib" not in line))
    with pytest.raises(SerError, match=r"svm\.joblib: not listed in"):
        EmotionClassifier.load(tampered)
    # A run marked svm without its model cannot be exported.
    broken = shutil.copytree(svm_run, tmp_path / "run")
    (broken / "svm.joblib").unlink()
    from ser.export import export_bundle
    with pytest.raises(SerError, match="no trained SVM"):
        export_bundle(broken, tmp_path / "out")
