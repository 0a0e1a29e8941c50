"""Writes the wav.scp of speed-perturbed copies of a wav.scp, the Kaldi way: each
utterance once per factor, keyed ``sp<factor>-<utt>``, its audio a ``sox ... speed
<factor> |`` pipe (pitch and tempo together, as Kaldi's perturb_data_dir_speed.sh).

sox runs with -R: its dither is otherwise seeded from the clock, so the same copy
would differ from run to run, and so would everything trained on it."""
from __future__ import annotations

import argparse
from pathlib import Path

from ser.audio import check_speed_factors, speed_perturbed_entry
from ser.bin import HelpFormatter, run_tool
from ser.datadir import read_table, write_table

SP_PREFIX = "sp"
# run.sh --speed-perturb auto. 0.8 and 1.2 beside 0.9 and 1.1 lifted inner-validation UAR
# by 3.2 points on CASIA and 2.5 on EmoDB over two seeds (local/tune/LOG.md, d76d0df, 2026-11-27).
AUTO_FACTORS = ("0.8", "0.9", "1.1", "1.2")


def split_factors(factors: str) -> list[str]:
    """'0.9 1.1' or '0.9,1.1' as a list; 'auto' as AUTO_FACTORS."""
    return list(AUTO_FACTORS) if factors.strip() == "auto" else factors.replace(",", " ").split()


def factors_tag(factors: str) -> str:
    """The dir-name suffix of copies at ``factors`` ('' for none): sp0.9_1.1. It names both
    the copies' feature dir and the systems trained with them, so that a system trained with
    other factors never lands in another's exp dir."""
    listed = split_factors(factors)
    return SP_PREFIX + "_".join(listed) if listed else ""


def perturbed_id(utt: str, factor: str) -> str:
    return f"{SP_PREFIX}{factor}-{utt}"


def perturb_wav_scp(wavs: dict[str, str], factors: list[str]) -> dict[str, str]:
    check_speed_factors(factors)
    return {perturbed_id(utt, f): speed_perturbed_entry(entry, f) for f in factors for utt, entry in wavs.items()}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--factors", required=True, help='e.g. "0.9 1.1"')
    p.add_argument("wav_scp", type=Path, help="the wav.scp of the originals")
    p.add_argument("out", type=Path, help="the wav.scp of the copies, to write")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    write_table(args.out, perturb_wav_scp(read_table(args.wav_scp), split_factors(args.factors)))


if __name__ == "__main__":
    run_tool(main)
