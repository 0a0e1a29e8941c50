#!/usr/bin/env python3
"""Compares two systems run on the same folds and seeds: prints each matched run's
scores, the mean difference A − B, and a paired t-test over folds × seeds (the
paper used a left-tailed test: is A worse than B?).

usage: local/compare.py [--protocol P] [--metric uar|wa|macro_f1] EXP_A EXP_B
where EXP_A, EXP_B are system dirs such as exp/casia/lld93_lstm and
exp/casia/lld93_lstm_tf_at."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ser.bin import run_tool  # noqa: E402
from ser.errors import SerError  # noqa: E402
from ser.metrics import paired_test  # noqa: E402
from ser.report import collect_runs  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_a", type=Path)
    p.add_argument("exp_b", type=Path)
    p.add_argument("--protocol", help="default: the one protocol both systems have")
    p.add_argument("--metric", default="uar", choices=("uar", "wa", "macro_f1"))
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    runs_a, runs_b = collect_runs(args.exp_a), collect_runs(args.exp_b)
    common = sorted(set(runs_a) & set(runs_b))
    protocol = args.protocol or (common[0] if len(common) == 1 else None)
    if protocol is None or protocol not in common:
        raise SerError(f"choose --protocol among those both systems have: {common or 'none'}")
    by_run_a = {(r["fold"], r["seed"]): r[args.metric] for r in runs_a[protocol]}
    by_run_b = {(r["fold"], r["seed"]): r[args.metric] for r in runs_b[protocol]}
    keys = sorted(set(by_run_a) & set(by_run_b), key=lambda k: (k[1], int(k[0][4:])))
    if len(keys) < 2:
        raise SerError(f"{protocol}: fewer than 2 runs (fold, seed) scored in both systems")
    metric = args.metric.upper() if args.metric != "macro_f1" else "macro-F1"
    print(f"{metric} (%) on {protocol}: A = {args.exp_a}, B = {args.exp_b}\n")
    print("| fold | seed | A | B | A − B |\n|---|---|---|---|---|")
    for fold, seed in keys:
        a, b = by_run_a[fold, seed], by_run_b[fold, seed]
        print(f"| {fold} | {seed} | {100 * a:.2f} | {100 * b:.2f} | {100 * (a - b):+.2f} |")
    test = paired_test([by_run_a[k] for k in keys], [by_run_b[k] for k in keys])
    print(f"\nmean A − B = {100 * test['mean_diff']:+.2f} points over {test['n']} paired runs; "
          f"t = {test['t']:.3f}, left-tailed p (A < B) = {test['p_less']:.4f}, "
          f"two-sided p = {test['p_two_sided']:.4f}")


if __name__ == "__main__":
    run_tool(main)
