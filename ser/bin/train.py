"""Trains one model on one fold (and seed): the fold's ``train`` list for the
weights, its ``valid`` list for model selection. Resumes from
``<out>/checkpoint.pt`` when that was written with the same record. Writes
``best.pt`` (or ``svm.joblib``), ``history.json``, ``learning_curve.png``,
``run_config.json`` and, last, ``.done``: the run's record (ser/provenance.py).

``--plan`` instead lists the runs of an experiment dir that are still to train
(``--task-list``), after checking that the complete ones were made with the same
record; with ``--verify`` it fails unless every run is complete with it."""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from ser.atomic import atomic_write_text
from ser.bin import HelpFormatter, run_tool
from ser.cmvn import CMVN_MODES, STATELESS_MODES, Normalizer, stats_path
from ser.config import load_yaml, parse_key_values
from ser.datadir import read_data_dir
from ser.errors import SerError
from ser.folds import list_folds, read_fold
from ser.model import build_model, load_model_config
from ser.provenance import (code_version, differences, dump_record, fold_lists_hash, read_record,
                            record_id)
from ser.train import TrainConfig, load_fold_data, options_read, train_fold, without_retired_options


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data-dir", required=True, type=Path, help="a prepared data dir")
    p.add_argument("--feat-dir", required=True, type=Path, help="its features (feats.scp)")
    p.add_argument("--folds-dir", required=True, type=Path, help="its folds: <folds-dir>/fold<k>/")
    p.add_argument("--fold", help="e.g. fold1")
    p.add_argument("--cmvn", required=True, choices=CMVN_MODES, help="the normalisation (ser/cmvn.py)")
    p.add_argument("--cmvn-dir", type=Path, help="the cmvn stage's output, for --cmvn train|speaker|corpus")
    p.add_argument("--aug-feat-dir", type=Path,
                   help="features of speed-perturbed copies (sp<factor>-<utt>); the copies of "
                        "the fold's training utterances are added to its training part")
    p.add_argument("--model", required=True, help="a conf/model/<name>.yaml name")
    p.add_argument("--model-opts", default="", help="overrides of the model config, 'k=v ...'")
    p.add_argument("--train-conf", type=Path, default=Path("conf/train.yaml"), help="the training settings")
    p.add_argument("--train-opts", default="", help="overrides of the training config, 'k=v ...'")
    p.add_argument("--seed", type=int, default=1, help="the training seed")
    p.add_argument("--gpu", type=int, default=0, help="1: train on CUDA when present")
    p.add_argument("--out", type=Path, help="the run directory")
    p.add_argument("--task-list", type=Path,
                   help="a file of '<fold> <seed> <out>' lines; with --task N, line N "
                        "replaces --fold, --seed and --out (for job arrays)")
    p.add_argument("--task", type=int, help="with --task-list: train the run of this line (from 1)")
    p.add_argument("--plan", action="store_true",
                   help="write the runs of --exp-dir still to train to --task-list")
    p.add_argument("--verify", action="store_true", help="with --plan: fail unless all are complete")
    p.add_argument("--exp-dir", type=Path, help="with --plan: <exp-dir>/seed<s>/fold<k>")
    p.add_argument("--seeds", default="1", help="with --plan: e.g. '1 2 3'")
    return p


def _cmvn_stats(args, fold: str) -> Path | None:
    return stats_path(args.cmvn_dir, args.cmvn, fold) if args.cmvn_dir else None


def run_record(args, fold: str, seed: int) -> dict:
    """What a run is made from; equal records mean equal runs (the device aside)."""
    config = TrainConfig.from_dict({**load_yaml(args.train_conf), **parse_key_values(args.train_opts),
                                    "seed": seed})
    model_config = {**load_model_config(args.model), **parse_key_values(args.model_opts)}
    train_config = options_read(model_config, {k: v for k, v in asdict(config).items() if k != "device"})
    cmvn_dir = args.cmvn_dir if args.cmvn not in STATELESS_MODES else None
    return {"stage": "train", "fold": fold, "seed": seed, "model": args.model,
            "model_config": model_config, "train_config": train_config, "cmvn": args.cmvn,
            "inputs": {"data": record_id(args.data_dir), "feats": record_id(args.feat_dir),
                       "folds": record_id(args.folds_dir), "cmvn": record_id(cmvn_dir),
                       "aug_feats": record_id(args.aug_feat_dir) if args.aug_feat_dir else None},
            "fold_lists": fold_lists_hash(args.folds_dir, fold)}


def same_record(then: dict | None, now: dict) -> bool:
    """``then`` (a run's .done) records the settings of ``now``; a record made before the
    retired training options were removed matches where it holds them at their no-op
    values (ser/train.py)."""
    if then is None or not isinstance(then.get("train_config"), dict):
        return then == now
    return {**then, "train_config": without_retired_options(then["train_config"])} == now


def check_model_config(model_config: dict) -> None:
    """A bad model option is a SerError here, before any task is submitted, not a
    traceback in every task's log."""
    if model_config.get("variant") == "svm":
        from ser.svm import check_config
        check_config(model_config)
        return
    try:  # the input and output sizes are the data's; any will do to check the options
        build_model(input_dim=1, num_classes=2, **model_config)
    except (TypeError, ValueError) as err:
        raise SerError(f"model options {model_config}: {err}") from None


def plan(args) -> None:
    """Writes the runs still to train to --task-list; fails on a complete run made
    from another record, since its results would be handed back as new ones."""
    if args.exp_dir is None or args.task_list is None:
        raise SerError("--plan needs --exp-dir and --task-list")
    check_model_config({**load_model_config(args.model), **parse_key_values(args.model_opts)})
    inputs = [("data", args.data_dir), ("features", args.feat_dir), ("folds", args.folds_dir)]
    if args.aug_feat_dir:
        inputs.append(("speed copies' features", args.aug_feat_dir))
    for name, path in inputs:
        if record_id(path) == "none":
            raise SerError(f"{path}: the {name} stage is not complete (no .done)")
    todo, stale = [], []
    for seed in (int(s) for s in args.seeds.split()):
        for fold in list_folds(args.folds_dir):
            run = args.exp_dir / f"seed{seed}" / fold
            record, then = run_record(args, fold, seed), read_record(run)
            if then is None:
                todo.append(f"{fold} {seed} {run}")
            elif not same_record(then, record):
                stale.append((run, differences(then, record)))
    if stale:
        run, diffs = stale[0]
        raise SerError(
            f"{len(stale)} trained run(s) in {args.exp_dir} were made from other inputs or settings, "
            f"e.g. {run}:\n  " + "\n  ".join(diffs[:12]) +
            f"\nTheir results are not reused. Remove {args.exp_dir} to train it again, or keep it "
            "and give the new settings another name (run.sh --exp-tag).")
    if args.verify and todo:
        raise SerError(f"{len(todo)} run(s) in {args.exp_dir} are not trained with these settings, "
                       f"e.g. {todo[0].split()[2]}; run the training stage")
    atomic_write_text(args.task_list, "".join(f"{t}\n" for t in todo))
    print(len(todo))


def train(args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    record = run_record(args, args.fold, args.seed)
    then = read_record(args.out)
    if same_record(then, record):
        logging.info("%s is complete with these settings", args.out)
        return
    config_path = args.out / "run_config.json"
    started = json.loads(config_path.read_text()).get("record") if config_path.is_file() else None
    if then is not None:  # complete, from another record: never overwritten
        raise SerError(f"{args.out}: written with other settings or inputs; remove it to train it "
                       "again:\n  " + "\n  ".join(differences(then, record)[:12]))
    if started is not None and not same_record(started, record):
        # An unfinished run of other settings: its checkpoint must not be resumed.
        logging.warning("%s was started with other settings; training it anew:\n  %s", args.out,
                        "\n  ".join(differences(started, record)[:12]))
        for item in args.out.iterdir():
            if item.name != "log":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    (args.out / "log").mkdir(exist_ok=True)
    handler = logging.FileHandler(args.out / "log" / "train.log", mode="a")
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(handler)
    logging.info("training %s seed %d in %s", args.fold, args.seed, args.out)
    device = "cuda" if args.gpu > 0 and torch.cuda.is_available() else "cpu"
    config = TrainConfig.from_dict({**record["train_config"], "device": device})
    data = read_data_dir(args.data_dir)
    fold = read_fold(args.folds_dir, args.fold)
    cmvn_stats = _cmvn_stats(args, args.fold)
    normalizer = Normalizer.load(args.cmvn, cmvn_stats)
    # Speed-perturbed copies of the training part only, never of valid or test.
    train_part = load_fold_data(data, args.feat_dir, fold.train, normalizer,
                                perturbed_scp=args.aug_feat_dir / "feats.scp" if args.aug_feat_dir else None)
    valid = load_fold_data(data, args.feat_dir, fold.valid, normalizer)
    num_originals = sum(1 for u in train_part.ids if u in data.utt2spk)
    run_config = {"record": record, "data_dir": str(args.data_dir), "feat_dir": str(args.feat_dir),
                  "folds_dir": str(args.folds_dir), "fold": args.fold, "cmvn": args.cmvn,
                  "cmvn_stats": str(cmvn_stats) if cmvn_stats else None,
                  "aug_feat_dir": str(args.aug_feat_dir) if args.aug_feat_dir else None,
                  "model": args.model, "model_config": record["model_config"],
                  "train_config": asdict(config), "labels": data.emotions, "device": device,
                  "commit": code_version(),
                  "num_train": num_originals, "num_train_copies": len(train_part) - num_originals,
                  "num_valid": len(valid)}
    config_path.write_text(json.dumps(run_config, indent=1) + "\n")
    if record["model_config"].get("variant") == "svm":
        from ser.svm import train_svm
        train_svm(args.out, train_part, valid, data.emotions, record["model_config"], args.seed)
    else:
        train_fold(args.out, train_part, valid, data.emotions, record["model_config"], config,
                   title=f"{args.out}")
    atomic_write_text(args.out / ".done", dump_record(record))


def main(argv=None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.plan:
        plan(args)
        return
    if args.task_list is not None:
        lines = args.task_list.read_text().splitlines()
        if args.task is None or not 1 <= args.task <= len(lines):
            parser.error(f"--task must be 1..{len(lines)} for {args.task_list}")
        fold, seed, out = lines[args.task - 1].split(maxsplit=2)
        args.fold, args.seed, args.out = fold, int(seed), Path(out)
    if args.fold is None or args.out is None:
        parser.error("give --fold and --out, or --task-list and --task")
    train(args)


if __name__ == "__main__":
    run_tool(main)
