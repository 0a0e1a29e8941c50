"""Trains one model on one fold (and seed): the fold's ``train`` list for the
weights, its ``valid`` list for model selection and early stopping. Resumes from
``<out>/checkpoint.pt`` when it exists. Writes ``best.pt``, ``history.json``,
``learning_curve.png``, ``run_config.json`` and, last, ``.done``."""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from ser.bin import run_tool
from ser.config import load_yaml, parse_key_values
from ser.cmvn import CMVN_MODES, Normalizer, stats_path
from ser.datadir import read_data_dir

from ser.folds import read_fold
from ser.model import load_model_config
from ser.train import TrainConfig, load_fold_data, train_fold


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--feat-dir", required=True, type=Path)
    p.add_argument("--folds-dir", required=True, type=Path)
    p.add_argument("--fold", help="e.g. fold1")
    p.add_argument("--cmvn", default="train", choices=CMVN_MODES)
    p.add_argument("--cmvn-dir", type=Path, help="the cmvn stage's output, for --cmvn train|speaker")
    p.add_argument("--model", default="lstm_tf_at", help="a conf/model/<name>.yaml name")
    p.add_argument("--model-opts", default="", help="overrides of the model config, 'k=v ...'")
    p.add_argument("--train-conf", type=Path, default=Path("conf/train.yaml"))
    p.add_argument("--train-opts", default="", help="overrides of the training config, 'k=v ...'")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gpu", type=int, default=0, help="1: train on CUDA when present")
    p.add_argument("--out", type=Path, help="the run directory")
    p.add_argument("--task-list", type=Path,
                   help="a file of '<fold> <seed> <out>' lines; with --task N, line N "
                        "replaces --fold, --seed and --out (for job arrays)")
    p.add_argument("--task", type=int)
    return p


def main(argv=None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.task_list is not None:
        lines = args.task_list.read_text().splitlines()
        if args.task is None or not 1 <= args.task <= len(lines):
            parser.error(f"--task must be 1..{len(lines)} for {args.task_list}")
        fold, seed, out = lines[args.task - 1].split()
        args.fold, args.seed, args.out = fold, int(seed), Path(out)
    if args.fold is None or args.out is None:
        parser.error("give --fold and --out, or --task-list and --task")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "log").mkdir(exist_ok=True)
    handler = logging.FileHandler(args.out / "log" / "train.log", mode="a")
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(handler)
    logging.info("training %s seed %d in %s", args.fold, args.seed, args.out)
    device = "cuda" if args.gpu > 0 and torch.cuda.is_available() else "cpu"
    config = TrainConfig.from_dict({**load_yaml(args.train_conf), **parse_key_values(args.train_opts),
                                    "seed": args.seed, "device": device})
    model_config = {**load_model_config(args.model), **parse_key_values(args.model_opts)}
    data = read_data_dir(args.data_dir)
    fold = read_fold(args.folds_dir, args.fold)
    cmvn_stats = stats_path(args.cmvn_dir, args.cmvn, args.fold) if args.cmvn_dir else None
    normalizer = Normalizer.load(args.cmvn, cmvn_stats)
    train = load_fold_data(data, args.feat_dir, fold.train, normalizer)
    valid = load_fold_data(data, args.feat_dir, fold.valid, normalizer)
    run_config = {"data_dir": str(args.data_dir), "feat_dir": str(args.feat_dir),
                  "folds_dir": str(args.folds_dir), "fold": args.fold, "cmvn": args.cmvn,
                  "cmvn_stats": str(cmvn_stats) if cmvn_stats else None,
                  "model": args.model, "model_config": model_config, "train_config": asdict(config),
                  "labels": data.emotions, "num_train": len(train), "num_valid": len(valid)}
    (args.out / "run_config.json").write_text(json.dumps(run_config, indent=1) + "\n")
    best = train_fold(args.out, train, valid, data.emotions, model_config, config,
                      title=f"{args.out}")
    (args.out / ".done").write_text(json.dumps(best) + "\n")


if __name__ == "__main__":
    run_tool(main)
