"""Speed perturbation, the Kaldi way: copies of an utterance played at other speeds
(pitch and tempo together, as Kaldi's perturb_data_dir_speed.sh), each keyed
``sp<factor>-<utt>``. Stage 3 makes copies of every utterance (their wav.scp:
ser/bin/perturb_wav_scp.py; the sox command: ser/audio.py), stage 5 adds the copies
of a fold's training part to it, and stage 6 and a model bundle average an
utterance's posteriors with those of its copies (test-time copies).

The factors name what is trained with them (:func:`factors_tag`), so that systems
trained with other copies never share a dir."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ser.audio import check_speed_factors, speed_perturbed_entry
from ser.datadir import read_table
from ser.errors import SerError

PREFIX = "sp"
_PERTURBED_ID = re.compile(rf"{PREFIX}(\d+(?:\.\d+)?)-(.+)")
# run.sh --speed-perturb auto. 0.8 and 1.2 beside 0.9 and 1.1 lifted inner-validation UAR
# by 3.2 points on CASIA and 2.5 on EmoDB over two seeds (local/tune/LOG.md; default since
# commit e2e61de, 2026-11-27).
AUTO_FACTORS = ("0.8", "0.9", "1.1", "1.2")


def split_factors(factors: str) -> list[str]:
    """'0.9 1.1' or '0.9,1.1' as a list; 'auto' as AUTO_FACTORS."""
    return list(AUTO_FACTORS) if factors.strip() == "auto" else factors.replace(",", " ").split()


def factors_tag(factors: str) -> str:
    """The dir-name suffix of copies at ``factors`` ('' for none): sp0.9_1.1. It names both
    the copies' feature dir and the systems trained with them, so that a system trained with
    other factors never lands in another's exp dir."""
    listed = split_factors(factors)
    return PREFIX + "_".join(listed) if listed else ""


def perturbed_id(utt: str, factor: str) -> str:
    """The id of ``utt``'s copy at ``factor``; refuses a factor that :func:`original_of`
    would not read back (written otherwise than as digits, e.g. '.9')."""
    key = f"{PREFIX}{factor}-{utt}"
    if original_of(key) != (factor, utt):
        raise SerError(f"speed factor {factor!r}: write it as digits, e.g. 0.9 (the copies' ids "
                       f"{PREFIX}<factor>-<utt> are read back by them)")
    return key


def original_of(key: str) -> tuple[str, str] | None:
    """(factor, original utterance) of a copy's id, None for an id that is no copy's."""
    match = _PERTURBED_ID.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def perturb_wav_scp(wavs: dict[str, str], factors: list[str]) -> dict[str, str]:
    """The wav.scp of the copies of ``wavs`` at ``factors``: each utterance once per factor."""
    check_speed_factors(factors)
    return {perturbed_id(utt, f): speed_perturbed_entry(entry, f) for f in factors for utt, entry in wavs.items()}


def perturb_utt2dur(durations: dict[str, float], factors: list[str]) -> dict[str, float]:
    """The utt2dur of the copies of :func:`perturb_wav_scp`: a copy at speed f lasts dur / f."""
    return {perturbed_id(utt, f): dur / float(f) for f in factors for utt, dur in durations.items()}


def copy_factors(ids: Iterable[str]) -> list[str]:
    """The speed factors of the copies among ``ids``, in increasing order."""
    return sorted({parsed[0] for parsed in map(original_of, ids) if parsed}, key=float)


def trained_copy_factors(run_dir: Path, run_config: dict) -> list[str]:
    """The speed factors of the copies a run was trained with (none without copies)."""
    if not run_config.get("aug_feat_dir"):
        return []
    scp = Path(run_config["aug_feat_dir"]) / "feats.scp"
    if not scp.is_file():
        raise SerError(f"{scp}: missing; {run_dir} was trained with these speed-perturbed copies, "
                       "and its bundle classifies with copies at their factors")
    factors = copy_factors(read_table(scp))
    if not factors:
        raise SerError(f"{scp}: no speed-perturbed copy ({PREFIX}<factor>-<utt>) in it")
    return factors


def average_with_copies(ids: list[str], posteriors: np.ndarray, copy_ids: list[str],
                        copy_posteriors: np.ndarray) -> np.ndarray:
    """Test-time copies: each utterance's posteriors averaged with those of its own
    copies (in ``copy_ids``); an utterance without copies keeps its own."""
    row = {utt: i for i, utt in enumerate(ids)}
    total = np.asarray(posteriors, dtype=np.float64).copy()
    counts = np.ones(len(ids))
    for key, post in zip(copy_ids, copy_posteriors):
        parsed = original_of(key)
        if parsed is None or parsed[1] not in row:
            raise SerError(f"{key}: not a speed-perturbed copy ({PREFIX}<factor>-<utt>) of a scored utterance")
        total[row[parsed[1]]] += post
        counts[row[parsed[1]]] += 1
    return (total / counts[:, None]).astype(np.float32)
