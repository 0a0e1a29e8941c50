"""Scores trained runs on their fold's test utterances: writes ``predictions.tsv``
(utterance, reference, hypothesis, posteriors), ``results.json`` (UAR, WA,
macro-F1, per-class recall, confusion matrix) and ``confusion.png`` into each run
directory given."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from ser.bin import run_tool
from ser.cmvn import USES_TEST_SPEAKER_STATS, Normalizer
from ser.datadir import read_data_dir
from ser.errors import SerError
from ser.folds import read_fold
from ser.metrics import confusion_text, plot_confusion, scores
from ser.model import build_model
from ser.train import load_fold_data, predict


def score_run(run_dir: Path) -> dict:
    if not (run_dir / ".done").is_file():
        raise SerError(f"{run_dir}: training is not complete (no .done)")
    cfg = json.loads((run_dir / "run_config.json").read_text())
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    model = build_model(**best["model_config"])
    model.load_state_dict(best["model"])
    data = read_data_dir(cfg["data_dir"])
    fold = read_fold(cfg["folds_dir"], cfg["fold"])
    test = load_fold_data(data, Path(cfg["feat_dir"]), fold.test,
                          Normalizer.load(cfg["cmvn"], cfg["cmvn_stats"]))
    if not len(test):
        raise SerError(f"{run_dir}: no test utterance has features")
    posteriors = predict(model, test, 128, "cpu")
    hyps = posteriors.argmax(-1)
    labels = best["labels"]
    with open(run_dir / "predictions.tsv", "w") as f:
        f.write("utt\tref\thyp\t" + "\t".join(labels) + "\n")
        for utt, ref, hyp, post in zip(test.ids, test.labels, hyps, posteriors):
            f.write(f"{utt}\t{labels[ref]}\t{labels[hyp]}\t" + "\t".join(f"{p:.5f}" for p in post) + "\n")
    result = scores(test.labels, hyps, labels)
    history = json.loads((run_dir / "history.json").read_text())
    result.update({"fold": cfg["fold"], "seed": cfg["train_config"]["seed"],
                   "selected_epoch": best["epoch"], "valid_uar": history["selected"]["valid_uar"],
                   "num_test_excluded": len(fold.test) - len(test), "cmvn": cfg["cmvn"],
                   "uses_test_speaker_stats": USES_TEST_SPEAKER_STATS[cfg["cmvn"]],
                   "train_seconds": round(sum(h["seconds"] for h in history["history"]), 1)})
    tmp = run_dir / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(run_dir / "results.json")
    (run_dir / "confusion.txt").write_text(confusion_text(result) + "\n")
    plot_confusion(result, run_dir / "confusion.png", title=f"{cfg['fold']} seed {result['seed']}: "
                   f"UAR {result['uar']:.1%}")
    logging.info("%s: UAR %.4f WA %.4f macro-F1 %.4f on %d utterances", run_dir, result["uar"],
                 result["wa"], result["macro_f1"], result["num_utts"])
    return result


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run_dirs", nargs="+", type=Path)
    return p


def main(argv=None) -> None:
    for run_dir in get_parser().parse_args(argv).run_dirs:
        score_run(run_dir)


if __name__ == "__main__":
    run_tool(main)
