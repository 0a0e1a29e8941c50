"""Computes normalisation statistics: ``--mode train`` from each fold's training
utterances only (one file per fold), ``--mode speaker`` per speaker (one file),
``--mode corpus`` per corpus and fold: a training corpus's from the fold's training
utterances of it, a corpus with none there (a cross-corpus run's test corpus) from its
test utterances, unlabelled (ser/cmvn.py)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import kaldiio

from ser.bin import HelpFormatter, run_tool
import numpy as np

from ser.cmvn import CMVN_MODES, STATELESS_MODES, accumulate, save_stats, stats_path
from ser.datadir import read_data_dir, read_table
from ser.errors import SerError
from ser.folds import list_folds, read_fold


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--mode", required=True, choices=[m for m in CMVN_MODES if m not in STATELESS_MODES],
                   help="whose statistics (ser/cmvn.py)")
    p.add_argument("--data-dir", required=True, type=Path, help="a prepared data dir")
    p.add_argument("--feat-dir", required=True, type=Path, help="its features (feats.scp)")
    p.add_argument("--folds-dir", type=Path, help="needed for --mode train")
    p.add_argument("--out-dir", required=True, type=Path,
                   help="gets fold<k>.npz (train) or speaker.npz (speaker)")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    feats = read_table(args.feat_dir / "feats.scp")

    def load(utt):
        return kaldiio.load_mat(feats[utt])

    if args.mode == "speaker":
        utt2spk = read_data_dir(args.data_dir).utt2spk
        out = stats_path(args.out_dir, "speaker", "")
        save_stats(accumulate(sorted(feats), load, utt2spk.__getitem__), out, "speaker")
        logging.info("wrote per-speaker statistics to %s", out)
        return
    if args.folds_dir is None:
        raise SerError("--folds-dir is needed for --mode train")
    if args.mode == "corpus":
        data = read_data_dir(args.data_dir)
        utt2corpus = data.utt2corpus or {u: data.path.name for u in data.utts}
        spk2corpus = {data.utt2spk[u]: c for u, c in utt2corpus.items()}
        for fold_name in list_folds(args.folds_dir):
            fold = read_fold(args.folds_dir, fold_name)
            train = [u for u in fold.train if u in feats]
            trained = {utt2corpus[u] for u in train}
            # Corpora with no training utterance in the fold: their own test utterances.
            untrained = [u for u in fold.test if u in feats and utt2corpus[u] not in trained]
            stats = accumulate(train + untrained, load, utt2corpus.__getitem__)
            speakers = sorted(spk2corpus)
            stats.update(speakers=np.array(speakers), speaker_groups=np.array([spk2corpus[s] for s in speakers]))
            save_stats(stats, stats_path(args.out_dir, "corpus", fold_name), "corpus")
            logging.info("%s: per-corpus statistics, from %d training utterances of %s%s", fold_name,
                         len(train), " ".join(sorted(trained)),
                         f" and {len(untrained)} unlabelled test utterances of "
                         f"{' '.join(sorted({utt2corpus[u] for u in untrained}))}" if untrained else "")
        return
    for fold in list_folds(args.folds_dir):
        # The training part only: never the validation or test utterances.
        train = [u for u in read_fold(args.folds_dir, fold).train if u in feats]
        save_stats(accumulate(train, load, lambda _: "train"), stats_path(args.out_dir, "train", fold), "train")
        logging.info("%s: statistics from %d training utterances", fold, len(train))


if __name__ == "__main__":
    run_tool(main)
