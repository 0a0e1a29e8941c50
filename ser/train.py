"""Training one fold: length-grouped batches drawn afresh every epoch, Adam(W)
with warm-up and cosine decay, optional SpecAugment-style masking and label
smoothing, model selection on the validation split only, a checkpoint every
epoch, and resumption from the last one.

The same settings and seed give the same model on the CPU, also when a killed
run is resumed: the batches and masks of an epoch depend only on (seed, epoch),
and the checkpoint holds the model, optimiser, scheduler and random-generator
states. Every training option's default is in conf/train.yaml, and only there.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import kaldiio
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ser.atomic import atomic_path, atomic_write_text
from ser.batching import Utterances, bucketed_batches, collate, pooled_batches
from ser.cmvn import Normalizer
from ser.config import CONF_ROOT, load_yaml
from ser.datadir import DataDir, read_table
from ser.errors import SerError
from ser.metrics import scores
from ser.model import build_model
from ser.speed import original_of

DEFAULTS_FILE = CONF_ROOT / "train.yaml"
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("constant", "cosine")
SELECTIONS = ("uar", "loss", "average")
# Options removed on 2026-12-06 (after commit b2a971e), which the tuning log (local/tune/LOG.md)
# did not adopt: random crops, a share of the speed copies per epoch, mixup, a speaker
# adversary and class weights; git history keeps them. Records and checkpoints written
# before hold them, and at these values, where each was a no-op (not even a random draw),
# they describe the same training as a record without them.
RETIRED_OPTIONS = {"crop_share": 1.0, "copy_share": 1.0, "mixup_alpha": 0.0, "speaker_adversary": 0.0,
                   "class_weight": "none"}


def options_read(model_config: dict, train_config: dict) -> dict:
    """The training options a model reads, which are what its runs are told apart by: the svm
    (ser/svm.py) reads only the seed; the recurrent models all of them."""
    if model_config.get("variant") == "svm":
        return {k: v for k, v in train_config.items() if k == "seed"}
    return train_config


def without_retired_options(train_config: dict) -> dict:
    """A recorded training config without the retired options it holds at their no-op
    values; one at another value stays, so that the record matches no current one."""
    return {k: v for k, v in train_config.items() if k not in RETIRED_OPTIONS or v != RETIRED_OPTIONS[k]}


@dataclass
class TrainConfig:
    """Documented in conf/train.yaml, which holds every default (no defaults here)."""

    optimizer: str
    lr: float
    weight_decay: float
    scheduler: str
    warmup_epochs: float
    batch_size: int
    batch_pool: int
    epochs: int
    patience: int
    select: str
    average_epochs: int
    grad_clip: float
    label_smoothing: float
    time_masks: int
    time_mask_width: int
    feat_masks: int
    feat_mask_width: int
    num_threads: int
    seed: int
    device: str

    @classmethod
    def from_dict(cls, options: dict, defaults: Path | str = DEFAULTS_FILE) -> "TrainConfig":
        """``options`` over the defaults of conf/train.yaml (or ``defaults``)."""
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise SerError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(known)}")
        base = load_yaml(defaults)
        missing = known - set(base) - set(options)
        if missing:
            raise SerError(f"{defaults}: no default for training option(s) {sorted(missing)}")
        config = cls(**{k: v for k, v in {**base, **options}.items() if k in known})
        for field in fields(cls):  # a value of the wrong type would fail only inside the tasks
            value, kind = getattr(config, field.name), field.type
            ok = (isinstance(value, str) if kind == "str" else
                  not isinstance(value, bool) and isinstance(value, int if kind == "int" else (int, float)))
            if not ok:
                raise SerError(f"training option {field.name}={value!r} is not {'an' if kind == 'int' else 'a'} {kind}")
        if not config.lr > 0:
            raise SerError(f"lr must be positive, got {config.lr}")
        for name in ("weight_decay", "warmup_epochs", "batch_pool", "grad_clip", "time_masks", "time_mask_width",
                     "feat_masks", "feat_mask_width"):
            if getattr(config, name) < 0:
                raise SerError(f"{name} must be >= 0, got {getattr(config, name)}")
        if config.patience < 1 or config.num_threads < 1:
            raise SerError(f"patience and num_threads must be positive, got {config.patience}, {config.num_threads}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("select", SELECTIONS)):
            if getattr(config, name) not in allowed:
                raise SerError(f"{name} {getattr(config, name)!r} is not supported ({', '.join(allowed)})")
        if config.batch_size < 1 or config.epochs < 1:
            raise SerError(f"batch_size and epochs must be positive, got {config.batch_size}, {config.epochs}")
        if config.average_epochs < 1:
            raise SerError(f"average_epochs must be positive, got {config.average_epochs}")
        if not 0.0 <= config.label_smoothing < 1.0:
            raise SerError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
        return config


def mask_batch(feats: torch.Tensor, lengths: torch.Tensor, config: TrainConfig,
               generator: torch.Generator) -> torch.Tensor:
    """SpecAugment-style masking in place: per utterance, ``time_masks`` runs of up to
    ``time_mask_width`` frames (at most a fifth of its length each) and ``feat_masks``
    runs of up to ``feat_mask_width`` dimensions set to 0, the mean after normalisation."""
    batch, _, dim = feats.shape
    for row in range(batch):
        length = int(lengths[row])
        for _ in range(config.time_masks):
            width = int(torch.randint(0, min(config.time_mask_width, length // 5) + 1, (1,), generator=generator))
            start = int(torch.randint(0, length - width + 1, (1,), generator=generator))
            feats[row, start:start + width] = 0.0
        for _ in range(config.feat_masks):
            width = int(torch.randint(0, min(config.feat_mask_width, dim) + 1, (1,), generator=generator))
            start = int(torch.randint(0, dim - width + 1, (1,), generator=generator))
            feats[row, :length, start:start + width] = 0.0
    return feats


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
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def plot_learning_curve(history: list[dict], path: Path, title: str, selected: dict | None = None) -> None:
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
    best = selected or max(history, key=lambda h: h["valid_uar"])
    label = (f"average of epochs {best['averaged'][0]}-{best['averaged'][-1]}" if "averaged" in best
             else f"selected (epoch {best['epoch']})")
    ax_uar.axvline(best["epoch"], color="grey", linestyle=":", label=label)
    ax_uar.set_xlabel("epoch")
    ax_uar.set_ylim(0, 1)
    ax_uar.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def lr_factor(step: int, total_steps: int, warmup_steps: int, scheduler: str) -> float:
    """Multiplier of the peak lr at optimiser step ``step`` (0-based): linear warm-up,
    then constant or a cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if scheduler == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _evaluate(model: nn.Module, valid: Utterances, labels: list[str], config: TrainConfig) -> dict:
    posteriors = predict(model, valid, config.batch_size, config.device)
    valid_loss = float(-np.mean(np.log(posteriors[np.arange(len(valid)), valid.labels] + 1e-12)))
    valid_scores = scores(valid.labels, posteriors.argmax(-1), labels)
    return {"valid_loss": valid_loss, "valid_uar": valid_scores["uar"], "valid_wa": valid_scores["wa"]}


def _better(entry: dict, best: dict | None, select: str) -> bool:
    if best is None:
        return True
    if select == "loss":
        return (-entry["valid_loss"], entry["valid_uar"]) > (-best["valid_loss"], best["valid_uar"])
    return (entry["valid_uar"], -entry["valid_loss"]) > (best["valid_uar"], -best["valid_loss"])


def _average(states: list[dict]) -> dict:
    return {name: sum(state[name].double() for state in states).div(len(states)).to(states[0][name].dtype)
            if states[0][name].is_floating_point() else states[-1][name] for name in states[0]}


def train_fold(out_dir: Path, train: Utterances, valid: Utterances, labels: list[str],
               model_config: dict, config: TrainConfig, title: str = "") -> dict:
    """Trains (or resumes) in ``out_dir``; writes ``best.pt``, ``history.json`` and
    ``learning_curve.png``; returns the history entry of the selected model.

    ``config.select``: ``uar`` keeps the epoch of the best validation UAR (ties: lower
    loss), ``loss`` the one of the lowest validation loss; both stop early after
    ``patience`` epochs without a better one. ``average`` runs every epoch and keeps
    the average of the weights of the last ``average_epochs`` epochs (of all, if fewer)."""
    if not len(train) or not len(valid):
        raise SerError(f"{out_dir}: empty training ({len(train)}) or validation ({len(valid)}) set")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    model = build_model(input_dim=train.feats[0].shape[1], num_classes=len(labels),
                        **model_config).to(config.device)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lengths = [f.shape[0] for f in train.feats]
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = min(total_steps, round(config.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, config.scheduler))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history: list[dict] = []
    best: dict | None = None
    recent: list[dict] = []  # weights of the last average_epochs epochs (select=average)
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=config.device, weights_only=False)
        if (without_retired_options(state["train_config"]) != asdict(config)
                or state["model_config"] != model.config):
            raise SerError(f"{checkpoint_path}: written with other settings; remove {out_dir} "
                           "to train again with the new ones")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history, best, recent = state["history"], state["best"], state["recent"]
        logging.info("resuming from %s after epoch %d", checkpoint_path, len(history))

    for epoch in range(len(history) + 1, config.epochs + 1):
        if config.select != "average" and best is not None and epoch - best["epoch"] > config.patience:
            logging.info("no better validation %s for %d epochs: stopping", config.select, config.patience)
            break
        start = time.time()
        model.train()
        total_loss, correct = 0.0, 0
        epoch_seed = config.seed * 100003 + epoch
        if config.batch_pool > 0:
            batches = pooled_batches(lengths, config.batch_size, config.batch_pool, random.Random(epoch_seed))
        else:
            batches = bucketed_batches(lengths, config.batch_size, random.Random(epoch_seed))
        mask_rng = torch.Generator().manual_seed(epoch_seed)
        for indices in tqdm(batches, desc=f"epoch {epoch}", leave=False, mininterval=10):
            feats, lens, targets = collate(train, indices, "cpu")
            if config.time_masks or config.feat_masks:
                mask_batch(feats, lens, config, mask_rng)
            feats, lens, targets = feats.to(config.device), lens.to(config.device), targets.to(config.device)
            logits = model(feats, lens)
            loss = loss_fn(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(indices)
            correct += int((logits.argmax(-1) == targets).sum())
        entry = {"epoch": epoch, "train_loss": total_loss / len(train), "train_acc": correct / len(train),
                 **_evaluate(model, valid, labels, config), "lr": optimizer.param_groups[0]["lr"],
                 "seconds": round(time.time() - start, 2)}
        history.append(entry)
        improved = config.select != "average" and _better(entry, best, config.select)
        if improved:
            best = entry
            _save_atomic({"model_config": model.config, "model": model.state_dict(), "labels": labels,
                          "epoch": epoch}, out_dir / "best.pt")
        if config.select == "average" and epoch > config.epochs - config.average_epochs:  # all, if fewer
            recent.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        logging.info("epoch %d/%d train_loss %.4f train_acc %.3f valid_loss %.4f valid_uar %.3f%s (%.1fs)",
                     epoch, config.epochs, entry["train_loss"], entry["train_acc"], entry["valid_loss"],
                     entry["valid_uar"], " *" if improved else "", entry["seconds"])
        _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                      "history": history, "best": best, "recent": recent,
                      "train_config": asdict(config), "model_config": model.config}, checkpoint_path)
    if config.select == "average":
        model.load_state_dict(_average(recent))
        first = config.epochs - len(recent) + 1
        best = {"epoch": config.epochs, "averaged": [first, config.epochs],
                **_evaluate(model, valid, labels, config)}
        _save_atomic({"model_config": model.config, "model": model.state_dict(), "labels": labels,
                      "epoch": config.epochs, "averaged": best["averaged"]}, out_dir / "best.pt")
        logging.info("average of epochs %d-%d: valid_loss %.4f valid_uar %.3f", first, config.epochs,
                     best["valid_loss"], best["valid_uar"])
    atomic_write_text(out_dir / "history.json", json.dumps({"history": history, "selected": best}, indent=1) + "\n")
    plot_learning_curve(history, out_dir / "learning_curve.png", title, best)
    return best


def load_fold_data(data: DataDir, feat_dir: Path, utts: list[str], normalizer: Normalizer,
                   perturbed_scp: Path | None = None) -> Utterances:
    """The features of ``utts`` (those extracted), normalised. With ``perturbed_scp``
    (a feats.scp of speed-perturbed copies keyed ``sp0.9-<utt>``, ``sp1.1-<utt>``), the
    copies of ``utts`` are appended: pass it for a fold's training list only."""
    feats_scp = read_table(feat_dir / "feats.scp")
    ids = [u for u in utts if u in feats_scp]  # failed extractions are left out
    utterances = Utterances(ids, [normalizer(kaldiio.load_mat(feats_scp[u]), data.utt2spk[u]) for u in ids],
                            [data.label(u) for u in ids])
    if perturbed_scp is not None:
        utterances = utterances + load_perturbed(data, perturbed_scp, utterances.ids, normalizer)
    return utterances


def load_perturbed(data: DataDir, perturbed_scp: Path, utts: list[str], normalizer: Normalizer) -> Utterances:
    """The speed-perturbed copies (``sp<factor>-<utt>``, Kaldi's naming) of ``utts`` only,
    never of other utterances in the scp, each labelled and normalised as its original
    (with its speaker's statistics); in the order of ``utts``, then of the scp."""
    wanted = set(utts)
    copies: dict[str, list[tuple[str, str]]] = {}
    for key, ark in read_table(perturbed_scp).items():
        original = (original_of(key) or (None, None))[1]
        if original in wanted:
            copies.setdefault(original, []).append((key, ark))
    if utts and not copies:
        raise SerError(f"{perturbed_scp}: no speed-perturbed copy (sp<factor>-<utt>) "
                       f"of any of the {len(utts)} utterances asked for")
    ids, feats, labels = [], [], []
    for utt in utts:
        for key, ark in copies.get(utt, []):
            ids.append(key)
            feats.append(normalizer(kaldiio.load_mat(ark), data.utt2spk[utt]))
            labels.append(data.label(utt))
    return Utterances(ids, feats, labels)
