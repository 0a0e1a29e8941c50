#!/usr/bin/env python3
"""Times the LSTM-AT recurrence (ser/attention_lstm.py) against torch.nn.LSTM.

Forward plus backward of one batch for both 2-layer recurrences in the same
process, interleaved so that load from other jobs hits both alike; a few warm-up
iterations, then the median of N. Then one simulated training epoch (forward,
backward, Adam step) of the full models lstm_tf_at and lstm_tf (same head and
attentions, LSTM-AT vs torch.nn.LSTM), also interleaved, on a CASIA leave-one-
speaker-out fold: 900 utterances of 1.0-4.9 s at a 16 ms frame shift (random
lengths), length-bucketed batches.
The last line is ratio_at_vs_torch_lstm=<LSTM-AT time / torch.nn.LSTM time>.
"""

import argparse
import os
import statistics
import time
from typing import Callable, List

import torch
from torch import nn

from ser.attention_lstm import AttentionGateLSTM
from ser.model import build_model


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=120, help="frames per utterance of the timed batch")
    parser.add_argument("--input-dim", type=int, default=93)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations (median)")
    parser.add_argument("--epoch-utts", type=int, default=900, help="training utterances of the simulated fold")
    parser.add_argument("--min-frames", type=int, default=60, help="1.0 s at a 16 ms shift")
    parser.add_argument("--max-frames", type=int, default=300, help="4.9 s at a 16 ms shift")
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--skip-epoch", action="store_true", help="time only the recurrences")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def fwd_bwd_times(models: List[nn.Module], feats: torch.Tensor, warmup: int, iters: int) -> List[float]:
    """Median seconds of forward + backward per model, interleaving the models."""

    def step(model: nn.Module) -> None:
        outputs = model(feats)
        (outputs[0] if isinstance(outputs, tuple) else outputs).sum().backward()

    times: List[List[float]] = [[] for _ in models]
    for i in range(warmup + iters):
        for model, model_times in zip(models, times):
            start = time.perf_counter()
            step(model)
            if i >= warmup:
                model_times.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def epoch_seconds(train_steps: List[Callable[..., None]], args: argparse.Namespace) -> List[float]:
    """Seconds of one epoch per train step over length-bucketed batches of a
    simulated CASIA fold, the models interleaved batch by batch."""
    gen = torch.Generator().manual_seed(args.seed)
    lengths = torch.randint(args.min_frames, args.max_frames + 1, (args.epoch_utts,), generator=gen)
    seconds = [0.0 for _ in train_steps]
    for batch_lengths in lengths.sort(descending=True).values.split(args.batch_size):
        feats = torch.randn(len(batch_lengths), int(batch_lengths[0]), args.input_dim, generator=gen)
        feats.masked_fill_((torch.arange(feats.size(1)) >= batch_lengths[:, None]).unsqueeze(2), 0.0)
        labels = torch.randint(args.num_classes, (len(batch_lengths),), generator=gen)
        for i, train_step in enumerate(train_steps):
            start = time.perf_counter()
            train_step(feats, batch_lengths, labels)
            seconds[i] += time.perf_counter() - start
    return seconds


def main() -> None:
    args = get_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    size = dict(hidden_size=args.hidden_size, num_layers=args.num_layers)
    attention_gate = AttentionGateLSTM(args.input_dim, **size)
    torch_lstm = nn.LSTM(args.input_dim, **size, batch_first=True)
    print(
        f"threads={torch.get_num_threads()} batch={args.batch_size} frames={args.frames} input_dim={args.input_dim} "
        f"hidden={args.hidden_size} layers={args.num_layers} warmup={args.warmup} iters={args.iters} "
        f"loadavg_1min={os.getloadavg()[0]:.2f} cpus={os.cpu_count()}"
    )
    params = [sum(p.numel() for p in m.parameters()) for m in (attention_gate, torch_lstm)]
    print(f"params lstm_at={params[0]} torch_lstm={params[1]}")

    feats = torch.randn(args.batch_size, args.frames, args.input_dim)
    at_s, lstm_s = fwd_bwd_times([attention_gate, torch_lstm], feats, args.warmup, args.iters)
    print(f"fwd_bwd_ms lstm_at={1e3 * at_s:.1f} torch_lstm={1e3 * lstm_s:.1f} (median of {args.iters})")

    if not args.skip_epoch:
        variants = ("lstm_tf_at", "lstm_tf")
        train_steps = []
        for variant in variants:
            model = build_model(args.input_dim, args.num_classes, variant, **size)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

            def train_step(feats, lengths, labels, model=model, optimizer=optimizer):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(feats, lengths), labels).backward()
                optimizer.step()

            train_step(feats[:8], torch.full((8,), args.frames), torch.zeros(8, dtype=torch.long))  # warm-up
            train_steps.append(train_step)
        seconds = epoch_seconds(train_steps, args)
        print(
            f"epoch_s casia_fold(utts={args.epoch_utts}, frames={args.min_frames}-{args.max_frames}, "
            f"batch={args.batch_size}, bucketed) " + " ".join(f"{v}={s:.2f}" for v, s in zip(variants, seconds))
        )
    print(f"ratio_at_vs_torch_lstm={at_s / lstm_s:.3f}")


if __name__ == "__main__":
    main()
