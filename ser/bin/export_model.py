"""Exports a trained run as a self-contained model bundle: the model (a neural run's
TorchScript, checked against the trained one, and model.onnx, checked against the
TorchScript; or an svm run's svm.joblib), feature
extractor and its files, normalisation statistics, labels, settings, the system's
cross-validation results and SHA256SUMS (ser/export.py)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ser.bin import HelpFormatter, run_tool
from ser.export import export_bundle
from ser.errors import SerError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--run-dir", required=True, type=Path,
                   help="a trained run, e.g. exp/synth/lld93_lstm_tf_at/final_train/seed1/fold1")
    p.add_argument("--out", required=True, type=Path, help="the bundle directory to write")
    p.add_argument("--results-dir", type=Path,
                   help="a system dir whose summary.json and RESULTS.md go into the bundle")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    if not (args.run_dir / ".done").is_file():
        raise SerError(f"{args.run_dir}: training is not complete (no .done)")
    logging.info("exported %s to %s", args.run_dir, export_bundle(args.run_dir, args.out, args.results_dir))


if __name__ == "__main__":
    run_tool(main)
