#!/usr/bin/env python3
"""Writes local/tune/LOG.md's results table from the *.splits result files (one
line per experiment, corpus and inner split; means over the inner splits run). The "where"
column dates each file by the commit that added it."""
import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = [("results_device_splits.jsonl", "H200 GPU, 16 runs sharing it"),
           ("results_cpu.jsonl.splits", "CPU here, 1 thread, 2 runs at once"),
           ("results_device2.jsonl.splits", "sweep 2: device CPU, 16 runs at once, 1 thread each"),
           ("results_device3.jsonl.splits", "sweep 3: device CPU, 16 runs at once, 1 thread each"),
           ("results_cpu5.jsonl.splits", "6c01f56, 2026-11-26: CPU here, 2-3 runs at once beside other jobs"),
           ("results_cpu6.jsonl.splits", "6c01f56, 2026-11-26: CPU here, 2-3 runs at once beside other jobs"),
           ("results_cpu7.jsonl.splits", "6c01f56, 2026-11-26: CPU here, 2-3 runs at once beside other jobs"),
           ("results_cpu8.jsonl.splits", "a396ad8, 2026-11-26: CPU here, 2 runs at once beside other jobs"),
           ("results_cpu9.jsonl.splits", "a396ad8, 2026-11-26: CPU here, 2 runs at once beside other jobs"),
           ("results_cpu10.jsonl.splits", "5b03d0b, 2026-11-26: CPU here, beside 2 recipe training jobs"),
           ("results_cpu11.jsonl.splits", "d76d0df, 2026-11-27: CPU here, 2 runs at once"),
           ("results_cpu12.jsonl.splits", "fc4590f, 2026-11-27: CPU here, 2 runs at once"),
           ("results_cpu13.jsonl.splits", "ac28c9b, 2026-11-27: CPU here, 2 runs at once"),
           ("results_cpu14.jsonl.splits", "b01f1bf, 2026-11-27: CPU here, 2 runs at once beside a recipe run"),
           ("results_cpu15.jsonl.splits", "922cc3f, 2026-11-27: CPU here, 2 runs at once"),
           ("results_cpu16.jsonl.splits", "391192a, 2026-11-27: CPU here, 2 runs at once"),
           ("results_cpu17.jsonl.splits", "7d4e9d4, 2026-11-27: CPU here, 2 runs at once beside 2 recipe training jobs"),
           ("results_cpu18.jsonl.splits", "2d715c0, 2026-11-27: CPU here, 2 runs at once beside 2 recipe training jobs"),
           ("results_cpu19.jsonl.splits", "00e1879, 2026-11-27: CPU here, 2 runs at once"),
           ("results_cpu20.jsonl.splits", "ee494ea, 2026-11-27: CPU here, 2 runs at once beside 2 recipe training jobs"),
           ("results_cpu21.jsonl.splits", "07e47d3, 2026-11-27: CPU here, 2 runs at once")]


def main():
    rows = []
    groups = defaultdict(list)  # splits of one experiment may come from several files
    for name, where in SOURCES:
        path = HERE / name
        if path.is_file():
            for line in path.read_text().splitlines():
                r = json.loads(line)
                groups[(where, r["name"], r["corpus"])].append(r)
    for (where, exp, corpus), splits in groups.items():
        def mean(key):
            return sum(s[key] for s in splits) / len(splits)
        rows.append(f"| {exp} | {corpus} | {len(splits)}: {', '.join('+'.join(s['valid']) for s in splits)} "
                    f"| {mean('last5_uar'):.3f} | {mean('last_uar'):.3f} | {mean('selected_uar'):.3f} "
                    f"| {mean('max_uar'):.3f} | {mean('sec_per_epoch'):.1f} | {where} |")
    print("| experiment | corpus | inner validation splits (held-out speakers) | UAR mean of last 5 epochs "
          "| UAR last epoch | UAR selected model | UAR max over epochs (optimistic) | s/epoch | where |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
