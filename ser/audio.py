"""Reading audio the one way every stage and the inference tool share: any sample
rate and channel count in, 16 kHz mono float32 out, or an AudioError that names
the file and the problem."""
from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from ser.errors import AudioError

SAMPLE_RATE = 16000


def to_mono_16k(samples: np.ndarray, sampling_rate: int, source: str = "<array>") -> np.ndarray:
    """Mixes channels down (samples as (n,) or (n, channels)) and resamples to 16 kHz."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    elif samples.ndim != 1:
        raise AudioError(source, f"expected 1-D or (samples, channels) audio, got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(source, "empty audio (0 samples)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(source, "audio contains NaN or infinite samples")
    if sampling_rate != SAMPLE_RATE:
        if sampling_rate <= 0:
            raise AudioError(source, f"invalid sample rate {sampling_rate}")
        from scipy.signal import resample_poly  # slow to import; most audio is 16 kHz

        g = gcd(int(sampling_rate), SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // g, int(sampling_rate) // g).astype(np.float32)
    return samples


def load_audio(path: Path | str) -> np.ndarray:
    """Returns the file as 16 kHz mono float32 in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        samples, sampling_rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile's errors name no common type
        raise AudioError(path, f"cannot decode audio: {err}".replace("\n", " ")) from None
    return to_mono_16k(samples, sampling_rate, str(path))
