#!/usr/bin/env python3
"""The svm system's UAR on the same inner validation splits as tune.py (the bar the
LSTM must clear there), for each C of the recipe's grid. Never reads the outer test
speaker (tune.OUTER_TEST).

  svm_inner.py --data-root /work/main/data --corpus casia
"""
import argparse
import sys
from pathlib import Path

import kaldiio
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune import OUTER_TEST, inner_splits  # noqa: E402

from ser.metrics import scores  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--corpus", required=True, choices=sorted(OUTER_TEST))
    args = p.parse_args()
    d = Path(args.data_root) / args.corpus
    utt2spk = dict(line.split() for line in open(d / "utt2spk"))
    utt2emo = dict(line.split() for line in open(d / "utt2emo"))
    scp = dict(line.split(None, 1) for line in open(d / "feats/compare_functionals/feats.scp"))
    emotions = sorted(set(utt2emo.values()))
    ids = sorted(u for u in scp if utt2spk[u] != OUTER_TEST[args.corpus])
    x = np.stack([kaldiio.load_mat(scp[u].strip())[0] for u in ids])
    y = np.array([emotions.index(utt2emo[u]) for u in ids])
    spk = np.array([utt2spk[u] for u in ids])
    for c in (1e-4, 1e-3, 1e-2, 1e-1):
        uars = []
        for valid in inner_splits(args.corpus, set(spk)):
            va = np.isin(spk, valid)
            model = make_pipeline(StandardScaler(), LinearSVC(C=c, class_weight="balanced", max_iter=10000))
            model.fit(x[~va], y[~va])
            uars.append(scores(y[va].tolist(), model.predict(x[va]).tolist(), emotions)["uar"])
        print(f"{args.corpus} C={c:g} inner UAR {np.mean(uars):.4f} per split {[round(u, 3) for u in uars]}")


if __name__ == "__main__":
    main()
