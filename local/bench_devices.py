#!/usr/bin/env python3
"""Seconds per training epoch of the recipe's defaults on the CPU against CUDA.

Trains each variant with ser.train.train_fold (conf/train.yaml, conf/model/<variant>.yaml,
the recipe's own loop: pooled batches, masks, schedule, validation) for --epochs epochs on
random features shaped like a CASIA leave-one-speaker-out fold with four speed copies:
4050 training and 90 validation utterances of 93 descriptors, lengths drawn around
CASIA's (median 104 frames of 16 ms, 58-307). The CPU runs use conf/train.yaml's
num_threads (1: the recipe runs one job per core). Prints one line per variant and device,
  <variant> device=<cpu|cuda> threads=<n|-> s_per_epoch=<s>
then, where both devices ran, the last line
  ratio_cpu_over_cuda <variant>=<cpu_s / cuda_s> ...

  local/bench_devices.py --variants "lstm_tf_at lstm_tf" --epochs 1
  local/bench_devices.py --quick      a tiny model on a few utterances: checks that it works
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ser.bin import HelpFormatter, run_tool
from ser.config import parse_key_values
from ser.model import load_model_config
from ser.batching import Utterances
from ser.train import TrainConfig, train_fold

# Sizes of --quick: every option it sets can still be given on the command line.
QUICK = dict(variants="lstm_tf_at", train_utts=24, valid_utts=6, model_opts="hidden_size=8 num_layers=1 fc_dim=8")



def get_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--variants", default="lstm_tf_at lstm_tf gru", help="conf/model/<name>.yaml names")
    p.add_argument("--model-opts", default="",
                   help="overrides of conf/model/<variant>.yaml for every variant, 'key=value ...' (run.sh's --model-opts)")
    p.add_argument("--devices", default="cpu cuda", help="cuda is skipped where torch sees none")
    p.add_argument("--epochs", type=int, default=1, help="epochs timed per run (the schedule's length)")
    p.add_argument("--train-utts", type=int, default=4050, help="810 originals + 4 copies each")
    p.add_argument("--valid-utts", type=int, default=90, help="the fold's validation part (900 - 810)")
    p.add_argument("--input-dim", type=int, default=93, help="features per frame (lld93)")
    p.add_argument("--num-classes", type=int, default=6, help="emotions (CASIA's 6)")
    p.add_argument("--seed", type=int, default=0, help="of the features and the training")
    p.add_argument("--quick", action="store_true", help="a tiny run that checks the script works: " + " ".join(
        f"--{k.replace('_', '-')} {v!r}" for k, v in QUICK.items()))
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(**QUICK)
    return p.parse_args(argv)


def random_utterances(n: int, args: argparse.Namespace, rng: np.random.Generator, prefix: str) -> Utterances:
    lengths = np.clip(rng.lognormal(np.log(104), 0.35, n), 58, 307).astype(int)
    labels = rng.integers(args.num_classes, size=n)
    feats = [rng.normal(size=(int(t), args.input_dim)).astype(np.float32) + label * 0.1
             for t, label in zip(lengths, labels)]
    return Utterances([f"{prefix}{i}" for i in range(n)], feats, labels.tolist())


def main(argv=None) -> None:
    args = get_args(argv)
    logging.disable(logging.INFO)
    rng = np.random.default_rng(args.seed)
    train, valid = random_utterances(args.train_utts, args, rng, "t"), random_utterances(args.valid_utts, args, rng, "v")
    labels = [f"e{i}" for i in range(args.num_classes)]
    devices = [d for d in args.devices.split() if d != "cuda" or torch.cuda.is_available()]
    print(f"bench_devices train_utts={args.train_utts} valid_utts={args.valid_utts} epochs={args.epochs} "
          f"devices={' '.join(devices)} cuda={torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'} "
          f"torch={torch.__version__}")
    seconds: dict[tuple[str, str], float] = {}
    for variant in args.variants.split():
        model_config = {**load_model_config(variant), **parse_key_values(args.model_opts)}
        for device in devices:
            config = TrainConfig.from_dict({"epochs": args.epochs, "device": device, "seed": args.seed})
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                train_fold(Path(out), train, valid, labels, model_config, config)
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds[variant, device] = (time.perf_counter() - start) / args.epochs
            print(f"{variant} device={device} threads={config.num_threads if device == 'cpu' else '-'} "
                  f"s_per_epoch={seconds[variant, device]:.2f}", flush=True)
    if "cpu" in devices and "cuda" in devices:
        print("ratio_cpu_over_cuda " + " ".join(f"{v}={seconds[v, 'cpu'] / seconds[v, 'cuda']:.2f}"
                                               for v in args.variants.split()))


if __name__ == "__main__":
    run_tool(main)
