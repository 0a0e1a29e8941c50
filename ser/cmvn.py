"""Feature normalisation without leakage.

Modes:
- ``train``: one mean and variance from the fold's training utterances only.
- ``speaker``: each speaker's own statistics, test speakers included. Common in
  the literature and worth several UAR points on small corpora, but it uses the
  test speaker's data, so reports must say so (:data:`USES_TEST_SPEAKER_STATS`).
- ``corpus``: each corpus's own statistics (data dirs of several corpora,
  ser/multicorpus.py): a training corpus's from the fold's training utterances of it,
  a corpus without training utterances in the fold (the test corpus of a cross-corpus
  run) from its own, unlabelled, test utterances. A common domain adaptation; it uses
  the test corpus's data, so reports flag it as they flag ``speaker``.
- ``utt``: each utterance by its own mean and variance; needs no statistics and
  sees nothing outside the utterance, so it works alike in training, testing and
  inference on a new speaker.
- ``none``: features as extracted.

Statistics are stored as frame count, sum and sum of squares (float64) per group
(``train`` has the single group ``train``), in one ``.npz`` file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ser.atomic import atomic_path
from ser.errors import SerError

CMVN_MODES = ("train", "speaker", "corpus", "utt", "none")
USES_TEST_SPEAKER_STATS = {"train": False, "speaker": True, "corpus": True, "utt": False, "none": False}
# Modes with one statistics file per fold (the others: one for all folds, or none).
PER_FOLD_MODES = ("train", "corpus")
# Modes without a statistics file.
STATELESS_MODES = ("utt", "none")
_VAR_FLOOR = 1e-8


def accumulate(utts: Iterable[str], load: Callable[[str], np.ndarray],
               utt2group: Callable[[str], str]) -> dict[str, np.ndarray]:
    """Per-group frame count, sum and sum of squares over ``utts``."""
    acc: dict[str, list] = {}
    for utt in utts:
        feats = load(utt).astype(np.float64)
        group = acc.setdefault(utt2group(utt), [0, 0.0, 0.0])
        group[0] += feats.shape[0]
        group[1] = group[1] + feats.sum(axis=0)
        group[2] = group[2] + np.square(feats).sum(axis=0)
    if not acc:
        raise SerError("no utterances to compute normalisation statistics from")
    groups = sorted(acc)
    return {"groups": np.array(groups), "count": np.array([acc[g][0] for g in groups], dtype=np.float64),
            "sum": np.stack([acc[g][1] for g in groups]), "sumsq": np.stack([acc[g][2] for g in groups])}


def stats_path(cmvn_dir: Path | str, mode: str, fold: str) -> Path | None:
    """Where a fold's statistics live: ``<dir>/<fold>.npz`` (train, corpus),
    ``<dir>/speaker.npz``; None for the modes that need none (utt, none)."""
    if mode in STATELESS_MODES:
        return None
    return Path(cmvn_dir) / (f"{fold}.npz" if mode in PER_FOLD_MODES else "speaker.npz")


def save_stats(stats: dict, path: Path | str, mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no .npz to it
        np.savez(f, mode=np.array(mode), **stats)


def utterance_cmvn(feats: np.ndarray) -> np.ndarray:
    """(T, D) -> zero mean, unit variance per dimension over the utterance's own frames;
    a constant dimension (one frame, unvoiced F0) is centred but not scaled up."""
    feats = feats.astype(np.float64)
    mean, var = feats.mean(axis=0), feats.var(axis=0)
    scale = np.where(var > _VAR_FLOOR, 1.0 / np.sqrt(np.maximum(var, _VAR_FLOOR)), 1.0)
    return ((feats - mean) * scale).astype(np.float32)


class Normalizer:
    """Applies one of the modes; ``__call__(feats, speaker)`` returns normalised float32."""

    def __init__(self, mode: str, stats: dict | None = None):
        if mode not in CMVN_MODES:
            raise SerError(f"unknown cmvn mode {mode!r}; known: {', '.join(CMVN_MODES)}")
        if mode not in STATELESS_MODES and stats is None:
            raise SerError(f"cmvn mode {mode} needs statistics")
        self.mode = mode
        # corpus mode: speaker -> its corpus, the group whose statistics it takes
        self.spk2group: dict[str, str] = {}
        if stats is not None and "speakers" in stats:
            self.spk2group = {str(s): str(g) for s, g in zip(stats["speakers"], stats["speaker_groups"])}
        if mode == "corpus" and not self.spk2group:
            raise SerError("cmvn mode corpus needs each speaker's corpus in its statistics")
        self.shift: dict[str, np.ndarray] = {}
        self.scale: dict[str, np.ndarray] = {}
        if stats is not None:
            for i, group in enumerate(stats["groups"]):
                mean = stats["sum"][i] / stats["count"][i]
                var = stats["sumsq"][i] / stats["count"][i] - mean ** 2
                # Constant dimensions (var ~ 0) are centred but not scaled up.
                std = np.where(var > _VAR_FLOOR, np.sqrt(np.maximum(var, _VAR_FLOOR)), 1.0)
                self.shift[str(group)] = mean.astype(np.float32)
                self.scale[str(group)] = (1.0 / std).astype(np.float32)

    @classmethod
    def load(cls, mode: str, path: Path | str | None) -> "Normalizer":
        if mode in STATELESS_MODES:
            return cls(mode)
        if path is None or not Path(path).is_file():
            raise SerError(f"{path}: normalisation statistics not found; run the cmvn stage")
        with np.load(path) as npz:
            if str(npz["mode"]) != mode:
                raise SerError(f"{path}: holds {npz['mode']} statistics, not {mode}")
            return cls(mode, {k: npz[k] for k in ("groups", "count", "sum", "sumsq",
                                                  "speakers", "speaker_groups") if k in npz})

    def __call__(self, feats: np.ndarray, speaker: str | None = None) -> np.ndarray:
        if self.mode == "none":
            return feats.astype(np.float32, copy=False)
        if self.mode == "utt":
            return utterance_cmvn(feats)
        group = {"train": "train", "corpus": self.spk2group.get(speaker, f"<speaker {speaker}>")}.get(
            self.mode, speaker)
        if group not in self.shift:
            raise SerError(f"no {self.mode} normalisation statistics for {group!r}")
        return ((feats - self.shift[group]) * self.scale[group]).astype(np.float32)

    def state(self) -> dict:
        """Plain-list form, for model bundles."""
        return {"mode": self.mode,
                "shift": {g: v.tolist() for g, v in self.shift.items()},
                "scale": {g: v.tolist() for g, v in self.scale.items()}}
