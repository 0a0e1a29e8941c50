"""What the attention models look at: per file (``ser explain``) and over a
cross-validation fold's test set (stage 6).

- **Time attention** s_T is the model's own weight of each step (``frame_stack``
  input frames; 48 ms with the defaults): it sums to 1 over the valid steps.
- **Feature attention** s_F weighs the encoder's H outputs of each step, not the input
  descriptors, so it cannot be read per descriptor directly. The weight of a
  descriptor group here is the share of the feature-attention branch's evidence that
  comes from that group's input columns: |x * d logit / d x| (gradient times input)
  of the predicted class's logit, with the time-attention branch held fixed, summed
  over the group's columns and over the *selected* steps (time weight at least the
  uniform 1 / L; every step for a model without time attention), then normalised to
  sum to 1 over the groups.
- **Descriptor groups** of ``lld93`` (:data:`DESCRIPTOR_GROUPS`) cover its 93 columns
  exactly once; other feature types are attributed per column.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ser.batching import bucketed_batches
from ser.errors import SerError
from ser.model import SERModel

# (group, pattern of openSMILE column names): conf/feats/lld93.conf's 93 descriptors.
DESCRIPTOR_GROUPS: tuple[tuple[str, str], ...] = (
    ("pitch", r"voiceProb|F0_sma|F0raw|F0env"),
    ("voice quality", r"logHNR|jitterLocal|jitterDDP|shimmerLocal|harmonicERMS|noiseERMS"),
    ("loudness", r"pcm_loudness(_de)?"),
    ("MFCC", r"mfcc(_de)?\[\d+\]"),
    ("mel", r"melspec\[\d+\]|logMelFreqBand\[\d+\]"),
    ("LPC/LSP", r"lpcCoeff\[\d+\]|lspFreq\[\d+\]"),
    ("ZCR", r"pcm_zcr"),
)
# Profiles over normalised utterance time are sampled on this many bins.
TIME_BINS = 20
METHOD = ("feature_groups: share of |x * d logit / d x| of the predicted class through the "
          "feature-attention branch (time branch held fixed), summed over each group's columns "
          "on the selected steps (time weight >= 1 / steps; all steps without time attention)")


def descriptor_groups(names: list[str]) -> dict[str, list[int]]:
    """Group -> column indices, for lld93's column names; every column in exactly one
    group (an error names the columns that are in none or in several)."""
    groups: dict[str, list[int]] = {name: [] for name, _ in DESCRIPTOR_GROUPS}
    unmatched, doubled = [], []
    for column, name in enumerate(names):
        hits = [group for group, pattern in DESCRIPTOR_GROUPS if re.fullmatch(pattern, name)]
        if not hits:
            unmatched.append(name)
        elif len(hits) > 1:
            doubled.append(f"{name} ({', '.join(hits)})")
        else:
            groups[hits[0]].append(column)
    if unmatched or doubled:
        raise SerError(f"descriptor groups: columns in no group: {unmatched}; in several: {doubled}")
    return groups


def feature_groups(feat: str, names: list[str]) -> dict[str, list[int]]:
    """lld93's descriptor groups; one group per column for other features."""
    if feat == "lld93":
        return descriptor_groups(names)
    return {name: [column] for column, name in enumerate(names)}


@dataclass
class Explanation:
    """One input's posteriors and attention, over the model's ``num_steps`` steps."""

    posteriors: np.ndarray           # (classes,)
    num_frames: int                  # input frames
    frame_stack: int                 # input frames per step
    time: np.ndarray | None          # (steps,) s_T, sums to 1; None without time attention
    selected: np.ndarray             # (steps,) bool: steps whose descriptors are weighed
    step_groups: np.ndarray | None   # (steps, groups) attribution per step (see module doc)
    groups: dict[str, float] = field(default_factory=dict)  # group -> share on selected steps

    @property
    def num_steps(self) -> int:
        return len(self.selected)


def _attribution(model: SERModel, out: dict, feats: torch.Tensor) -> torch.Tensor:
    """|x * grad| (B, T, D) of each input's predicted-class logit through the feature
    attention branch, the time branch's pooled vector held fixed."""
    pooled = [] if out["time_pooled"] is None else [out["time_pooled"].detach()]
    logits = model.head(torch.cat(pooled + [out["feature_pooled"]], dim=1))
    chosen = logits.gather(1, out["logits"].argmax(1, keepdim=True)).sum()  # inputs are independent
    grad = torch.autograd.grad(chosen, feats)[0]
    return (grad * feats).abs()


def explain_batch(model: SERModel, feats: list[np.ndarray],
                  groups: dict[str, list[int]]) -> list[Explanation]:
    """Explanations of normalised feature matrices (frames, dim), run as one padded batch."""
    if not model.has_attention:
        raise SerError(f"model variant {model.config['variant']!r} has no attention layer; "
                       "explain needs lstm_t, lstm_f, lstm_tf, or lstm_tf_at")
    model.eval()
    lengths = torch.tensor([f.shape[0] for f in feats])
    batch = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for row, f in enumerate(feats):
        batch[row, :f.shape[0]] = torch.from_numpy(f)
    use_grad = model.feature_attention is not None
    batch.requires_grad_(use_grad)
    with torch.set_grad_enabled(use_grad):
        out = model.attention(batch, lengths)
        contrib = _attribution(model, out, batch) if use_grad else None
    k = model.frame_stack
    posteriors = torch.softmax(out["logits"], dim=1).detach().numpy()
    valid = out["valid"].numpy()
    explanations = []
    for row in range(len(feats)):
        steps = int(valid[row].sum())
        time = None if out["time"] is None else out["time"][row, :steps].detach().numpy()
        selected = np.ones(steps, bool) if time is None else time >= 1.0 / steps
        step_groups, shares = None, {}
        if contrib is not None:
            frames = contrib[row, :int(lengths[row])].detach().numpy()
            padded = np.zeros((steps * k, frames.shape[1]), frames.dtype)
            padded[:frames.shape[0]] = frames
            per_step = padded.reshape(steps, k, -1).sum(1)  # (steps, dim)
            step_groups = np.stack([per_step[:, cols].sum(1) for cols in groups.values()], axis=1)
            totals = step_groups[selected].sum(0)
            totals = totals / max(float(totals.sum()), 1e-30)
            shares = {name: float(v) for name, v in zip(groups, totals, strict=True)}
        explanations.append(Explanation(posteriors[row], int(lengths[row]), k, time, selected,
                                        step_groups, shares))
    return explanations


def explain_utterances(model: SERModel, feats: list[np.ndarray], groups: dict[str, list[int]],
                       batch_size: int = 32) -> list[Explanation]:
    """:func:`explain_batch` over many inputs, in batches of similar length."""
    results: list[Explanation | None] = [None] * len(feats)
    for indices in bucketed_batches([f.shape[0] for f in feats], batch_size, None):
        for i, exp in zip(indices, explain_batch(model, [feats[i] for i in indices], groups), strict=True):
            results[i] = exp
    return results


def time_profile(weights: np.ndarray, bins: int = TIME_BINS) -> np.ndarray:
    """Time weights of L steps as a density over normalised time [0, 1] on ``bins``
    bins: the weight mass falling in each bin times ``bins``, so uniform attention is 1."""
    edges = np.linspace(0.0, 1.0, len(weights) + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    mass = np.diff(np.interp(np.linspace(0.0, 1.0, bins + 1), edges, cumulative))
    return mass * bins


def explanation_json(exp: Explanation, uid: str, labels: list[str], frame_shift: float,
                     group_columns: dict[str, list[str]] | None) -> dict:
    """What ``ser explain`` writes beside each picture."""
    step = exp.frame_stack * frame_shift
    data = {
        "id": uid, "emotion": labels[int(exp.posteriors.argmax())],
        "posteriors": {label: float(p) for label, p in zip(labels, exp.posteriors, strict=True)},
        "num_frames": exp.num_frames, "frame_shift": frame_shift, "frame_stack": exp.frame_stack,
        "step_seconds": step, "num_steps": exp.num_steps,
        "time_attention": None if exp.time is None else [float(w) for w in exp.time],
        "step_start": [round(i * step, 6) for i in range(exp.num_steps)],
        "selected": [bool(s) for s in exp.selected],
        "feature_groups": exp.groups or None,
        "feature_groups_per_step": None if exp.step_groups is None else
        [{name: float(v) for name, v in zip(exp.groups, row, strict=True)} for row in exp.step_groups],
        "group_columns": group_columns,
        "method": METHOD if exp.groups else None,
    }
    return data


def plot_explanation(exp: Explanation, samples: np.ndarray, sample_rate: int, labels: list[str],
                     frame_shift: float, title: str, path: Path) -> None:
    """Spectrogram with the time-attention weights on the same time axis, the
    posteriors, and the descriptor groups' weights on the selected steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8, 5.6), dpi=80)
    grid = fig.add_gridspec(3, 2, height_ratios=[1.3, 0.9, 1.3], hspace=0.75, wspace=0.45)
    spec = fig.add_subplot(grid[0, :])
    spec.specgram(samples, NFFT=512, Fs=sample_rate, noverlap=384, cmap="magma")
    spec.set_ylabel("Hz")
    spec.set_title(title, fontsize=10)
    att = fig.add_subplot(grid[1, :], sharex=spec)
    step = exp.frame_stack * frame_shift
    starts = np.arange(exp.num_steps) * step
    if exp.time is not None:
        att.fill_between(np.append(starts, exp.num_steps * step), np.append(exp.time, exp.time[-1]),
                         step="post", color="tab:blue", alpha=0.7, label="time attention")
        att.axhline(1.0 / exp.num_steps, color="gray", lw=0.8, ls="--", label="uniform")
        att.set_ylabel("weight")
        att.legend(fontsize=7, loc="upper right")
    else:
        att.text(0.5, 0.5, "no time attention in this model", ha="center", va="center",
                 transform=att.transAxes)
    att.set_xlabel("time (s)")
    att.set_xlim(0, max(len(samples) / sample_rate, exp.num_steps * step))
    post = fig.add_subplot(grid[2, 0])
    best = int(exp.posteriors.argmax())
    post.barh(labels, exp.posteriors, color=["tab:red" if i == best else "tab:gray" for i in range(len(labels))])
    post.set_xlim(0, 1)
    post.invert_yaxis()
    post.set_title(f"posteriors: {labels[best]} {exp.posteriors[best]:.2f}", fontsize=9)
    post.tick_params(labelsize=8)
    feats = fig.add_subplot(grid[2, 1])
    if exp.groups and len(exp.groups) <= 12:
        feats.barh(list(exp.groups), list(exp.groups.values()), color="tab:green")
        feats.invert_yaxis()
        feats.set_xlim(0, 1)
        feats.set_title("feature attention by descriptor group\n(selected steps)", fontsize=9)
    elif exp.groups:
        feats.bar(np.arange(len(exp.groups)), list(exp.groups.values()), color="tab:green")
        feats.set_title("feature attention by input column\n(selected steps)", fontsize=9)
    else:
        feats.text(0.5, 0.5, "no feature attention\nin this model", ha="center", va="center",
                   transform=feats.transAxes)
        feats.set_axis_off()
    feats.tick_params(labelsize=8)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def summarize_fold(explanations: list[Explanation], refs: list[int], labels: list[str],
                   group_names: list[str]) -> dict:
    """Mean time profile (over normalised utterance time) and mean descriptor-group
    shares per reference emotion and over all utterances."""
    rows = {}
    for name, members in [(label, [i for i, r in enumerate(refs) if r == c]) for c, label in enumerate(labels)] \
            + [("all", list(range(len(refs))))]:
        entries = [explanations[i] for i in members]
        row: dict = {"n": len(entries), "time": None, "groups": None}
        if entries and entries[0].time is not None:
            row["time"] = np.mean([time_profile(e.time) for e in entries], axis=0).tolist()
        if entries and entries[0].groups:
            row["groups"] = dict(zip(group_names, np.mean([[e.groups[g] for g in group_names] for e in entries],
                                                           axis=0).tolist(), strict=True))
        rows[name] = row
    return {"time_bins": TIME_BINS, "groups": group_names, "emotions": rows}


def write_fold_attention(summary: dict, run_dir: Path, title: str) -> list[Path]:
    """attention.png, attention_time.tsv, attention_features.tsv, attention.json in the run dir."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, written = summary["emotions"], []
    has_time = rows["all"]["time"] is not None
    has_groups = rows["all"]["groups"] is not None
    centres = (np.arange(summary["time_bins"]) + 0.5) / summary["time_bins"]
    if has_time:
        with open(run_dir / "attention_time.tsv", "w") as f:
            f.write("emotion\tn\t" + "\t".join(f"t{c:.3f}" for c in centres) + "\n")
            for name, row in rows.items():
                values = row["time"] or [float("nan")] * len(centres)
                f.write(f"{name}\t{row['n']}\t" + "\t".join(f"{v:.4f}" for v in values) + "\n")
        written.append(run_dir / "attention_time.tsv")
    if has_groups:
        with open(run_dir / "attention_features.tsv", "w") as f:
            f.write("emotion\tn\t" + "\t".join(summary["groups"]) + "\n")
            for name, row in rows.items():
                values = [row["groups"][g] for g in summary["groups"]] if row["groups"] else \
                    [float("nan")] * len(summary["groups"])
                f.write(f"{name}\t{row['n']}\t" + "\t".join(f"{v:.4f}" for v in values) + "\n")
        written.append(run_dir / "attention_features.tsv")
    (run_dir / "attention.json").write_text(json.dumps(summary, indent=1) + "\n")
    written.append(run_dir / "attention.json")

    panels = int(has_time) + int(has_groups)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8), dpi=80, squeeze=False)
    axes = list(axes[0])
    emotions = [name for name, row in rows.items() if name != "all" and row["n"]]
    if has_time:
        ax = axes.pop(0)
        for name in emotions:
            ax.plot(centres, rows[name]["time"], label=f"{name} ({rows[name]['n']})")
        ax.plot(centres, rows["all"]["time"], color="black", lw=2, label="all")
        ax.axhline(1.0, color="gray", ls="--", lw=0.8)
        ax.set_xlabel("normalised utterance time")
        ax.set_ylabel("time attention (1 = uniform)")
        ax.set_title("mean time attention per emotion", fontsize=10)
        ax.legend(fontsize=7)
    if has_groups:
        ax = axes.pop(0)
        names = summary["groups"]
        width = 0.8 / max(len(emotions), 1)
        for j, name in enumerate(emotions):
            ax.bar(np.arange(len(names)) + j * width, [rows[name]["groups"][g] for g in names], width, label=name)
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
        ax.set_xticklabels(names if len(names) <= 12 else [], rotation=30, fontsize=8)
        ax.set_ylabel("share of feature attention")
        ax.set_title("feature attention per descriptor group", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(run_dir / "attention.png")
    plt.close(fig)
    written.append(run_dir / "attention.png")
    return written
