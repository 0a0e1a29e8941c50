"""IEMOCAP, the Interactive Emotional Dyadic Motion Capture database (Busso et al., 2008).

Five sessions, each of one male and one female actor in improvised (``impro``) and
scripted (``script``) English dialogues, cut into turns. Layout::

    <corpus_dir>/Session<N>/sentences/wav/<dialog>/<utterance>.wav
    <corpus_dir>/Session<N>/dialog/EmoEvaluation/<dialog>.txt

e.g. ``Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav``. An
EmoEvaluation file gives each turn's consensus label on a line of its own::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

and the evaluators' lines after it are ignored. The usual 4 classes: neu neutral,
hap and exc (excited) happy, ang angry, sad sad. Turns labelled fru, sur, fea, dis,
oth or xxx (no agreement) are skipped and counted in the log; any other label is an
error. A labelled turn whose wav is missing or unreadable is excluded.

The speaking actor is the letter that starts the last field of the utterance name
(``F000``: female), not the letter after ``Ses01``, which names the actor wearing
the motion-capture markers in that dialogue. Speaker ids are ``Ses<NN>_<F|M>``,
sessions ``Session<N>`` (the recipe's default protocol leaves one session out), and
utterance ids ``<speaker>-<utterance>``, e.g. ``Ses01_F-Ses01F_impro01_F000``.
``include_scripted=False`` keeps the improvised dialogues only.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from ser.corpora.common import Utterance, build_manifests, check_corpus_dir, find_audio
from ser.errors import CorpusError

EMOTIONS = ("angry", "happy", "neutral", "sad")
LABELS = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}
SKIPPED_LABELS = ("fru", "sur", "fea", "dis", "oth", "xxx")
LAYOUT = ("Session<N>/sentences/wav/<dialog>/<utterance>.wav and "
          "Session<N>/dialog/EmoEvaluation/<dialog>.txt")
SESSION_DIR = re.compile(r"Session(\d+)")
LABEL_LINE = re.compile(r"\[[\d.]+ - [\d.]+\]\t(\S+)\t(\S+)\t")
UTTERANCE_NAME = re.compile(r"Ses\d\d[FM]_\w+_([FM])\d+")


def read_labels(label_file: Path) -> list[tuple[str, str]]:
    """The (utterance name, label) pairs of an EmoEvaluation file."""
    lines = label_file.read_text(errors="replace").splitlines()
    return [match.groups() for match in map(LABEL_LINE.match, lines) if match]


def prepare_iemocap(corpus_dir: Path | str, output_dir: Path | str | None = None,
                    include_scripted: bool = True) -> dict:
    """Returns the 4-class IEMOCAP manifests (and writes them to ``output_dir`` if
    given)."""
    corpus_dir = check_corpus_dir(corpus_dir, "iemocap", LAYOUT)
    utterances, skipped = [], 0
    for session_dir in sorted(corpus_dir.glob("Session*/")):
        session = SESSION_DIR.fullmatch(session_dir.name)
        if session is None:
            continue
        # "Ses*.txt" also passes over macOS "._Ses..." copies.
        for label_file in sorted(session_dir.glob("dialog/EmoEvaluation/Ses*.txt")):
            dialog = label_file.stem
            if not include_scripted and "_script" in dialog:
                continue
            for name, label in read_labels(label_file):
                if label in SKIPPED_LABELS:
                    skipped += 1
                    continue
                if label not in LABELS:
                    raise CorpusError(f"iemocap: {label_file}: unknown label {label!r} for "
                                      f"{name} (known: {', '.join([*LABELS, *SKIPPED_LABELS])})")
                utterance_name = UTTERANCE_NAME.fullmatch(name)
                if utterance_name is None:
                    raise CorpusError(f"iemocap: {label_file}: utterance name {name!r} is "
                                      "not like Ses01F_impro01_F000")
                letter = utterance_name[1]
                speaker = f"Ses{int(session[1]):02d}_{letter}"
                utterances.append(Utterance(
                    utt_id=f"{speaker}-{name}",
                    path=find_audio(session_dir / "sentences" / "wav" / dialog, name),
                    speaker=speaker, emotion=LABELS[label], gender=letter.lower(),
                    session=session_dir.name))
    logging.info("iemocap: skipped %d turn(s) outside the 4 classes", skipped)
    return build_manifests(utterances, "iemocap", corpus_dir, EMOTIONS, output_dir)
