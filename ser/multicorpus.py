"""Several prepared corpora as one Kaldi data dir, for cross-corpus evaluation (train on
one or more corpora, test on another) and multi-corpus training.

:func:`combine_data_dirs` joins the member data dirs (each prepared by stage 1 with the
shared names of conf/emotions.yaml) into one, keeping utterance and speaker ids (they
must not meet across corpora), and keeps the classes that every member has utterances
of (the training corpora's and the test corpus's intersection). Utterances of other classes are
left out and listed in ``excluded.txt`` (utterance, corpus, emotion, reason). Beside the
usual files the dir has ``utt2corpus`` and ``corpora.json``: the training corpora, the
test corpus (or none), the classes, and the counts of utterances kept and left out per
corpus. The folds (ser/folds.py, protocol ``cross_corpus``) take the test corpus from it.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

from ser.datadir import DataDir, read_data_dir, read_table, validate_data_dir, write_table
from ser.emotions import shared_classes
from ser.errors import SerError

ROLES_FILE = "corpora.json"


def combined_name(train: Sequence[str], test: str | None) -> str:
    """The data and exp dir name: ``casia_to_emodb``, ``casia+emodb``, ``casia+emodb_to_ravdess``."""
    return "+".join(train) + (f"_to_{test}" if test else "")


def read_roles(data_dir: Path | str) -> dict | None:
    """corpora.json of a combined data dir; None for a single corpus's."""
    path = Path(data_dir) / ROLES_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def combine_data_dirs(train: Sequence[tuple[str, Path | str]], test: tuple[str, Path | str] | None,
                      out_dir: Path | str) -> dict:
    """Writes the combined data dir of ``train`` ((corpus, data dir), ...) and ``test``;
    returns its corpora.json content."""
    members = [*train, *([test] if test else [])]
    names = [name for name, _ in members]
    if len(set(names)) != len(names):
        raise SerError(f"a corpus is given twice: {' '.join(names)}; the test corpus cannot "
                       "also be a training corpus")
    if not test and len(train) < 2:
        raise SerError("combining needs a test corpus or at least two training corpora")
    datas: dict[str, DataDir] = {name: read_data_dir(path) for name, path in members}
    present = {n: [e for e in d.emotions if e in set(d.utt2emo.values())] for n, d in datas.items()}
    classes = shared_classes([present[n] for n, _ in train], present[test[0]] if test else None)
    if len(classes) < 2:
        raise SerError(f"the corpora {', '.join(names)} share {len(classes)} class(es) "
                       f"({', '.join(classes) or 'none'}); at least 2 are needed. Their classes: "
                       + "; ".join(f"{n}: {' '.join(present[n])}" for n in names))
    tables = {k: {} for k in ("wav.scp", "utt2spk", "utt2emo", "utt2dur", "utt2corpus",
                              "spk2gender", "spk2name", "utt2session")}
    utt_owner, spk_owner, excluded = {}, {}, []
    kept, left_out = Counter(), Counter()
    for name in names:
        data = datas[name]
        for spk in data.speakers:
            if spk in spk_owner:
                raise SerError(f"speaker id {spk} is in both {spk_owner[spk]} and {name}; "
                               "speaker ids must differ across corpora")
            spk_owner[spk] = name
        for utt in data.utts:
            if utt in utt_owner:
                raise SerError(f"utterance id {utt} is in both {utt_owner[utt]} and {name}")
            utt_owner[utt] = name
            emotion = data.utt2emo[utt]
            if emotion not in classes:
                excluded.append((utt, name, emotion, f"class {emotion} is not shared by "
                                 f"{', '.join(names)}"))
                left_out[name] += 1
                continue
            kept[name] += 1
            tables["wav.scp"][utt] = data.wav[utt]
            tables["utt2spk"][utt] = data.utt2spk[utt]
            tables["utt2emo"][utt] = emotion
            tables["utt2dur"][utt] = data.utt2dur[utt]
            tables["utt2corpus"][utt] = name
            if data.utt2session:
                tables["utt2session"][utt] = f"{name}_{data.utt2session[utt]}"
            spk = data.utt2spk[utt]
            tables["spk2name"][spk] = data.spk2name.get(spk, spk)
            if data.spk2gender:
                tables["spk2gender"][spk] = data.spk2gender[spk]
    for name in names:
        if not kept[name]:
            raise SerError(f"{name}: no utterance of the shared classes {', '.join(classes)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    speakers = set(tables["utt2spk"].values())
    # Kaldi's optional tables list every speaker (or utterance), or are absent.
    if set(tables["spk2gender"]) != speakers:
        tables["spk2gender"] = {}
    if all(n == s for s, n in tables["spk2name"].items()):
        tables["spk2name"] = {}
    if set(tables["utt2session"]) != set(tables["wav.scp"]):
        tables["utt2session"] = {}
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in sorted(tables["utt2spk"].items()):
        spk2utt.setdefault(spk, []).append(utt)
    for name, table in tables.items():
        if table:
            write_table(out / name, table, (lambda d: f"{d:.4f}") if name == "utt2dur" else str)
        else:
            (out / name).unlink(missing_ok=True)
    write_table(out / "spk2utt", spk2utt, " ".join)
    (out / "emotions.txt").write_text("".join(f"{e}\n" for e in classes))
    (out / "excluded.txt").write_text("".join("\t".join(e) + "\n" for e in sorted(excluded)))
    roles = {"train": [n for n, _ in train], "test": test[0] if test else None, "classes": classes,
             "members": {n: str(Path(p)) for n, p in members},
             "member_classes": present,
             "num_utts": dict(kept), "num_excluded": {n: left_out[n] for n in names},
             "excluded_by_class": {n: dict(Counter(e[2] for e in excluded if e[1] == n)) for n in names}}
    (out / ROLES_FILE).write_text(json.dumps(roles, indent=1) + "\n")
    validate_data_dir(out, check_audio=False)
    return roles


def read_utt2corpus(data_dir: Path | str) -> dict[str, str]:
    path = Path(data_dir) / "utt2corpus"
    return read_table(path) if path.is_file() else {}
