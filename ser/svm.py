"""The openSMILE + SVM baseline of Xie et al. (2019): utterance-level features
(``--feat compare_functionals``, one (1, 6373) row per utterance), standardised,
into a linear SVM (``--model svm``, settings in ``conf/model/svm.yaml``).

- Standardisation: a StandardScaler fitted on the fold's training part only; it
  runs after the recipe's ``--cmvn`` normalisation, so the result does not depend on it.
- Model selection: every C of ``c_grid`` is trained on the training part and scored
  (UAR) on the validation split; the best wins, ties going to the smaller C. The
  selected model is the one trained on the training part only: the validation split
  stays unseen by the weights, as it does for the LSTM trainer's selected epoch.
- Frame-level features (T, D) are pooled over their frames into one vector, so that an
  SVM runs on any feature type (an utterance-level version of the same features):
  ``pooling: mean_std`` (conf/model/svm.yaml) joins each dimension's mean and standard
  deviation, ``mean`` keeps the mean alone. The baseline's functionals are already one
  row, whose standard deviation is zero: a constant the scaler and the SVM ignore.
- Scores, not probabilities: LinearSVC has none, so :meth:`SvmClassifier.posteriors`
  is the softmax of the decision function (one-vs-rest margins). Its argmax is the
  SVM's decision; its values are not calibrated probabilities.

A run directory gets ``svm.joblib`` (the fitted pipeline, labels, chosen C),
``history.json`` (one entry per C, in the LSTM trainer's shape) and
``learning_curve.png``. ``svm.joblib`` is a pickle: load only files you trust (a
bundle's is checked against its SHA256SUMS).
"""
from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from ser.atomic import atomic_path, atomic_write_text
from ser.errors import SerError
from ser.metrics import scores

if TYPE_CHECKING:  # ser.batching imports torch, which the SVM does not need
    from ser.batching import Utterances

MODEL_FILE = "svm.joblib"
FORMAT = 1
DEFAULTS: dict[str, Any] = {"variant": "svm", "c_grid": [1e-4, 1e-3, 1e-2, 1e-1, 1.0],
                            "class_weight": "balanced", "max_iter": 10000, "pooling": "mean_std"}
CLASS_WEIGHTS = (None, "balanced")
POOLINGS = ("mean", "mean_std")


def check_config(model_config: dict) -> dict:
    """``model_config`` (conf/model/svm.yaml with overrides) completed with
    :data:`DEFAULTS` and checked; ``c_grid`` may be one number (``--model-opts c_grid=0.1``)
    and its values numeric strings (PyYAML reads ``1e-3`` as a string)."""
    unknown = set(model_config) - set(DEFAULTS)
    if unknown:
        raise SerError(f"unknown svm option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    config = {**DEFAULTS, **model_config}
    if config["variant"] != "svm":
        raise SerError(f"svm model config has variant {config['variant']!r}, not 'svm'")
    grid = config["c_grid"]
    grid = list(grid) if isinstance(grid, (list, tuple)) else [grid]
    values = []
    for c in grid:
        try:
            value = float(c) if not isinstance(c, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise SerError(f"svm c_grid value {c!r} is not a positive number (c_grid: {grid})")
        values.append(value)
    if not values:
        raise SerError("svm c_grid is empty")
    if len(set(values)) != len(values):
        raise SerError(f"svm c_grid {grid} repeats a value")
    if config["class_weight"] not in CLASS_WEIGHTS:
        raise SerError(f"svm class_weight {config['class_weight']!r} is not one of {CLASS_WEIGHTS}")
    if config["pooling"] not in POOLINGS:
        raise SerError(f"svm pooling {config['pooling']!r} is not one of {POOLINGS}")
    max_iter = config["max_iter"]
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise SerError(f"svm max_iter {max_iter!r} is not a positive integer")
    return {**config, "c_grid": values}


def utterance_matrix(feats: Sequence[np.ndarray], input_dim: int | None = None,
                     pooling: str = "mean") -> np.ndarray:
    """(N, D) float64: each utterance's (T, D) features averaged over frames (T is 1
    for functionals); (N, 2D) with ``pooling="mean_std"``, the means then the standard
    deviations."""
    rows = []
    for i, f in enumerate(feats):
        f = np.asarray(f)
        if f.ndim != 2 or f.shape[0] == 0:
            raise SerError(f"utterance {i}: features must be a non-empty (frames, dim) matrix, "
                           f"got shape {f.shape}")
        if input_dim is not None and f.shape[1] != input_dim:
            raise SerError(f"utterance {i}: {f.shape[1]} features, the SVM takes {input_dim}")
        row = f.mean(axis=0, dtype=np.float64)
        if pooling == "mean_std":
            row = np.concatenate([row, f.std(axis=0, dtype=np.float64)])
        rows.append(row)
    if not rows:
        return np.zeros((0, (input_dim or 0) * (2 if pooling == "mean_std" else 1)))
    dims = {r.shape[0] for r in rows}
    if len(dims) > 1:
        raise SerError(f"utterances differ in feature dimension: {sorted(dims)}")
    matrix = np.stack(rows)
    if not np.all(np.isfinite(matrix)):
        raise SerError("features hold NaN or infinite values")
    return matrix


def _softmax(scores_: np.ndarray) -> np.ndarray:
    shifted = scores_ - scores_.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class SvmClassifier:
    """A trained SVM: the sklearn pipeline (StandardScaler + LinearSVC), the labels in
    output order, the chosen ``C`` and its index ``epoch`` (1-based) in the grid, the
    frames' dimension ``input_dim`` and how they are pooled."""

    def __init__(self, pipeline: Pipeline, labels: list[str], C: float, epoch: int, input_dim: int,
                 pooling: str = "mean"):
        self.pipeline, self.labels, self.C, self.epoch = pipeline, list(labels), C, epoch
        self.input_dim, self.pooling = input_dim, pooling

    def decision(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        """(N, num labels) one-vs-rest margins; a class the SVM never saw in training
        gets -inf. Two classes: LinearSVC's one margin d becomes (0, d)."""
        x = utterance_matrix(feats, self.input_dim, self.pooling)
        out = np.full((len(x), len(self.labels)), -np.inf)
        if not len(x):
            return out
        margins = self.pipeline.decision_function(x)
        classes = self.pipeline.classes_
        if margins.ndim == 1:
            margins = np.stack([np.zeros_like(margins), margins], axis=1)
        out[:, classes] = margins
        return out

    def posteriors(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        """(N, num labels) float32 softmax of :meth:`decision`: scores whose argmax is
        the SVM's decision, not calibrated probabilities."""
        decision = self.decision(feats)
        if not len(decision):
            return decision.astype(np.float32)
        return _softmax(decision).astype(np.float32)

    def predict(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        """Class indices into :attr:`labels`."""
        return self.decision(feats).argmax(axis=1)

    def save(self, path: Path) -> None:
        """Written beside ``path`` and renamed into place."""
        with atomic_path(path) as tmp:
            joblib.dump({"format": FORMAT, "pipeline": self.pipeline, "labels": self.labels, "C": self.C,
                         "epoch": self.epoch, "input_dim": self.input_dim, "pooling": self.pooling,
                         "sklearn": sklearn.__version__}, tmp)


def load_svm(path: Path | str) -> SvmClassifier:
    """The SVM of a run or bundle directory (its ``svm.joblib``) or of that file."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise SerError(f"{path}: no trained SVM (train with --model svm)")
    try:
        state = joblib.load(path)
    except Exception as err:  # a truncated or foreign file: say which
        raise SerError(f"{path}: cannot load the SVM: {err}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SerError(f"{path}: not an SVM model file of format {FORMAT}")
    if state["sklearn"] != sklearn.__version__:
        logging.warning("%s was written by scikit-learn %s, this is %s", path, state["sklearn"],
                        sklearn.__version__)
    # Files written before pooling was an option pooled by the mean.
    return SvmClassifier(state["pipeline"], state["labels"], state["C"], state["epoch"], state["input_dim"],
                         state.get("pooling", "mean"))


def _plot(history: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = [h["C"] for h in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(cs, [h["train_acc"] for h in history], marker="o", label="train accuracy")
    ax.plot(cs, [h["valid_uar"] for h in history], marker="o", label="valid UAR")
    best = max(history, key=lambda h: (h["valid_uar"], -h["C"]))
    ax.axvline(best["C"], color="grey", linestyle=":", label=f"selected (C={best['C']:g})")
    ax.set_xscale("log")
    ax.set_xlabel("C")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_svm(out_dir: Path, train: Utterances, valid: Utterances, labels: list[str],
              model_config: dict, seed: int, title: str = "") -> dict:
    """Trains one SVM per C of the grid on ``train`` (``ser.batching.Utterances``), selects
    C by UAR on ``valid``, and writes ``svm.joblib``, ``history.json`` and
    ``learning_curve.png`` to ``out_dir``. Returns the selected history entry:
    ``{"epoch": index of C (1-based), "C", "train_acc", "valid_uar", "valid_wa",
    "seconds", "converged"}``."""
    out_dir = Path(out_dir)
    config = check_config(model_config)
    if not len(train) or not len(valid):
        raise SerError(f"{out_dir}: empty training ({len(train)}) or validation ({len(valid)}) set")
    input_dim = np.asarray(train.feats[0]).shape[-1]
    x_train = utterance_matrix(train.feats, input_dim, config["pooling"])
    x_valid = utterance_matrix(valid.feats, input_dim, config["pooling"])
    y_train = np.asarray(train.labels, dtype=np.int64)
    if len(np.unique(y_train)) < 2:
        raise SerError(f"{out_dir}: the training set has one class only "
                       f"({labels[int(y_train[0])]}); an SVM needs two or more")
    out_dir.mkdir(parents=True, exist_ok=True)
    # The scaler is the same for every C: fitted once, on the training part only.
    scaler = StandardScaler().fit(x_train)
    z_train, z_valid = scaler.transform(x_train), scaler.transform(x_valid)
    history: list[dict] = []
    best, best_svm = None, None
    for epoch, c in enumerate(config["c_grid"], start=1):
        start = time.time()
        svm = LinearSVC(C=c, class_weight=config["class_weight"], max_iter=config["max_iter"],
                        dual="auto", random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            svm.fit(z_train, y_train)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        valid_scores = scores(valid.labels, svm.predict(z_valid), labels)
        entry = {"epoch": epoch, "C": c,
                 "train_acc": float(np.mean(svm.predict(z_train) == y_train)),
                 "valid_uar": valid_scores["uar"], "valid_wa": valid_scores["wa"],
                 "seconds": round(time.time() - start, 2), "converged": converged}
        history.append(entry)
        # Strictly better only: on a tie the earlier, smaller C stays.
        improved = best is None or entry["valid_uar"] > best["valid_uar"] or (
            entry["valid_uar"] == best["valid_uar"] and c < best["C"])
        if improved:
            best, best_svm = entry, svm
        logging.info("C %g train_acc %.3f valid_uar %.3f valid_wa %.3f%s%s (%.1fs)", c,
                     entry["train_acc"], entry["valid_uar"], entry["valid_wa"], " *" if improved else "",
                     "" if converged else f" (not converged in max_iter={config['max_iter']})",
                     entry["seconds"])
    pipeline = Pipeline([("scaler", scaler), ("svm", best_svm)])
    SvmClassifier(pipeline, labels, best["C"], best["epoch"], input_dim, config["pooling"]).save(out_dir / MODEL_FILE)
    atomic_write_text(out_dir / "history.json", json.dumps({"history": history, "selected": best}, indent=1) + "\n")
    _plot(history, out_dir / "learning_curve.png", title)
    logging.info("selected C %g: valid UAR %.3f", best["C"], best["valid_uar"])
    return best
