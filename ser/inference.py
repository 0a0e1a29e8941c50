"""The runtime of model bundles (ser/export.py writes them and lists what they hold):
:class:`EmotionClassifier` checks a bundle's SHA256SUMS, loads it and classifies audio.
It depends on the features, the normalisation and the batching of utterances, never on
the trainer.

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
or ``conf/``. A bundle of a model trained with ``--cmvn speaker`` or ``corpus``
normalises with the pooled statistics of its training data and warns on load, since a
new recording's speaker or corpus statistics are unknown.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ser.audio import (SAMPLE_RATE, check_speed_factors, is_pipe, load_audio, speed_perturbed_entry, to_mono_16k,
                       truncation, wav_scp_entry)
from ser.batching import Utterances, bucketed_batches, collate
from ser.cmvn import STATELESS_MODES, Normalizer
from ser.errors import AudioError, SerError
from ser.features import FEATURE_TYPES, extract_features, extractor_from_dict, frame_length

if TYPE_CHECKING:
    from lhotse.features.base import FeatureExtractor

FORMAT = 1
CHECKSUMS = "SHA256SUMS"
# bundle.json's model.kind -> the model's file; bundles without a kind are torchscript.
MODEL_FILES = {"torchscript": "model.pt", "svm": "svm.joblib"}
ONNX_FILE = "model.onnx"
BACKENDS = ("torchscript", "onnx")
AudioInput = str | Path | np.ndarray

# Defaults of EmotionClassifier, which ser infer takes as its own: inputs (and chunks) per
# model call, and the chunks that longer audio is classified in.
BATCH_SIZE = 16
CHUNK_SECONDS = 10.0
CHUNK_OVERLAP = 1.0
# Emotion over time: 2 s windows, about one utterance of the acted corpora the models
# learn from, every 0.5 s, so a change shows within half a second of where it is.
SEGMENT_WINDOW = 2.0
SEGMENT_HOP = 0.5

EXTERNAL_NEEDS_FEATURES = (
    "this model was trained on external features ({source}), which it cannot compute from "
    "audio; give it the same kind of features as a Kaldi feats.scp (ser infer --feats-scp "
    "PATH, or EmotionClassifier.predict_features)")


@contextmanager
def quiet_jit() -> Iterator[None]:
    # TorchScript is the bundle's model format; torch 2.13 flags torch.jit as deprecated.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
        yield


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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Posteriors of logits (last axis)."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def load_extractor(features: dict, bundle_dir: Path) -> FeatureExtractor:
    """The feature extractor of ``bundle.json``'s ``features``, its files in ``bundle_dir``."""
    factory = FEATURE_TYPES.get(features["feat"])
    if factory is None:
        raise SerError(f"{bundle_dir}: unknown feature type {features['feat']!r}")
    if isinstance(factory, str):  # importing an encoder's module registers its type with Lhotse
        importlib.import_module(factory.split(":")[0])
    config = dict(features["extractor"])
    for key, name in features["files"].items():
        config[key] = str(bundle_dir / name)
    return extractor_from_dict(config)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        if file_sha256(path) != digest:
            raise SerError(f"{path}: sha256 mismatch, the file was changed after export; "
                           "export the bundle again")
    return list(listed)


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


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Starts of ``window``-sample windows every ``hop`` samples, for both the segments of
    :meth:`EmotionClassifier.predict_segments` and the chunks of long audio; the last one
    ends with the audio (overlapping its neighbour more), and audio shorter than a window
    is one."""
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
                 normalizer: Normalizer, meta: dict, device: str = "cpu", batch_size: int = BATCH_SIZE,
                 chunk_seconds: float = CHUNK_SECONDS, chunk_overlap: float = CHUNK_OVERLAP,
                 backend: str = "torchscript",
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
            with quiet_jit():
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
        starts = window_starts(samples.size, self.chunk_samples, self.chunk_hop)
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
                posteriors[indices] = softmax(logits)
            else:
                posteriors[indices] = torch.softmax(self.model(batch, lengths), dim=-1).cpu().numpy()
        return posteriors
