"""Prints the fold names of a folds dir (fold1 fold2 ...), for the shell stages."""
from __future__ import annotations

import argparse
from pathlib import Path

from ser.bin import HelpFormatter, run_tool
from ser.folds import list_folds


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("folds_dir", type=Path)
    print(" ".join(list_folds(p.parse_args(argv).folds_dir)))


if __name__ == "__main__":
    run_tool(main)
