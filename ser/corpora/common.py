"""What every corpus preparation shares: one utterance record, and the Lhotse manifests.

A corpus module lists its utterances as :class:`Utterance` records and hands them
to :func:`build_manifests`, which checks them, maps speaker names to Kaldi-safe
speaker ids, reads the audio headers and writes ``<corpus>_recordings.jsonl.gz`` and
``<corpus>_supervisions.jsonl.gz``.

Speaker ids. Kaldi needs ``utt2spk`` sorted by utterance to be sorted by speaker as
well (C order). With utterance ids ``<speaker>-<rest>`` this holds for any rest if
every character of a speaker id sorts after ``-``; a name such as ``wangzhe+2`` beside
``wangzhe`` breaks it (``+`` sorts before ``-``). So :func:`speaker_ids` maps each
corpus speaker name to an id of ``[A-Za-z0-9_.]`` only: names made of those stay as
they are, accents are dropped (``Müller`` -> ``Muller``), a letter or digit without an
ASCII form becomes its code point (``王 哲`` -> ``u738b_u54f2``), any other character
becomes ``_`` (``wangzhe+2`` -> ``wangzhe_2``), and where two names would meet, each
changed one gets a short hash of its name. The original name is kept in the supervision's
``custom["speaker_name"]`` (and in the data dir's ``spk2name``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from ser.errors import CorpusError

# The six emotions of CASIA and the synthetic corpus.
BASIC_EMOTIONS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
GENDERS = ("m", "f")
# Audio that corpus modules list, whatever the case of the suffix (.WAV, .Flac).
AUDIO_SUFFIXES = (".wav", ".flac")
# Every character here sorts after "-" in C order, which keeps utt2spk sorted both ways.
UNSAFE_SPEAKER_CHARS = re.compile(r"[^A-Za-z0-9_.]")


def is_audio_file(path: Path, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> bool:
    return path.suffix.lower() in suffixes and path.is_file()


def list_audio(directory: Path, recursive: bool = False,
               suffixes: Sequence[str] = AUDIO_SUFFIXES) -> list[Path]:
    """The audio files in ``directory`` (and below it with ``recursive``), sorted;
    unlike glob("*.wav"), the suffix may be in any case."""
    if not directory.is_dir():
        return []
    paths = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in paths if is_audio_file(p, suffixes))


def find_audio(directory: Path, stem: str, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> Path:
    """``directory/<stem><suffix>`` with an audio suffix in any case (``.wav`` first);
    ``<stem>.wav`` where there is none, so that the caller reports it as missing."""
    default = directory / f"{stem}{suffixes[0]}"
    if default.is_file() or not directory.is_dir():
        return default
    for path in sorted(directory.iterdir()):
        if path.stem == stem and is_audio_file(path, suffixes):
            return path
    return default


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance. ``utt_id`` must start with ``speaker + '-'`` so that
    sorting by utterance groups each speaker's utterances, as Kaldi requires."""

    utt_id: str
    path: Path
    speaker: str
    emotion: str
    gender: str | None = None
    session: str | None = None
    text: str | None = None
    speaker_name: str | None = None  # the corpus's name where ``speaker`` had to differ


def _safe_name(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    no_accents = "".join(c for c in decomposed if not unicodedata.combining(c))
    # A letter or digit with no ASCII form (王) becomes its code point (u738b), set off
    # by "_" from its neighbours, so that 王 哲 is u738b_u54f2, not ___.
    tokens = [c if not UNSAFE_SPEAKER_CHARS.match(c) else f"u{ord(c):04x}" if c.isalnum() else "_"
              for c in no_accents]
    out = ""
    for i, token in enumerate(tokens):
        if i and len(token) > 1 and out[-1] != "_":
            out += "_"
        elif i and len(tokens[i - 1]) > 1 and token != "_":
            out += "_"
        out += token
    return out or "_"


def speaker_ids(names: Iterable[str], corpus: str = "corpus") -> dict[str, str]:
    """Maps each speaker name to a Kaldi-safe id (see the module docstring); a corpus's
    names always give the same ids."""
    names = sorted(set(names))
    ids = {name: _safe_name(name) for name in names}
    taken: dict[str, list[str]] = {}
    for name, sid in ids.items():
        taken.setdefault(sid, []).append(name)
    for sid, group in taken.items():
        for name in group:
            if len(group) > 1 and name != sid:  # a name that is already safe keeps its id
                digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()
                ids[name] = f"{sid}_{digest[:8]}"
    seen: dict[str, str] = {}
    for name, sid in ids.items():
        if sid in seen:
            raise CorpusError(f"{corpus}: speakers {seen[sid]!r} and {name!r} both map to the "
                              f"speaker id {sid!r}; rename one of them")
        seen[sid] = name
    return ids


def with_speaker_ids(utterances: Sequence[Utterance], corpus: str) -> list[Utterance]:
    """The utterances with Kaldi-safe speaker ids, the ``<speaker>`` prefix of the
    utterance ids replaced to match, and whitespace in utterance ids (which cannot go
    into Kaldi tables) replaced by ``_``."""
    ids = speaker_ids((u.speaker for u in utterances), corpus)
    mapped = []
    for utt in utterances:
        speaker = ids[utt.speaker]
        utt_id = speaker + re.sub(r"\s", "_", utt.utt_id[len(utt.speaker):])
        name = utt.speaker_name or (utt.speaker if speaker != utt.speaker else None)
        mapped.append(dataclasses.replace(utt, utt_id=utt_id, speaker=speaker, speaker_name=name))
    return mapped


def check_corpus_dir(corpus_dir: Path | str, corpus: str, layout: str) -> Path:
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus} corpus directory {corpus_dir} does not exist "
                          f"(expected layout: {layout})")
    return corpus_dir


def check_utterances(utterances: Sequence[Utterance], corpus: str, corpus_dir: Path,
                     emotions: Sequence[str]) -> None:
    """Fails with a message naming the path for an empty corpus, duplicate ids,
    unknown labels and ids that do not start with their speaker."""
    if not utterances:
        raise CorpusError(f"{corpus}: no utterances found under {corpus_dir}")
    seen: dict[str, Path] = {}
    for utt in utterances:
        if utt.utt_id in seen:
            raise CorpusError(f"{corpus}: duplicate utterance id {utt.utt_id!r}: "
                              f"{seen[utt.utt_id]} and {utt.path}")
        seen[utt.utt_id] = utt.path
        if utt.emotion not in emotions:
            raise CorpusError(f"{corpus}: {utt.path}: emotion {utt.emotion!r} is not one "
                              f"of {', '.join(emotions)}")
        if not utt.utt_id.startswith(utt.speaker + "-"):
            raise CorpusError(f"{corpus}: {utt.path}: utterance id {utt.utt_id!r} does not "
                              f"start with its speaker {utt.speaker!r}-")
        if utt.gender is not None and utt.gender not in GENDERS:
            raise CorpusError(f"{corpus}: {utt.path}: gender {utt.gender!r} is not m or f")


def build_manifests(utterances: Iterable[Utterance], corpus: str, corpus_dir: Path,
                    emotions: Sequence[str], output_dir: Path | str | None = None) -> dict:
    """Returns ``{"recordings", "supervisions", "excluded"}``; with ``output_dir``, also
    writes the two manifests there. Files whose header cannot be read are excluded,
    listed in ``excluded`` (and ``<corpus>_excluded.txt``) with the reason. Speakers
    get Kaldi-safe ids (:func:`speaker_ids`)."""
    utterances = sorted(utterances, key=lambda u: u.utt_id)
    check_utterances(utterances, corpus, Path(corpus_dir), emotions)
    utterances = sorted(with_speaker_ids(utterances, corpus), key=lambda u: u.utt_id)
    check_utterances(utterances, corpus, Path(corpus_dir), emotions)  # ids may meet now
    recordings, supervisions, excluded = [], [], []
    for utt in utterances:
        try:
            rec = Recording.from_file(utt.path, recording_id=utt.utt_id)
            if rec.num_samples == 0:
                raise ValueError("no samples")
        except Exception as err:  # any reader error means the file is unusable
            excluded.append((utt.utt_id, str(utt.path), f"unreadable audio: {err}".replace("\n", " ")))
            continue
        custom = {"emotion": utt.emotion, "corpus": corpus}
        if utt.session is not None:
            custom["session"] = utt.session
        if utt.speaker_name is not None:
            custom["speaker_name"] = utt.speaker_name
        recordings.append(rec)
        supervisions.append(SupervisionSegment(
            id=utt.utt_id, recording_id=utt.utt_id, start=0.0, duration=rec.duration,
            channel=rec.channel_ids[0] if len(rec.channel_ids) == 1 else rec.channel_ids,
            speaker=utt.speaker, gender=utt.gender, text=utt.text, custom=custom))
    if excluded:
        logging.warning("%s: %d unreadable file(s) excluded, e.g. %s; all are listed with the reason in %s",
                        corpus, len(excluded), excluded[0][1],
                        excluded_file(output_dir, corpus) if output_dir is not None
                        else f"{corpus}_excluded.txt beside the manifests")
    if not recordings:
        raise CorpusError(f"{corpus}: none of the {len(utterances)} files under {corpus_dir} "
                          "could be read")
    manifests = {"recordings": RecordingSet.from_recordings(recordings),
                 "supervisions": SupervisionSet.from_segments(supervisions),
                 "excluded": excluded, "emotions": tuple(emotions)}
    if output_dir is not None:
        write_manifests(manifests, corpus, output_dir)
    return manifests


def exclude_utterances(manifests: dict, reasons: Mapping[str, tuple[str, str]],
                       corpus: str) -> dict:
    """The manifests without the utterances of ``reasons`` (utterance id -> (path,
    reason)), which join ``excluded``."""
    if not reasons:
        return manifests
    supervisions = [s for s in manifests["supervisions"] if s.id not in reasons]
    if not supervisions:
        raise CorpusError(f"{corpus}: every utterance was excluded, e.g. "
                          f"{next(iter(reasons.values()))[0]}: {next(iter(reasons.values()))[1]}")
    kept = {s.recording_id for s in supervisions}
    excluded = manifests["excluded"] + [(utt, path, reason) for utt, (path, reason) in reasons.items()]
    return {**manifests, "supervisions": SupervisionSet.from_segments(supervisions),
            "recordings": RecordingSet.from_recordings(r for r in manifests["recordings"] if r.id in kept),
            "excluded": sorted(excluded)}


def excluded_file(output_dir: Path | str, corpus: str) -> Path:
    """Where :func:`write_manifests` lists the excluded utterances, with the reasons."""
    return Path(output_dir) / f"{corpus}_excluded.txt"


def write_manifests(manifests: dict, corpus: str, output_dir: Path | str) -> None:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifests["recordings"].to_file(output_dir / f"{corpus}_recordings.jsonl.gz")
    manifests["supervisions"].to_file(output_dir / f"{corpus}_supervisions.jsonl.gz")
    with open(excluded_file(output_dir, corpus), "w") as f:
        for utt_id, path, reason in manifests.get("excluded", []):
            f.write(f"{utt_id}\t{path}\t{reason}\n")
