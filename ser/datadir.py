"""Kaldi data directories: written from the Lhotse manifests, read, and checked.

Files (one ``<key> <value>`` per line, sorted by key in C order):
``wav.scp`` (utt -> audio path), ``utt2spk``, ``spk2utt``, ``utt2emo``, ``utt2dur``,
``spk2gender`` (speakers whose gender is known), ``utt2session`` (corpora with
sessions), and ``emotions.txt`` (the class labels, one per line, in index order).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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

    @property
    def utts(self) -> list[str]:
        return sorted(self.wav)

    @property
    def speakers(self) -> list[str]:
        return sorted(set(self.utt2spk.values()))

    def label(self, utt: str) -> int:
        return self.emotions.index(self.utt2emo[utt])


def write_table(path: Path, table: dict, fmt=str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        for key in sorted(table):
            f.write(f"{key} {fmt(table[key])}\n")
    tmp.replace(path)


def read_table(path: Path, convert=str) -> dict:
    table = {}
    with open(path) as f:
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
    for sup in supervisions:
        rec = recordings[sup.recording_id]
        if len(rec.sources) != 1 or rec.sources[0].type != "file":
            raise SerError(f"{sup.id}: only single-file recordings can go to wav.scp")
        if any(c.isspace() for c in rec.sources[0].source):
            raise SerError(f"{rec.sources[0].source}: audio paths with spaces cannot go to wav.scp")
        wav[sup.id] = rec.sources[0].source
        utt2spk[sup.id] = sup.speaker
        utt2emo[sup.id] = sup.custom["emotion"]
        utt2dur[sup.id] = sup.duration
        if sup.gender:
            spk2gender[sup.speaker] = sup.gender
        if sup.custom.get("session"):
            utt2session[sup.id] = sup.custom["session"]
    spk2utt = defaultdict(list)
    for utt, spk in sorted(utt2spk.items()):
        spk2utt[spk].append(utt)
    write_table(data_dir / "wav.scp", wav)
    write_table(data_dir / "utt2spk", utt2spk)
    write_table(data_dir / "spk2utt", spk2utt, " ".join)
    write_table(data_dir / "utt2emo", utt2emo)
    write_table(data_dir / "utt2dur", utt2dur, lambda d: f"{d:.4f}")
    for name, table in (("spk2gender", spk2gender), ("utt2session", utt2session)):
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
                for name in ("spk2gender", "utt2session")}
    return DataDir(
        path=data_dir, wav=read_table(data_dir / "wav.scp"),
        utt2spk=read_table(data_dir / "utt2spk"), utt2emo=read_table(data_dir / "utt2emo"),
        utt2dur=read_table(data_dir / "utt2dur", float),
        emotions=(data_dir / "emotions.txt").read_text().split(), **optional)


def validate_data_dir(data_dir: Path | str, supervisions: SupervisionSet | None = None,
                      check_audio: bool = True) -> DataDir:
    """Checks that the files agree with each other (and with the manifests if given);
    raises SerError naming the file and the first problem found."""
    data = read_data_dir(data_dir)
    path = data.path
    for name in ("wav.scp", "utt2spk", "utt2emo", "utt2dur", "spk2utt"):
        keys = [line.split(maxsplit=1)[0] for line in open(path / name) if line.strip()]
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
    if len(set(data.emotions)) != len(data.emotions) or not data.emotions:
        raise SerError(f"{path / 'emotions.txt'}: empty or has duplicate labels")
    unknown = {e for e in data.utt2emo.values()} - set(data.emotions)
    if unknown:
        raise SerError(f"{path / 'utt2emo'}: labels not in emotions.txt: {sorted(unknown)}")
    bad_dur = [u for u, d in data.utt2dur.items() if not d > 0]
    if bad_dur:
        raise SerError(f"{path / 'utt2dur'}: non-positive duration for {bad_dur[:3]}")
    if set(data.spk2gender) - set(data.speakers):
        raise SerError(f"{path / 'spk2gender'}: speakers not in utt2spk")
    if data.utt2session and set(data.utt2session) != utts:
        raise SerError(f"{path / 'utt2session'}: utterances differ from wav.scp")
    if check_audio:
        missing = [p for p in data.wav.values() if not Path(p).is_file()]
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
