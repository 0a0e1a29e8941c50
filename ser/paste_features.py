"""Frame-level features of several extractors side by side, on one frame rate (Kaldi's
``paste-feats``, with the frame rates made equal first).

The first member sets the frame rate; each further member's frames are linearly
interpolated, dimension by dimension, at the first member's frame centres (frame ``i``
of an extractor with shift ``s`` and window ``w`` is centred at ``i * s + w / 2``; past
either end the outermost frame is repeated). Used for a pretrained encoder's frames
beside the paper's descriptors (``--feat whisper_lld93``): an encoder trained for speech
recognition need not keep the pitch and energy contours that the descriptors measure.
A member may be normalised by each utterance's own mean and variance before it is pasted
(``utt_normalised``), so that the descriptors' absolute pitch and loudness, which differ
from speaker to speaker, do not reach the model while the encoder's frames keep the
normalisation of the whole system (``--cmvn train``).
"""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

import numpy as np

from ser.errors import SerError


def frame_centres(num_frames: int, frame_shift: float, frame_length: float) -> np.ndarray:
    return np.arange(num_frames) * frame_shift + frame_length / 2


def resample_frames(feats: np.ndarray, frame_shift: float, frame_length: float,
                    target_centres: np.ndarray) -> np.ndarray:
    """``feats`` (T, D), interpolated at ``target_centres`` (seconds): (len(target_centres), D)."""
    feats = np.asarray(feats, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"frames to resample must be (T > 0, D), got {feats.shape}")
    centres = frame_centres(feats.shape[0], frame_shift, frame_length)
    out = np.empty((len(target_centres), feats.shape[1]), dtype=np.float32)
    for d in range(feats.shape[1]):
        out[:, d] = np.interp(target_centres, centres, feats[:, d])
    return out


def paste(members: list[tuple[np.ndarray, float, float]], utt_normalised: tuple[bool, ...] = ()) -> np.ndarray:
    """Members as ``(frames, frame_shift, frame_length)``; the first sets the frame rate.
    Returns the first member's frames with the others', resampled, to their right; a member
    flagged in ``utt_normalised`` is first normalised by its own utterance's mean and
    variance (ser.cmvn.utterance_cmvn), as the paper's descriptors are by default."""
    from ser.cmvn import utterance_cmvn
    first, shift, length = members[0]
    target = frame_centres(first.shape[0], shift, length)
    flags = list(utt_normalised) + [False] * (len(members) - len(utt_normalised))
    blocks = [np.asarray(f, np.float32) if i == 0 else resample_frames(f, s, w, target)
              for i, (f, s, w) in enumerate(members)]
    return np.concatenate([utterance_cmvn(b).astype(np.float32) if flag else b
                           for b, flag in zip(blocks, flags)], axis=1)


@dataclass
class PastedConfig:
    """``members``: each member's feature type and ``to_dict()``, the first setting the frame rate;
    ``utt_normalised``: the members normalised by each utterance's own mean and variance."""
    members: List[Dict[str, Any]] = field(default_factory=list)
    utt_normalised: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Dict[str, Any]) -> "PastedConfig":
        return PastedConfig(**data)


class PastedFeatures:
    """The members' frames side by side (see the module's doc), one extractor to the recipe:
    features, bundles and ``ser infer`` treat it like any other."""

    name = "pasted"
    config_type = PastedConfig

    def __init__(self, config: PastedConfig, extractors: list | None = None):
        from ser.features import FEATURE_TYPES, extractor_from_dict
        self.config = config
        names = [member["feat"] for member in config.members]
        if len(names) < 2:
            raise SerError(f"pasted features need at least two members, got {len(names)}")
        if set(config.utt_normalised) - set(names):
            raise SerError(f"pasted features: utt_normalised {config.utt_normalised} names no member of {names}")
        if extractors is None:
            extractors = []
            for member in config.members:
                factory = FEATURE_TYPES.get(member["feat"])
                if isinstance(factory, str):  # registers an encoder's type with Lhotse
                    importlib.import_module(factory.split(":")[0])
                extractors.append(extractor_from_dict(member["extractor"]))
        self.extractors = extractors

    def to_dict(self) -> Dict[str, Any]:
        return {**self.config.to_dict(), "feature_type": self.name}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "PastedFeatures":
        data = {k: v for k, v in data.items() if k != "feature_type"}
        return cls(cls.config_type.from_dict(data))

    @property
    def frame_shift(self) -> float:
        return self.extractors[0].frame_shift

    @property
    def frame_length(self) -> float:
        """The longest member's window: shorter input leaves a member without frames."""
        from ser.features import frame_length
        return max(frame_length(e) for e in self.extractors)

    def feature_names(self) -> List[str]:
        from ser.features import feature_names
        return [name for member, e in zip(self.config.members, self.extractors)
                for name in feature_names(e, member["feat"])]

    def feature_dim(self, sampling_rate: int) -> int:
        return sum(e.feature_dim(sampling_rate) for e in self.extractors)

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        from ser.features import frame_length
        return paste([(np.asarray(e.extract(samples, sampling_rate), np.float32), e.frame_shift, frame_length(e))
                      for e in self.extractors],
                     tuple(member["feat"] in self.config.utt_normalised for member in self.config.members))


def build_pasted(members: list, utt_normalised: list | None = None, device: str = "cpu",
                 **member_options) -> PastedFeatures:
    """``members``: feature types (``conf/feats/<member>.yaml`` each); ``utt_normalised``: those
    normalised per utterance; ``<member>.<option>`` overrides a member's option
    (``--feat-opts whisper.model=small``); ``device`` is where the members that have one
    (the encoders) run."""
    from ser.features import build_extractor, load_feature_options
    options: dict[str, dict] = {member: {} for member in members}
    for key, value in member_options.items():
        member, _, option = key.partition(".")
        if member not in options or not option:
            raise SerError(f"pasted features: option {key!r} is not <member>.<option> for a member "
                           f"of {members}")
        options[member][option] = value
    extractors = []
    for member in members:
        if "device" in load_feature_options(member):
            options[member].setdefault("device", device)
        extractors.append(build_extractor(member, **options[member]))
    return PastedFeatures(PastedConfig([{"feat": m, "extractor": e.to_dict()} for m, e in zip(members, extractors)],
                                       list(utt_normalised or [])), extractors)
