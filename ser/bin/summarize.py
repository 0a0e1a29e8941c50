"""Writes ``<system-dir>/RESULTS.md`` and ``<system-dir>/summary.json`` from the scored
runs, then ``exp/<corpus>/RESULTS.md`` for all systems of the corpus, and prints
the system's table."""
from __future__ import annotations

import argparse
from pathlib import Path

from ser.bin import HelpFormatter, run_tool
from ser.errors import SerError
from ser.report import write_corpus_results, write_system_results


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("system_dir", type=Path, help="e.g. exp/casia/lld93_lstm_tf_at")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    system_results = write_system_results(args.system_dir)
    if system_results is None:
        raise SerError(f"{args.system_dir}: no scored runs (results.json) found")
    write_corpus_results(args.system_dir.parent)
    print(system_results.read_text())


if __name__ == "__main__":
    run_tool(main)
