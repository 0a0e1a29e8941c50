"""CASIA Chinese emotional speech corpus (Institute of Automation, CAS).

Layout::

    <corpus_dir>/<speaker>/<emotion>/<sentence_id>.wav

with 4 speakers (liuchanhg, zhaoquanyin: female; wangzhe, ZhaoZuoxiang: male) and
6 emotions (angry, fear, happy, neutral, sad, surprise). The public part has 50
sentences per speaker and emotion (1200 files); the full corpus 300 (7200 files).
Utterance ids are ``<speaker>-<emotion>-<sentence_id>``. Other top-level files
(README, manifest.csv) are ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ser.corpora.common import (BASIC_EMOTIONS, Utterance, build_manifests,
                                check_corpus_dir, list_audio)
from ser.errors import CorpusError

EMOTIONS = BASIC_EMOTIONS
SPEAKER_GENDERS = {"liuchanhg": "f", "zhaoquanyin": "f", "wangzhe": "m", "ZhaoZuoxiang": "m"}
LAYOUT = "<speaker>/<emotion>/<id>.wav"


def scan_speaker_emotion_tree(corpus_dir: Path, corpus: str, emotions: Sequence[str],
                              speaker_genders: Mapping[str, str]) -> list[Utterance]:
    """Lists ``<speaker>/<emotion>/<id>.wav`` (or .flac, the suffix in any case); an
    unknown emotion folder is an error."""
    utterances = []
    for speaker_dir in sorted(p for p in corpus_dir.iterdir() if p.is_dir()):
        for emotion_dir in sorted(p for p in speaker_dir.iterdir() if p.is_dir()):
            if emotion_dir.name not in emotions:
                raise CorpusError(f"{corpus}: {emotion_dir}: emotion folder "
                                  f"{emotion_dir.name!r} is not one of {', '.join(emotions)} "
                                  f"(expected layout {LAYOUT})")
            for wav in list_audio(emotion_dir):
                speaker = speaker_dir.name
                utterances.append(Utterance(
                    utt_id=f"{speaker}-{emotion_dir.name}-{wav.stem}", path=wav,
                    speaker=speaker, emotion=emotion_dir.name,
                    gender=speaker_genders.get(speaker)))
    return utterances


def prepare_casia(corpus_dir: Path | str, output_dir: Path | str | None = None) -> dict:
    """Returns the CASIA manifests (and writes them to ``output_dir`` if given)."""
    corpus_dir = check_corpus_dir(corpus_dir, "casia", LAYOUT)
    utterances = scan_speaker_emotion_tree(corpus_dir, "casia", EMOTIONS, SPEAKER_GENDERS)
    if not utterances:
        raise CorpusError(f"casia: no {LAYOUT} files under {corpus_dir}")
    return build_manifests(utterances, "casia", corpus_dir, EMOTIONS, output_dir)
