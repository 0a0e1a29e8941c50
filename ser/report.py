"""Readable results: a system's ``RESULTS.md`` (every fold and seed, then mean ± std)
and the corpus-wide ``exp/<corpus>/RESULTS.md`` (systems × protocols).

Layout read here: ``exp/<corpus>/<system>/<protocol>/seed<s>/fold<k>/results.json``.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from ser.metrics import confusion_text, mean_std
from ser.multicorpus import read_roles
from ser.provenance import read_record, record_id

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
    with_copies = sum("originals_only" in r for r in runs)
    if 0 < with_copies < len(runs):  # some runs scored before test-time copies existed
        summary["mixed_scoring"] = f"{with_copies} of {len(runs)} runs"
    if with_copies == len(runs):  # scored with test-time copies (ser/bin/score.py)
        summary["test_copies"] = sorted({f for r in runs for f in r["test_copies"]}, key=float)
        for key, _ in METRICS:
            summary[f"{key}_originals_only"] = mean_std([r["originals_only"][key] for r in runs])
    return summary


def _copies_note(summary: dict) -> list[str]:
    if "mixed_scoring" in summary:
        return [f"**Mixed scoring**: only {summary['mixed_scoring']} were scored with test-time copies; "
                "the others were scored before stage 6 did so. Run stage 6 with all their seeds "
                "(`--seeds`) to score them alike.", ""]
    if "test_copies" not in summary:
        return []
    return [f"Scored with test-time copies: each test utterance's posteriors averaged with those of "
            f"its own speed-perturbed copies at {' '.join(summary['test_copies'])}. Its originals "
            f"alone: UAR {_pct(*summary['uar_originals_only'])}, WA {_pct(*summary['wa_originals_only'])}, "
            f"macro-F1 {_pct(*summary['macro_f1_originals_only'])} (column 'UAR % originals').", ""]


def _cmvn_note(cmvn: str) -> str:
    if cmvn == "speaker":
        return ("speaker (per-speaker statistics, **including the test speakers' own data**; "
                "not comparable to train-only normalisation)")
    return {"train": "train (statistics from each fold's training part only)",
            "corpus": ("corpus (each corpus's own statistics; **the test corpus's from its own "
                       "unlabelled features**, a domain adaptation; not comparable to "
                       "training-corpora-only normalisation)"),
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


def _corpora_lines(data_dir: Path) -> list[str]:
    """What a combined data dir (ser/multicorpus.py) trained and tested on, and what it left out."""
    roles = read_roles(data_dir)
    if roles is None:
        return []
    left_out = sum(roles["num_excluded"].values())
    per_corpus = "; ".join(
        f"{c}: {n}" + (" (" + ", ".join(f"{e} {k}" for e, k in sorted(roles['excluded_by_class'][c].items())) + ")"
                       if n else "") for c, n in roles["num_excluded"].items())
    return [f"- training corpora: {', '.join(roles['train'])} "
            f"({', '.join(str(roles['num_utts'][c]) for c in roles['train'])} utterances); validation "
            "from the training corpora only",
            f"- test corpus: {roles['test']} ({roles['num_utts'][roles['test']]} utterances)"
            if roles["test"] else "- test corpus: none (speaker-independent folds over the union)",
            f"- classes (shared by all): {', '.join(roles['classes'])}",
            f"- utterances of other classes left out: **{left_out}** ({per_corpus}); listed in "
            f"{data_dir / 'excluded.txt'}"]


def _feature_line(feat_dir: Path) -> str:
    dim = (feat_dir / 'feat_dim').read_text().strip() if (feat_dir / 'feat_dim').is_file() else '?'
    line = f"- features: {feat_dir.name} ({dim} dims"
    conf_file = feat_dir / "feat_conf.yaml"
    conf = yaml.safe_load(conf_file.read_text()) if conf_file.is_file() else {}
    if conf.get("feat") == "external":
        shift = (feat_dir / "frame_shift").read_text().strip() if (feat_dir / "frame_shift").is_file() else "?"
        line += (f", external {conf.get('level', '?')}-level features from "
                 f"{' '.join(conf.get('feats_scp', []))}, frame shift {shift} s")
    return line + ")"


def _recall_cell(values: list[float]) -> str:
    return _pct(*mean_std(values)) if values else "n/a (not in the test sets)"


def _per_class_lines(runs: list[dict]) -> list[str]:
    """Per-class recall (mean over runs) and the confusion matrix summed over runs."""
    labels = runs[0].get("labels")
    if not labels or any(r.get("labels") != labels for r in runs):
        return []
    lines = ["Per-class recall, % (mean ± std over runs):", "",
             "| " + " | ".join(labels) + " |", "|" + "---|" * len(labels),
             "| " + " | ".join(_recall_cell([r["per_class_recall"][e] for r in runs
                                             if e in r["per_class_recall"]]) for e in labels) + " |", ""]
    total = np.sum([np.asarray(r["confusion"]) for r in runs], axis=0)
    lines += [f"Confusion matrix, summed over runs (rows: reference, columns: hypothesis):", "",
              "```", confusion_text({"labels": labels, "confusion": total.tolist()}), "```", ""]
    return lines


def write_system_results(system_dir: Path | str) -> Path | None:
    system_dir = Path(system_dir)
    runs = collect_runs(system_dir)
    if not runs:
        return None
    first = next(iter(runs.values()))[0]["config"]
    feat_dir = Path(first["feat_dir"])
    lines = [f"# {system_dir.parent.name}: {system_dir.name}", "",
             *_corpora_lines(Path(first["data_dir"])),
             _feature_line(feat_dir),
             f"- model: {first['model']} {json.dumps(first['model_config'], sort_keys=True)}",
             f"- training: {json.dumps({k: v for k, v in first['train_config'].items() if k != 'seed'}, sort_keys=True)}",
             f"- normalisation: {_cmvn_note(first['cmvn'])}", ""]
    summaries = {}
    for protocol, prot_runs in sorted(runs.items()):
        summary = summarize_protocol(prot_runs)
        summaries[protocol] = summary
        copies = "test_copies" in summary
        lines += [f"## {protocol}: {len(summary['folds'])} folds × {len(summary['seeds'])} seed(s), "
                  f"training time {summary['train_seconds'] / 60:.1f} min (summed over runs)", "",
                  *_copies_note(summary),
                  "| fold | seed | test utts | excluded | epoch | UAR % | WA % | macro-F1 % |"
                  + (" UAR % originals |" if copies else ""),
                  "|---|---|---|---|---|---|---|---|" + ("---|" if copies else "")]
        excluded: dict[str, list[str]] = {}
        for r in sorted(prot_runs, key=lambda r: (r["seed"], int(r["fold"][4:]))):
            lines.append(f"| {r['fold']} | {r['seed']} | {r['num_utts']} | {r.get('num_test_excluded', 0)} | "
                         f"{r['selected_epoch']} | " + " | ".join(_pct(r[k]) for k, _ in METRICS) + " |"
                         + (f" {_pct(r['originals_only']['uar'])} |" if copies else ""))
            if r.get("test_excluded"):
                excluded[r["fold"]] = r["test_excluded"]
        lines.append("| **mean ± std** | | | | | " + " | ".join(f"**{_pct(*summary[k])}**" for k, _ in METRICS) + " |"
                     + (f" {_pct(*summary['uar_originals_only'])} |" if copies else ""))
        if len(summary["seeds"]) > 1:
            lines.append("| over seeds | | | | | " + " | ".join(_pct(*summary[f"{k}_over_seeds"]) for k, _ in METRICS) + " |"
                         + (" |" if copies else ""))
        lines.append("")
        lines += _per_class_lines(prot_runs)
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


# The inputs of a training run (its record's "inputs", ser/bin/train.py) that make its
# results those of the current data: the run_config.json key of each one's dir.
RECORDED_INPUTS = (("data", "data_dir", "data"), ("feats", "feat_dir", "features"),
                   ("aug_feats", "aug_feat_dir", "features of the copies"), ("folds", "folds_dir", "folds"))


def stale_inputs(run_dir: Path) -> list[str]:
    """What a scored run was trained on that has been rebuilt since (data, features,
    folds: the record of the dir now differs from the run's), or why that cannot be
    told; empty for a run whose results are those of the current inputs. The dirs'
    paths are relative to the recipe's root, 6 levels above the run
    (exp/<corpus>/<system>/<protocol>/seed<s>/fold<k>)."""
    record = read_record(run_dir)
    config_file = run_dir / "run_config.json"
    if record is None or not isinstance(record.get("inputs"), dict) or not config_file.is_file():
        return ["no record of its inputs"]
    config = json.loads(config_file.read_text())
    root = Path(os.path.abspath(run_dir)).parents[5]
    changed = []
    for key, config_key, name in RECORDED_INPUTS:
        if not config.get(config_key) and record["inputs"].get(key) is None:
            continue  # not an input of this run (no copies)
        path = root / config[config_key] if config.get(config_key) else None
        if record_id(path) != record["inputs"].get(key):
            changed.append(name)
    return changed


def _stale_note(system_dir: Path, protocol: str) -> str:
    """'' when every run of the protocol is current, else what has changed since."""
    changed: list[str] = []
    for results in sorted((system_dir / protocol).glob("seed*/fold*/results.json")):
        changed += [c for c in stale_inputs(results.parent) if c not in changed]
    return ", ".join(changed)


def write_corpus_results(corpus_dir: Path | str) -> Path | None:
    """The table of every scored system and protocol under ``exp/<corpus>``; rows whose
    models were trained on data, features or folds that have been rebuilt since are
    left out of it and listed apart, as out of date."""
    corpus_dir = Path(corpus_dir)
    rows, stale_rows = [], []
    for summary_file in sorted(corpus_dir.glob("*/summary.json")):
        system = summary_file.parent.name
        runs = collect_runs(summary_file.parent)
        for protocol, summary in sorted(json.loads(summary_file.read_text()).items()):
            config = runs[protocol][0]["config"] if protocol in runs else {}
            cmvn = config.get("cmvn", "?")
            row = (f"| {system} | {protocol} | {Path(config.get('feat_dir', '?')).name} | {cmvn}"
                   f"{' (test-speaker stats)' if cmvn == 'speaker' else ''}"
                   f"{' (test-corpus stats)' if cmvn == 'corpus' else ''} | "
                   f"{len(summary['folds'])} | {len(summary['seeds'])} | "
                   + " | ".join(_pct(*summary[k]) for k, _ in METRICS)
                   + f" | {_pct(*summary['uar_originals_only']) if 'test_copies' in summary else '–'}"
                   + f" | {summary['train_seconds'] / 60:.1f} |")
            stale = _stale_note(summary_file.parent, protocol)
            if stale:
                stale_rows.append(f"{row} {stale} |")
            else:
                rows.append(row)
    if not rows and not stale_rows:
        return None
    header = "| system | protocol | features | normalisation | folds | seeds | UAR | WA | macro-F1 | UAR originals | train min (sum) |"
    lines = [f"# Results on {corpus_dir.name}", "",
             "Mean ± std over folds × seeds, in percent. Normalisation 'speaker' uses the test "
             "speakers' own statistics, 'corpus' the test corpus's. Systems trained with speed-perturbed "
             "copies are scored with the test utterances' own copies averaged in (test-time "
             "augmentation); 'UAR originals' scores the same models on the originals alone.", "",
             header, "|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    if stale_rows:
        lines += ["## Out of date", "",
                  "**Not results of the current data**: these models were trained on data, features or folds "
                  "that have been rebuilt since (stages 5-6 would refuse them). Run stages 5-6 of the "
                  "system again, or remove its dir.", "",
                  header + " rebuilt since training |", "|---|---|---|---|---|---|---|---|---|---|---|---|",
                  *stale_rows, ""]
    out = corpus_dir / "RESULTS.md"
    out.write_text("\n".join(lines))
    return out
