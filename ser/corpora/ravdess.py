"""RAVDESS, the Ryerson Audio-Visual Database of Emotional Speech and Song
(Livingstone & Russo, 2018).

24 actors (odd numbers male, even numbers female) say two English statements in
8 emotions. Layout of the audio-only speech part (1440 files)::

    <corpus_dir>/Actor_<AA>/<MM>-<VV>-<EE>-<II>-<SS>-<RR>-<AA>.wav

MM is the modality (01 audio-video, 02 video-only, 03 audio-only), VV the vocal
channel (01 speech, 02 song), EE the emotion, II the intensity (01 normal, 02 strong),
SS the statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the
door"), RR the repetition and AA the actor. Only audio-only speech is used: song
files and other modalities unpacked into the same folders are skipped and counted in
the log (``.mp4`` videos are not even listed). The speaker comes from AA, the file
name, not from the folder.

Emotions: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fear (RAVDESS:
fearful), 07 disgust, 08 surprise (surprised). ``num_classes=8`` (the default) keeps
all. ``num_classes=6`` keeps Ekman's six basic emotions, angry, disgust, fear, happy,
sad, surprise, the eNTERFACE'05 set, so that the two corpora can be crossed: neutral
and calm are dropped (96 + 192 of the 1440 files), not merged, since merging calm
into neutral would leave 7 classes.

Speaker ids are ``ravdess<AA>``, utterance ids ``ravdess<AA>-<file name>``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from ser.corpora import enterface
from ser.corpora.common import Utterance, build_manifests, check_corpus_dir, list_audio
from ser.errors import CorpusError, SerError

EMOTIONS = ("angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise")
BASIC_SIX = enterface.EMOTIONS
EMOTION_CODES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                 "06": "fear", "07": "disgust", "08": "surprise"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
AUDIO_ONLY, SPEECH = "03", "01"
LAYOUT = "Actor_<AA>/<modality>-<channel>-<emotion>-<intensity>-<statement>-<repetition>-<AA>.wav"
FILE_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")


def prepare_ravdess(corpus_dir: Path | str, output_dir: Path | str | None = None,
                    num_classes: int = 8) -> dict:
    """Returns the RAVDESS speech manifests with 8 or 6 emotion classes (and writes
    them to ``output_dir`` if given)."""
    if num_classes not in (6, 8):
        raise SerError(f"ravdess: num_classes must be 8 or 6, got {num_classes}")
    emotions = EMOTIONS if num_classes == 8 else BASIC_SIX
    corpus_dir = check_corpus_dir(corpus_dir, "ravdess", LAYOUT)
    utterances, not_speech, dropped = [], 0, 0
    actor_dirs = sorted(p for p in corpus_dir.glob("Actor_*") if p.is_dir())
    for wav in [wav for actor_dir in actor_dirs for wav in list_audio(actor_dir)]:
        name = FILE_NAME.fullmatch(wav.stem)
        if name is None:
            raise CorpusError(f"ravdess: {wav}: file name does not follow {LAYOUT}")
        modality, channel, code, _intensity, statement, _repetition, actor = name.groups()
        if code not in EMOTION_CODES:
            raise CorpusError(f"ravdess: {wav}: unknown emotion code {code!r} (known: "
                              f"{', '.join(EMOTION_CODES)})")
        if (modality, channel) != (AUDIO_ONLY, SPEECH):
            not_speech += 1
            continue
        if EMOTION_CODES[code] not in emotions:
            dropped += 1
            continue
        speaker = f"ravdess{actor}"
        utterances.append(Utterance(
            utt_id=f"{speaker}-{wav.stem}", path=wav, speaker=speaker,
            emotion=EMOTION_CODES[code], gender="m" if int(actor) % 2 else "f",
            text=STATEMENTS.get(statement)))
    logging.info("ravdess: skipped %d song or video file(s); %d file(s) of emotions "
                 "outside the %d classes", not_speech, dropped, num_classes)
    return build_manifests(utterances, "ravdess", corpus_dir, emotions, output_dir)
