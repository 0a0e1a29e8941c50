"""Scores trained runs on their fold's test utterances: writes ``predictions.tsv``
(utterance, reference, hypothesis, posteriors), ``results.json`` (UAR, WA,
macro-F1, per-class recall, confusion matrix) and ``confusion.png`` into each run
directory given; for the attention variants also ``attention.png``,
``attention_time.tsv``, ``attention_features.tsv`` and ``attention.json``, the mean
attention on the fold's test utterances per emotion (ser/explain.py).

A run trained with speed-perturbed copies (``aug_feat_dir``) is scored with test-time
augmentation: each test utterance's posteriors are averaged with those of its own copies
in that dir (local/tune/LOG.md, fc4590f, 2026-11-27); ``results.json`` keeps the scores of the
originals alone under ``originals_only``.

Before scoring, a run's record (its ``.done``) is checked against what scoring
reads now: the fold's utterance lists (``--folds-dir``, default the folds the run
was trained on), the data and the features. A model is never scored on lists or
features other than those it was trained with. A run whose ``results.json`` was
made from the same record is not scored again."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from ser.atomic import atomic_write_text
from ser.bin import HelpFormatter, run_tool
from ser.cmvn import USES_TEST_SPEAKER_STATS, Normalizer
from ser.config import load_yaml
from ser.datadir import read_data_dir
from ser.errors import SerError
from ser.explain import explain_utterances, feature_groups, summarize_fold, write_fold_attention
from ser.folds import read_fold
from ser.metrics import confusion_text, plot_confusion, scores
from ser.model import ATTENTION_VARIANTS, build_model
from ser.provenance import fold_lists_hash, read_record, record_id
from ser.speed import average_with_copies, copy_factors
from ser.train import load_fold_data, load_perturbed, predict


def check_record(run_dir: Path, cfg: dict, folds_dir: Path) -> dict:
    """The run's record, after checking that scoring reads what training read."""
    record = read_record(run_dir)
    if record is None:
        raise SerError(f"{run_dir}: training is not complete (no .done)")
    if "inputs" not in record or "fold_lists" not in record:
        raise SerError(f"{run_dir}/.done: no training record (made by an older recipe); "
                       f"remove {run_dir.parent.parent} and train again")
    now = fold_lists_hash(folds_dir, cfg["fold"])
    if now != record["fold_lists"]:
        raise SerError(f"{run_dir}: the model was trained with other utterance lists than "
                       f"{folds_dir / cfg['fold']} holds now (fold lists {record['fold_lists']}, "
                       f"now {now}); scoring it would test on other utterances, possibly ones it "
                       "trained on. Train it again (remove the run's exp dir).")
    inputs = [("data", cfg["data_dir"]), ("feats", cfg["feat_dir"])]
    if cfg.get("aug_feat_dir"):  # the test utterances' copies are read from there
        inputs.append(("aug_feats", cfg["aug_feat_dir"]))
    for name, path in inputs:
        if record_id(path) != record["inputs"].get(name):
            raise SerError(f"{run_dir}: {path} has been rebuilt since the model was trained "
                           f"(record {record['inputs'].get(name)}, now {record_id(path)}); "
                           "train it again (remove the run's exp dir)")
    return record


def score_run(run_dir: Path, folds_dir: Path | None = None) -> dict | None:
    cfg = json.loads((run_dir / "run_config.json").read_text()) if (run_dir / "run_config.json").is_file() else {}
    if not cfg:
        raise SerError(f"{run_dir}: training is not complete (no run_config.json)")
    folds_dir = Path(folds_dir or cfg["folds_dir"])
    check_record(run_dir, cfg, folds_dir)
    run_record = record_id(run_dir)
    results_path = run_dir / "results.json"
    copies_dir = Path(cfg["aug_feat_dir"]) if cfg.get("aug_feat_dir") else None
    then = json.loads(results_path.read_text()) if results_path.is_file() else {}
    # Scored before test-time copies existed: scored again, with them.
    scored = then.get("run_record") == run_record and ("test_copies" in then) == (copies_dir is not None)
    attention_done = _attention_current(run_dir, run_record) or not _has_attention(cfg)
    if scored and attention_done:
        logging.info("%s: scored already", run_dir)
        return None
    data = read_data_dir(cfg["data_dir"])
    fold = read_fold(folds_dir, cfg["fold"])
    normalizer = Normalizer.load(cfg["cmvn"], cfg["cmvn_stats"])
    test = load_fold_data(data, Path(cfg["feat_dir"]), fold.test, normalizer)
    if not len(test):
        raise SerError(f"{run_dir}: no test utterance has features")
    if scored:  # scored before attention summaries existed: only those are missing
        write_attention(run_dir, cfg, test, run_record, *_load_model(run_dir)[:2])
        return None
    if cfg["model_config"].get("variant") == "svm":
        from ser.svm import load_svm
        classifier = load_svm(run_dir)
        labels, selected_epoch = classifier.labels, classifier.epoch

        def posteriors_of(utts):
            return classifier.posteriors(utts.feats)
    else:
        model, labels, selected_epoch = _load_model(run_dir)

        def posteriors_of(utts):
            return predict(model, utts, 128, "cpu")
    posteriors = originals = posteriors_of(test)
    if copies_dir is not None:
        copies = load_perturbed(data, copies_dir / "feats.scp", test.ids, normalizer)
        posteriors = average_with_copies(test.ids, originals, copies.ids, posteriors_of(copies))
    hyps = posteriors.argmax(-1)
    excluded = sorted(set(fold.test) - set(test.ids))
    with open(run_dir / "predictions.tsv", "w") as f:
        f.write("utt\tref\thyp\t" + "\t".join(labels) + "\n")
        for utt, ref, hyp, post in zip(test.ids, test.labels, hyps, posteriors):
            f.write(f"{utt}\t{labels[ref]}\t{labels[hyp]}\t" + "\t".join(f"{p:.5f}" for p in post) + "\n")
    result = scores(test.labels, hyps, labels)
    history = json.loads((run_dir / "history.json").read_text())
    result.update({"fold": cfg["fold"], "seed": cfg["train_config"]["seed"],
                   "selected_epoch": selected_epoch, "valid_uar": history["selected"]["valid_uar"],
                   "num_test_excluded": len(excluded), "test_excluded": excluded, "cmvn": cfg["cmvn"],
                   "run_record": run_record,
                   "uses_test_speaker_stats": USES_TEST_SPEAKER_STATS[cfg["cmvn"]],
                   "train_seconds": round(sum(h["seconds"] for h in history["history"]), 1)})
    if copies_dir is not None:
        alone = scores(test.labels, originals.argmax(-1), labels)
        result["test_copies"] = copy_factors(copies.ids)
        result["num_test_copies"] = len(copies)
        result["originals_only"] = {k: alone[k] for k in ("uar", "wa", "macro_f1", "per_class_recall", "confusion")}
    atomic_write_text(run_dir / "results.json", json.dumps(result, indent=1) + "\n")
    (run_dir / "confusion.txt").write_text(confusion_text(result) + "\n")
    plot_confusion(result, run_dir / "confusion.png", title=f"{cfg['fold']} seed {result['seed']}: "
                   f"UAR {result['uar']:.1%}")
    if _has_attention(cfg):
        write_attention(run_dir, cfg, test, run_record, model, labels)
    logging.info("%s: UAR %.4f WA %.4f macro-F1 %.4f on %d utterances%s", run_dir, result["uar"],
                 result["wa"], result["macro_f1"], result["num_utts"],
                 f" with their copies at {' '.join(result['test_copies'])} (originals alone: UAR "
                 f"{result['originals_only']['uar']:.4f})" if copies_dir is not None else "")
    return result


def _has_attention(cfg: dict) -> bool:
    return cfg["model_config"].get("variant") in ATTENTION_VARIANTS


def _attention_current(run_dir: Path, run_record: str) -> bool:
    path = run_dir / "attention.json"
    return path.is_file() and json.loads(path.read_text()).get("run_record") == run_record


def _load_model(run_dir: Path):
    """The run's selected model (best.pt), its labels and selected epoch."""
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    model = build_model(**best["model_config"])
    model.load_state_dict(best["model"])
    return model, best["labels"], best["epoch"]


def write_attention(run_dir: Path, cfg: dict, test, run_record: str, model, labels: list[str]) -> None:
    """The fold's attention summaries (ser/explain.py): mean time-attention profile and
    descriptor-group shares per emotion over the test utterances, as a picture and tables."""
    feat_dir = Path(cfg["feat_dir"])
    names_file = feat_dir / "feat_names.txt"
    names = names_file.read_text().splitlines() if names_file.is_file() else \
        [str(i) for i in range(model.input_dim)]
    feat = load_yaml(feat_dir / "feat_conf.yaml")["feat"] if (feat_dir / "feat_conf.yaml").is_file() else ""
    groups = feature_groups(feat, names)
    summary = summarize_fold(explain_utterances(model, test.feats, groups), test.labels, labels,
                             list(groups))
    summary["run_record"] = run_record
    written = write_fold_attention(summary, run_dir, f"{cfg['fold']} seed {cfg['train_config']['seed']}: "
                                   f"attention on {len(test)} test utterances")
    logging.info("%s: attention summaries %s", run_dir, " ".join(p.name for p in written))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--folds-dir", type=Path,
                   help="the folds to score with (checked against the run's); default: the run's own")
    p.add_argument("run_dirs", nargs="+", type=Path, help="trained runs, e.g. exp/.../seed1/fold1")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    for run_dir in args.run_dirs:
        score_run(run_dir, args.folds_dir)


if __name__ == "__main__":
    run_tool(main)
