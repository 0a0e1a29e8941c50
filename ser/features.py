"""The one registry of frame-level feature types, each with Lhotse's FeatureExtractor
interface (the openSMILE ones without Lhotse's class, see ser/opensmile_features.py).

``build_extractor(name, **options)`` returns the extractor with the options of
``conf/feats/<name>.yaml`` overridden by ``options``. Every extractor has
``extract(samples, sampling_rate) -> (frames, dim)``, ``frame_shift`` (s),
``feature_dim(sampling_rate)``; :func:`feature_names` and :func:`frame_length`
work for all of them.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ser.audio import SAMPLE_RATE
from ser.config import CONF_ROOT, load_yaml
from ser.errors import AudioError, SerError

CONF_DIR = CONF_ROOT / "feats"


if TYPE_CHECKING:
    from lhotse.features.base import FeatureExtractor


# lhotse is imported by the factories, not here: run.sh checks its --feat against
# FEATURE_TYPES on every call, and importing lhotse takes seconds.
def _fbank(**options) -> FeatureExtractor:
    from lhotse import Fbank, FbankConfig
    return Fbank(FbankConfig(**options))


def _mfcc(**options) -> FeatureExtractor:
    from lhotse import Mfcc, MfccConfig
    return Mfcc(MfccConfig(**options))


# name -> factory, given as "module:function" when it lives elsewhere so that
# openSMILE is imported only by the feature types that need it.
FEATURE_TYPES: dict[str, Any] = {
    "fbank": _fbank,
    "mfcc": _mfcc,
    "lld93": "ser.opensmile_features:build_lld93",
    "egemaps_lld": "ser.opensmile_features:build_egemaps_lld",
    "compare_lld": "ser.opensmile_features:build_compare_lld",
    # One (1, 6373) row per utterance: the openSMILE + SVM baseline (--model svm).
    "compare_functionals": "ser.opensmile_features:build_compare_functionals",
    # Frozen pretrained encoders (ser/encoder_features.py), frame-level like the others.
    "whisper": "ser.encoder_features:build_whisper",
    "ssl": "ser.encoder_features:build_ssl",
}


def load_feature_options(name: str, conf_dir: Path | str | None = None) -> dict:
    """The options in ``conf/feats/<name>.yaml`` (empty if there is none)."""
    path = Path(conf_dir or CONF_DIR) / f"{name}.yaml"
    return load_yaml(path) if path.is_file() else {}


def runs_on_device(name: str) -> bool:
    """Whether feature type ``name`` can be computed on a GPU (its config has a ``device``)."""
    return "device" in load_feature_options(name)


def build_extractor(name: str, conf_dir: Path | str | None = None, **overrides) -> FeatureExtractor:
    if name not in FEATURE_TYPES:
        raise SerError(f"unknown feature type {name!r}; known: {', '.join(FEATURE_TYPES)}")
    factory = FEATURE_TYPES[name]
    if isinstance(factory, str):
        module, function = factory.split(":")
        factory = getattr(importlib.import_module(module), function)
    options = {**load_feature_options(name, conf_dir), **overrides}
    try:
        return factory(**options)
    except TypeError as err:
        raise SerError(f"feature type {name!r}: bad options {options}: {err}") from None


def extractor_from_dict(config: dict) -> FeatureExtractor:
    """The extractor that ``extractor.to_dict()`` describes, by its ``feature_type``."""
    if str(config.get("feature_type", "")).startswith("opensmile-"):
        from ser.opensmile_features import OpenSmileLld
        return OpenSmileLld.from_dict(config)
    from lhotse.features.base import FeatureExtractor
    return FeatureExtractor.from_dict(dict(config))


def feature_names(extractor: FeatureExtractor, name: str) -> list[str]:
    names = getattr(extractor, "feature_names", None)
    if callable(names):
        names = names()
    if names:
        return list(names)
    return [f"{name}_{i}" for i in range(extractor.feature_dim(SAMPLE_RATE))]


def frame_length(extractor: FeatureExtractor) -> float:
    """Analysis window in seconds: audio shorter than this yields no frame."""
    value = getattr(extractor, "frame_length", None) or getattr(extractor.config, "frame_length", None)
    if value is None:
        raise SerError(f"{type(extractor).__name__} does not say its frame length")
    return float(value)


def extract_features(extractor: FeatureExtractor, samples: np.ndarray, source: str) -> np.ndarray:
    """Features of 16 kHz mono samples, as float32 (frames, dim); AudioError for
    audio shorter than one frame or an extractor that returns nothing usable."""
    min_samples = int(round(frame_length(extractor) * SAMPLE_RATE))
    if samples.size < min_samples:
        raise AudioError(source, f"too short: {samples.size} samples, one frame needs {min_samples}")
    feats = np.asarray(extractor.extract(samples, SAMPLE_RATE), dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise AudioError(source, f"extractor returned no frames (shape {feats.shape})")
    if not np.all(np.isfinite(feats)):
        raise AudioError(source, "extractor returned NaN or infinite values")
    return feats
