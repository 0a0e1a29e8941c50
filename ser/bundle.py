"""Model bundles: a trained run exported as one self-contained directory, and the
:class:`EmotionClassifier` that loads it and classifies audio.

A bundle holds

- the classifier, one of (``bundle.json``'s ``model.kind``)

  - ``model.pt`` (``torchscript``): the neural models as TorchScript,
    ``(feats (B, T, D), lengths (B,)) -> logits``, posteriors their softmax;
  - ``svm.joblib`` (``svm``, ser/svm.py): the scikit-learn pipeline of ``--model svm``
    (StandardScaler + LinearSVC), posteriors the softmax of its decision function:
    scores whose argmax is the SVM's decision, not calibrated probabilities;

- ``model.onnx``: the neural models also as ONNX (dynamic batch and time axes), for
  onnxruntime without PyTorch (``backend="onnx"``), checked against ``model.pt`` at export;
- ``bundle.json``: the labels, the feature extractor (Lhotse's config), the
  normalisation, the model and training settings, the training corpus;
- ``feats/``: files the feature extractor reads (``lld93.conf`` for lld93);
- ``cmvn.npz``: the normalisation statistics (absent with cmvn ``none``);
- ``summary.json``, ``RESULTS.md``: the system's cross-validation results, if scored;
- ``SHA256SUMS``: ``sha256sum`` format, checked on every load.

A model trained with speed-perturbed copies (run.sh --speed-perturb) has their factors in
``bundle.json``'s ``test_copies``, and classifies audio as stage 6 scores it: the
posteriors of the input averaged with those of its copies at those factors, made by the
same ``sox -R ... speed <factor>`` as stage 3's copies (a file is perturbed as it is, an
array as 16 kHz mono 16-bit audio). ``test_copies=[]`` classifies the input alone, as the
results' "originals" columns do; windows (:meth:`EmotionClassifier.predict_segments`)
and features are always classified alone.

A model trained on external features (``--feat external``, ser/external_feats.py) has no
feature extractor: its ``bundle.json`` says ``features.feat: external`` with the dimension,
and it classifies features (:meth:`EmotionClassifier.predict_features`, ``ser infer
--feats-scp``), never audio, which it refuses with :data:`EXTERNAL_NEEDS_FEATURES`.

Loading needs the ``ser`` package and its dependencies, not the recipe's ``data/``
or ``conf/``. A model trained with ``--cmvn speaker`` cannot know a new speaker's
statistics: its bundle normalises with the training speakers' pooled (global)
statistics, says so in ``bundle.json`` and warns on load.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch
from lhotse.features.base import FeatureExtractor
from torch import nn

from ser.audio import (SAMPLE_RATE, check_speed_factors, is_pipe, load_audio, speed_perturbed_entry, to_mono_16k,
                       truncation, wav_scp_entry)
from ser.cmvn import STATELESS_MODES, Normalizer, save_stats
from ser.config import load_yaml
from ser.datadir import read_table
from ser.errors import AudioError, SerError
from ser.features import FEATURE_TYPES, build_extractor, extract_features, frame_length
from ser.batching import Utterances, bucketed_batches, collate
from ser.speed import trained_copy_factors

FORMAT = 1
CHECKSUMS = "SHA256SUMS"
# bundle.json's model.kind -> the model's file; bundles without a kind are torchscript.
MODEL_FILES = {"torchscript": "model.pt", "svm": "svm.joblib"}
ONNX_FILE = "model.onnx"
BACKENDS = ("torchscript", "onnx")
ONNX_OPSET = 17
AudioInput = str | Path | np.ndarray

SPEAKER_CMVN_NOTE = (
    "trained with per-speaker normalisation; a new speaker's statistics are unknown, so "
    "inputs are normalised with the pooled statistics of all training speakers, which "
    "may cost accuracy compared with the cross-validation results")
EXTERNAL_NEEDS_FEATURES = (
    "this model was trained on external features ({source}), which it cannot compute from "
    "audio; give it the same kind of features as a Kaldi feats.scp (ser infer --feats-scp "
    "PATH, or EmotionClassifier.predict_features)")
CORPUS_CMVN_NOTE = (
    "trained with per-corpus normalisation; a new recording's corpus statistics are unknown, "
    "so inputs are normalised with the pooled statistics of the training corpora")


@contextmanager
def _quiet_jit() -> Iterator[None]:
    # TorchScript is the bundle's model format; torch 2.13 flags torch.jit as deprecated.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
        yield


def script_model(model: nn.Module, tolerance: float = 1e-4) -> torch.jit.ScriptModule:
    """``model`` scripted rather than traced: scripting compiles the control flow (the
    recurrence's loop over frames, the input checks), where a trace records only the
    path its example input took. Checked against the eager model on several lengths."""
    model = model.eval()
    with _quiet_jit():
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
        got = _softmax(session.run(None, {"feats": feats.numpy(), "lengths": lengths.numpy()})[0])
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise SerError(f"{path}: the ONNX model's posteriors differ from the TorchScript "
                           f"model's by {diff:.3g} (frames {lengths.tolist()})")


def onnx_session(path: Path):
    """An onnxruntime CPU session of ``path``."""
    try:
        import onnxruntime
    except ImportError:
        raise SerError("the onnx backend needs onnxruntime (pip install -r tools/requirements.txt)") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its warnings about unused initialisers are not the user's
    # As many threads as torch uses (path.sh: 1 per job), not onnxruntime's one per core.
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


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


def load_extractor(features: dict, bundle_dir: Path) -> FeatureExtractor:
    factory = FEATURE_TYPES.get(features["feat"])
    if factory is None:
        raise SerError(f"{bundle_dir}: unknown feature type {features['feat']!r}")
    if isinstance(factory, str):  # importing the module registers its extractor type with Lhotse
        importlib.import_module(factory.split(":")[0])
    config = dict(features["extractor"])
    for key, name in features["files"].items():
        config[key] = str(bundle_dir / name)
    return FeatureExtractor.from_dict(config)


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(bundle_dir: Path) -> None:
    files = sorted(p for p in bundle_dir.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    (bundle_dir / CHECKSUMS).write_text(
        "".join(f"{_sha256(p)}  {p.relative_to(bundle_dir).as_posix()}\n" for p in files))


def verify_checksums(bundle_dir: Path, required: Sequence[str]) -> list[str]:
    """Every file in SHA256SUMS must match, and ``required`` must be among them;
    returns the files listed."""
    sums_file = bundle_dir / CHECKSUMS
    if not sums_file.is_file():
        raise SerError(f"{bundle_dir}: no {CHECKSUMS}; is this a model bundle (ser export-model)?")
    listed = {}
    for line in sums_file.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    for name in required:
        if name not in listed:
            raise SerError(f"{bundle_dir / name}: not listed in {sums_file}")
    for name, digest in listed.items():
        path = bundle_dir / name
        if not path.is_file():
            raise SerError(f"{path}: missing from the bundle")
        if _sha256(path) != digest:
            raise SerError(f"{path}: sha256 mismatch, the file was changed after export; "
                           "export the bundle again")
    return list(listed)


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

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if svm:
        model_info = _export_svm(run_dir, run_config, dim, tmp)
    else:
        with _quiet_jit():
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
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


@dataclass
class Prediction:
    label: str
    # label -> probability (an svm bundle's: softmax scores), in the bundle's label order
    posteriors: dict[str, float]
    num_chunks: int = 1
    num_copies: int = 0  # speed-perturbed copies averaged in (test-time augmentation)


@dataclass
class Segment:
    """One window of :meth:`EmotionClassifier.predict_segments`, in seconds."""
    start: float
    end: float
    label: str
    posteriors: dict[str, float]


# Emotion over time: 2 s windows, about one utterance of the acted corpora the models
# learn from, every 0.5 s, so a change shows within half a second of where it is.
SEGMENT_WINDOW = 2.0
SEGMENT_HOP = 0.5


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Starts of ``window``-sample windows every ``hop`` samples; the last one ends with
    the audio (overlapping its neighbour more), and audio shorter than a window is one."""
    if num_samples <= window:
        return [0]
    last = num_samples - window
    return list(range(0, last, hop)) + [last]


class EmotionClassifier:
    """A loaded bundle: audio in (path or array, any sample rate, mono or stereo),
    :class:`Prediction` out. Audio longer than ``chunk_seconds`` is classified in
    chunks of that length overlapping by at least ``chunk_overlap`` seconds, and the
    chunks' posteriors are averaged; ``batch_size`` chunks go through the model at once.
    ``model`` is TorchScript, an onnxruntime session (``backend="onnx"``) or, for an svm
    bundle, a :class:`ser.svm.SvmClassifier` (whose posteriors are softmax scores, see
    the module docstring). ``test_copies``: speed factors of test-time copies (module
    docstring); None: the bundle's, [] none."""

    def __init__(self, bundle_dir: Path, model, extractor: FeatureExtractor | None,
                 normalizer: Normalizer, meta: dict, device: str = "cpu", batch_size: int = 16,
                 chunk_seconds: float = 10.0, chunk_overlap: float = 1.0, backend: str = "torchscript",
                 test_copies: Sequence[str] | None = None):
        if batch_size < 1:
            raise SerError(f"batch size must be positive, got {batch_size}")
        if extractor is not None and (not 0 <= chunk_overlap < chunk_seconds
                                      or chunk_seconds < frame_length(extractor)):
            raise SerError(f"need 0 <= chunk overlap ({chunk_overlap}) < chunk length "
                           f"({chunk_seconds}) and a chunk of at least one frame "
                           f"({frame_length(extractor)} s)")
        self.bundle_dir, self.model, self.extractor = bundle_dir, model, extractor
        self.normalizer, self.meta, self.device, self.batch_size = normalizer, meta, device, batch_size
        self.labels: list[str] = meta["labels"]
        self.kind: str = meta["model"].get("kind", "torchscript")
        self.backend = backend
        self.chunk_samples = round(chunk_seconds * SAMPLE_RATE)
        self.chunk_hop = self.chunk_samples - round(chunk_overlap * SAMPLE_RATE)
        # Bundles exported before test-time copies have no factors: their inputs go alone.
        self.test_copies = check_speed_factors(
            [str(f) for f in (meta.get("test_copies", []) if test_copies is None else test_copies)])

    @classmethod
    def load(cls, bundle_dir: Path | str, device: str = "cpu", backend: str = "torchscript",
             **options) -> EmotionClassifier:
        """Checks the bundle's SHA256SUMS, then loads it; ``backend``: ``torchscript``
        (model.pt) or ``onnx`` (model.onnx through onnxruntime, CPU); ``options``:
        ``batch_size``, ``chunk_seconds``, ``chunk_overlap``, ``test_copies``."""
        if backend not in BACKENDS:
            raise SerError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        bundle_dir = Path(bundle_dir).resolve()
        if not bundle_dir.is_dir():
            raise SerError(f"{bundle_dir}: no such model bundle directory")
        listed = verify_checksums(bundle_dir, ["bundle.json"])
        meta = json.loads((bundle_dir / "bundle.json").read_text())
        if meta.get("format") != FORMAT:
            raise SerError(f"{bundle_dir}: bundle format {meta.get('format')}, this ser reads {FORMAT}")
        kind = meta["model"].get("kind", "torchscript")
        if kind not in MODEL_FILES:
            raise SerError(f"{bundle_dir}: unknown model kind {kind!r}; this ser reads {', '.join(MODEL_FILES)}")
        if MODEL_FILES[kind] not in listed:
            raise SerError(f"{bundle_dir / MODEL_FILES[kind]}: not listed in {bundle_dir / CHECKSUMS}")
        cmvn = meta["cmvn"]
        if cmvn["mode"] in ("speaker", "corpus"):
            warnings.warn(f"{bundle_dir}: {cmvn['note']}", stacklevel=2)
        normalizer = Normalizer(cmvn["inference"]) if cmvn["inference"] in STATELESS_MODES \
            else Normalizer.load("train", bundle_dir / "cmvn.npz")
        if backend == "onnx":
            if kind != "torchscript":
                raise SerError(f"{bundle_dir}: an {kind} bundle has no ONNX model; use the torchscript backend")
            if ONNX_FILE not in listed:
                raise SerError(f"{bundle_dir / ONNX_FILE}: not in the bundle (exported before ONNX "
                               "was added?); export it again with steps/export_model.sh")
            model = onnx_session(bundle_dir / ONNX_FILE)
        elif kind == "svm":
            from ser.svm import load_svm
            model = load_svm(bundle_dir / MODEL_FILES["svm"])
            if model.labels != meta["labels"]:
                raise SerError(f"{bundle_dir}: svm.joblib's labels differ from bundle.json's")
        else:
            with _quiet_jit():
                model = torch.jit.load(str(bundle_dir / MODEL_FILES[kind]), map_location=device).eval()
        extractor = None if meta["features"]["feat"] == "external" else \
            load_extractor(meta["features"], bundle_dir)
        return cls(bundle_dir, model, extractor, normalizer, meta,
                   device, backend=backend, **options)

    @property
    def needs_features(self) -> bool:
        """True for a bundle trained on external features: it classifies features, not audio."""
        return self.extractor is None

    def _refuse_audio(self) -> None:
        if self.needs_features:
            source = " ".join(self.meta["features"].get("options", {}).get("feats_scp", [])) or "a feats.scp"
            raise SerError(f"{self.bundle_dir}: " + EXTERNAL_NEEDS_FEATURES.format(source=source))

    def predict_features(self, feats: Sequence[np.ndarray]) -> list[Prediction]:
        """One prediction per (frames, dim) feature matrix (or 1-D vector), unnormalised as
        the bundle's training read them; for any bundle, also one with an extractor."""
        dim = self.meta["features"].get("dim")
        mats = []
        for i, f in enumerate(feats):
            f = np.asarray(f, dtype=np.float32)
            f = f[None, :] if f.ndim == 1 else f
            if f.ndim != 2 or not f.shape[0] or (dim is not None and f.shape[1] != dim):
                raise SerError(f"features {i}: shape {f.shape}, the model takes (frames, {dim})")
            mats.append(self.normalizer(f))
        posteriors = self._posteriors(mats)
        return [Prediction(self.labels[int(p.argmax())],
                           {label: float(x) for label, x in zip(self.labels, p, strict=True)})
                for p in posteriors]

    def predict(self, audio: AudioInput, sample_rate: int | None = None) -> Prediction:
        """One file or array; raises AudioError if it cannot be used."""
        result = self.predict_batch([audio], sample_rate)[0]
        if isinstance(result, AudioError):
            raise result
        return result

    def predict_batch(self, audios: Sequence[AudioInput],
                      sample_rate: int | None = None) -> list[Prediction | AudioError]:
        """One result per input, in order: an input that cannot be used (unreadable,
        empty, too short) gets its AudioError in its place, and the others are classified."""
        self._refuse_audio()
        results: list[Prediction | AudioError | None] = [None] * len(audios)
        feats: list[np.ndarray] = []
        owners: list[tuple[int, int]] = []  # (input, version: 0 the input, then its copies)
        for i, audio in enumerate(audios):
            try:
                samples, source = self.samples(audio, sample_rate, f"<array {i}>")
                versions = [samples] + [self._speed_copy(audio, samples, source, f) for f in self.test_copies]
                chunks = [self._chunk_features(v, source) for v in versions]
            except AudioError as err:
                results[i] = err
                continue
            for version, version_chunks in enumerate(chunks):
                feats += version_chunks
                owners += [(i, version)] * len(version_chunks)
        posteriors = self._posteriors(feats)
        owners_array = np.array(owners, dtype=np.int64).reshape(-1, 2)
        for i in sorted({i for i, _ in owners}):
            # Chunks averaged within each version, then the versions (as stage 6 averages
            # an utterance's posteriors with its copies').
            of_input = owners_array[:, 0] == i
            mean = np.mean([posteriors[of_input & (owners_array[:, 1] == v)].mean(axis=0)
                            for v in range(1 + len(self.test_copies))], axis=0)
            results[i] = Prediction(self.labels[int(mean.argmax())],
                                    {label: float(p) for label, p in zip(self.labels, mean, strict=True)},
                                    int((of_input & (owners_array[:, 1] == 0)).sum()), len(self.test_copies))
        return results

    def predict_segments(self, audios: Sequence[AudioInput], window: float = SEGMENT_WINDOW,
                         hop: float = SEGMENT_HOP, sample_rate: int | None = None,
                         ) -> list[list[Segment] | AudioError]:
        """Emotion over time: each input cut into ``window``-second windows every ``hop``
        seconds (:func:`window_starts`), each window classified by itself (no test-time
        copies: a window of a copy is other audio than the window). One list of
        segments per input, in order, or the input's AudioError in its place."""
        self._refuse_audio()
        if not (0 < hop and frame_length(self.extractor) <= window):
            raise SerError(f"need a positive hop ({hop}) and a window ({window} s) of at least "
                           f"one frame ({frame_length(self.extractor)} s)")
        size, step = round(window * SAMPLE_RATE), max(1, round(hop * SAMPLE_RATE))
        results: list[list[Segment] | AudioError | None] = [None] * len(audios)
        feats, owners, spans = [], [], []
        for i, audio in enumerate(audios):
            try:
                samples, source = self.samples(audio, sample_rate, f"<array {i}>")
                starts = window_starts(samples.size, size, step)
                ends = [min(s + size, samples.size) for s in starts]
                feats += [self.features(samples[s:e], source) for s, e in zip(starts, ends, strict=True)]
            except AudioError as err:
                results[i] = err
                continue
            owners += [i] * len(starts)
            spans += [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in zip(starts, ends, strict=True)]
        posteriors = self._posteriors(feats)
        for i in set(owners):
            results[i] = []
        for i, (start, end), post in zip(owners, spans, posteriors, strict=True):
            results[i].append(Segment(round(start, 4), round(end, 4), self.labels[int(post.argmax())],
                                      {label: float(p) for label, p in zip(self.labels, post, strict=True)}))
        return results

    def samples(self, audio: AudioInput, sample_rate: int | None, name: str = "<array>") -> tuple[np.ndarray, str]:
        """16 kHz mono samples of a file or array, and the name its errors carry."""
        if isinstance(audio, (str, Path)):
            if sample_rate is not None:
                raise SerError("sample_rate is for arrays; files carry their own")
            samples = load_audio(audio)
            cut = truncation(audio)
            if cut:  # read without an error, but not the recording its header describes
                logging.warning("%s: %s; classified on what it holds", audio, cut)
            return samples, str(audio)
        if sample_rate is None:
            raise SerError("give the sample_rate of an array input")
        return to_mono_16k(audio, sample_rate, name), name

    def features(self, samples: np.ndarray, source: str) -> np.ndarray:
        """Normalised features of 16 kHz mono samples, as the model reads them."""
        return self.normalizer(extract_features(self.extractor, samples, source))

    def _speed_copy(self, audio: AudioInput, samples: np.ndarray, source: str, factor: str) -> np.ndarray:
        """16 kHz mono samples of ``audio`` played ``factor`` times as fast, through the same
        sox command as stage 3's copies: a file or wav.scp entry as it is, an array as
        16 kHz mono 16-bit audio."""
        if isinstance(audio, (str, Path)):
            entry = str(audio) if is_pipe(audio) else wav_scp_entry(audio)
            return load_audio(speed_perturbed_entry(entry, factor))
        import soundfile as sf

        with tempfile.TemporaryDirectory(prefix="ser_copy_") as tmp:
            wav = Path(tmp) / "audio.wav"
            sf.write(wav, samples, SAMPLE_RATE, subtype="PCM_16")
            try:
                return load_audio(speed_perturbed_entry(str(wav), factor))
            except AudioError as err:
                raise AudioError(source, f"speed copy at {factor}: {err.reason}") from None

    def _chunk_features(self, samples: np.ndarray, source: str) -> list[np.ndarray]:
        """Normalised features of each chunk of 16 kHz mono samples."""
        starts = [0]
        if samples.size > self.chunk_samples:
            # Equal chunks; the last one ends with the audio, overlapping its neighbour more.
            last = samples.size - self.chunk_samples
            starts = list(range(0, last, self.chunk_hop)) + [last]
        return [self.features(samples[s:s + self.chunk_samples], source) for s in starts]

    @torch.no_grad()
    def _posteriors(self, feats: list[np.ndarray]) -> np.ndarray:
        """Padded batches of similar length, as in training's ``predict``; an SVM
        takes them all at once."""
        if self.kind == "svm":
            return self.model.posteriors(feats).reshape(len(feats), len(self.labels))
        chunks = Utterances([str(i) for i in range(len(feats))], feats, [0] * len(feats))  # no labels
        posteriors = np.zeros((len(feats), len(self.labels)), dtype=np.float32)
        onnx = self.backend == "onnx"
        for indices in bucketed_batches([f.shape[0] for f in feats], self.batch_size, None):
            batch, lengths, _ = collate(chunks, indices, "cpu" if onnx else self.device)
            if onnx:
                logits = self.model.run(None, {"feats": batch.numpy(), "lengths": lengths.numpy()})[0]
                posteriors[indices] = _softmax(logits)
            else:
                posteriors[indices] = torch.softmax(self.model(batch, lengths), dim=-1).cpu().numpy()
        return posteriors
