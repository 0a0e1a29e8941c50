"""Small corpus trees in each corpus's real layout and naming, irregularities included.

sox makes one short sine wav (and its flac) and ffmpeg one short ``.avi``; every
other audio file is a copy of those, and a corrupt one is random bytes. Each ``make_<corpus>(root)``
writes under ``root`` and returns the corpus directory; its docstring says what the
tree holds, which is what the tests expect.
"""
from __future__ import annotations

import atexit
import functools
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

WAV, FLAC, AVI, CORRUPT = "<wav>", "<flac>", "<avi>", "<corrupt>"


@functools.cache
def _templates() -> dict[str, Path]:
    directory = Path(tempfile.mkdtemp(prefix="ser-fixtures-"))
    atexit.register(shutil.rmtree, directory, True)
    wav, flac, avi = directory / "tone.wav", directory / "tone.flac", directory / "clip.avi"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(wav),
                    "synth", "0.3", "sine", "200"], check=True, capture_output=True)
    subprocess.run(["sox", str(wav), str(flac)], check=True, capture_output=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=5", "-f", "lavfi", "-i",
                    "sine=frequency=300:sample_rate=44100", "-t", "0.5", "-shortest",
                    "-c:v", "mpeg4", "-c:a", "pcm_s16le", str(avi)],
                   check=True, capture_output=True)
    return {WAV: wav, FLAC: flac, AVI: avi}


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Writes each ``relative path: content`` under ``root``: ``WAV``, ``FLAC`` or ``AVI``
    copies the template, ``CORRUPT`` writes random bytes, any other string is the text."""
    corrupt_bytes = random.Random(0).randbytes(2000)
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content in (WAV, FLAC, AVI):
            shutil.copyfile(_templates()[content], path)
        elif content == CORRUPT:
            path.write_bytes(corrupt_bytes)
        else:
            path.write_text(content)
    return root


def make_casia(root: Path) -> Path:
    """2 speakers x angry, sad x 2 sentences: 8 utterances."""
    return write_tree(root / "casia", {
        f"{speaker}/{emotion}/{sentence}.wav": WAV for speaker in ("liuchanhg", "wangzhe")
        for emotion in ("angry", "sad") for sentence in ("201", "202")})


ENTERFACE_EMOTION_DIRS = {"an": "anger", "di": "disgust", "fe": "fear", "ha": "happiness",
                          "sa": "sadness", "su": "surprise"}


def make_enterface(root: Path) -> Path:
    """subject 1: the regular layout, 6 emotions x sentences 1, 2 (12).
    subject 6: partial, 3 files named after itself oddly or after subject 7.
    subject 12: names without or with extra separators, a ``Happiness`` folder (3).
    subject 23: no sentence level (2), and a corrupt video to be excluded.
    21 videos: 20 utterances with audio, 1 excluded."""
    files = {f"subject 1/{folder}/sentence {n}/s1_{code}_{n}.avi": AVI
             for code, folder in ENTERFACE_EMOTION_DIRS.items() for n in (1, 2)}
    files.update({
        "subject 6/anger/sentence 1/s_6_an_1.avi": AVI,
        "subject 6/anger/sentence 2/s7_an_2.avi": AVI,
        "subject 6/sadness/sentence 1/s6_sa_1.avi": AVI,
        "subject 12/anger/sentence 1/s12an1.avi": AVI,
        "subject 12/anger/sentence 2/s_12_an_2.avi": AVI,
        "subject 12/Happiness/sentence 3/s12_ha_3.avi": AVI,
        "subject 23/fear/s23_fe_1.avi": AVI,
        "subject 23/fear/s23fe2.avi": AVI,
        "subject 23/sadness/s23_sa_4.avi": CORRUPT,
        "README.txt": "eNTERFACE'05",
    })
    return write_tree(root / "enterface", files)


def make_emodb(root: Path) -> Path:
    """Speakers 03 (m) and 08 (f): 7 readable files, one of each emotion, and a
    corrupt 03a02Wb.wav; the root also has the corpus's other folders."""
    names = ["03a01Fa", "03a01Wa", "03b10Nc", "08a02Ab", "08a04Lc", "08b01Ea", "08a05Ta"]
    files = {f"wav/{name}.wav": WAV for name in names}
    files.update({"wav/03a02Wb.wav": CORRUPT, "lablaut/03a01Fa.lab": "0.0 a"})
    return write_tree(root / "emodb", files)


def make_ravdess(root: Path) -> Path:
    """Actors 01 (m) and 02 (f), each with speech in all 8 emotions (normal
    intensity, statement 01, repetition 01): 16 files, of which 12 are of the six
    basic emotions; Actor_02's sad file is corrupt. Also a song wav, a
    video-only .mp4 and an audio-video .mp4, all to be skipped."""
    files = {f"Actor_{actor}/03-01-{emotion:02d}-01-01-01-{actor}.wav": WAV
             for actor in ("01", "02") for emotion in range(1, 9)}
    files.update({"Actor_02/03-01-04-01-01-01-02.wav": CORRUPT,
                  "Actor_01/03-02-03-01-01-01-01.wav": WAV,
                  "Actor_01/02-01-03-01-01-01-01.mp4": "video",
                  "Actor_01/01-01-03-01-01-01-01.mp4": "video"})
    return write_tree(root / "ravdess", files)


def make_gemep(root: Path) -> Path:
    """Actors 01 and 02 in subfolders: 6 core files (one corrupt) and 2 of the
    extended categories (admiration, disgust)."""
    return write_tree(root / "gemep", {
        "Actor01/01amu1.wav": WAV, "Actor01/01col2.wav": WAV, "Actor01/01tri3.wav": WAV,
        "Actor01/01adm1.wav": WAV,
        "Actor02/02irr1.wav": WAV, "Actor02/02peu2.wav": WAV, "Actor02/02sou1.wav": CORRUPT,
        "Actor02/02deg1.wav": WAV,
    })


IEMOCAP_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def iemocap_labels(*turns: tuple[str, str]) -> str:
    """An EmoEvaluation file: a consensus line per turn, then evaluator lines."""
    return IEMOCAP_HEADER + "".join(
        f"[{index + 1.5:.4f} - {index + 2.5:.4f}]\t{name}\t{label}\t[2.5000, 3.0000, 2.5000]\n"
        f"C-E2:\tNeutral state;\t()\nA-E1:\tval 3; act 2; dom  3;\t()\n\n"
        for index, (name, label) in enumerate(turns))


def make_iemocap(root: Path) -> Path:
    """Session1: an improvised dialogue (neu, exc, and a fru to skip) and a scripted
    one (ang, sad, and an xxx to skip). Session2: an improvised dialogue (hap, sad,
    and neu in a corrupt wav). 7 labelled turns of the 4 classes, 5 improvised."""
    turns = {
        ("Session1", "Ses01F_impro01"): [("Ses01F_impro01_F000", "neu"),
                                         ("Ses01F_impro01_M000", "exc"),
                                         ("Ses01F_impro01_F001", "fru")],
        ("Session1", "Ses01F_script01_1"): [("Ses01F_script01_1_M000", "ang"),
                                            ("Ses01F_script01_1_F000", "sad"),
                                            ("Ses01F_script01_1_F001", "xxx")],
        ("Session2", "Ses02M_impro02"): [("Ses02M_impro02_M000", "hap"),
                                         ("Ses02M_impro02_F000", "sad"),
                                         ("Ses02M_impro02_F001", "neu")],
    }
    files = {}
    for (session, dialog), dialog_turns in turns.items():
        files[f"{session}/dialog/EmoEvaluation/{dialog}.txt"] = iemocap_labels(*dialog_turns)
        for name, _ in dialog_turns:
            files[f"{session}/sentences/wav/{dialog}/{name}.wav"] = WAV
    files["Session2/sentences/wav/Ses02M_impro02/Ses02M_impro02_F001.wav"] = CORRUPT
    return write_tree(root / "iemocap", files)
