"""The one metric module: per-fold scores, summaries over folds and seeds, and
the confusion-matrix plot.

UAR (unweighted average recall, the paper's metric) is the mean of per-class
recalls; WA (weighted accuracy) is plain accuracy; macro-F1 averages per-class F1.
Classes absent from the references are left out of UAR and macro-F1. The
arithmetic is scikit-learn's (``sklearn.metrics``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn import metrics as skm


def _class_indices(values: Sequence[int], num_classes: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.size and (not np.issubdtype(values.dtype, np.integer)
                        or values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"{what} must be class indices 0..{num_classes - 1}")
    return values.astype(np.int64)


def confusion_matrix(refs: Sequence[int], hyps: Sequence[int], num_classes: int) -> np.ndarray:
    """Rows are references, columns hypotheses."""
    # sklearn would silently drop indices outside ``labels``: refuse them instead.
    refs = _class_indices(refs, num_classes, "references")
    hyps = _class_indices(hyps, num_classes, "hypotheses")
    with warnings.catch_warnings():  # the labels are given: a single one is no problem
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return skm.confusion_matrix(refs, hyps, labels=np.arange(num_classes)).astype(np.int64)


def scores(refs: Sequence[int], hyps: Sequence[int], labels: Sequence[str]) -> dict:
    """UAR, WA, macro-F1, per-class recall and the confusion matrix, as plain types."""
    if len(refs) != len(hyps) or not len(refs):
        raise ValueError(f"need equal, non-empty reference and hypothesis lists "
                         f"({len(refs)} vs {len(hyps)})")
    matrix = confusion_matrix(refs, hyps, len(labels))
    refs, hyps = np.asarray(refs, dtype=np.int64), np.asarray(hyps, dtype=np.int64)
    # Scored over the classes present in the references; a class never predicted
    # has precision 0 (zero_division=0), as the hand-written version had.
    present = np.flatnonzero(matrix.sum(axis=1) > 0)
    recall = skm.recall_score(refs, hyps, labels=present, average=None, zero_division=0)
    return {
        "uar": float(skm.recall_score(refs, hyps, labels=present, average="macro", zero_division=0)),
        "wa": float(skm.accuracy_score(refs, hyps)),
        "macro_f1": float(skm.f1_score(refs, hyps, labels=present, average="macro", zero_division=0)),
        "per_class_recall": {labels[k]: float(r) for k, r in zip(present, recall)},
        "num_utts": int(matrix.sum()),
        "labels": list(labels),
        "confusion": matrix.tolist(),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def confusion_text(result: dict) -> str:
    labels, matrix = result["labels"], np.asarray(result["confusion"])
    width = max(6, *(len(lab) for lab in labels))
    lines = ["ref \\ hyp".ljust(width) + " " + " ".join(lab[:width].rjust(width) for lab in labels)]
    for lab, row in zip(labels, matrix):
        lines.append(lab.ljust(width) + " " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def plot_confusion(result: dict, path: Path | str, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = result["labels"], np.asarray(result["confusion"], dtype=np.float64)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.8 * len(labels)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title or f"UAR {result['uar']:.1%}  WA {result['wa']:.1%}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Paired t-test of ``a - b`` over matched runs (folds × seeds). ``p_less`` is the
    left-tailed p-value (H1: a < b), the paper's test of a baseline against the
    proposed system; ``p_two_sided`` is the usual one. ``ci95`` is the 95 % confidence
    interval of the mean difference: with a few folds it shows how large a difference
    the folds can tell from none."""
    from scipy.stats import ttest_rel

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need at least 2 matched pairs, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if np.allclose(diff, diff[0]):  # t is undefined for constant differences
        return {"n": len(diff), "mean_diff": float(diff.mean()), "t": float("nan"),
                "p_less": float("nan"), "p_two_sided": float("nan"),
                "ci95": (float(diff.mean()), float(diff.mean()))}
    two_sided = ttest_rel(a, b)
    low, high = two_sided.confidence_interval(0.95)
    return {"n": len(diff), "mean_diff": float(diff.mean()),
            "t": float(two_sided.statistic),
            "p_less": float(ttest_rel(a, b, alternative="less").pvalue),
            "p_two_sided": float(two_sided.pvalue),
            "ci95": (float(low), float(high))}
