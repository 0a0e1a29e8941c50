"""Writes the folds of an evaluation protocol: ``<out_dir>/fold<k>/{train,valid,test}``
(ser/folds.py); for a data dir of several corpora (ser/multicorpus.py) too."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ser.bin import HelpFormatter, run_tool
from ser.datadir import read_data_dir
from ser.folds import (DEFAULT_VALID_SHARE, PAPER_TEST_SHARE, PROTOCOLS, check_speaker_disjoint,
                       make_folds, write_folds)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data-dir", required=True, type=Path, help="a prepared data dir")
    p.add_argument("--protocol", required=True, choices=PROTOCOLS, help="how to split (ser/folds.py)")
    p.add_argument("--out-dir", required=True, type=Path, help="output: <out-dir>/fold<k>/{train,valid,test}")
    p.add_argument("--num-folds", type=int, default=None,
                   help="K for speaker_kfold, repeats for random")
    p.add_argument("--seed", type=int, default=0, help="seed of the random splits")
    p.add_argument("--valid-share", type=float, default=DEFAULT_VALID_SHARE,
                   help="share of each training part held out for model selection")
    p.add_argument("--test-share", type=float, default=PAPER_TEST_SHARE,
                   help="random: the test share (default: 1000/7200, the paper's)")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    data = read_data_dir(args.data_dir)
    folds = make_folds(data, args.protocol, args.num_folds, args.seed, args.valid_share,
                       args.test_share)
    if args.protocol in ("loso", "speaker_kfold", "session", "cross_corpus"):
        check_speaker_disjoint(folds, data)
    settings = {k: v for k, v in vars(args).items() if k not in ("data_dir", "out_dir")}
    write_folds(folds, args.out_dir, settings)
    for f in folds:
        logging.info("%s: train %d, valid %d, test %d %s", f.name, len(f.train), len(f.valid),
                     len(f.test), " ".join(f.test_groups))


if __name__ == "__main__":
    run_tool(main)
