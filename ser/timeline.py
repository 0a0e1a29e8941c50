"""Emotion over time: the picture of ``ser infer --segments --plot DIR``, and file
names for per-input outputs."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from ser.inference import Segment


def output_name(uid: str) -> str:
    """A file name (without suffix) for an input id: paths and odd characters become
    ``_``, so ``recordings/a b.wav`` -> ``recordings_a_b.wav``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", uid).strip("_.") or "input"


def output_names(items: list[tuple[str, str]]) -> list[str]:
    """One file name per (id, path) input, distinct for distinct inputs: ``output_name``
    of the id where no other input of the call gives the same name, else that name with
    a short hash of the id and path (``x/y_z.wav`` and ``x_y/z.wav`` both flatten to
    ``x_y_z.wav``: ``x_y_z.wav-<hash>`` each). The same input given twice keeps one name."""
    def hashed(name: str, item: tuple[str, str]) -> str:
        key = "\0".join(item).encode("utf-8", "surrogateescape")
        return f"{name}-{hashlib.sha1(key).hexdigest()[:8]}"

    items = [tuple(item) for item in items]
    plain = [output_name(uid) for uid, _ in items]
    inputs_per_name: dict[str, set] = {}
    for name, item in zip(plain, items):
        inputs_per_name.setdefault(name, set()).add(item)
    names = [name if len(inputs_per_name[name]) == 1 else hashed(name, item) for name, item in zip(plain, items)]
    # A hashed name could still meet a plain one spelt the same: number the later input.
    owner: dict[str, tuple] = {}
    unique = []
    for name, item in zip(names, items):
        candidate, n = name, 1
        while owner.setdefault(candidate, item) != item:
            n += 1
            candidate = f"{name}-{n}"
        unique.append(candidate)
    return unique


def plot_timeline(segments: list[Segment], labels: list[str], title: str, path: Path) -> None:
    """Each label's posterior at the window centres, over coloured bands of the
    predicted emotion (each band from the midpoint to its neighbours' centres)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
    centres = np.array([(s.start + s.end) / 2 for s in segments])
    edges = np.concatenate([[segments[0].start], (centres[1:] + centres[:-1]) / 2, [segments[-1].end]])
    fig, ax = plt.subplots(figsize=(8, 3), dpi=80)
    for i, seg in enumerate(segments):
        ax.axvspan(edges[i], edges[i + 1], color=colours[seg.label], alpha=0.25, lw=0)
    for label in labels:
        ax.plot(centres, [s.posteriors[label] for s in segments], color=colours[label], marker=".", label=label)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("posterior")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title="band: predicted",
              title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
