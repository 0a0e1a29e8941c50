#!/usr/bin/env python3
"""Writes the top-level RESULTS.md, the paper's table, from the scored runs of
local/run_ablation.sh.

Each (setup, system) row measured under exp/ is saved as local/results/<corpus>_<folds>_<system>.json
(scores, per-fold means for pairing, settings, the commit it was trained at, the
command); RESULTS.md is then made from every saved row, so rows measured in an
earlier checkout stay when their exp/ dirs are gone, and runs added later (more seeds, in
a fresh checkout or on a cluster node) join the saved row's runs instead of replacing them,
where both were made with the same settings. Recurrent systems trained with
speed-perturbed copies (run.sh's default) are rows of their own, named after the
factors like run.sh's systems (<system>_sp0.8_0.9_1.1_1.2), beside rows measured
without them or with other factors; runs scored with test-time copies give a second
row, <system>_tta. Paired tests compare lstm_tf_at (with run.sh's default copies and
test-time copies where a setup has that row, else the nearest one) with every other
system of a setup over folds, the seeds averaged within each fold first.

Each system's exp dir is the one run.sh names for its settings (ser/recipe.py's dir_names), so
options that name systems (--extra-opts "--train-opts lr=1e-3") name their rows too, and a row
is never read from a dir made with other settings.

Systems on other features than the paper's are given as FEAT:MODEL (whisper:svm,
whisper:lstm_tf_at) and are rows of their own, named like run.sh's systems (whisper_svm,
whisper_lstm_tf_at); they are also paired with the svm (ComParE functionals), and an encoder's
lstm_tf_at with the svm on the same encoder's pooled features.

usage: local/make_results.py [--setups "casia:loso ..."] [--systems "svm lstm whisper:svm ..."]"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "local"))

from compare import compare_runs  # noqa: E402
from ser.atomic import atomic_write_text  # noqa: E402
from ser.bin import HelpFormatter, run_tool  # noqa: E402
from ser.errors import SerError  # noqa: E402
from ser.metrics import mean_std  # noqa: E402
from ser.recipe import dir_names  # noqa: E402
from ser.report import METRICS, collect_runs, summarize_protocol  # noqa: E402
from ser.speed import factors_tag, split_factors  # noqa: E402
from ser.train import options_read, without_retired_options  # noqa: E402

RESULTS_DIR = ROOT / "local" / "results"
REFERENCE = "lstm_tf_at"
CORE_SYSTEMS = ("svm", "lstm", "lstm_at", "lstm_tf", "lstm_tf_at")  # need 3 seeds
# The table's row order, whatever subset one call measures, so partial runs do not reorder RESULTS.md.
TABLE_ORDER = ("svm", "lstm", "lstm_t", "lstm_f", "lstm_at", "lstm_tf", "lstm_tf_at", "gru")
# A saved row and runs collected later join only where all of these are the same.
ROW_SETTINGS = ("system_dir", "feat", "cmvn", "uses_test_speaker_stats", "model_config", "train_config",
                "test_copies")


def row_name(system: str, speed_perturb: str) -> str:
    """The row of a system, named like run.sh's system: _sp<factors> where copies are added
    (never to the svm); ``speed_perturb`` is auto (run.sh's default factors), none, or factors."""
    if system == "svm" or speed_perturb == "none":
        return system
    return f"{system}_{factors_tag(speed_perturb)}"


def base_system(row: str) -> str:
    """The system of a row name, without its speed-copies and test-copies suffixes."""
    return re.sub(r"(_sp[0-9._]*?)?(_tta)?$", "", row)


def row_train_config(model_config: dict, train_config: dict) -> dict:
    """The training options a row's runs are compared by: those the model reads, the seed and
    device aside (ser.train.options_read; svm runs made before runs recorded only the seed
    hold the training options of their day, which would keep them from joining otherwise)."""
    read = options_read(model_config, train_config)
    return without_retired_options({k: v for k, v in read.items() if k not in ("seed", "device")})


def measure_rows(corpus: str, folds: str, system: str, system_dir: Path, command: str) -> list[dict]:
    """The rows of one system on one setup, from its scored runs (none if it has none): runs
    scored with test-time copies (ser/bin/score.py) give two, ``<system>_tta`` and
    ``<system>`` for the same models scored on the originals alone."""
    runs = collect_runs(system_dir).get(folds)
    if not runs:
        return []
    summary = summarize_protocol(runs)
    if "mixed_scoring" in summary:
        raise SerError(f"{system_dir}/{folds}: {summary['mixed_scoring']} were scored with test-time "
                       "copies, the others before stage 6 did so; run stage 6 with all their seeds first")
    if "test_copies" not in summary:
        return [measure_row(corpus, folds, system, system_dir, command, runs)]
    originals = [{**{k: v for k, v in r.items() if k not in ("originals_only", "test_copies")},
                  **{k: r["originals_only"][k] for k, _ in METRICS}} for r in runs]
    return [measure_row(corpus, folds, f"{system}_tta", system_dir, command, runs),
            measure_row(corpus, folds, system, system_dir, command, originals)]


def measure_row(corpus: str, folds: str, system: str, system_dir: Path, command: str, runs: list[dict]) -> dict:
    """The row of one system on one setup, from its scored runs."""
    config = runs[0]["config"]
    row = {
        "corpus": corpus, "folds": folds, "system": system, "system_dir": str(system_dir.relative_to(ROOT)) if system_dir.is_relative_to(ROOT) else str(system_dir),
        "feat": Path(config["feat_dir"]).name, "cmvn": config["cmvn"],
        "uses_test_speaker_stats": bool(runs[0].get("uses_test_speaker_stats")),
        "model_config": config["model_config"],
        "train_config": row_train_config(config["model_config"], config["train_config"]),
        "test_copies": summarize_protocol(runs).get("test_copies", []),
        "command": command,
    }
    return with_runs(row, [{"fold": r["fold"], "seed": r["seed"], **{k: r[k] for k, _ in METRICS},
                            "train_seconds": r["train_seconds"], "num_test_excluded": r.get("num_test_excluded", 0),
                            "commit": r["config"].get("commit", "unknown"), "device": r["config"].get("device", "cpu")}
                           for r in runs])


def with_runs(row: dict, runs: list[dict], earlier_totals: dict | None = None) -> dict:
    """``row`` with its runs and what is summed or averaged over them. ``earlier_totals``: the
    training time, excluded utterances, commits and devices of saved runs that do not carry
    their own (rows saved before runs did)."""
    earlier = earlier_totals or {"train_seconds": 0.0, "excluded_test_utts": 0, "commits": [], "devices": []}
    runs = sorted(runs, key=lambda r: (r["seed"], int(re.sub(r"\D", "", r["fold"]) or 0), r["fold"]))
    per_fold: dict[str, dict[str, float]] = {}
    for r in runs:
        per_fold.setdefault(r["fold"], {})[str(r["seed"])] = r["uar"]
    return {
        **{k: v for k, v in row.items() if k not in ("runs", "written")},
        "num_folds": len(per_fold), "seeds": sorted({r["seed"] for r in runs}), "num_runs": len(runs),
        **{k: mean_std([r[k] for r in runs]) for k, _ in METRICS},
        "train_seconds": round(sum(r.get("train_seconds", 0.0) for r in runs) + earlier["train_seconds"], 1),
        "per_fold_uar": dict(sorted(per_fold.items())),
        "runs": runs,
        "commits": sorted({r["commit"] for r in runs if "commit" in r} | set(earlier["commits"])),
        "devices": sorted({r["device"] for r in runs if "device" in r} | set(earlier["devices"])),
        "excluded_test_utts": sum(r.get("num_test_excluded", 0) for r in runs) + earlier["excluded_test_utts"],
        "written": time.strftime("%Y-%m-%d %H:%M"),
    }


def join_saved_runs(row: dict, path: Path) -> dict:
    """``row`` (collected from exp/) with the runs of the row saved in ``path`` that exp/ does
    not hold, e.g. seed 1 of an earlier checkout when a fresh checkout adds seeds 2 and 3. A
    run in both is taken from exp/. A saved row made with other settings is replaced."""
    if not path.is_file():
        return row
    saved = json.loads(path.read_text())
    # Rows saved before the retired training options went hold them: at their no-op values, the same settings.
    saved["train_config"] = row_train_config(saved.get("model_config") or {}, saved.get("train_config") or {})
    row = json.loads(json.dumps(row))  # compared as saved: tuples become lists
    changed = [k for k in ROW_SETTINGS if saved.get(k) != row.get(k)]
    if changed:
        logging.warning("%s: replacing the saved row (%d runs), made with other %s", path,
                        saved["num_runs"], ", ".join(changed))
        return row
    collected = {(r["fold"], r["seed"]) for r in row["runs"]}
    kept = [r for r in saved["runs"] if (r["fold"], r["seed"]) not in collected]
    if not kept:
        return row
    earlier = None
    if any("train_seconds" not in r for r in saved["runs"]):  # saved before runs carried their times
        if len(kept) < len(saved["runs"]):
            raise SerError(f"{path}: exp/ holds {len(saved['runs']) - len(kept)} of its {len(saved['runs'])} "
                           "runs again, beside new ones, and its runs carry no training times of their own "
                           "to split its total by; collect all of its runs under exp/ again, or move the "
                           "file away to replace the row")
        earlier = {k: saved[k] for k in ("train_seconds", "excluded_test_utts", "commits", "devices")}
    logging.info("%s: %d saved runs join the %d collected from exp/", path, len(kept), len(row["runs"]))
    return with_runs(row, row["runs"] + kept, earlier)


def write_row(path: Path, row: dict) -> None:
    """Writes a row unless the file holds the same one, made earlier: only new measurements
    change a row's file (and its time of writing)."""
    text = json.dumps(row, indent=1) + "\n"
    if path.is_file():
        then = json.loads(path.read_text())
        if {k: v for k, v in then.items() if k != "written"} == \
                {k: v for k, v in json.loads(text).items() if k != "written"}:
            return
    atomic_write_text(path, text)


def _pct(pair) -> str:
    return f"{100 * pair[0]:.2f} ± {100 * pair[1]:.2f}"


def _runs_of(row: dict) -> list[dict]:
    return row["runs"]


def is_encoder_row(row: dict) -> bool:
    """A system on features other than the paper's (named after them: whisper_lstm_tf_at)."""
    return row["system"].startswith(f"{row['feat']}_")


def paired_line(a: dict, b: dict, label: str | None = None) -> str:
    """One table line: ``a`` − ``b`` over their common folds (UAR, seeds averaged within a fold),
    its first cell ``label`` (default "a − b")."""
    label = label or f"{a['system']} − {b['system']}"
    try:
        test = compare_runs(_runs_of(a), _runs_of(b), "uar")["test"]
    except Exception as err:  # too few common folds
        return f"| {label} | – | {err} | | | | |"
    low, high = test["ci95"]
    return (f"| {label} | {test['n']} | {100 * test['mean_diff']:+.2f} | "
            f"{100 * low:+.1f} to {100 * high:+.1f} | {test['t']:.3f} | {test['p_two_sided']:.4f} | "
            f"{1 - test['p_less']:.4f} |")


def encoder_pairs(group: list[dict], reference: dict | None) -> list[str]:
    """Paired tests of the systems on pretrained-encoder features: against the svm on ComParE
    functionals, against the paper's model on its features, the encoder's recurrent models
    against the svm on the same encoder's pooled features, and the paper's model against the
    plain lstm on the same frames with the same options (what its attention adds on top)."""
    encoder_rows = [r for r in group if is_encoder_row(r)]
    if not encoder_rows:
        return []
    by_name = {r["system"]: r for r in group}
    lines = ["", "Paired tests of the systems on pretrained-encoder features, over folds (UAR, seeds "
             "averaged within each fold first; t-test on the per-fold differences); the paper's model "
             "is also paired with the plain lstm on the same frames with the same options:", "",
             "| system − other | folds | mean diff (points) | 95 % CI (points) | t | p two-sided | "
             "p (system > other) |", "|---|---|---|---|---|---|---|"]
    for r in encoder_rows:
        others = [by_name.get("svm"), reference]
        pooled = by_name.get(f"{r['feat']}_svm")
        if pooled is not r:
            others.append(pooled)
        paper_model = f"{r['feat']}_lstm_tf_at"
        if r["system"].startswith(paper_model):
            others.append(by_name.get(f"{r['feat']}_lstm{r['system'][len(paper_model):]}"))
        lines += [paired_line(r, o) for o in others if o is not None]
    return lines


# When run.sh's default speed copies for recurrent models changed: rows of the same system
# trained without copies, or at other factors, are listed apart as earlier defaults.
SPEED_DEFAULT_HISTORY = ("no copies until a396ad8 (2026-11-26), copies at 0.9 and 1.1 until e2e61de "
                         "(2026-11-27); on pretrained-encoder features no copies until 2026-12-06")


def is_earlier_default(row: dict) -> bool:
    """A recurrent system trained at speed copies that are no longer run.sh's default (none, or
    other factors), on the paper's features or on an encoder's; rows with other options stay
    in the main table."""
    prefix = f"{row['feat']}_" if is_encoder_row(row) else ""
    for model in TABLE_ORDER:
        if model == "svm":
            continue
        current = prefix + row_name(model, "auto")
        if row["system"] in (current, f"{current}_tta"):
            return False
        if re.fullmatch(rf"{prefix}{model}(_sp[0-9._]+?)?(_tta)?", row["system"]):
            return True
    return False


@functools.lru_cache(maxsize=None)
def commit_time(commit: str) -> tuple[int, str] | None:
    """(seconds since the epoch, date) of a commit of this repository, or None where git does
    not know it (another clone's commit, no git)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct %cs",
                              commit.removesuffix("-dirty")], capture_output=True, text=True)
    except OSError:
        return None
    fields = out.stdout.split()
    return (int(fields[0]), fields[1]) if out.returncode == 0 and len(fields) == 2 else None


def environment(group: list[dict]) -> list[str]:
    """The setup's environment block, from its rows' records: devices, the commits the runs
    were trained at with their dates, and when the rows were written."""
    devices = sorted({d for r in group for d in r["devices"]})
    device_text = {"cpu": "CPU", "cuda": "GPU (cuda)"}
    commits = sorted({c.removesuffix("-dirty") for r in group for c in r["commits"]})
    dated = sorted((commit_time(c), c) for c in commits if commit_time(c) is not None)
    written = sorted(r["written"][:10] for r in group if r.get("written"))
    lines = ["Environment (from the rows' records):", "",
             f"- device: {' and '.join(device_text.get(d, d) for d in devices)}"
             f"{' for every run' if len(devices) == 1 else ' (the device column says which row)'}"]
    unknown = len(commits) - len(dated)
    if dated:
        (_, first_date), first = dated[0]
        (_, last_date), last = dated[-1]
        span = (f"`{first[:7]}` ({first_date})" if first == last else
                f"from `{first[:7]}` ({first_date}) to `{last[:7]}` ({last_date})")
        lines.append(f"- trained at {len(commits)} commit{'s' if len(commits) > 1 else ''}, {span}; each "
                     "row's are in its commit column"
                     + (f"; {unknown} not in this repository's history" if unknown else ""))
    else:
        lines.append(f"- trained at {len(commits)} commit{'s' if len(commits) > 1 else ''}, none in this "
                     "repository's history; each row's are in its commit column")
    if written:
        lines.append(f"- rows written {written[0]}" + (f" to {written[-1]}" if written[-1] != written[0] else ""))
    return lines + [""]


def row_table(rows: list[dict]) -> list[str]:
    lines = ["| system | features | norm. | folds × seeds | UAR % | WA % | macro-F1 % | train min | device | commit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds_note = f"{r['num_folds']} × {len(r['seeds'])}"
        if len(r["seeds"]) < 3:
            seeds_note += " (**fewer than 3 seeds**)"
        lines.append(f"| {r['system']} | {r['feat']} | {r['cmvn']} | {seeds_note} | {_pct(r['uar'])} | "
                     f"{_pct(r['wa'])} | {_pct(r['macro_f1'])} | {r['train_seconds'] / 60:.1f} | "
                     f"{', '.join(r['devices'])} | {', '.join(r['commits'])} |")
    return lines


def reference_pairs(ref: dict, rows: list[dict]) -> list[str]:
    """Paired tests of the reference row against each of ``rows``."""
    name = ref["system"]
    lines = ["", f"Paired tests of {name} against each system, over folds (UAR, seeds "
             "averaged within each fold first; t-test on the per-fold differences):", "",
             f"| {name} − system | folds | mean diff (points) | 95 % CI (points) | t | p two-sided "
             f"| p ({name} > system) |",
             "|---|---|---|---|---|---|---|"]
    lines += [paired_line(ref, r, label=r["system"]) for r in rows if r is not ref]
    return lines


def render(rows: list[dict]) -> str:
    lines = ["# RESULTS", "",
             "The paper's table (Xie et al., TASLP 2019) as this recipe measures it: every system on "
             "the same folds, made by `local/run_ablation.sh` and written by `local/make_results.py` "
             "from `local/results/*.json`. Percentages are mean ± std over all runs (folds × seeds). "
             "Normalisation: `train` statistics come from each fold's training part only; `utt` "
             "normalises each utterance by itself; neither sees a test speaker's other utterances. "
             "Train min is the summed training time of all runs (CPU unless the device column says cuda). "
             "Each setup opens with its environment: the devices, the commits its runs were trained "
             "at and their dates, from the rows' records. "
             "Systems named `<system>_sp<factors>` were trained with speed-perturbed copies at those "
             "factors of each fold's training part; run.sh's default for recurrent models is "
             f"{' '.join(split_factors('auto'))} (`{row_name(REFERENCE, 'auto')}`). Rows of the same "
             "systems trained at earlier defaults (without copies, or at 0.9 and 1.1) are listed apart, "
             "under each setup's \"earlier defaults\". Rows "
             "`<system>_sp<factors>_tta` are the same runs as `<system>_sp<factors>` scored with "
             "test-time copies: each test utterance's posteriors averaged with those of its own copies "
             "at the same factors (stage 6's scoring since test-time copies were added); the row without `_tta` scores "
             "the same models on the originals alone. Copies made "
             "before commit 80c53c0 carried sox's random dither, so a rerun of those rows' commits "
             "does not give the same copies; from 80c53c0 on, `sox -R` makes them the same on every run. "
             "The commit column lists the commits the runs were trained at; `-dirty` marks uncommitted "
             "changes to the code. Records made before commit 8b92311 also carry `-dirty` for uncommitted "
             "edits of RESULTS.md, local/results/ or the documentation alone, which do not change a run. "
             "Rows named after other features (`whisper_svm`, `whisper_lstm_tf_at`) are systems on a frozen "
             "pretrained encoder's frames at its defaults (docs/training.md, Pretrained encoders; "
             "`conf/feat_defaults/`): the svm pools each utterance's frames into their mean and std. "
             "Their recurrent systems train 20 epochs since commit 133e2d8 (2026-12-06); rows named "
             "`<system>_epochs30` are the same systems at 30 epochs, the default before it "
             "(`--train-opts epochs=30`).",
             ""]
    setups = []
    for row in rows:
        if (row["corpus"], row["folds"]) not in setups:
            setups.append((row["corpus"], row["folds"]))
    for corpus, folds in setups:
        group = [r for r in rows if (r["corpus"], r["folds"]) == (corpus, folds)]
        current = [r for r in group if not is_earlier_default(r)]
        earlier = [r for r in group if is_earlier_default(r)]
        lines += [f"## {corpus}, {folds}", ""]
        lines += environment(group)
        lines += row_table(current)
        refs = [r for r in group if base_system(r["system"]) == REFERENCE]
        preferred = [row_name(REFERENCE, "auto") + "_tta", row_name(REFERENCE, "auto")]
        ref = next((r for name in preferred for r in refs if r["system"] == name),
                   next((r for r in refs if r["system"] != REFERENCE), next(iter(refs), None)))
        if ref is not None and any(r is not ref for r in current):
            lines += reference_pairs(ref, current)
        lines += encoder_pairs(group, ref)
        lines += ["", "Commands:", ""]
        lines += [f"- {r['system']}: `{r['command']}`" for r in current]
        if earlier:
            lines += ["", f"### {corpus}, {folds}: earlier defaults", "",
                      "The same systems trained at speed copies that were run.sh's default once: "
                      f"{SPEED_DEFAULT_HISTORY}.", ""]
            lines += row_table(earlier)
            if ref is not None:
                lines += reference_pairs(ref, earlier)
            lines += ["", "Commands:", ""]
            lines += [f"- {r['system']}: `{r['command']}`" for r in earlier]
        lines.append("")
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--setups", default="casia:loso casia:random emodb:loso", help="corpus:protocol pairs")
    p.add_argument("--systems", default=" ".join(TABLE_ORDER),
                   help="models on the paper's features, or FEAT:MODEL (e.g. whisper:lstm_tf_at)")
    p.add_argument("--lld-feat", default="lld93", help="the paper's systems' frame features")
    p.add_argument("--random-repeats", type=int, default=5, help="folds of the random protocol")
    p.add_argument("--speed-perturb", default="auto",
                   help="auto: the recurrent systems' runs with run.sh's default speed-perturbed "
                        "copies (rows <system>_sp<factors>); factors such as '0.9 1.1': their runs "
                        "with those copies; none: their runs without")
    p.add_argument("--extra-opts", default="",
                   help="more run.sh options of every system, as given to local/run_ablation.sh; "
                        "those that name systems (e.g. --train-opts) name their rows too")
    p.add_argument("--exp-dir", type=Path, default=ROOT / "exp", help="where run.sh's exp dirs are")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="the saved rows")
    p.add_argument("--out", type=Path, default=ROOT / "RESULTS.md", help="the table written")
    return p


def feat_and_model(system: str, lld_feat: str) -> tuple[str, str]:
    """The features and model of a system of --systems: FEAT:MODEL, or a model on the
    paper's features (the svm on ComParE functionals, the others on ``lld_feat``)."""
    if ":" in system:
        feat, model = system.split(":", 1)
        return feat, model
    return ("compare_functionals" if system == "svm" else lld_feat), system


def run_opts(args: argparse.Namespace, model: str) -> str:
    """run.sh's options of a system beyond corpus, protocol, features and model."""
    opts = ""
    if model != "svm" and args.speed_perturb != "auto":
        factors = "" if args.speed_perturb == "none" else " ".join(split_factors(args.speed_perturb))
        opts = f'--speed-perturb "{factors}"'
    return " ".join(o for o in (opts, args.extra_opts.strip()) if o)


def system_exp_dir(corpus: str, protocol: str, num_folds: str, feat: str, system: str, opts: str) -> Path:
    """run.sh's exp dir of a system (exp/<data>/<system>/<folds>), named as run.sh names it."""
    args = ["--corpus", corpus, "--protocol", protocol, *num_folds.split(), "--feat", feat, "--model", system,
            "--baseline", "", *shlex.split(opts)]
    try:
        return Path(dir_names(args).systems[0].exp)
    except SerError as err:
        raise SerError(f"./run.sh {shlex.join(args)}: could not name the system's exp dir: {err}") from None


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    asked = []  # (corpus, setup, protocol, num_folds option, feat, system, run.sh options)
    for setup in args.setups.split():
        corpus, protocol = setup.split(":")
        num_folds = f"--num-folds {args.random_repeats}" if protocol == "random" else ""
        for system in args.systems.split():
            feat, model = feat_and_model(system, args.lld_feat)
            asked.append((corpus, setup, protocol, num_folds, feat, model, run_opts(args, model), system))
    exp_dirs = [system_exp_dir(a[0], a[2], a[3], a[4], a[5], a[6]) for a in asked]
    collected: list[tuple[Path, dict]] = []
    names = []  # (corpus, folds, row, setup) of every row asked for
    for (corpus, setup, protocol, num_folds, feat, model, opts, system), exp_dir in zip(asked, exp_dirs):
        system_dir = args.exp_dir / exp_dir.parent.relative_to("exp")
        folds = exp_dir.name
        # The paper's systems are named without their features; the others keep them.
        key = system_dir.name
        if ":" not in system and key.startswith(f"{feat}_"):
            key = key[len(feat) + 1:]
        extra = f" --extra-opts {shlex.quote(opts)}" if opts else ""
        command = (f"local/run_ablation.sh --{corpus}-dir <{corpus.upper()}> --setups {setup} "
                   f"--systems {system} --seeds \"1 2 3\"{extra}"
                   f"  # = ./run.sh --corpus {corpus} --{corpus}-dir <{corpus.upper()}> --protocol {protocol}"
                   f"{' ' + num_folds if num_folds else ''} --feat {feat} --model {model} --seeds \"1 2 3\""
                   f"{' ' + opts if opts else ''}")
        names.append((corpus, folds, key, setup))
        for row in measure_rows(corpus, folds, key, system_dir, command):
            path = args.results_dir / f"{corpus}_{folds}_{row['system']}.json"
            collected.append((path, join_saved_runs(row, path)))
    for path, row in collected:  # all rows are made before any file changes
        write_row(path, row)
    order = {s: i for i, s in enumerate(TABLE_ORDER)}
    rows = [json.loads(p.read_text()) for p in sorted(args.results_dir.glob("*.json"))]
    # The paper's systems first, then each encoder's in the same order of models.
    rows.sort(key=lambda r: (r["corpus"], r["folds"], is_encoder_row(r), r["feat"] if is_encoder_row(r) else "",
                             order.get(base_system(r["system"][len(r["feat"]) + 1:] if is_encoder_row(r)
                                                   else r["system"]), 99), r["system"]))
    text = render(rows)
    measured = {(r["corpus"], r["folds"], r["system"]) for r in rows}
    missing = [f"{setup} {key}" for corpus, folds, key, setup in names if (corpus, folds, key) not in measured]
    if missing:
        text += ("\n## Not measured yet\n\nRows of the table asked for that have no scored runs "
                 "(`local/run_ablation.sh` trains them and resumes):\n\n"
                 + "".join(f"- {m}\n" for m in missing))
    atomic_write_text(args.out, text)
    print(args.out.read_text())


if __name__ == "__main__":
    run_tool(main)
