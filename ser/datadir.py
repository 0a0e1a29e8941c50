"""Kaldi data directories: written from the Lhotse manifests, read, and checked.

Files (one ``<key> <value>`` per line, sorted by key in C order):
``wav.scp`` (utt -> audio path, or a ``sox '<path>' -t wav - |`` pipe where the path
has whitespace, see :func:`ser.audio.wav_scp_entry`), ``utt2spk``, ``spk2utt``,
``utt2emo``, ``utt2dur``, ``spk2gender`` (every speaker, or absent where a gender is
unknown, as Kaldi requires), ``spk2name`` (the corpus's speaker names, where one had to
be changed into a Kaldi-safe id), ``utt2session`` (corpora with sessions),
``utt2corpus`` (data dirs of several corpora, ser/multicorpus.py), and
``emotions.txt`` (the class labels, one per line, in index order).

Kaldi's rules that :func:`validate_data_dir` checks beyond the files agreeing: every
table sorted, and ``utt2spk`` sorted by utterance also sorted by speaker (each
utterance id starts with its speaker id, and speaker ids sort after ``-``).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ser.atomic import atomic_path
from ser.audio import is_pipe, piped_file, wav_scp_entry
from ser.errors import SerError

if TYPE_CHECKING:  # lhotse is slow to import; the readers here do not need it
    from lhotse import RecordingSet, SupervisionSet


@dataclass
class DataDir:
    path: Path
    wav: dict[str, str]
    utt2spk: dict[str, str]
    utt2emo: dict[str, str]
    utt2dur: dict[str, float]
    emotions: list[str]
    spk2gender: dict[str, str] = field(default_factory=dict)
    utt2session: dict[str, str] = field(default_factory=dict)
    spk2name: dict[str, str] = field(default_factory=dict)
    utt2corpus: dict[str, str] = field(default_factory=dict)  # combined data dirs (ser/multicorpus.py)

    @property
    def utts(self) -> list[str]:
        return sorted(self.wav)

    @property
    def speakers(self) -> list[str]:
        return sorted(set(self.utt2spk.values()))

    def label(self, utt: str) -> int:
        return self.emotions.index(self.utt2emo[utt])


# Paths are bytes to the kernel: surrogateescape carries any that are not UTF-8.
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


def write_table(path: Path, table: dict, fmt=str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", **ENCODING) as f:
        for key in sorted(table):
            f.write(f"{key} {fmt(table[key])}\n")


def read_table(path: Path, convert=str) -> dict:
    table = {}
    with open(path, **ENCODING) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(maxsplit=1)
            if len(parts) != 2:
                raise SerError(f"{path}:{lineno}: expected '<key> <value>', got {line.rstrip()!r}")
            if parts[0] in table:
                raise SerError(f"{path}:{lineno}: duplicate key {parts[0]!r}")
            try:
                table[parts[0]] = convert(parts[1])
            except ValueError:
                raise SerError(f"{path}:{lineno}: bad value {parts[1]!r}") from None
    return table


def write_data_dir(recordings: RecordingSet, supervisions: SupervisionSet,
                   emotions: list[str] | tuple[str, ...], data_dir: Path | str) -> Path:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    wav, utt2spk, utt2emo, utt2dur, spk2gender, utt2session = {}, {}, {}, {}, {}, {}
    spk2name = {}
    for sup in supervisions:
        rec = recordings[sup.recording_id]
        if len(rec.sources) != 1 or rec.sources[0].type != "file":
            raise SerError(f"{sup.id}: only single-file recordings can go to wav.scp")
        wav[sup.id] = wav_scp_entry(rec.sources[0].source)
        utt2spk[sup.id] = sup.speaker
        utt2emo[sup.id] = sup.custom["emotion"]
        utt2dur[sup.id] = sup.duration
        if sup.gender:
            if spk2gender.setdefault(sup.speaker, sup.gender) != sup.gender:
                raise SerError(f"{data_dir}: speaker {sup.speaker} has both genders "
                               f"{spk2gender[sup.speaker]} and {sup.gender} (at {sup.id})")
        spk2name[sup.speaker] = sup.custom.get("speaker_name") or sup.speaker
        if sup.custom.get("session"):
            utt2session[sup.id] = sup.custom["session"]
    speakers = set(utt2spk.values())
    unknown = sorted(speakers - set(spk2gender))
    if spk2gender and unknown:
        # Kaldi reads spk2gender as every speaker's gender: a partial one is invalid.
        logging.warning("%s: no spk2gender: the gender of %d of %d speaker(s) is unknown, "
                        "e.g. %s", data_dir, len(unknown), len(speakers), unknown[0])
        spk2gender = {}
    if all(name == spk for spk, name in spk2name.items()):
        spk2name = {}
    spk2utt = defaultdict(list)
    for utt, spk in sorted(utt2spk.items()):
        spk2utt[spk].append(utt)
    write_table(data_dir / "wav.scp", wav)
    write_table(data_dir / "utt2spk", utt2spk)
    write_table(data_dir / "spk2utt", spk2utt, " ".join)
    write_table(data_dir / "utt2emo", utt2emo)
    write_table(data_dir / "utt2dur", utt2dur, lambda d: f"{d:.4f}")
    for name, table in (("spk2gender", spk2gender), ("utt2session", utt2session),
                        ("spk2name", spk2name)):
        if table:
            write_table(data_dir / name, table)
        else:
            (data_dir / name).unlink(missing_ok=True)
    (data_dir / "emotions.txt").write_text("".join(f"{e}\n" for e in emotions))
    return data_dir


def read_data_dir(data_dir: Path | str) -> DataDir:
    data_dir = Path(data_dir)
    for name in ("wav.scp", "utt2spk", "utt2emo", "utt2dur", "emotions.txt"):
        if not (data_dir / name).is_file():
            raise SerError(f"{data_dir}: missing {name}; is this a prepared data dir?")
    optional = {name: read_table(data_dir / name) if (data_dir / name).is_file() else {}
                for name in ("spk2gender", "utt2session", "spk2name", "utt2corpus")}
    return DataDir(
        path=data_dir, wav=read_table(data_dir / "wav.scp"),
        utt2spk=read_table(data_dir / "utt2spk"), utt2emo=read_table(data_dir / "utt2emo"),
        utt2dur=read_table(data_dir / "utt2dur", float),
        emotions=(data_dir / "emotions.txt").read_text().split(), **optional)


def validate_data_dir(data_dir: Path | str, supervisions: SupervisionSet | None = None,
                      check_audio: bool = True) -> DataDir:
    """Checks that the files agree with each other and follow Kaldi's rules (see the
    module docstring), and agree with the manifests if given; raises SerError naming
    the file and the first problem found. ``check_audio``: every audio file exists (for
    a pipe entry, the file a ``sox '<path>' -t wav - |`` pipe reads; other commands are
    not run)."""
    data = read_data_dir(data_dir)
    path = data.path
    for name in ("wav.scp", "utt2spk", "utt2emo", "utt2dur", "spk2utt", "spk2gender",
                 "utt2session", "spk2name", "utt2corpus"):
        if not (path / name).is_file():
            continue
        with open(path / name, **ENCODING) as f:
            keys = [line.split(maxsplit=1)[0] for line in f if line.strip()]
        # Python orders str by code point, as C-locale sort orders UTF-8 bytes.
        if keys != sorted(keys):
            raise SerError(f"{path / name}: not sorted (Kaldi needs C-locale order)")
    utts = set(data.wav)
    for name, table in (("utt2spk", data.utt2spk), ("utt2emo", data.utt2emo),
                        ("utt2dur", data.utt2dur)):
        if set(table) != utts:
            extra = sorted(set(table) ^ utts)[:3]
            raise SerError(f"{path / name}: utterances differ from wav.scp, e.g. {extra}")
    spk2utt = read_table(path / "spk2utt", str.split)
    inverted = {utt: spk for spk, us in spk2utt.items() for utt in us}
    if inverted != data.utt2spk:
        raise SerError(f"{path / 'spk2utt'}: does not match utt2spk")
    for utt, spk in data.utt2spk.items():
        if not utt.startswith(spk):
            raise SerError(f"{path / 'utt2spk'}: utterance {utt} does not start with its speaker {spk}")
    by_utt = sorted(data.utt2spk.items())
    for (utt1, spk1), (utt2, spk2) in zip(by_utt, by_utt[1:]):
        if spk2 < spk1:  # Kaldi's utt2spk_to_spk2utt.pl | spk2utt_to_utt2spk.pl round trip
            raise SerError(f"{path / 'utt2spk'}: sorted by utterance it is not sorted by speaker: "
                           f"{utt1} ({spk1}) comes before {utt2} ({spk2}); speaker ids must "
                           f"only have characters that sort after '-', such as [A-Za-z0-9_.]")
    if len(set(data.emotions)) != len(data.emotions) or not data.emotions:
        raise SerError(f"{path / 'emotions.txt'}: empty or has duplicate labels")
    unknown = {e for e in data.utt2emo.values()} - set(data.emotions)
    if unknown:
        raise SerError(f"{path / 'utt2emo'}: labels not in emotions.txt: {sorted(unknown)}")
    bad_dur = [u for u, d in data.utt2dur.items() if not d > 0]
    if bad_dur:
        raise SerError(f"{path / 'utt2dur'}: non-positive duration for {bad_dur[:3]}")
    for name, table in (("spk2gender", data.spk2gender), ("spk2name", data.spk2name)):
        if table and set(table) != set(data.speakers):
            differ = sorted(set(table) ^ set(data.speakers))
            raise SerError(f"{path / name}: must list every speaker of utt2spk and no other, "
                           f"or be absent; differs for {len(differ)}, e.g. {differ[:3]}")
    bad_gender = sorted(spk for spk, gender in data.spk2gender.items() if gender not in ("m", "f"))
    if bad_gender:
        raise SerError(f"{path / 'spk2gender'}: gender of {bad_gender[0]} is "
                       f"{data.spk2gender[bad_gender[0]]!r}, not m or f")
    if data.utt2session and set(data.utt2session) != utts:
        raise SerError(f"{path / 'utt2session'}: utterances differ from wav.scp")
    if data.utt2corpus and set(data.utt2corpus) != utts:
        raise SerError(f"{path / 'utt2corpus'}: utterances differ from wav.scp")
    if check_audio:
        files = [piped_file(entry) if is_pipe(entry) else entry for entry in data.wav.values()]
        missing = [f for f in files if f is not None and not Path(f).is_file()]
        if missing:
            raise SerError(f"{path / 'wav.scp'}: {len(missing)} audio file(s) missing, e.g. {missing[0]}")
    if supervisions is not None:
        sups = {s.id: s for s in supervisions}
        if set(sups) != utts:
            raise SerError(f"{path}: utterances differ from the supervision manifest")
        for utt, sup in sups.items():
            if sup.speaker != data.utt2spk[utt] or sup.custom["emotion"] != data.utt2emo[utt]:
                raise SerError(f"{path}: {utt} has speaker/emotion {data.utt2spk[utt]}/"
                               f"{data.utt2emo[utt]} but the manifest says "
                               f"{sup.speaker}/{sup.custom['emotion']}")
            if abs(sup.duration - data.utt2dur[utt]) > 1e-3:
                raise SerError(f"{path / 'utt2dur'}: {utt} duration differs from the manifest")
    return data
