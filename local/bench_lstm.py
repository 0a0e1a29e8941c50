#!/usr/bin/env python3
"""Times the LSTM-AT recurrence (ser/attention_lstm.py) against torch.nn.LSTM.

Every model here is built as the recipe builds it: ser.model.build_model with the
defaults of conf/model/<variant>.yaml, overridden by --model-opts as run.sh's
--model-opts overrides them. First forward plus backward of one batch through the
encoders of lstm_at (LSTM-AT) and lstm (torch.nn.LSTM), in the same process,
interleaved so that load from other jobs hits both alike: a few warm-up iterations,
then N timed ones; the ratio is the median of the N paired ratios (LSTM-AT's time over
torch.nn.LSTM's in the same iteration), which drift in the machine's speed leaves
alone. The batch is --frames frames of --input-dim features, stacked as the model
stacks them (frame_stack k: ceil(frames / k) steps of k * input_dim).
Then one simulated training epoch (forward, backward, Adam step) of the full models
lstm_tf_at and lstm_tf (same head and attentions, LSTM-AT vs torch.nn.LSTM), also
interleaved, on a CASIA leave-one-speaker-out fold: 900 utterances of 1.0-4.9 s at a
16 ms frame shift (random lengths), length-bucketed batches.

The last line is
  ratio_at_vs_torch_lstm=<LSTM-AT time / torch.nn.LSTM time>
of the encoders' forward + backward. --quick runs a tiny model on a tiny batch in
seconds, to check that the script works; its figures mean nothing.
"""

import argparse
import os
import statistics
import time
from typing import Any, Callable, Dict, List

import torch
from torch import nn

from ser.bin import HelpFormatter, run_tool
from ser.config import parse_key_values
from ser.errors import SerError
from ser.model import build_model, load_model_config

# Sizes of --quick: every option it sets can still be given on the command line.
QUICK = dict(batch_size=4, frames=12, warmup=1, iters=2, epoch_utts=8, min_frames=6, max_frames=15,
             model_opts="hidden_size=8 num_layers=2 fc_dim=8")



def get_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--batch-size", type=int, default=128, help="utterances per batch")
    parser.add_argument("--frames", type=int, default=120, help="feature frames per utterance of the timed batch")
    parser.add_argument("--input-dim", type=int, default=93, help="features per frame (lld93)")
    parser.add_argument("--model-opts", default="",
                        help="overrides of conf/model/<variant>.yaml, 'key=value ...', e.g. 'hidden_size=128'; "
                             "each variant takes those its config has (gate_size: the LSTM-AT ones)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations")
    parser.add_argument("--iters", type=int, default=30, help="timed iterations (medians)")
    parser.add_argument("--epoch-utts", type=int, default=900, help="training utterances of the simulated fold")
    parser.add_argument("--min-frames", type=int, default=60, help="1.0 s at a 16 ms shift")
    parser.add_argument("--max-frames", type=int, default=300, help="4.9 s at a 16 ms shift")
    parser.add_argument("--num-classes", type=int, default=6, help="emotions (CASIA's 6)")
    parser.add_argument("--skip-epoch", action="store_true", help="time only the recurrences")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run that checks the script works: " + " ".join(
                            f"--{k.replace('_', '-')} {v!r}" for k, v in QUICK.items()))
    parser.add_argument("--seed", type=int, default=0, help="of the weights and the random batches")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args(argv)


def variant_options(variants: List[str], overrides: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The overrides each variant takes (those its conf/model yaml sets); one that no
    variant takes is a typo, and an error."""
    keys = {v: set(load_model_config(v)) - {"variant"} for v in variants}
    unknown = sorted(set(overrides) - set().union(*keys.values()))
    if unknown:
        raise SerError(f"--model-opts: {', '.join(unknown)} is an option of none of {', '.join(variants)}")
    return {v: {k: value for k, value in overrides.items() if k in keys[v]} for v in variants}


def fwd_bwd_times(models: List[nn.Module], feats: torch.Tensor, warmup: int, iters: int) -> List[List[float]]:
    """Seconds of forward + backward per model and timed iteration, interleaving the models."""

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
    return times


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


def main(argv=None) -> None:
    args = get_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    variants = ["lstm_at", "lstm", "lstm_tf_at", "lstm_tf"]
    options = variant_options(variants, parse_key_values(args.model_opts))
    recurrent = [build_model(args.input_dim, args.num_classes, v, **options[v]) for v in variants[:2]]
    config = recurrent[0].config
    feats = torch.randn(args.batch_size, args.frames, args.input_dim)
    # The encoders' input as the models make it from feature frames.
    steps = recurrent[0]._stack_frames(feats, torch.full((args.batch_size,), args.frames))[0]
    print(
        f"threads={torch.get_num_threads()} batch={args.batch_size} frames={args.frames} input_dim={args.input_dim} "
        f"frame_stack={config['frame_stack']} steps={steps.size(1)} step_dim={steps.size(2)} "
        f"hidden={config['hidden_size']} layers={config['num_layers']} rnn_dropout={config['rnn_dropout']} "
        f"warmup={args.warmup} iters={args.iters} loadavg_1min={os.getloadavg()[0]:.2f} cpus={os.cpu_count()}"
    )
    params = [sum(p.numel() for p in m.encoder.parameters()) for m in recurrent]
    print(f"params lstm_at={params[0]} torch_lstm={params[1]}")
    at_times, lstm_times = fwd_bwd_times([m.encoder for m in recurrent], steps, args.warmup, args.iters)
    ratios = sorted(at / lstm for at, lstm in zip(at_times, lstm_times))
    print(f"fwd_bwd_ms lstm_at={1e3 * statistics.median(at_times):.1f} "
          f"torch_lstm={1e3 * statistics.median(lstm_times):.1f} (medians of {args.iters}); paired ratios "
          f"{ratios[0]:.3f}-{ratios[-1]:.3f}"
          + (f", quartiles {' '.join(f'{q:.3f}' for q in statistics.quantiles(ratios))}" if len(ratios) > 1 else ""))

    if not args.skip_epoch:
        train_steps = []
        for variant in variants[2:]:
            model = build_model(args.input_dim, args.num_classes, variant, **options[variant])
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

            def train_step(feats, lengths, labels, model=model, optimizer=optimizer):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(feats, lengths), labels).backward()
                optimizer.step()

            batch = min(8, args.batch_size)  # warm-up
            train_step(feats[:batch], torch.full((batch,), args.frames), torch.zeros(batch, dtype=torch.long))
            train_steps.append(train_step)
        seconds = epoch_seconds(train_steps, args)
        print(
            f"epoch_s casia_fold(utts={args.epoch_utts}, frames={args.min_frames}-{args.max_frames}, "
            f"batch={args.batch_size}, bucketed) " + " ".join(f"{v}={s:.2f}" for v, s in zip(variants[2:], seconds))
        )
    print(f"ratio_at_vs_torch_lstm={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    run_tool(main)
