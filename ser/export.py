"""Model bundles: a trained run exported as one self-contained directory, which
ser/inference.py's :class:`~ser.inference.EmotionClassifier` loads. A bundle holds

- the classifier, one of (``bundle.json``'s ``model.kind``)

  - ``model.pt`` (``torchscript``): the neural models as TorchScript,
    ``(feats (B, T, D), lengths (B,)) -> logits``, posteriors their softmax;
  - ``svm.joblib`` (``svm``, ser/svm.py): the scikit-learn pipeline of ``--model svm``
    (StandardScaler + LinearSVC), posteriors the softmax of its decision function:
    scores whose argmax is the SVM's decision, not calibrated probabilities;

- ``model.onnx``: the neural models also as ONNX (dynamic batch and time axes), for
  onnxruntime without PyTorch (``backend="onnx"``), checked against ``model.pt`` at export;
- ``bundle.json``: the labels, the feature extractor (Lhotse's config), the
  normalisation, the model and training settings, the training corpus, and the speed
  factors of the test-time copies (``test_copies``) of a model trained with copies;
- ``feats/``: files the feature extractor reads (``lld93.conf`` for lld93);
- ``cmvn.npz``: the normalisation statistics (absent with cmvn ``none``);
- ``summary.json``, ``RESULTS.md``: the system's cross-validation results, if scored;
- ``SHA256SUMS``: ``sha256sum`` format, checked on every load.

A model trained with ``--cmvn speaker`` (or ``corpus``) cannot know a new speaker's (or
corpus's) statistics: its bundle normalises with the training data's pooled (global)
statistics and says so in ``bundle.json``.
"""
from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import kaldiio
import numpy as np
import torch
from torch import nn

from ser.atomic import atomic_path
from ser.audio import SAMPLE_RATE, load_audio
from ser.cmvn import STATELESS_MODES, save_stats
from ser.config import load_yaml
from ser.datadir import read_table
from ser.errors import SerError
from ser.features import build_extractor, extract_features
from ser.inference import (CHECKSUMS, FORMAT, MODEL_FILES, ONNX_FILE, file_sha256, load_extractor, onnx_session,
                           quiet_jit, softmax)
from ser.speed import trained_copy_factors

if TYPE_CHECKING:
    from lhotse.features.base import FeatureExtractor

ONNX_OPSET = 17
SPEAKER_CMVN_NOTE = (
    "trained with per-speaker normalisation; a new speaker's statistics are unknown, so "
    "inputs are normalised with the pooled statistics of all training speakers, which "
    "may cost accuracy compared with the cross-validation results")
CORPUS_CMVN_NOTE = (
    "trained with per-corpus normalisation; a new recording's corpus statistics are unknown, "
    "so inputs are normalised with the pooled statistics of the training corpora")


def script_model(model: nn.Module, tolerance: float = 1e-4) -> torch.jit.ScriptModule:
    """``model`` scripted rather than traced: scripting compiles the control flow (the
    recurrence's loop over frames, the input checks), where a trace records only the
    path its example input took. Checked against the eager model on several lengths."""
    model = model.eval()
    with quiet_jit():
        scripted = torch.jit.script(model)
    generator = torch.Generator().manual_seed(0)
    for lengths in ([1, 9, 40, 173], [3]):
        lengths = torch.tensor(lengths)
        feats = torch.randn(len(lengths), int(lengths.max()), model.input_dim, generator=generator)
        with torch.no_grad():
            diff = float((scripted(feats, lengths) - model(feats, lengths)).abs().max())
        if not diff <= tolerance:
            raise SerError(f"the TorchScript model differs from the trained one by {diff:.3g} "
                           f"in the logits (frames {lengths.tolist()})")
    return scripted


def _check_lengths() -> list[list[int]]:
    """Batches of different lengths, and single inputs, that exports are checked on."""
    return [[1, 9, 40, 173], [3], [250], [57, 57]]


def export_onnx(scripted: torch.jit.ScriptModule, input_dim: int, path: Path, tolerance: float = 1e-4) -> None:
    """Writes the scripted model as ONNX, with dynamic batch and frame axes: from the
    script, so the recurrence's loop over frames becomes an ONNX Loop rather than a
    trace of one length. Checked with onnxruntime against the TorchScript posteriors."""
    with warnings.catch_warnings():  # the TorchScript-based exporter warns that it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            scripted, (torch.zeros(2, 7, input_dim), torch.tensor([7, 4])), str(path), dynamo=False,
            input_names=["feats", "lengths"], output_names=["logits"], opset_version=ONNX_OPSET,
            dynamic_axes={"feats": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}, "logits": {0: "batch"}})
    session = onnx_session(path)
    generator = torch.Generator().manual_seed(1)
    for lengths in _check_lengths():
        lengths = torch.tensor(lengths)
        feats = torch.randn(len(lengths), int(lengths.max()), input_dim, generator=generator)
        with torch.no_grad():
            expected = torch.softmax(scripted(feats, lengths), dim=-1).numpy()
        got = softmax(session.run(None, {"feats": feats.numpy(), "lengths": lengths.numpy()})[0])
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise SerError(f"{path}: the ONNX model's posteriors differ from the TorchScript "
                           f"model's by {diff:.3g} (frames {lengths.tolist()})")


def save_extractor(extractor: FeatureExtractor, feat: str, options: dict, bundle_dir: Path) -> dict:
    """The extractor's Lhotse config, with the files it names by absolute path (an
    openSMILE config) copied to ``<bundle_dir>/feats/`` and named relative to the bundle."""
    config, files = extractor.to_dict(), {}
    for key, value in config.items():
        if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_file():
            files[key] = f"feats/{Path(value).name}"
            (bundle_dir / "feats").mkdir(exist_ok=True)
            shutil.copyfile(value, bundle_dir / files[key])
            config[key] = files[key]
    return {"feat": feat, "options": options, "extractor": config, "files": files}


def _check_features(extractor: FeatureExtractor, data_dir: Path, feat_dir: Path) -> None:
    """The bundle's extractor must reproduce the features the model was trained on
    (a feature config edited after stage 3 would not)."""
    utt, ark = next(iter(read_table(feat_dir / "feats.scp").items()))
    wav = read_table(data_dir / "wav.scp")[utt]
    stored = kaldiio.load_mat(ark)
    fresh = extract_features(extractor, load_audio(wav), wav)
    # Loose enough for Kaldi-compressed features; other settings move them far more.
    # The relative term is for one-row (functionals) features, which have no range.
    tolerance = 0.01 * (stored.max(0) - stored.min(0)) + 1e-4 + 1e-5 * np.abs(stored).max(0)
    if fresh.shape != stored.shape or not np.all(np.abs(fresh - stored) <= tolerance):
        raise SerError(f"{feat_dir}: the features of {utt} differ from what the bundle's extractor "
                       f"computes now; was conf/feats changed after the features were made?")


def _save_cmvn(mode: str, stats_file: str | None, out: Path) -> dict:
    """Writes the statistics inference applies (as ``train`` mode: one group)."""
    if mode in STATELESS_MODES:  # nothing to store: inference normalises the same way
        return {"mode": mode, "inference": mode}
    with np.load(stats_file) as npz:
        stats = {k: npz[k] for k in ("groups", "count", "sum", "sumsq")}
    if mode in ("speaker", "corpus"):
        stats = {"groups": np.array(["train"]), "count": stats["count"].sum(keepdims=True),
                 "sum": stats["sum"].sum(0, keepdims=True), "sumsq": stats["sumsq"].sum(0, keepdims=True)}
    save_stats(stats, out, "train")
    if mode == "speaker":
        return {"mode": "speaker", "inference": "global", "note": SPEAKER_CMVN_NOTE}
    if mode == "corpus":
        return {"mode": "corpus", "inference": "global", "note": CORPUS_CMVN_NOTE}
    return {"mode": "train", "inference": "train"}


def write_checksums(bundle_dir: Path) -> None:
    files = sorted(p for p in bundle_dir.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    (bundle_dir / CHECKSUMS).write_text(
        "".join(f"{file_sha256(p)}  {p.relative_to(bundle_dir).as_posix()}\n" for p in files))


def is_svm_run(run_dir: Path, run_config: dict) -> bool:
    """A ``--model svm`` run (ser/svm.py) rather than a neural one (``best.pt``)."""
    from ser.svm import MODEL_FILE
    return ((run_dir / MODEL_FILE).is_file() or run_config.get("model") == "svm"
            or (run_config.get("model_config") or {}).get("variant") == "svm")


def _export_svm(run_dir: Path, run_config: dict, dim: int, out: Path) -> dict:
    """Copies the run's ``svm.joblib`` to ``out``; checks it loads and fits the features."""
    from ser.svm import MODEL_FILE, load_svm
    classifier = load_svm(run_dir)
    if classifier.input_dim != dim:
        raise SerError(f"{run_dir / MODEL_FILE}: the SVM takes {classifier.input_dim} features, "
                       f"the feature extractor gives {dim}")
    if "labels" in run_config and run_config["labels"] != classifier.labels:
        raise SerError(f"{run_dir / MODEL_FILE}: labels {classifier.labels} differ from "
                       f"run_config.json's {run_config['labels']}")
    shutil.copyfile(run_dir / MODEL_FILE, out / MODEL_FILE)
    return {"kind": "svm", "labels": classifier.labels,
            "config": {**run_config["model_config"], "C": classifier.C}}


def export_bundle(run_dir: Path, out_dir: Path, results_dir: Path | None = None) -> Path:
    """Exports a trained run (``steps/train.sh``'s ``seed<s>/fold<k>``) to ``out_dir``,
    written beside it first and renamed into place, so a bundle is always whole. A
    neural run's ``best.pt`` becomes ``model.pt``, an svm run's ``svm.joblib`` is copied."""
    run_config = json.loads((run_dir / "run_config.json").read_text())
    svm = is_svm_run(run_dir, run_config)
    if not svm:
        from ser.model import build_model  # export only: a loaded bundle runs TorchScript
        best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
        model = build_model(**best["model_config"])
        model.load_state_dict(best["model"])
        scripted = script_model(model)

    feat_dir = Path(run_config["feat_dir"])
    options = load_yaml(feat_dir / "feat_conf.yaml")
    feat = options.pop("feat")
    external = feat == "external"
    extractor = None if external else build_extractor(feat, **options)
    dim = int((feat_dir / "feat_dim").read_text()) if external else extractor.feature_dim(SAMPLE_RATE)

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        if svm:
            model_info = _export_svm(run_dir, run_config, dim, tmp)
        else:
            with quiet_jit():
                scripted.save(str(tmp / MODEL_FILES["torchscript"]))
            export_onnx(scripted, model.input_dim, tmp / ONNX_FILE)
            model_info = {"kind": "torchscript", "labels": best["labels"], "config": best["model_config"],
                          "onnx": ONNX_FILE}
        data_dir = Path(run_config["data_dir"])
        if external:
            features = {"feat": "external", "options": options, "dim": dim,
                        "frame_shift": float((feat_dir / "frame_shift").read_text())}
        else:
            features = save_extractor(extractor, feat, options, tmp)
            _check_features(load_extractor(features, tmp), data_dir, feat_dir)
        cmvn = _save_cmvn(run_config["cmvn"], run_config["cmvn_stats"], tmp / "cmvn.npz")
        results = []
        for name in ("summary.json", "RESULTS.md"):
            if results_dir is not None and (results_dir / name).is_file():
                shutil.copyfile(results_dir / name, tmp / name)
                results.append(name)
        history = json.loads((run_dir / "history.json").read_text())
        meta = {
            "format": FORMAT, "labels": model_info["labels"], "features": features, "cmvn": cmvn,
            "model": {"name": run_config["model"], "kind": model_info["kind"], "config": model_info["config"],
                      **({"onnx": model_info["onnx"]} if "onnx" in model_info else {})},
            "training": {"corpus": data_dir.name, "data_dir": str(data_dir), "run_dir": str(run_dir),
                         "folds_dir": run_config["folds_dir"], "num_train": run_config["num_train"],
                         "num_valid": run_config["num_valid"], "train_config": run_config["train_config"],
                         "selected": history["selected"]},
            "cv_results": results,
            "test_copies": [] if svm else trained_copy_factors(run_dir, run_config),
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
        }
        if svm:
            import sklearn
            meta["sklearn"] = sklearn.__version__
        (tmp / "bundle.json").write_text(json.dumps(meta, indent=1) + "\n")
        write_checksums(tmp)
    return out_dir
