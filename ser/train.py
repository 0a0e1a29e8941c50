"""Training one fold: bucketed batches, Adam, model selection on the validation
split only, a checkpoint every epoch, and resumption from the last one.

The same settings and seed give the same model on the CPU, also when a killed
run is resumed: the batch order of an epoch depends only on (seed, epoch), and
the checkpoint holds the model, optimiser and random-generator states.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import kaldiio
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ser.cmvn import Normalizer
from ser.datadir import DataDir, read_table
from ser.errors import SerError
from ser.metrics import scores
from ser.model import build_model


@dataclass
class TrainConfig:
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 60
    patience: int = 15
    grad_clip: float = 5.0
    num_threads: int = 1
    seed: int = 1
    device: str = "cpu"

    @classmethod
    def from_dict(cls, options: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise SerError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(known)}")
        config = cls(**options)
        if config.optimizer != "adam":
            raise SerError(f"optimizer {config.optimizer!r} is not supported (adam)")
        return config


@dataclass
class Utterances:
    """Normalised features, kept in memory: the corpora are small."""

    ids: list[str]
    feats: list[np.ndarray]
    labels: list[int]

    @classmethod
    def load(cls, utts: list[str], feats_scp: dict[str, str], data: DataDir,
             normalizer: Normalizer) -> "Utterances":
        ids = [u for u in utts if u in feats_scp]  # failed extractions are left out
        return cls(ids, [normalizer(kaldiio.load_mat(feats_scp[u]), data.utt2spk[u]) for u in ids],
                   [data.label(u) for u in ids])

    def __len__(self) -> int:
        return len(self.ids)


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of similar length (less padding); shuffled order when ``rng`` is given."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def collate(data: Utterances, indices: list[int], device: str) -> tuple[torch.Tensor, ...]:
    lengths = torch.tensor([data.feats[i].shape[0] for i in indices], dtype=torch.int64)
    batch = torch.zeros(len(indices), int(lengths.max()), data.feats[indices[0]].shape[1])
    for row, i in enumerate(indices):
        batch[row, :lengths[row]] = torch.from_numpy(data.feats[i])
    labels = torch.tensor([data.labels[i] for i in indices], dtype=torch.int64)
    return batch.to(device), lengths.to(device), labels.to(device)


@torch.no_grad()
def predict(model: nn.Module, data: Utterances, batch_size: int, device: str) -> np.ndarray:
    """Posteriors (utterances, classes) in the order of ``data``."""
    model.eval()
    posteriors = np.zeros((len(data), model.config["num_classes"]), dtype=np.float32)
    for indices in bucketed_batches([f.shape[0] for f in data.feats], batch_size, None):
        feats, lengths, _ = collate(data, indices, device)
        posteriors[indices] = torch.softmax(model(feats, lengths), dim=-1).cpu().numpy()
    return posteriors


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def plot_learning_curve(history: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_uar) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["valid_loss"] for h in history], label="valid")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_uar.plot(epochs, [h["train_acc"] for h in history], label="train accuracy")
    ax_uar.plot(epochs, [h["valid_uar"] for h in history], label="valid UAR")
    best = max(history, key=lambda h: h["valid_uar"])
    ax_uar.axvline(best["epoch"], color="grey", linestyle=":", label=f"selected (epoch {best['epoch']})")
    ax_uar.set_xlabel("epoch")
    ax_uar.set_ylim(0, 1)
    ax_uar.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_fold(out_dir: Path, train: Utterances, valid: Utterances, labels: list[str],
               model_config: dict, config: TrainConfig, title: str = "") -> dict:
    """Trains (or resumes) in ``out_dir``; writes ``best.pt``, ``history.json`` and
    ``learning_curve.png``; returns the history entry of the selected epoch."""
    if not len(train) or not len(valid):
        raise SerError(f"{out_dir}: empty training ({len(train)}) or validation ({len(valid)}) set")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    model = build_model(input_dim=train.feats[0].shape[1], num_classes=len(labels),
                        **model_config).to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict] = []
    best: dict | None = None
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=config.device, weights_only=False)
        if state["train_config"] != asdict(config) or state["model_config"] != model.config:
            raise SerError(f"{checkpoint_path}: written with other settings; remove {out_dir} "
                           "to train again with the new ones")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        history, best = state["history"], state["best"]
        logging.info("resuming from %s after epoch %d", checkpoint_path, len(history))

    lengths = [f.shape[0] for f in train.feats]
    for epoch in range(len(history) + 1, config.epochs + 1):
        if best is not None and epoch - best["epoch"] > config.patience:
            logging.info("no better validation UAR for %d epochs: stopping", config.patience)
            break
        start = time.time()
        model.train()
        total_loss, correct = 0.0, 0
        batches = bucketed_batches(lengths, config.batch_size, random.Random(config.seed * 100003 + epoch))
        for indices in tqdm(batches, desc=f"epoch {epoch}", leave=False, mininterval=10):
            feats, lens, targets = collate(train, indices, config.device)
            logits = model(feats, lens)
            loss = loss_fn(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total_loss += loss.item() * len(indices)
            correct += int((logits.argmax(-1) == targets).sum())
        posteriors = predict(model, valid, config.batch_size, config.device)
        valid_loss = float(-np.mean(np.log(posteriors[np.arange(len(valid)), valid.labels] + 1e-12)))
        valid_scores = scores(valid.labels, posteriors.argmax(-1), labels)
        entry = {"epoch": epoch, "train_loss": total_loss / len(train), "train_acc": correct / len(train),
                 "valid_loss": valid_loss, "valid_uar": valid_scores["uar"], "valid_wa": valid_scores["wa"],
                 "seconds": round(time.time() - start, 2)}
        history.append(entry)
        improved = best is None or (entry["valid_uar"], -entry["valid_loss"]) > (best["valid_uar"], -best["valid_loss"])
        if improved:
            best = entry
            _save_atomic({"model_config": model.config, "model": model.state_dict(), "labels": labels,
                          "epoch": epoch}, out_dir / "best.pt")
        logging.info("epoch %d/%d train_loss %.4f train_acc %.3f valid_loss %.4f valid_uar %.3f%s (%.1fs)",
                     epoch, config.epochs, entry["train_loss"], entry["train_acc"], valid_loss,
                     entry["valid_uar"], " *" if improved else "", entry["seconds"])
        _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "torch_rng": torch.get_rng_state(), "history": history, "best": best,
                      "train_config": asdict(config), "model_config": model.config}, checkpoint_path)
    (out_dir / "history.json").write_text(json.dumps({"history": history, "selected": best}, indent=1) + "\n")
    plot_learning_curve(history, out_dir / "learning_curve.png", title)
    return best


def load_fold_data(data: DataDir, feat_dir: Path, utts: list[str], normalizer: Normalizer) -> Utterances:
    return Utterances.load(utts, read_table(feat_dir / "feats.scp"), data, normalizer)
