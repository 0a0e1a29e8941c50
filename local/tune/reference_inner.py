#!/usr/bin/env python3
"""Non-recurrent references on the same inner validation splits as tune.py, i.e. the
bar the LSTM must clear there. Never reads the outer test speaker (tune.OUTER_TEST).

- svm on compare_functionals (the recipe's svm system; C of its grid, fixed here);
- linear SVM / logistic regression / MLP on the mean and std over frames of each lld93
  descriptor (log of the 26 mel bands first), standardised on the training part:
  how much of the svm's accuracy the recurrent system's own 93 descriptors carry.

  reference_inner.py --data-root data --packed .tune_dev --corpus casia
"""
import argparse
import sys
import warnings
from pathlib import Path

import kaldiio
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune import OUTER_TEST, inner_splits  # noqa: E402

from ser.metrics import scores  # noqa: E402


def lld_stats(packed: Path):
    """(X, y, spk, emotions): mean and std of every lld93 column per utterance."""
    z = np.load(packed)
    bounds = np.concatenate([[0], np.cumsum(z["lengths"])])
    mel = [i for i, n in enumerate(z["names"]) if str(n).startswith("melspec")]
    rows = []
    for i in range(len(z["labels"])):
        x = z["feats"][bounds[i]:bounds[i + 1]].copy()
        x[:, mel] = np.log(np.maximum(x[:, mel], 1.0))  # linear magnitudes: heavy tails
        rows.append(np.concatenate([x.mean(0), x.std(0)]))
    return np.stack(rows), z["labels"], z["spk"], [str(e) for e in z["emotions"]]


def compare_functionals(data_root: Path, corpus: str):
    d = data_root / corpus
    utt2spk = dict(line.split() for line in open(d / "utt2spk"))
    utt2emo = dict(line.split() for line in open(d / "utt2emo"))
    scp = dict(line.split(None, 1) for line in open(d / "feats/compare_functionals/feats.scp"))
    emotions = sorted(set(utt2emo.values()))
    ids = sorted(u for u in scp if utt2spk[u] != OUTER_TEST[corpus])
    x = np.stack([kaldiio.load_mat(scp[u].strip())[0] for u in ids])
    return (x, np.array([emotions.index(utt2emo[u]) for u in ids]), np.array([utt2spk[u] for u in ids]),
            emotions)


def report(corpus, name, make, x, y, spk, emotions):
    uars = []
    for valid in inner_splits(corpus, set(spk)):
        va = np.isin(spk, valid)
        model = make_pipeline(StandardScaler(), make()).fit(x[~va], y[~va])
        uars.append(scores(y[va].tolist(), model.predict(x[va]).tolist(), emotions)["uar"])
    print(f"{corpus} {name}: inner UAR {np.mean(uars):.3f} per split {[round(u, 3) for u in uars]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="the recipe's data/ (compare_functionals feats)")
    p.add_argument("--packed", required=True, help="folder of tune.py pack's <corpus>.npz")
    p.add_argument("--corpus", required=True, choices=sorted(OUTER_TEST))
    args = p.parse_args()
    warnings.filterwarnings("ignore")  # liblinear / MLP convergence notes
    data = compare_functionals(Path(args.data_root), args.corpus)
    for c in (1e-4, 1e-3, 1e-2, 1e-1):
        report(args.corpus, f"svm compare_functionals C={c:g}",
               lambda: LinearSVC(C=c, class_weight="balanced", max_iter=10000), *data)
    data = lld_stats(Path(args.packed) / f"{args.corpus}.npz")
    for c in (1e-3, 1e-2):
        report(args.corpus, f"svm lld93 mean+std C={c:g}",
               lambda: LinearSVC(C=c, class_weight="balanced", max_iter=20000), *data)
    report(args.corpus, "logistic regression lld93 mean+std C=0.01",
           lambda: LogisticRegression(C=0.01, max_iter=2000, class_weight="balanced"), *data)
    for alpha in (0.01, 1.0, 10.0):
        report(args.corpus, f"mlp(128) lld93 mean+std alpha={alpha:g}",
               lambda: MLPClassifier((128,), alpha=alpha, max_iter=500, random_state=0), *data)


if __name__ == "__main__":
    main()
