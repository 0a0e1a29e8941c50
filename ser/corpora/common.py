"""What every corpus preparation shares: one utterance record, and the Lhotse manifests.

A corpus module lists its utterances as :class:`Utterance` records and hands them
to :func:`build_manifests`, which checks them, reads the audio headers and writes
``<corpus>_recordings.jsonl.gz`` and ``<corpus>_supervisions.jsonl.gz``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from ser.errors import CorpusError

# The six emotions of CASIA and the synthetic corpus.
BASIC_EMOTIONS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
GENDERS = ("m", "f")


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
    listed in ``excluded`` (and ``<corpus>_excluded.txt``) with the reason."""
    utterances = sorted(utterances, key=lambda u: u.utt_id)
    check_utterances(utterances, corpus, Path(corpus_dir), emotions)
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
        recordings.append(rec)
        supervisions.append(SupervisionSegment(
            id=utt.utt_id, recording_id=utt.utt_id, start=0.0, duration=rec.duration,
            channel=rec.channel_ids[0] if len(rec.channel_ids) == 1 else rec.channel_ids,
            speaker=utt.speaker, gender=utt.gender, text=utt.text, custom=custom))
    if excluded:
        logging.warning("%s: %d unreadable file(s) excluded, e.g. %s", corpus, len(excluded),
                        excluded[0][1])
    if not recordings:
        raise CorpusError(f"{corpus}: none of the {len(utterances)} files under {corpus_dir} "
                          "could be read")
    manifests = {"recordings": RecordingSet.from_recordings(recordings),
                 "supervisions": SupervisionSet.from_segments(supervisions),
                 "excluded": excluded, "emotions": tuple(emotions)}
    if output_dir is not None:
        write_manifests(manifests, corpus, output_dir)
    return manifests


def write_manifests(manifests: dict, corpus: str, output_dir: Path | str) -> None:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifests["recordings"].to_file(output_dir / f"{corpus}_recordings.jsonl.gz")
    manifests["supervisions"].to_file(output_dir / f"{corpus}_supervisions.jsonl.gz")
    with open(output_dir / f"{corpus}_excluded.txt", "w") as f:
        for utt_id, path, reason in manifests.get("excluded", []):
            f.write(f"{utt_id}\t{path}\t{reason}\n")
