#!/usr/bin/env python3
"""Classification time of the same files with each backend of a bundle, in one run:
TorchScript (model.pt) and ONNX (model.onnx through onnxruntime).

Prints one line, e.g.
  bench_infer files=100 audio_s=254.1 threads=2 torchscript_s=8.91 onnx_s=8.12 torchscript_model_s=1.52 onnx_model_s=0.73 model_ratio=0.48 max_diff=3.1e-07
where *_s is the whole classification (reading, features, model) of the files and
*_model_s the model alone on the same features, which are the backends' only
difference. Each backend classifies the files once untimed first (warm-up), then the
timed runs alternate between the backends.

A bundle trained with speed copies classifies each file with its test-time copies (as
ser infer does, --test-copies bundle); copies= in the line says how many per file.
Both backends run with torch's thread count (1 under path.sh's OMP_NUM_THREADS=1).
Usage (after . ./path.sh): local/bench_infer.py --model exp/synth/lld93_lstm_tf_at_sp/final [--files 100] [--repeats 3] INPUT...
(INPUT as for ser infer: files, directories, wav.scp; fewer files than --files are reused in turn)
--quick classifies a few files once per backend, to check that the script works.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ser.bin import HelpFormatter, run_tool
from ser.bin.infer import copies_option, list_inputs
from ser.inference import BATCH_SIZE, EmotionClassifier

# Sizes of --quick: every option it sets can still be given on the command line.
QUICK = dict(files=4, repeats=1, batch_size=2)



def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", help="audio files, directories or wav.scp files")
    p.add_argument("--model", required=True, type=Path, help="a bundle with model.onnx (stage 7)")
    p.add_argument("--files", type=int, default=100, help="files to classify")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per backend (the best counts)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="files per model call")
    p.add_argument("--test-copies", default="bundle", help="as ser infer's: bundle, none or factors")
    p.add_argument("--quick", action="store_true", help="check that the script works: " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    items = [path for _, path in list_inputs(args.inputs)]
    if not items:
        sys.exit(f"bench_infer: no audio in {' '.join(args.inputs)}")
    files = [items[i % len(items)] for i in range(args.files)]
    backends = {name: EmotionClassifier.load(args.model, backend=name, batch_size=args.batch_size,
                                             test_copies=copies_option(args.test_copies))
                for name in ("torchscript", "onnx")}
    audio_s = sum(len(backends["onnx"].samples(f, None)[0]) for f in files) / 16000
    feats = [backends["onnx"].features(backends["onnx"].samples(f, None)[0], f) for f in files]
    for clf in backends.values():  # warm-up: first calls allocate and compile
        clf.predict_batch(files[:args.batch_size])
    whole = {name: [] for name in backends}
    model = {name: [] for name in backends}
    posteriors = {}
    for _ in range(args.repeats):
        for name, clf in backends.items():
            start = time.perf_counter()
            clf.predict_batch(files)
            whole[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            posteriors[name] = clf._posteriors(feats)
            model[name].append(time.perf_counter() - start)
    diff = float(np.abs(posteriors["onnx"] - posteriors["torchscript"]).max())
    best = {name: min(v) for name, v in whole.items()}
    best_model = {name: min(v) for name, v in model.items()}
    print(f"bench_infer files={len(files)} audio_s={audio_s:.1f} threads={torch.get_num_threads()} "
          f"copies={len(backends['onnx'].test_copies)} "
          f"torchscript_s={best['torchscript']:.2f} onnx_s={best['onnx']:.2f} "
          f"torchscript_model_s={best_model['torchscript']:.3f} onnx_model_s={best_model['onnx']:.3f} "
          f"model_ratio={best_model['onnx'] / best_model['torchscript']:.2f} max_diff={diff:.1e}")


if __name__ == "__main__":
    run_tool(main)
