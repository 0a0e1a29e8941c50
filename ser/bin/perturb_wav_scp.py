"""Writes the wav.scp of speed-perturbed copies of a wav.scp, the Kaldi way: each
utterance once per factor, keyed ``sp<factor>-<utt>``, its audio a ``sox ... speed
<factor> |`` pipe (pitch and tempo together, as Kaldi's perturb_data_dir_speed.sh;
ser/speed.py).

sox runs with -R: its dither is otherwise seeded from the clock, so the same copy
would differ from run to run, and so would everything trained on it."""
from __future__ import annotations

import argparse
from pathlib import Path

from ser.bin import HelpFormatter, run_tool
from ser.datadir import read_table, write_table
from ser.speed import perturb_utt2dur, perturb_wav_scp, split_factors


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--factors", required=True, help='e.g. "0.9 1.1"; auto: the recipe\'s default factors')
    p.add_argument("wav_scp", type=Path, help="the wav.scp of the originals")
    p.add_argument("out", type=Path, help="the wav.scp of the copies, to write")
    p.add_argument("--utt2dur", nargs=2, type=Path, metavar=("IN", "OUT"),
                   help="also write the copies' utt2dur (OUT) from the originals' (IN)")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    factors = split_factors(args.factors)
    write_table(args.out, perturb_wav_scp(read_table(args.wav_scp), factors))
    if args.utt2dur:
        durations = perturb_utt2dur(read_table(args.utt2dur[0], float), factors)
        write_table(args.utt2dur[1], durations, lambda d: f"{d:.4f}")


if __name__ == "__main__":
    run_tool(main)
