"""The one fold builder: every evaluation protocol, written to ``<out>/fold<k>/``
as three utterance lists, ``train``, ``valid`` and ``test``.

Protocols:
- ``loso``: leave one speaker out (one fold per speaker).
- ``speaker_kfold``: K speaker-disjoint groups (``num_folds`` = K).
- ``session``: leave one session out (IEMOCAP's convention; needs ``utt2session``).
- ``random``: the paper's stratified, speaker-dependent hold-out; ``num_folds``
  repeats with seeds ``seed``, ``seed+1``, ... The paper held out 1000 of CASIA's
  7200 utterances, 260 of eNTERFACE's 1260 and 200 of GEMEP's 1080; the default
  ``test_share`` is 1000/7200, and ``--test-share`` sets another.
- ``cross_corpus``: one fold for a combined data dir with a test corpus
  (ser/multicorpus.py): the test corpus's utterances are the test list, the training
  corpora's the training part; validation comes from the training corpora only.
- ``all``: one fold with every utterance for training and validation and an empty
  test list, for the final model trained on the whole corpus.

The validation split always comes from the training part, stratified by emotion
and speaker; under the speaker-independent protocols its speakers are therefore
never test speakers.

A combined data dir of several corpora (``utt2corpus``) is split like any other: its
speaker ids differ across corpora, so under ``loso`` and ``speaker_kfold`` each
corpus's speakers stay on one side of every fold, as :func:`check_speaker_disjoint`
checks. A data dir with a test corpus takes ``cross_corpus`` only, so that the test
corpus is never trained on.
"""
from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ser.atomic import atomic_path
from ser.datadir import DataDir
from ser.errors import SerError
from ser.multicorpus import read_roles

PROTOCOLS = ("loso", "speaker_kfold", "session", "random", "cross_corpus", "all")
PAPER_TEST_SHARE = 1000 / 7200
DEFAULT_VALID_SHARE = 0.1  # of the training part, held out for model selection


@dataclass
class Fold:
    name: str
    train: list[str]
    valid: list[str]
    test: list[str]
    test_groups: list[str]  # the held-out speakers or sessions; empty for random


def stratified_sample(utts: list[str], strata: list[dict[str, str]], share: float,
                      rng: random.Random) -> list[str]:
    """About ``share`` of ``utts``, spread as evenly as possible over the first
    stratification key (e.g. emotion), then within each group over the next."""
    return sorted(_allocate(sorted(utts), strata, round(share * len(utts)), rng))


def _allocate(utts: list[str], strata: list[dict[str, str]], target: int,
              rng: random.Random) -> list[str]:
    if not strata:
        return rng.sample(utts, target)
    groups = defaultdict(list)
    for utt in utts:
        groups[strata[0][utt]].append(utt)
    names = sorted(groups)
    exact = {g: target * len(groups[g]) / len(utts) for g in names}
    counts = {g: int(exact[g]) for g in names}
    # Largest remainder; ties broken at random, not by name.
    tie_break = {g: rng.random() for g in names}
    for g in sorted(names, key=lambda g: (counts[g] - exact[g], tie_break[g]))[:target - sum(counts.values())]:
        counts[g] += 1
    return [u for g in names for u in _allocate(groups[g], strata[1:], counts[g], rng)]


def _split_valid(train_pool: list[str], data: DataDir, valid_share: float,
                 rng: random.Random) -> tuple[list[str], list[str]]:
    valid = stratified_sample(train_pool, [data.utt2emo, data.utt2spk], valid_share, rng)
    valid_set = set(valid)
    return [u for u in train_pool if u not in valid_set], valid


def _group_folds(data: DataDir, utt2group: dict[str, str], groups: list[list[str]],
                 valid_share: float, seed: int) -> list[Fold]:
    folds = []
    for k, test_groups in enumerate(groups, 1):
        held_out = set(test_groups)
        test = [u for u in data.utts if utt2group[u] in held_out]
        train, valid = _split_valid([u for u in data.utts if utt2group[u] not in held_out],
                                    data, valid_share, random.Random(seed + k))
        folds.append(Fold(f"fold{k}", train, valid, test, sorted(test_groups)))
    return folds


def make_folds(data: DataDir, protocol: str, num_folds: int | None = None, seed: int = 0,
               valid_share: float = DEFAULT_VALID_SHARE, test_share: float = PAPER_TEST_SHARE) -> list[Fold]:
    where = data.path
    if protocol not in PROTOCOLS:
        raise SerError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if not 0 < valid_share < 1 or not 0 < test_share < 1:
        raise SerError("valid_share and test_share must be between 0 and 1")
    roles = read_roles(where) if where is not None else None
    test_corpus = roles.get("test") if roles else None
    if protocol == "cross_corpus" or test_corpus:
        if protocol not in ("cross_corpus", "all") or not test_corpus:
            raise SerError(f"{where}: protocol {protocol} " + (
                f"would train on the test corpus {test_corpus}; a data dir with a test corpus "
                "takes protocol cross_corpus" if test_corpus else
                "needs a data dir with a test corpus (run.sh --test-corpus)"))
        if protocol == "cross_corpus":
            test = [u for u in data.utts if data.utt2corpus[u] == test_corpus]
            train, valid = _split_valid([u for u in data.utts if data.utt2corpus[u] != test_corpus],
                                        data, valid_share, random.Random(seed + 1))
            return [Fold("fold1", train, valid, test, [test_corpus])]
        # all: the final model on the training corpora only
        train, valid = _split_valid([u for u in data.utts if data.utt2corpus[u] != test_corpus],
                                    data, valid_share, random.Random(seed))
        return [Fold("fold1", train, valid, [], [])]
    speakers = data.speakers
    if protocol == "loso":
        if len(speakers) < 2:
            raise SerError(f"{where}: protocol loso needs at least 2 speakers, found {len(speakers)} "
                           f"({', '.join(speakers)})")
        return _group_folds(data, data.utt2spk, [[s] for s in speakers], valid_share, seed)
    if protocol == "speaker_kfold":
        k = num_folds or 5
        if not 2 <= k <= len(speakers):
            raise SerError(f"{where}: speaker_kfold with K={k} needs 2 <= K <= {len(speakers)} speakers")
        shuffled = speakers[:]
        random.Random(seed).shuffle(shuffled)
        return _group_folds(data, data.utt2spk, [sorted(shuffled[i::k]) for i in range(k)],
                            valid_share, seed)
    if protocol == "session":
        if not data.utt2session:
            raise SerError(f"{where}: protocol session needs utt2session; this corpus has no sessions")
        sessions = sorted(set(data.utt2session.values()))
        if len(sessions) < 2:
            raise SerError(f"{where}: protocol session needs at least 2 sessions, found {sessions}")
        return _group_folds(data, data.utt2session, [[s] for s in sessions], valid_share, seed)
    if protocol == "all":
        train, valid = _split_valid(data.utts, data, valid_share, random.Random(seed))
        return [Fold("fold1", train, valid, [], [])]
    folds = []
    for k in range(1, (num_folds or 1) + 1):
        rng = random.Random(seed + k - 1)
        test = stratified_sample(data.utts, [data.utt2emo, data.utt2spk], test_share, rng)
        held_out = set(test)
        train, valid = _split_valid([u for u in data.utts if u not in held_out], data,
                                    valid_share, rng)
        folds.append(Fold(f"fold{k}", train, valid, test, []))
    return folds


def check_speaker_disjoint(folds: list[Fold], data: DataDir) -> None:
    """No speaker (hence, in a combined data dir, no corpus's speaker) is on both the
    test side and the training side (train or valid) of a fold."""
    for fold in folds:
        trained = {data.utt2spk[u] for u in fold.train + fold.valid}
        both = sorted(trained & {data.utt2spk[u] for u in fold.test})
        if both:
            raise SerError(f"{data.path}: {fold.name} has speaker(s) {', '.join(both[:3])} on both "
                           "sides")


def write_folds(folds: list[Fold], out_dir: Path | str, settings: dict) -> Path:
    """Writes the folds dir whole (ser/atomic.py)."""
    out_dir = Path(out_dir)
    summary = {"settings": settings,
               "folds": [{"name": f.name, "test_groups": f.test_groups, "num_train": len(f.train),
                          "num_valid": len(f.valid), "num_test": len(f.test)} for f in folds]}
    with atomic_path(out_dir) as tmp:
        for fold in folds:
            (tmp / fold.name).mkdir(parents=True)
            for part in ("train", "valid", "test"):
                (tmp / fold.name / part).write_text("".join(f"{u}\n" for u in getattr(fold, part)))
        (tmp / "folds.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out_dir


def read_fold(folds_dir: Path | str, fold: str) -> Fold:
    path = Path(folds_dir) / fold
    if not path.is_dir():
        raise SerError(f"{path}: no such fold; run the folds stage first")
    lists = {part: (path / part).read_text().split() for part in ("train", "valid", "test")}
    return Fold(fold, lists["train"], lists["valid"], lists["test"], [])


def list_folds(folds_dir: Path | str) -> list[str]:
    summary = Path(folds_dir) / "folds.json"
    if not summary.is_file():
        raise SerError(f"{summary}: missing; run the folds stage first")
    return [f["name"] for f in json.loads(summary.read_text())["folds"]]
