"""eNTERFACE'05 audio-visual emotion database (Martin et al., 2006).

42 subjects of 14 nationalities speak English sentences in 6 emotions, 5 sentences
per emotion, filmed as ``.avi`` video with sound. Layout::

    <corpus_dir>/subject <N>/<emotion>/sentence <M>/s<N>_<code>_<M>.avi

with the emotion folders and file codes anger (an), disgust (di), fear (fe),
happiness (ha), sadness (sa) and surprise (su), labelled angry, disgust, fear, happy,
sad and surprise. Top-level entries other than ``subject <N>`` folders are ignored.

The sound track is extracted once with ffmpeg to 16 kHz mono 16-bit
``<output_dir>/wav/<utt_id>.wav`` (so ``output_dir`` is required): a valid file from
an earlier run is kept, and a new one is written under a temporary name and then
renamed, so that a killed run leaves no half-written file. A video that ffmpeg cannot
decode is excluded, listed with ffmpeg's reason.

The distributed copies have naming irregularities, handled as follows:

* Some files in a subject's folder carry another subject's number, or an odd form of
  their own (``s_6...`` in subject 6): the speaker is always the ``subject <N>`` folder.
* Separators are missing or extra in some names (``s12an1.avi``, ``s_12_an_1.avi``):
  file names are read with a tolerant pattern, and only where no folder says it.
* Subject 23 has no ``sentence <M>`` level in some copies: there the sentence number
  comes from the file name.
* Emotion folders are not spelled alike in every subject (``happiness`` among
  others): an emotion folder is known by its first two letters, its file code,
  whatever its case; a folder with no known code is an error.
* Subject 6 is incomplete, so the corpus is unbalanced; ``drop_subject6=True`` leaves
  that subject out.

Utterance ids are ``subject<NN>-<emotion>-<M>``, made from the folders, so irregular
file names cannot make two ids collide. The distribution documents no speaker
genders, so they are left unknown.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

from ser.atomic import atomic_path
from ser.corpora.common import (Utterance, build_manifests, check_corpus_dir,
                                check_utterances, excluded_file, list_audio, write_manifests)
from ser.errors import CorpusError, SerError

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise")
EMOTION_CODES = {"an": "angry", "di": "disgust", "fe": "fear", "ha": "happy", "sa": "sad",
                 "su": "surprise"}
LAYOUT = "subject <N>/<emotion>/sentence <M>/s<N>_<code>_<M>.avi"
SAMPLE_RATE = 16000

SUBJECT_DIR = re.compile(r"subject\s*_?(\d+)", re.IGNORECASE)
SENTENCE_DIR = re.compile(r"sentence\s*_?(\d+)", re.IGNORECASE)
# s1_an_1, s12an1, s_12_an_1: any separators, or none.
VIDEO_NAME = re.compile(r"s[\s_-]*(\d+)[\s_-]*([a-z]{2})[\s_-]*(\d+)", re.IGNORECASE)


def _sentence_number(video: Path) -> int:
    """From the ``sentence <M>`` folder, or from the file name where there is none."""
    folder = SENTENCE_DIR.fullmatch(video.parent.name)
    if folder:
        return int(folder[1])
    name = VIDEO_NAME.match(video.stem)
    if name is None:
        raise CorpusError(f"enterface: {video}: no sentence folder, and the file name does "
                          f"not give the sentence (expected layout {LAYOUT})")
    return int(name[3])


def list_videos(corpus_dir: Path, drop_subject6: bool = False) -> list[Utterance]:
    """One utterance per ``.avi``, its path still the video's."""
    videos = []
    for subject_dir in sorted(p for p in corpus_dir.iterdir() if p.is_dir()):
        subject = SUBJECT_DIR.fullmatch(subject_dir.name)
        if subject is None:
            continue
        if drop_subject6 and int(subject[1]) == 6:
            logging.info("enterface: leaving out the incomplete subject 6 (%s)", subject_dir)
            continue
        speaker = f"subject{int(subject[1]):02d}"
        for emotion_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            emotion = EMOTION_CODES.get(emotion_dir.name[:2].lower())
            if emotion is None:
                raise CorpusError(f"enterface: {emotion_dir}: emotion folder "
                                  f"{emotion_dir.name!r} does not start with one of "
                                  f"{', '.join(EMOTION_CODES)} (expected layout {LAYOUT})")
            for video in list_audio(emotion_dir, recursive=True, suffixes=(".avi",)):
                videos.append(Utterance(
                    utt_id=f"{speaker}-{emotion}-{_sentence_number(video)}", path=video,
                    speaker=speaker, emotion=emotion))
    return videos


def _is_extracted(wav: Path) -> bool:
    if not wav.is_file():
        return False
    try:
        info = sf.info(str(wav))
    except RuntimeError:  # soundfile's error for a truncated or foreign file
        return False
    return (info.samplerate == SAMPLE_RATE and info.channels == 1
            and info.subtype == "PCM_16" and info.frames > 0)


def extract_audio(video: Path, wav: Path) -> str | None:
    """Writes the sound track of ``video`` to ``wav`` unless a valid one is there;
    returns why ffmpeg failed, or None."""
    if _is_extracted(wav):
        return None
    try:
        with atomic_path(wav) as partial:
            result = subprocess.run(
                ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(video), "-vn", "-ac", "1",
                 "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "wav", str(partial)],
                capture_output=True, text=True)
            if result.returncode != 0 or not _is_extracted(partial):
                last_line = (result.stderr.strip().splitlines() or ["no audio written"])[-1]
                raise CorpusError(f"ffmpeg could not extract the audio: {last_line.removeprefix(f'{video}: ')}")
    except CorpusError as err:
        return str(err)
    return None


def prepare_enterface(corpus_dir: Path | str, output_dir: Path | str | None = None,
                      drop_subject6: bool = False, num_jobs: int | None = None) -> dict:
    """Extracts the audio to ``output_dir/wav`` and returns (and writes) the manifests;
    ``num_jobs`` ffmpeg processes run at once (default: one per CPU)."""
    corpus_dir = check_corpus_dir(corpus_dir, "enterface", LAYOUT)
    if output_dir is None:
        raise SerError("enterface: output_dir is required: the audio is extracted to "
                       "<output_dir>/wav")
    if shutil.which("ffmpeg") is None:
        raise SerError("enterface: ffmpeg is needed to extract the audio of the .avi files")
    videos = list_videos(corpus_dir, drop_subject6)
    # Check before the slow extraction, not after.
    check_utterances(videos, "enterface", corpus_dir, EMOTIONS)
    wav_dir = Path(output_dir) / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    wavs = [wav_dir / f"{video.utt_id}.wav" for video in videos]
    with ThreadPoolExecutor(num_jobs or os.cpu_count() or 1) as pool:
        failures = list(pool.map(extract_audio, [video.path for video in videos], wavs))
    extracted = [dataclasses.replace(video, path=wav)
                 for video, wav, failure in zip(videos, wavs, failures) if failure is None]
    not_extracted = [(video.utt_id, str(video.path), failure)
                     for video, failure in zip(videos, failures) if failure is not None]
    if not extracted:
        raise CorpusError(f"enterface: ffmpeg extracted none of the {len(videos)} videos "
                          f"under {corpus_dir}, e.g. {not_extracted[0][1]}: "
                          f"{not_extracted[0][2]}")
    if not_extracted:
        logging.warning("enterface: %d video(s) without usable audio excluded, e.g. %s; all are listed "
                        "with the reason in %s", len(not_extracted), not_extracted[0][1],
                        excluded_file(output_dir, "enterface"))
    manifests = build_manifests(extracted, "enterface", corpus_dir, EMOTIONS)
    manifests["excluded"] = sorted(not_extracted + manifests["excluded"])
    write_manifests(manifests, "enterface", output_dir)
    return manifests
