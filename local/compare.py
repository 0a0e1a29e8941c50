#!/usr/bin/env python3
"""Compares two systems run on the same folds: prints each fold's score (the mean
over the seeds both systems have for it), the mean difference A − B, and a paired
t-test over folds (the paper used a left-tailed test: is A worse than B?). Seeds
are averaged within a fold first: runs of one fold share its test utterances, so
they are not independent samples.

usage: local/compare.py [--protocol P] [--metric uar|wa|macro_f1] EXP_A EXP_B
where EXP_A, EXP_B are system dirs such as exp/casia/lld93_lstm and
exp/casia/lld93_lstm_tf_at."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ser.bin import HelpFormatter, run_tool  # noqa: E402
from ser.errors import SerError  # noqa: E402
from ser.metrics import paired_test  # noqa: E402
from ser.report import collect_runs  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("exp_a", type=Path, help="system A's dir, e.g. exp/casia/lld93_lstm")
    p.add_argument("exp_b", type=Path, help="system B's dir, e.g. exp/casia/lld93_lstm_tf_at")
    p.add_argument("--protocol", help="default: the one protocol both systems have")
    p.add_argument("--metric", default="uar", choices=("uar", "wa", "macro_f1"), help="the score compared")
    return p


def compare_runs(runs_a: list[dict], runs_b: list[dict], metric: str = "uar") -> dict:
    """Pairs two systems' scored runs by fold, averaging within a fold over the seeds
    both have; returns the per-fold means and the paired test over folds."""
    def by_fold(runs):
        table: dict[str, dict[int, float]] = {}
        for r in runs:
            table.setdefault(r["fold"], {})[r["seed"]] = r[metric]
        return table

    a, b = by_fold(runs_a), by_fold(runs_b)
    folds = []
    for fold in sorted(set(a) & set(b), key=lambda f: int(f[4:])):
        seeds = sorted(set(a[fold]) & set(b[fold]))
        if seeds:
            folds.append((fold, seeds, sum(a[fold][s] for s in seeds) / len(seeds),
                          sum(b[fold][s] for s in seeds) / len(seeds)))
    if len(folds) < 2:
        raise SerError("fewer than 2 folds scored with a common seed in both systems")
    return {"folds": folds, "test": paired_test([f[2] for f in folds], [f[3] for f in folds])}


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    runs_a, runs_b = collect_runs(args.exp_a), collect_runs(args.exp_b)
    common = sorted(set(runs_a) & set(runs_b))
    protocol = args.protocol or (common[0] if len(common) == 1 else None)
    if protocol is None or protocol not in common:
        raise SerError(f"choose --protocol among those both systems have: {common or 'none'}")
    result = compare_runs(runs_a[protocol], runs_b[protocol], args.metric)
    metric = args.metric.upper() if args.metric != "macro_f1" else "macro-F1"
    print(f"{metric} (%) on {protocol}: A = {args.exp_a}, B = {args.exp_b}\n")
    print("| fold | seeds | A | B | A − B |\n|---|---|---|---|---|")
    for fold, seeds, a, b in result["folds"]:
        print(f"| {fold} | {' '.join(map(str, seeds))} | {100 * a:.2f} | {100 * b:.2f} | {100 * (a - b):+.2f} |")
    test = result["test"]
    low, high = test["ci95"]
    print(f"\nmean A − B = {100 * test['mean_diff']:+.2f} points over {test['n']} paired folds "
          f"(95 % CI {100 * low:+.2f} to {100 * high:+.2f}); "
          f"t = {test['t']:.3f}, left-tailed p (A < B) = {test['p_less']:.4f}, "
          f"two-sided p = {test['p_two_sided']:.4f}")


if __name__ == "__main__":
    run_tool(main)
