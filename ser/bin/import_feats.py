"""Makes a feature dir from features the recipe did not compute (``run.sh --feat external
--feats-scp PATH``): checks a Kaldi feats.scp (frame-level T x D matrices or one 1 x D row
or vector per utterance) against the data dir, and writes the feature stage's files.
With --combine, joins instead the feature dirs of the member corpora of a multi-corpus
data dir. Errors name the scp file and the utterance (ser/external_feats.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ser.bin import HelpFormatter, run_tool
from ser.external_feats import DEFAULT_MAX_FAIL_SHARE, combine_feat_dirs, import_features


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data-dir", required=True, type=Path, help="the data dir the features are of")
    p.add_argument("--feat-dir", required=True, type=Path, help="output")
    p.add_argument("--feats-scp", nargs="*", default=[], type=Path,
                   help="Kaldi feats.scp file(s); relative ark paths are taken from the current directory")
    p.add_argument("--combine", nargs="*", default=[], type=Path,
                   help="feature dirs of the member corpora, instead of --feats-scp")
    p.add_argument("--frame-shift", type=float, default=None,
                   help="seconds; default: estimated from the durations (0 for utterance-level)")
    p.add_argument("--max-fail-share", type=float, default=DEFAULT_MAX_FAIL_SHARE,
                   help="fail when more than this share of the utterances have no features")
    return p


def main(argv=None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    if bool(args.feats_scp) == bool(args.combine):
        parser.error("give --feats-scp or --combine")
    if args.combine:
        combine_feat_dirs(args.combine, args.data_dir, args.feat_dir, args.max_fail_share)
    else:
        import_features(args.feats_scp, args.data_dir, args.feat_dir, args.max_fail_share,
                        args.frame_shift)


if __name__ == "__main__":
    run_tool(main)
