"""Joins prepared data dirs of several corpora into one (ser/multicorpus.py): for
cross-corpus evaluation (--test-corpus) or multi-corpus training. Keeps the classes
all of them share; the others' utterances are listed in <out>/excluded.txt and counted
in <out>/corpora.json."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ser.bin import HelpFormatter, run_tool
from ser.multicorpus import combine_data_dirs


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--train", nargs="+", required=True, metavar="CORPUS=DATA_DIR",
                   help="training corpora and their prepared data dirs, e.g. casia=data/casia")
    p.add_argument("--test", metavar="CORPUS=DATA_DIR", help="the test corpus, if any")
    p.add_argument("--out", required=True, type=Path, help="the combined data dir")
    return p


def _pair(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"expected CORPUS=DATA_DIR, got {text!r}")
    return name, Path(path)


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    roles = combine_data_dirs([_pair(t) for t in args.train], _pair(args.test) if args.test else None,
                              args.out)
    logging.info("%s: train %s, test %s, classes %s; kept %s, left out %s (see %s)", args.out,
                 " ".join(roles["train"]), roles["test"] or "-", " ".join(roles["classes"]),
                 roles["num_utts"], roles["num_excluded"], args.out / "excluded.txt")


if __name__ == "__main__":
    run_tool(main)
