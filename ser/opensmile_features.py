"""openSMILE frame-level descriptors as Lhotse feature extractors.

- ``lld93``: the paper's 93 descriptors per frame, our config ``conf/feats/lld93.conf``
  (names, order and frame grid are documented there); 32 ms frames every 16 ms.
- ``egemaps_lld``, ``compare_lld``: the stock eGeMAPSv02 (25) and ComParE_2016 (65)
  low-level descriptors, every 10 ms.
- ``compare_functionals``: the stock ComParE_2016 functionals (6373), one vector per
  utterance: the paper's openSMILE + SVM baseline.

All run through the ``opensmile`` package, one openSMILE config per extractor. The
extractors have Lhotse's extractor interface (``extract``, ``frame_shift``,
``feature_dim``, ``to_dict``/``from_dict`` with a ``feature_type``) without subclassing
it: Lhotse imports torch, 2 s of every feature job's start-up that openSMILE does not
need (``local/bench_features.sh``: with two jobs, start-up is a share of the speed-up).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import opensmile

from ser.audio import SAMPLE_RATE
from ser.config import CONF_ROOT
from ser.errors import SerError

LLD93_CONF = CONF_ROOT / "feats" / "lld93.conf"
# opensmile scales samples by 32768 and casts them to int16, so +1.0 would wrap to -32768.
_MAX_SAMPLE = 32767 / 32768


@dataclass
class OpenSmileLldConfig:
    """The arguments of ``opensmile.Smile`` (the fields and defaults of Lhotse's
    OpenSmileConfig, so that the bundles made when these extractors subclassed it load)
    and the frame grid of the output.

    ``feature_set`` is a stock set's name or the path of a config file, whose output
    level ``feature_level`` then names. ``tail`` > 0 appends that much of the input's
    mirror image before extraction (so analysis windows longer than ``frame_length``
    have audio at the end) and cuts the output to the frames
    ``[n * frame_shift, n * frame_shift + frame_length)`` that lie within the input.
    """

    feature_set: str = "ComParE_2016"
    feature_level: str = "lld"
    options: Optional[dict] = None
    loglevel: int = 2
    logfile: Optional[str] = None
    sampling_rate: int = SAMPLE_RATE
    channels: Union[int, Sequence[int]] = 0
    mixdown: bool = False
    resample: bool = False
    num_workers: Optional[int] = 1
    verbose: bool = False
    frame_shift: float = 0.01  # seconds
    frame_length: float = 0.06  # the shortest input that yields a frame
    tail: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Dict[str, Any]) -> "OpenSmileLldConfig":
        return OpenSmileLldConfig(**data)


class OpenSmileLld:
    """openSMILE descriptors of 1-D 16 kHz samples, for stock sets and our own configs,
    as openSMILE computes them: one row per frame, no padding to another frame count
    (Lhotse's OpenSmileExtractor re-appends the last frames as a block to reach its own)."""

    name = "opensmile-lld"
    config_type = OpenSmileLldConfig

    def __init__(self, config: OpenSmileLldConfig | None = None):
        self.config = config if config is not None else self.config_type()
        c = self.config
        if c.feature_set in opensmile.FeatureSet.__members__:
            self.feature_set = opensmile.FeatureSet[c.feature_set]
            self.feature_level = opensmile.FeatureLevel(c.feature_level)
        elif Path(c.feature_set).is_file():
            self.feature_set, self.feature_level = str(c.feature_set), c.feature_level
        else:
            raise SerError(f"openSMILE feature set {c.feature_set!r} is neither a config file "
                           f"nor a stock set ({', '.join(opensmile.FeatureSet.__members__)})")
        self.smileExtractor = opensmile.Smile(
            feature_set=self.feature_set, feature_level=self.feature_level, options=c.options,
            loglevel=c.loglevel, logfile=c.logfile, sampling_rate=c.sampling_rate,
            channels=c.channels, mixdown=c.mixdown, resample=c.resample,
            num_workers=c.num_workers, verbose=c.verbose)

    def to_dict(self) -> Dict[str, Any]:
        return {**self.config.to_dict(), "feature_type": self.name}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "OpenSmileLld":
        """The extractor of ``to_dict``'s output (``feature_type`` picks the class)."""
        data = dict(data)
        extractor_type = OPENSMILE_EXTRACTORS[data.pop("feature_type", cls.name)]
        return extractor_type(extractor_type.config_type.from_dict(data))

    @property
    def frame_shift(self) -> float:
        return self.config.frame_shift

    @property
    def frame_length(self) -> float:
        return self.config.frame_length

    @property
    def feature_names(self) -> List[str]:
        return list(self.smileExtractor.feature_names)

    def feature_dim(self, sampling_rate: int) -> int:
        return len(self.smileExtractor.feature_names)

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        if sampling_rate != self.config.sampling_rate:
            raise ValueError(f"{self.name} expects {self.config.sampling_rate} Hz audio, "
                             f"got {sampling_rate} Hz")
        signal = np.clip(np.atleast_2d(samples), -1.0, _MAX_SAMPLE)
        num_samples = signal.shape[-1]
        tail = round(self.config.tail * sampling_rate)
        if tail:
            signal = np.pad(signal, ((0, 0), (0, tail)), mode="reflect")
        # The raw (frames, dim) values: process_signal would build a DataFrame per call.
        feats = self.smileExtractor.process.process_func(signal, sampling_rate)[2]
        if tail:
            length, shift = (round(seconds * sampling_rate)
                             for seconds in (self.frame_length, self.frame_shift))
            num_frames = (num_samples - length) // shift + 1
            if feats.shape[0] < num_frames:
                raise RuntimeError(f"openSMILE gave {feats.shape[0]} frames for {num_samples} "
                                   f"samples, expected {num_frames}")
            feats = feats[:num_frames]
        return feats


def _samples(name: str, seconds: float) -> int:
    """``seconds`` as a positive whole number of samples, so that the frame grid is exact."""
    try:
        samples = float(seconds) * SAMPLE_RATE
    except (TypeError, ValueError):
        samples = float("nan")
    if not samples >= 1 or abs(samples - round(samples)) > 1e-6:
        raise SerError(f"{name}={seconds} must be a positive whole number of samples at "
                       f"{SAMPLE_RATE} Hz (a multiple of {1 / SAMPLE_RATE:g} s)")
    return round(samples)


def build_lld93(frame_length: float = 0.032, frame_shift: float = 0.016,
                pitch_frame_length: float = 0.060) -> OpenSmileLld:
    """The 93 descriptors of ``conf/feats/lld93.conf``. Pitch, HNR and jitter/shimmer are
    computed on ``pitch_frame_length`` windows centred on the ``frame_length`` frames."""
    length, shift, pitch_length = (_samples(n, v) for n, v in [
        ("frame_length", frame_length), ("frame_shift", frame_shift),
        ("pitch_frame_length", pitch_frame_length)])
    if shift > length:
        raise SerError(f"frame_shift={frame_shift} exceeds frame_length={frame_length}: "
                       "audio between frames would be skipped")
    if pitch_length < length:
        raise SerError(f"pitch_frame_length={pitch_frame_length} is shorter than "
                       f"frame_length={frame_length}")
    frame_length, frame_shift, pitch_frame_length = (
        n / SAMPLE_RATE for n in (length, shift, pitch_length))
    options = {"frameLength": frame_length, "frameShift": frame_shift,
               "pitchFrameLength": pitch_frame_length,
               "pitchFrameCenter": (pitch_length - length) / 2 / SAMPLE_RATE}
    # The voice-quality analysis of a frame reads up to one pitch window of audio from
    # the frame's start: the mirrored tail lets the last frames have it.
    return OpenSmileLld(OpenSmileLldConfig(
        feature_set=str(LLD93_CONF), feature_level="lld93", options=options,
        frame_shift=frame_shift, frame_length=frame_length, tail=pitch_frame_length))


# The stock sets frame every 10 ms; their longest windows (pitch, 60 ms) decide
# the shortest input that yields frames: floor((duration - 0.06) / 0.01) + 2 of them.
def build_egemaps_lld() -> OpenSmileLld:
    """openSMILE eGeMAPSv02 low-level descriptors (25)."""
    return OpenSmileLld(OpenSmileLldConfig(feature_set="eGeMAPSv02", feature_level="lld",
                                           frame_shift=0.01, frame_length=0.06))


def build_compare_lld() -> OpenSmileLld:
    """openSMILE ComParE_2016 low-level descriptors (65)."""
    return OpenSmileLld(OpenSmileLldConfig(feature_set="ComParE_2016", feature_level="lld",
                                           frame_shift=0.01, frame_length=0.06))


class OpenSmileFunctionals(OpenSmileLld):
    """A stock set's functionals: statistics of its descriptors over the whole input,
    returned as a (1, dim) matrix so that they go through the frame-level feature stage
    unchanged (``utt2num_frames`` is 1).

    The utterance is the one "frame". ``frame_shift`` is that of the descriptors the
    functionals summarise (10 ms for the stock sets), kept so that the feature
    stage's ``frame_shift`` file has a number; frames × frame_shift is not the
    duration here. ``frame_length`` is the shortest input that yields functionals:
    one descriptor frame (60 ms); shorter input would give only NaN."""

    name = "opensmile-functionals"
    config_type = OpenSmileLldConfig

    def __init__(self, config: OpenSmileLldConfig | None = None):
        super().__init__(config)
        if self.feature_level != opensmile.FeatureLevel.Functionals:
            raise SerError(f"{self.name}: feature level {self.config.feature_level!r} is not "
                           f"{opensmile.FeatureLevel.Functionals.value!r}")
        if self.config.tail:
            raise SerError(f"{self.name}: tail is for frame grids, not functionals")

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        feats = super().extract(samples, sampling_rate)
        if feats.shape != (1, self.feature_dim(sampling_rate)):
            raise RuntimeError(f"openSMILE gave functionals of shape {feats.shape}, expected "
                               f"(1, {self.feature_dim(sampling_rate)})")
        return feats


def build_compare_functionals() -> OpenSmileFunctionals:
    """openSMILE ComParE_2016 functionals (6373) of the whole utterance, the openSMILE +
    SVM baseline of Xie et al. (2019) and of the ComParE challenges."""
    return OpenSmileFunctionals(OpenSmileLldConfig(
        feature_set="ComParE_2016", feature_level=opensmile.FeatureLevel.Functionals.value,
        frame_shift=0.01, frame_length=0.06))


# feature_type (the name that to_dict writes) -> class
OPENSMILE_EXTRACTORS = {cls.name: cls for cls in (OpenSmileLld, OpenSmileFunctionals)}
