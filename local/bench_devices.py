#!/usr/bin/env python3
"""Seconds per training epoch of the recipe's defaults on the CPU against CUDA.

Trains each variant with ser.train.train_fold (conf/train.yaml, conf/model/<variant>.yaml,
the recipe's own loop: pooled batches, masks, schedule, validation) for --epochs epochs on
random features shaped like a CASIA leave-one-speaker-out fold with four speed copies:
4050 training and 90 validation utterances of 93 descriptors, lengths drawn around
CASIA's (median 104 frames of 16 ms, 58-307). The CPU runs use conf/train.yaml's
num_threads (1: the recipe runs one job per core). Prints one line per variant and device,
then the ratio: cpu_s / cuda_s per variant.

  local/bench_devices.py --variants "lstm_tf_at lstm_tf" --epochs 1
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ser.model import load_model_config
from ser.train import TrainConfig, Utterances, train_fold


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="lstm_tf_at lstm_tf gru", help="conf/model/<name>.yaml names")
    p.add_argument("--devices", default="cpu cuda", help="cuda is skipped where torch sees none")
    p.add_argument("--epochs", type=int, default=1, help="epochs timed per run (the schedule's length)")
    p.add_argument("--train-utts", type=int, default=4050, help="810 originals + 4 copies each")
    p.add_argument("--valid-utts", type=int, default=90)
    p.add_argument("--input-dim", type=int, default=93)
    p.add_argument("--num-classes", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def random_utterances(n: int, args: argparse.Namespace, rng: np.random.Generator, prefix: str) -> Utterances:
    lengths = np.clip(rng.lognormal(np.log(104), 0.35, n), 58, 307).astype(int)
    labels = rng.integers(args.num_classes, size=n)
    feats = [rng.normal(size=(int(t), args.input_dim)).astype(np.float32) + label * 0.1
             for t, label in zip(lengths, labels)]
    return Utterances([f"{prefix}{i}" for i in range(n)], feats, labels.tolist(),
                      [f"spk{i % 3}" for i in range(n)])


def main() -> None:
    args = get_args()
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
        model_config = load_model_config(variant)
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
    main()
