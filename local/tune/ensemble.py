#!/usr/bin/env python3
"""UAR of posterior-averaged ensembles on the inner validation splits, from the
posteriors `tune.py run --posteriors DIR` saved (one file per run and split:
<name>.<corpus>.<held-out speakers>.npz).

  ensemble.py --dir .tune_dev/post6 --runs ens_base_s1 ens_base_s2 ens_base_s3
prints, per corpus and split, the UAR of each run alone and of the average of all.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ser.metrics import scores  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True)
    p.add_argument("--runs", nargs="+", required=True)
    args = p.parse_args()
    found = defaultdict(dict)  # (corpus, split) -> run -> npz
    for path in Path(args.dir).glob("*.npz"):
        name, corpus, split = path.stem.split(".", 2)
        if name in args.runs:
            found[(corpus, split)][name] = np.load(path)
    for corpus in sorted({c for c, _ in found}):
        alone, together = defaultdict(list), []
        for (c, split), runs in sorted(found.items()):
            if c != corpus or len(runs) < len(args.runs):
                continue
            first = runs[args.runs[0]]
            labels, names = first["labels"], [str(i) for i in range(first["posteriors"].shape[1])]
            for run in args.runs:
                assert (runs[run]["ids"] == first["ids"]).all()
                alone[run].append(scores(labels, runs[run]["posteriors"].argmax(-1), names)["uar"])
            mean = np.mean([runs[run]["posteriors"] for run in args.runs], axis=0)
            together.append(scores(labels, mean.argmax(-1), names)["uar"])
            print(f"{corpus} {split}: " + " ".join(f"{r}={alone[r][-1]:.3f}" for r in args.runs)
                  + f" ensemble={together[-1]:.3f}")
        if together:
            print(f"{corpus} mean over {len(together)} splits: "
                  + " ".join(f"{r}={np.mean(alone[r]):.3f}" for r in args.runs)
                  + f" mean_alone={np.mean([np.mean(v) for v in alone.values()]):.3f}"
                  + f" ensemble={np.mean(together):.3f}")


if __name__ == "__main__":
    main()
