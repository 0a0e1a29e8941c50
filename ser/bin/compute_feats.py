"""Computes frame-level features for one JOB split of a wav.scp (file or ``command |``
entries, both read by ser.audio.load_audio) and writes them with
kaldiio as ``<out>.ark`` and ``<out>.scp``; unusable files go to ``<out>.failed``
with the reason, frame counts to ``<out>.num_frames``, and the feature type's
description (options, dimension, frame shift, column names) to ``<out>.info.json``.
The .scp is renamed into place last, so its presence means the split is complete,
and a complete split is not computed again."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import kaldiio
from tqdm import tqdm

from ser.atomic import atomic_path
from ser.audio import load_audio
from ser.bin import HelpFormatter, run_tool
from ser.config import parse_key_values
from ser.datadir import read_table
from ser.errors import AudioError
from ser.features import build_extractor, extract_features, feature_names, load_feature_options


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--feat", required=True, help="feature type, see ser/features.py")
    p.add_argument("--feat-opts", default="", help="overrides of conf/feats/<feat>.yaml, 'k=v ...'")
    p.add_argument("--wav-scp", required=True, type=Path, help="the JOB split's wav.scp")
    p.add_argument("--out", required=True, type=Path, help="output prefix, e.g. feats/raw.3")
    p.add_argument("--compress", action="store_true", help="kaldi compressed matrices")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where encoder features (whisper, ssl) are computed; other types run on the CPU")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    ark, scp, failed_path, frames_path, info_path = (
        args.out.with_name(f"{args.out.name}.{ext}")
        for ext in ("ark", "scp", "failed", "num_frames", "info.json"))
    if scp.is_file():
        logging.info("%s exists: this split is complete", scp)
        return
    wavs = read_table(args.wav_scp)
    options = {**load_feature_options(args.feat), **parse_key_values(args.feat_opts)}
    # The device is where, not what: the recorded options (and a bundle's extractor) keep the
    # config's own, so that a model trained on GPU-made features classifies on a CPU.
    device = {"device": args.device} if "device" in options else {}
    extractor = build_extractor(args.feat, **{**options, **device})
    failed, num_frames = [], []
    with atomic_path(scp) as tmp_scp:  # the split's scp, written last, says it is complete
        with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_scp}",
                                 compression_method=2 if args.compress else None) as writer:
            for utt, entry in tqdm(wavs.items(), desc=args.out.name, mininterval=5):
                try:
                    feats = extract_features(extractor, load_audio(entry), entry)
                except AudioError as err:
                    failed.append(f"{utt}\t{err.path}\t{err.reason}\n")
                    continue
                writer(utt, feats)
                num_frames.append(f"{utt} {feats.shape[0]}\n")
        names = feature_names(extractor, args.feat)
        info_path.write_text(json.dumps({"feat": args.feat, "options": options, "dim": len(names),
                                         "frame_shift": extractor.frame_shift, "names": names}))
        failed_path.write_text("".join(failed))
        frames_path.write_text("".join(num_frames))
    logging.info("%s: %d utterances, %d failed", scp, len(wavs) - len(failed), len(failed))


if __name__ == "__main__":
    run_tool(main)
