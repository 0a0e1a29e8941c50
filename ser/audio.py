"""Reading audio the one way every stage and the inference tool share: any sample
rate and channel count in, 16 kHz mono float32 out, or an AudioError that names
the file and the problem.

What is read is a file path or a Kaldi wav.scp entry, which may be a pipe: a shell
command ending in ``|`` whose standard output is the audio (``sox '<path>' -t wav - |``).
:func:`wav_scp_entry` writes such an entry for a path that Kaldi would not read as a
plain file name (one with whitespace, for example).
"""
from __future__ import annotations

import io
import os
import re
import shlex
import struct
import subprocess
from math import gcd
from pathlib import Path

import numpy as np

from ser.errors import AudioError, SerError

SAMPLE_RATE = 16000
# A Kaldi rxfilename that is not a plain file: "-" (stdin), "cmd |", "file:offset", or
# a name with whitespace (wav.scp fields are whitespace-separated).
_NOT_PLAIN = re.compile(r"^-$|\||:\d+$|\s")
_SOX_PIPE = re.compile(r"sox (.+) -t wav -")


def wav_scp_entry(path: Path | str) -> str:
    """The wav.scp value that reads ``path``: the path itself, or where Kaldi would not
    take it as a plain file name, a pipe that sox decodes it through to wav."""
    path = str(path)
    if _NOT_PLAIN.search(path):
        # "./-x", not "-x", which sox would take for an option (or "-" for stdin).
        return f"sox {shlex.quote('./' + path if path.startswith('-') else path)} -t wav - |"
    return path


def check_speed_factors(factors: list[str]) -> list[str]:
    """``factors`` if each is a speed factor sox can apply: a number in [0.5, 2] other than 1."""
    for factor in factors:
        try:
            if not 0.5 <= float(factor) <= 2.0 or float(factor) == 1.0:
                raise ValueError
        except ValueError:
            raise SerError(f"speed factor {factor!r} must be a number in [0.5, 2] other than 1") from None
    return factors


def speed_perturbed_entry(entry: str, factor: str) -> str:
    """The wav.scp entry of ``entry`` played ``factor`` times as fast (pitch and tempo
    together), through ``sox -R``: without -R sox seeds its dither from the clock, so the
    same copy would differ from run to run."""
    if is_pipe(entry):  # already a pipe: chain sox after it
        return f"{entry.rstrip()[:-1].rstrip()} | sox -R -t wav - -t wav - speed {factor} |"
    return f"sox -R {shlex.quote(entry)} -t wav - speed {factor} |"


def is_pipe(entry: Path | str) -> bool:
    return isinstance(entry, str) and entry.rstrip().endswith("|")


def piped_file(entry: str) -> str | None:
    """The file that a pipe written by :func:`wav_scp_entry` reads; None for another
    command."""
    match = _SOX_PIPE.fullmatch(entry.rstrip()[:-1].strip()) if is_pipe(entry) else None
    if match is None:
        return None
    try:
        words = shlex.split(match[1])
    except ValueError:
        return None
    return words[0] if len(words) == 1 else None


def truncation(source: Path | str) -> str | None:
    """Why a WAV file (or the file of a wav.scp pipe of :func:`wav_scp_entry`) is cut
    short: its header's data size promises more audio than the file holds, which
    libsndfile and sox read without an error (sox warns "Premature EOF"). None for a
    whole file, another format, another command, or a header written for streaming
    (a data size of 0 or 0xFFFFFFFF, which promises nothing)."""
    path = piped_file(source) if is_pipe(source) else source
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "<" if head[:4] == b"RIFF" else ">"
            byte_rate = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                kind, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
                if kind == b"fmt " and size >= 12:
                    byte_rate = struct.unpack(order + "I", f.read(size)[8:12])[0]
                    f.seek(size & 1, 1)
                elif kind == b"data":
                    present = os.fstat(f.fileno()).st_size - f.tell()
                    if size in (0, 0xFFFFFFFF) or not byte_rate or size <= present:
                        return None
                    return (f"truncated: the header promises {size / byte_rate:.2f} s of audio, "
                            f"the file holds {max(present, 0) / byte_rate:.2f} s")
                else:
                    f.seek(size + (size & 1), 1)
    except OSError:
        return None


def _run_pipe(entry: str) -> bytes:
    """The standard output of a pipe entry's command; AudioError naming the entry with
    the command's error output if it fails or writes nothing."""
    command = entry.rstrip()[:-1].strip()
    try:
        result = subprocess.run(command, shell=True, capture_output=True, stdin=subprocess.DEVNULL)
    except OSError as err:
        raise AudioError(entry, f"cannot run the command: {err}") from None
    stderr = " ".join(result.stderr.decode(errors="replace").split())
    if result.returncode != 0:
        raise AudioError(entry, f"command failed (exit status {result.returncode}): "
                                f"{stderr or 'no error output'}")
    if not result.stdout:
        raise AudioError(entry, f"command wrote no audio{': ' + stderr if stderr else ''}")
    return result.stdout


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


def read_audio(source: Path | str) -> tuple[np.ndarray, int]:
    """The samples of a file or wav.scp entry (a ``str`` ending in ``|`` is a pipe) as
    float32 (samples, channels), at the native sample rate, with that rate."""
    if is_pipe(source):
        name, data = source, io.BytesIO(_run_pipe(source))
    else:
        name = data = Path(source)
        if not data.is_file():
            raise AudioError(data, "file not found")
        if data.stat().st_size == 0:
            raise AudioError(data, "empty file (0 bytes)")
    import soundfile as sf  # here: training and scoring import this module but read no audio

    try:
        return sf.read(data, dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile's errors name no common type
        raise AudioError(name, f"cannot decode audio: {err}".replace("\n", " ")) from None


def load_audio(source: Path | str) -> np.ndarray:
    """Returns a file or wav.scp entry (a ``str`` ending in ``|`` is a pipe) as 16 kHz
    mono float32 in [-1, 1]."""
    samples, sampling_rate = read_audio(source)
    return to_mono_16k(samples, sampling_rate, str(source))
