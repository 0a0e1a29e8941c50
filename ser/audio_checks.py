"""Checks of a corpus's audio at preparation: files that can be read, and so get
features, but whose features would mislead. Stage 1 lists them in
``<data-dir>/audio_warnings.txt``, one line per file: ``<utt>\\t<path>\\t<reasons>``
(reasons joined by ``"; "``), and can exclude the files of a low sample rate.

Each threshold is a module constant, and an option of :func:`check_audio`.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ser.atomic import atomic_write_text
from ser.audio import SAMPLE_RATE, read_audio, truncation
from ser.errors import AudioError

if TYPE_CHECKING:
    from lhotse import RecordingSet, SupervisionSet

# Below the features' 16 kHz the audio is upsampled, and upsampled audio has no energy
# above its old Nyquist frequency (4 kHz for 8 kHz telephone audio): its spectral
# features are not those of the 16 kHz audio the models are trained on.
MIN_SAMPLE_RATE = SAMPLE_RATE
# Speech recorded at any usable level has an RMS above about -45 dBFS; 16-bit
# quantisation noise alone is near -100 dBFS. Below -60 dBFS a file is silence or
# noise floor, and its (log-energy) features are near-constant columns.
SILENCE_RMS_DBFS = -60.0
# A sample at or above 99% of full scale (-0.09 dBFS) is at the rail. Unclipped speech,
# even normalised to full scale, has only a few isolated samples there; a clipped
# recording sits there for whole stretches. 1% of all samples is heavy clipping:
# audible distortion, and harmonics that change the spectral features.
CLIP_LEVEL = 0.99
CLIP_SHARE = 0.01

LOW_RATE, SILENT, CLIPPED, UNREADABLE, TRUNCATED = "low_rate", "silent", "clipped", "unreadable", "truncated"


def check_audio(path: Path | str, min_sample_rate: int = MIN_SAMPLE_RATE,
                silence_rms_dbfs: float = SILENCE_RMS_DBFS, clip_level: float = CLIP_LEVEL,
                clip_share: float = CLIP_SHARE) -> dict[str, str]:
    """The problems of one file (or wav.scp entry) as ``{kind: reason}``, with kinds
    ``low_rate``, ``silent``, ``clipped``, ``truncated`` (a WAV header that promises more
    audio than the file holds: a copy cut short) and ``unreadable``; empty for a clean
    file. The samples are read once, at their native rate, over every channel."""
    try:
        samples, rate = read_audio(path)
    except AudioError as err:
        return {UNREADABLE: err.reason}
    problems = {}
    cut = truncation(path)
    if cut:
        problems[TRUNCATED] = cut
    if rate < min_sample_rate:
        problems[LOW_RATE] = (f"sample rate {rate} Hz is below {min_sample_rate} Hz: upsampled, "
                              f"it has no energy above {rate // 2} Hz")
    if samples.size == 0:
        problems[SILENT] = "no samples"
        return problems
    magnitude = np.abs(samples)
    peak = float(magnitude.max())
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if peak == 0.0:
        problems[SILENT] = "digital silence: every sample is 0"
    elif 20 * np.log10(rms) < silence_rms_dbfs:
        problems[SILENT] = (f"near-silent: RMS {20 * np.log10(rms):.1f} dBFS is below "
                            f"{silence_rms_dbfs:g} dBFS")
    clipped = float(np.mean(magnitude >= clip_level))
    if clipped > clip_share:
        problems[CLIPPED] = (f"clipped: {100 * clipped:.1f}% of the samples are at or above "
                             f"{100 * clip_level:g}% of full scale (more than {100 * clip_share:g}%)")
    return problems


@dataclass(frozen=True)
class AudioWarning:
    utt: str
    path: str
    problems: dict[str, str]

    def line(self) -> str:
        return f"{self.utt}\t{self.path}\t{'; '.join(self.problems.values())}\n"


def check_corpus_audio(recordings: RecordingSet, supervisions: SupervisionSet,
                       num_threads: int = 4, **options) -> list[AudioWarning]:
    """:func:`check_audio` of every supervision's recording (``options`` are its
    thresholds); one warning per utterance with a problem, in utterance order."""
    paths = {}
    for sup in supervisions:
        sources = recordings[sup.recording_id].sources
        paths[sup.id] = sources[0].source if len(sources) == 1 else None
    # libsndfile and numpy release the GIL: threads overlap reading and computing.
    with ThreadPoolExecutor(num_threads) as pool:
        results = dict(zip(paths, pool.map(
            lambda p: check_audio(p, **options) if p else {UNREADABLE: "not a single file"},
            paths.values())))
    return [AudioWarning(utt, str(paths[utt]), results[utt]) for utt in sorted(results)
            if results[utt]]


def write_audio_warnings(path: Path | str, warnings: list[AudioWarning]) -> None:
    """Writes the list (an empty file where there is nothing to report)."""
    atomic_write_text(path, "".join(w.line() for w in warnings), encoding="utf-8", errors="surrogateescape")
    if warnings:
        logging.warning("%d file(s) with audio warnings, see %s", len(warnings), path)
