"""``synth``: a small acted-emotion corpus that the recipe makes itself.

It has CASIA's shape (``<speaker>/<emotion>/<id>.wav``, 16 kHz mono, every speaker
reads every sentence in every emotion) so that the whole recipe runs anywhere
without a licensed corpus. espeak-ng speaks; the emotion is rendered through
prosody only (pitch level and range, rate, volume, and a tremolo for fear), each
utterance jittered at random around its emotion's settings and mixed with
background noise at a random SNR, so the classes overlap as real ones do.
Everything is seeded: the same arguments give the same files, bit for bit.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from ser.atomic import atomic_path
from ser.config import CONF_ROOT, shell_assignments
from ser.corpora.casia import LAYOUT, scan_speaker_emotion_tree
from ser.corpora.common import BASIC_EMOTIONS, build_manifests, check_corpus_dir
from ser.errors import CorpusError

EMOTIONS = BASIC_EMOTIONS
SAMPLE_RATE = 16000

# name -> (espeak-ng voice, gender)
SPEAKERS = {
    "spk01": ("en-us+m3", "m"),
    "spk02": ("en-us+f2", "f"),
    "spk03": ("en-gb+m1", "m"),
    "spk04": ("en-gb+f4", "f"),
    "spk05": ("en+m5", "m"),
    "spk06": ("en+f3", "f"),
}
SPEAKER_GENDERS = {name: gender for name, (_, gender) in SPEAKERS.items()}

SENTENCES = (
    "The train leaves the station at seven in the morning.",
    "Please put the books back on the shelf by the window.",
    "We walked along the river until the sun went down.",
    "My sister bought a new coat at the market yesterday.",
    "The meeting has been moved to Thursday afternoon.",
    "He opened the letter and read it twice.",
    "There are four chairs and a table in the kitchen.",
    "The children played in the garden after lunch.",
    "I left my keys on the desk next to the phone.",
    "The bus was late again this evening.",
    "She painted the fence a bright shade of green.",
    "They will visit their grandparents next summer.",
    "The doctor said it would take about an hour.",
    "A small boat crossed the lake in the fog.",
    "Turn left at the bakery and walk two blocks.",
    "The radio was playing an old song from the sixties.",
    "Our neighbours are moving to another city.",
    "The package arrived a day earlier than expected.",
    "He forgot to water the plants over the weekend.",
    "The museum opens its doors at ten o'clock.",
    "You can find the form on the second page.",
    "It rained all night and the streets are wet.",
    "The cat is sleeping on the warm windowsill.",
    "We need to buy bread, milk and some apples.",
)


@dataclass(frozen=True)
class Prosody:
    """SSML prosody relative to the voice's default: pitch and range in percent,
    rate in percent of normal speed, volume in dB, tremolo depth in percent."""

    pitch: float
    pitch_range: float
    rate: float
    volume_db: float
    tremolo: float = 0.0


EMOTION_PROSODY = {
    "neutral": Prosody(pitch=0, pitch_range=0, rate=100, volume_db=0),
    "angry": Prosody(pitch=10, pitch_range=60, rate=118, volume_db=6),
    "happy": Prosody(pitch=25, pitch_range=80, rate=110, volume_db=3),
    "sad": Prosody(pitch=-15, pitch_range=-50, rate=80, volume_db=-5),
    "fear": Prosody(pitch=30, pitch_range=20, rate=125, volume_db=-2, tremolo=35),
    "surprise": Prosody(pitch=40, pitch_range=100, rate=100, volume_db=4),
}
# Per-utterance jitter (standard deviations), wide enough that neighbouring
# emotions overlap: pitch and range in percent, rate in percent, volume in dB.
JITTER = Prosody(pitch=9, pitch_range=25, rate=9, volume_db=2.5, tremolo=10)
SNR_DB_RANGE = (8.0, 25.0)


def _jittered(base: Prosody, rng: np.random.Generator) -> Prosody:
    return Prosody(
        pitch=base.pitch + rng.normal(0, JITTER.pitch),
        pitch_range=max(-90.0, base.pitch_range + rng.normal(0, JITTER.pitch_range)),
        rate=float(np.clip(base.rate + rng.normal(0, JITTER.rate), 60, 180)),
        volume_db=base.volume_db + rng.normal(0, JITTER.volume_db),
        tremolo=max(0.0, base.tremolo + rng.normal(0, JITTER.tremolo)) if base.tremolo else 0.0)


def _ssml(text: str, p: Prosody) -> str:
    return (f'<speak><prosody pitch="{p.pitch:+.0f}%" range="{p.pitch_range:+.0f}%" '
            f'rate="{p.rate:.0f}%" volume="{p.volume_db:+.1f}dB">{text}</prosody></speak>')


def _render(voice: str, text: str, prosody: Prosody, noise_seed: int, snr_db: float,
            out_path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw, resampled = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-m", "-w", str(raw), _ssml(text, prosody)],
                       check=True, capture_output=True)
        effects = ["rate", "-v", str(SAMPLE_RATE)]
        if prosody.tremolo > 0:
            effects += ["tremolo", "7", f"{min(prosody.tremolo, 90):.0f}"]
        # -D: no dither, which would make the output random.
        subprocess.run(["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                        str(resampled), *effects], check=True, capture_output=True)
        speech, _ = sf.read(resampled, dtype="float32")
    rng = np.random.default_rng(noise_seed)
    # Pink-ish noise: white noise through a one-pole low-pass.
    white = rng.standard_normal(len(speech) + SAMPLE_RATE // 10)
    noise = lfilter([0.05], [1.0, -0.95], white).astype(np.float32)
    noise = noise[-len(speech):]
    speech_power = float(np.mean(speech ** 2)) + 1e-10
    noise *= np.sqrt(speech_power / (10 ** (snr_db / 10)) / (float(np.mean(noise ** 2)) + 1e-10))
    mixed = speech + noise
    peak = float(np.max(np.abs(mixed)))
    if peak > 0.99:
        mixed *= 0.99 / peak
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out_path, mixed, SAMPLE_RATE, subtype="PCM_16")


def default_size() -> tuple[int, int]:
    """The corpus's (speakers, sentences per speaker and emotion) where none are given: those
    of conf/corpus/synth.conf, the recipe's, the one place they are set."""
    conf = shell_assignments(CONF_ROOT / "corpus" / "synth.conf")
    return int(conf["synth_speakers"]), int(conf["synth_sentences"])


def generate_synth_corpus(out_dir: Path | str, num_speakers: int | None = None, num_sentences: int | None = None,
                          seed: int = 0, num_workers: int | None = None) -> Path:
    """Writes ``out_dir/<speaker>/<emotion>/<sentence>.wav``; returns ``out_dir``. The size
    not given is :func:`default_size`'s.

    Written into a temporary sibling and renamed at the end, so an interrupted
    run never leaves a corpus that looks complete."""
    num_speakers = default_size()[0] if num_speakers is None else num_speakers
    num_sentences = default_size()[1] if num_sentences is None else num_sentences
    if not 1 <= num_speakers <= len(SPEAKERS):
        raise CorpusError(f"synth: num_speakers must be 1..{len(SPEAKERS)}, got {num_speakers}")
    if not 1 <= num_sentences <= len(SENTENCES):
        raise CorpusError(f"synth: num_sentences must be 1..{len(SENTENCES)}, got {num_sentences}")
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise CorpusError("synth: espeak-ng and sox are needed (tools/install.sh installs them)")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    with atomic_path(out_dir) as partial:
        jobs = []
        for speaker in list(SPEAKERS)[:num_speakers]:
            voice = SPEAKERS[speaker][0]
            for emotion in EMOTIONS:
                for index in range(num_sentences):
                    prosody = _jittered(EMOTION_PROSODY[emotion], rng)
                    snr_db = float(rng.uniform(*SNR_DB_RANGE))
                    noise_seed = int(rng.integers(2**31))
                    jobs.append((voice, SENTENCES[index], prosody, noise_seed, snr_db,
                                 partial / speaker / emotion / f"{index + 1:03d}.wav"))
        with ThreadPoolExecutor(num_workers or os.cpu_count() or 1) as pool:
            for future in [pool.submit(_render, *job) for job in jobs]:
                future.result()
    return out_dir


def prepare_synth(corpus_dir: Path | str, output_dir: Path | str | None = None) -> dict:
    """Returns the manifests of a corpus made by :func:`generate_synth_corpus`."""
    corpus_dir = check_corpus_dir(corpus_dir, "synth", LAYOUT)
    utterances = scan_speaker_emotion_tree(corpus_dir, "synth", EMOTIONS, SPEAKER_GENDERS)
    return build_manifests(utterances, "synth", corpus_dir, EMOTIONS, output_dir)
