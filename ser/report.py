"""Readable results: a system's ``RESULTS.md`` (every fold and seed, then mean ± std)
and the corpus-wide ``exp/<corpus>/RESULTS.md`` (systems × protocols).

Layout read here: ``exp/<corpus>/<system>/<protocol>/seed<s>/fold<k>/results.json``.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ser.metrics import mean_std

METRICS = (("uar", "UAR"), ("wa", "WA"), ("macro_f1", "macro-F1"))


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def collect_runs(system_dir: Path) -> dict[str, list[dict]]:
    """protocol -> scored runs (results.json merged with run_config.json)."""
    runs = defaultdict(list)
    for results in sorted(Path(system_dir).glob("*/seed*/fold*/results.json")):
        run = json.loads(results.read_text())
        run["config"] = json.loads((results.parent / "run_config.json").read_text())
        runs[results.parents[2].name].append(run)
    return dict(runs)


def summarize_protocol(runs: list[dict]) -> dict:
    """Mean ± std over all runs (folds × seeds), and over seeds of the per-seed means."""
    summary = {"num_runs": len(runs), "folds": sorted({r["fold"] for r in runs}),
               "seeds": sorted({r["seed"] for r in runs}),
               "train_seconds": round(sum(r["train_seconds"] for r in runs), 1)}
    for key, _ in METRICS:
        summary[key] = mean_std([r[key] for r in runs])
        per_seed = defaultdict(list)
        for r in runs:
            per_seed[r["seed"]].append(r[key])
        summary[f"{key}_over_seeds"] = mean_std([sum(v) / len(v) for v in per_seed.values()])
    return summary


def _cmvn_note(cmvn: str) -> str:
    if cmvn == "speaker":
        return ("speaker (per-speaker statistics, **including the test speakers' own data**; "
                "not comparable to train-only normalisation)")
    return {"train": "train (statistics from each fold's training part only)",
            "utt": "utt (each utterance by its own statistics; no other utterance's)",
            "none": "none"}[cmvn]


def _attention_links(system_dir: Path, protocol: str, runs: list[dict]) -> list[str]:
    """Links to the attention summaries stage 6 writes for the attention variants."""
    links = []
    for r in sorted(runs, key=lambda r: (r["seed"], int(r["fold"][4:]))):
        run = f"{protocol}/seed{r['seed']}/{r['fold']}"
        if (system_dir / run / "attention.png").is_file():
            tables = [f"[{name}]({run}/attention_{name}.tsv)" for name in ("time", "features")
                      if (system_dir / run / f"attention_{name}.tsv").is_file()]
            links.append(f"- {r['fold']} seed {r['seed']}: [attention.png]({run}/attention.png), "
                         f"tables {', '.join(tables)}")
    if not links:
        return []
    return ["Attention on each fold's test utterances (ser/explain.py): mean time-attention "
            "profile over normalised utterance time and mean feature attention per descriptor "
            "group, per emotion:", ""] + links + [""]


def write_system_results(system_dir: Path | str) -> Path | None:
    system_dir = Path(system_dir)
    runs = collect_runs(system_dir)
    if not runs:
        return None
    first = next(iter(runs.values()))[0]["config"]
    feat_dir = Path(first["feat_dir"])
    lines = [f"# {system_dir.parent.name}: {system_dir.name}", "",
             f"- features: {feat_dir.name} ({(feat_dir / 'feat_dim').read_text().strip() if (feat_dir / 'feat_dim').is_file() else '?'} dims)",
             f"- model: {first['model']} {json.dumps(first['model_config'], sort_keys=True)}",
             f"- training: {json.dumps({k: v for k, v in first['train_config'].items() if k != 'seed'}, sort_keys=True)}",
             f"- normalisation: {_cmvn_note(first['cmvn'])}", ""]
    summaries = {}
    for protocol, prot_runs in sorted(runs.items()):
        summary = summarize_protocol(prot_runs)
        summaries[protocol] = summary
        lines += [f"## {protocol}: {len(summary['folds'])} folds × {len(summary['seeds'])} seed(s), "
                  f"training time {summary['train_seconds'] / 60:.1f} min (summed over runs)", "",
                  "| fold | seed | test utts | excluded | epoch | UAR % | WA % | macro-F1 % |",
                  "|---|---|---|---|---|---|---|---|"]
        excluded: dict[str, list[str]] = {}
        for r in sorted(prot_runs, key=lambda r: (r["seed"], int(r["fold"][4:]))):
            lines.append(f"| {r['fold']} | {r['seed']} | {r['num_utts']} | {r.get('num_test_excluded', 0)} | "
                         f"{r['selected_epoch']} | " + " | ".join(_pct(r[k]) for k, _ in METRICS) + " |")
            if r.get("test_excluded"):
                excluded[r["fold"]] = r["test_excluded"]
        lines.append("| **mean ± std** | | | | | " + " | ".join(f"**{_pct(*summary[k])}**" for k, _ in METRICS) + " |")
        if len(summary["seeds"]) > 1:
            lines.append("| over seeds | | | | | " + " | ".join(_pct(*summary[f"{k}_over_seeds"]) for k, _ in METRICS) + " |")
        lines.append("")
        lines += _attention_links(system_dir, protocol, prot_runs)
        if excluded:
            lines.append("Test utterances left out because their features could not be computed "
                         "(see the feature dir's failed.txt), so they are not scored:")
            lines += [f"- {fold}: {', '.join(utts)}" for fold, utts in sorted(excluded.items())]
            lines.append("")
    (system_dir / "summary.json").write_text(json.dumps(summaries, indent=1) + "\n")
    out = system_dir / "RESULTS.md"
    out.write_text("\n".join(lines))
    return out


def write_corpus_results(corpus_dir: Path | str) -> Path | None:
    """The table of every scored system and protocol under ``exp/<corpus>``."""
    corpus_dir = Path(corpus_dir)
    rows = []
    for summary_file in sorted(corpus_dir.glob("*/summary.json")):
        system = summary_file.parent.name
        runs = collect_runs(summary_file.parent)
        for protocol, summary in sorted(json.loads(summary_file.read_text()).items()):
            config = runs[protocol][0]["config"] if protocol in runs else {}
            cmvn = config.get("cmvn", "?")
            rows.append(f"| {system} | {protocol} | {Path(config.get('feat_dir', '?')).name} | {cmvn}"
                        f"{' (test-speaker stats)' if cmvn == 'speaker' else ''} | "
                        f"{len(summary['folds'])} | {len(summary['seeds'])} | "
                        + " | ".join(_pct(*summary[k]) for k, _ in METRICS)
                        + f" | {summary['train_seconds'] / 60:.1f} |")
    if not rows:
        return None
    lines = [f"# Results on {corpus_dir.name}", "",
             "Mean ± std over folds × seeds, in percent. Normalisation 'speaker' uses the test "
             "speakers' own statistics.", "",
             "| system | protocol | features | normalisation | folds | seeds | UAR | WA | macro-F1 | train min (sum) |",
             "|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    out = corpus_dir / "RESULTS.md"
    out.write_text("\n".join(lines))
    return out
