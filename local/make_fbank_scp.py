#!/usr/bin/env python3
"""Writes log-mel filterbank features of a Kaldi wav.scp as a Kaldi feats.scp, with
numpy, soundfile and kaldiio only: nothing of the recipe's feature code (ser/) is used,
so that the features are "external" to it (run.sh --feat external --feats-scp).

  local/make_fbank_scp.py data/casia/wav.scp /tmp/casia_fbank      -> /tmp/casia_fbank/feats.scp

80 filters on the mel scale from 20 Hz to 8 kHz, 25 ms Hamming windows every 10 ms,
pre-emphasis 0.97, 512-point FFT, power spectrum, log (floored at 1e-10). Audio is
read as 16 kHz mono (wav.scp entries must be plain file paths). --level utterance
writes instead the mean and standard deviation over frames, one 1 x 160 row.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import kaldiio
import numpy as np
import soundfile as sf


def mel(f):
    return 1127.0 * np.log(1.0 + f / 700.0)


def mel_filters(num_filters: int, n_fft: int, rate: int, low: float = 20.0, high: float | None = None):
    high = high or rate / 2
    edges = np.linspace(mel(low), mel(high), num_filters + 2)
    bins = mel(np.fft.rfftfreq(n_fft, 1.0 / rate))
    filters = np.zeros((num_filters, len(bins)))
    for m in range(num_filters):
        left, centre, right = edges[m:m + 3]
        up = (bins - left) / (centre - left)
        down = (right - bins) / (right - centre)
        filters[m] = np.maximum(0.0, np.minimum(up, down))
    return filters


def log_mel(samples: np.ndarray, rate: int, filters: np.ndarray, n_fft: int = 512) -> np.ndarray:
    length, shift = int(0.025 * rate), int(0.010 * rate)
    if samples.size < length:
        samples = np.pad(samples, (0, length - samples.size))
    num = 1 + (samples.size - length) // shift
    index = np.arange(length)[None, :] + shift * np.arange(num)[:, None]
    frames = samples[index].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    frames[:, 1:] -= 0.97 * frames[:, :-1]
    frames *= np.hamming(length)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2
    return np.log(np.maximum(power @ filters.T, 1e-10)).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wav_scp", type=Path)
    p.add_argument("out_dir", type=Path, help="gets feats.ark and feats.scp")
    p.add_argument("--num-filters", type=int, default=80, help="mel filters (default: %(default)s)")
    p.add_argument("--level", choices=("frame", "utterance"), default="frame",
                   help="frame: T x num_filters; utterance: 1 x 2*num_filters (default: %(default)s)")
    args = p.parse_args()
    rate = 16000
    filters = mel_filters(args.num_filters, 512, rate)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ark, scp = args.out_dir / "feats.ark", args.out_dir / "feats.scp"
    count = 0
    with kaldiio.WriteHelper(f"ark,scp:{ark.absolute()},{scp.absolute()}") as writer:
        for line in args.wav_scp.read_text().splitlines():
            utt, path = line.split(maxsplit=1)
            samples, file_rate = sf.read(path, dtype="float32", always_2d=True)
            if file_rate != rate:
                sys.exit(f"{path}: {file_rate} Hz; this script reads 16 kHz audio only")
            feats = log_mel(samples.mean(axis=1), rate, filters)
            if args.level == "utterance":
                feats = np.concatenate([feats.mean(0), feats.std(0)])[None, :]
            writer(utt, feats)
            count += 1
    print(f"{scp}: {count} utterances", file=sys.stderr)


if __name__ == "__main__":
    main()
