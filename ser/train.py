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
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import kaldiio
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ser.cmvn import Normalizer
from ser.config import CONF_ROOT, load_yaml
from ser.datadir import DataDir, read_table
from ser.errors import SerError
from ser.metrics import scores
from ser.model import build_model

DEFAULTS_FILE = CONF_ROOT / "train.yaml"
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("constant", "cosine")
SELECTIONS = ("uar", "loss", "average")
CLASS_WEIGHTS = ("none", "balanced")
SPEED_PERTURBED = re.compile(r"sp(\d+(?:\.\d+)?)-(.+)")  # Kaldi's sp<factor>-<utt>
# Options added after runs were first recorded, each with the value at which training
# is exactly what it was before the option existed (no extra random draw either). A
# record without the option matches one with this value, so that adding an option
# does not make every trained run stale; any other value does not match.
NEUTRAL_OPTIONS = {"crop_share": 1.0, "mixup_alpha": 0.0, "speaker_adversary": 0.0, "copy_share": 1.0,
                   "class_weight": "none"}


def with_neutral_options(then: dict, now: dict) -> dict:
    """Training config ``then`` with the options of ``now`` that it predates set to their
    neutral values (configs without such options, like the svm's, stay as they are)."""
    return {**{k: v for k, v in NEUTRAL_OPTIONS.items() if k in now}, **then}


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
    class_weight: str
    time_masks: int
    time_mask_width: int
    feat_masks: int
    feat_mask_width: int
    crop_share: float
    copy_share: float
    mixup_alpha: float
    speaker_adversary: float
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
        for name, allowed in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("select", SELECTIONS),
                              ("class_weight", CLASS_WEIGHTS)):
            if getattr(config, name) not in allowed:
                raise SerError(f"{name} {getattr(config, name)!r} is not supported ({', '.join(allowed)})")
        if config.batch_size < 1 or config.epochs < 1:
            raise SerError(f"batch_size and epochs must be positive, got {config.batch_size}, {config.epochs}")
        if config.average_epochs < 1:
            raise SerError(f"average_epochs must be positive, got {config.average_epochs}")
        if not 0.0 <= config.label_smoothing < 1.0:
            raise SerError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
        if not 0.0 < config.crop_share <= 1.0:
            raise SerError(f"crop_share must be in (0, 1], got {config.crop_share}")
        if not 0.0 < config.copy_share <= 1.0:
            raise SerError(f"copy_share must be in (0, 1], got {config.copy_share}")
        if config.mixup_alpha < 0.0:
            raise SerError(f"mixup_alpha must be >= 0, got {config.mixup_alpha}")
        if config.speaker_adversary < 0.0:
            raise SerError(f"speaker_adversary must be >= 0, got {config.speaker_adversary}")
        return config


@dataclass
class Utterances:
    """Normalised features, kept in memory: the corpora are small."""

    ids: list[str]
    feats: list[np.ndarray]
    labels: list[int]
    speakers: list[str] | None = None  # for speaker_adversary

    @classmethod
    def load(cls, utts: list[str], feats_scp: dict[str, str], data: DataDir,
             normalizer: Normalizer) -> "Utterances":
        ids = [u for u in utts if u in feats_scp]  # failed extractions are left out
        return cls(ids, [normalizer(kaldiio.load_mat(feats_scp[u]), data.utt2spk[u]) for u in ids],
                   [data.label(u) for u in ids], [data.utt2spk[u] for u in ids])

    def __len__(self) -> int:
        return len(self.ids)

    def __add__(self, other: "Utterances") -> "Utterances":
        speakers = (self.speakers + other.speakers
                    if self.speakers is not None and other.speakers is not None else None)
        return Utterances(self.ids + other.ids, self.feats + other.feats, self.labels + other.labels, speakers)


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of similar length (less padding); shuffled order when ``rng`` is given."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def pooled_batches(lengths: list[int], batch_size: int, pool: int, rng: random.Random) -> list[list[int]]:
    """Batches drawn afresh: shuffle, sort by length within pools of ``pool`` batches,
    split, shuffle the batches. Little padding, yet other neighbours every epoch
    (fixed length buckets give the same batches in every epoch). Always
    ceil(N / batch_size) batches: only the last pool can leave a short one."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = pool * batch_size
    batches = []
    for start in range(0, len(order), size):
        chunk = sorted(order[start:start + size], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def copies_of_originals(ids: list[str]) -> dict[int, list[int]]:
    """Index of each original in ``ids`` -> indices of its speed-perturbed copies
    (``sp<factor>-<utt>`` with ``<utt>`` in ``ids``), in the order of ``ids``."""
    position = {utt: i for i, utt in enumerate(ids)}
    copies: dict[int, list[int]] = {}
    for i, utt in enumerate(ids):
        match = SPEED_PERTURBED.fullmatch(utt)
        if match and match.group(2) in position:
            copies.setdefault(position[match.group(2)], []).append(i)
    return copies


def class_weights(labels: list[int], num_classes: int, mode: str) -> torch.Tensor | None:
    """Loss weights per emotion. ``balanced`` is scikit-learn's, as the svm baseline uses: n / (k
    * count) over the k emotions of the training part, so that each emotion weighs alike in the
    loss as it does in UAR; an emotion absent from training gets 0. ``none``: no weights."""
    if mode == "none":
        return None
    from sklearn.utils.class_weight import compute_class_weight
    present = np.unique(labels)
    weights = np.zeros(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=np.asarray(labels))
    return torch.tensor(weights, dtype=torch.float32)


def copies_drawn(num_copies: int, copy_share: float) -> int:
    """How many of an utterance's ``num_copies`` speed copies an epoch trains on."""
    return num_copies if copy_share >= 1.0 else max(1, round(copy_share * num_copies))


def epoch_examples(num_ids: int, copies: dict[int, list[int]], copy_share: float,
                   rng: random.Random) -> list[int]:
    """Indices trained on in one epoch, of ``num_ids`` utterances whose speed copies are
    ``copies`` (see copies_of_originals): every utterance that is not one of those copies,
    and of each original's copies a random copies_drawn(n, copy_share), drawn again every
    epoch. copy_share 1: all of them, with no draw."""
    if copy_share >= 1.0:
        return list(range(num_ids))
    taken = {i for members in copies.values() for i in members}
    chosen = [i for i in range(num_ids) if i not in taken]
    for original in sorted(copies):
        members = copies[original]
        chosen += rng.sample(members, copies_drawn(len(members), copy_share))
    return sorted(chosen)


def collate(data: Utterances, indices: list[int], device: str,
            windows: list[tuple[int, int]] | None = None) -> tuple[torch.Tensor, ...]:
    """Padded batch of ``indices``; ``windows`` (start, end) per row takes only those frames."""
    if windows is None:
        windows = [(0, data.feats[i].shape[0]) for i in indices]
    lengths = torch.tensor([end - start for start, end in windows], dtype=torch.int64)
    batch = torch.zeros(len(indices), int(lengths.max()), data.feats[indices[0]].shape[1])
    for row, (i, (start, end)) in enumerate(zip(indices, windows)):
        batch[row, :lengths[row]] = torch.from_numpy(data.feats[i][start:end])
    labels = torch.tensor([data.labels[i] for i in indices], dtype=torch.int64)
    return batch.to(device), lengths.to(device), labels.to(device)


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


def crop_windows(lengths: list[int], min_share: float, generator: torch.Generator) -> list[tuple[int, int]]:
    """A random window per utterance, of a share of its frames drawn from U(min_share, 1):
    other, shorter examples every epoch (min_share 1: whole utterances)."""
    if min_share >= 1.0:
        return [(0, length) for length in lengths]
    windows = []
    for length in lengths:
        share = min_share + (1.0 - min_share) * float(torch.rand((), generator=generator))
        width = max(1, min(length, round(share * length)))
        start = int(torch.randint(0, length - width + 1, (1,), generator=generator))
        windows.append((start, start + width))
    return windows


def mix_batch(feats: torch.Tensor, lengths: torch.Tensor, alpha: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al., ICLR 2018) within a batch: each utterance is blended with
    another of the batch, weight lam ~ Beta(alpha, alpha). Batches hold utterances of
    similar length; the mix is as long as the longer of the two (padding is 0, the mean
    after normalisation). Returns the mixed batch, its lengths, the partner of each row
    and lam; the loss is lam * CE(y) + (1 - lam) * CE(y[partner])."""
    gamma = torch.distributions.Gamma(torch.tensor([alpha, alpha]), torch.tensor([1.0, 1.0]))
    # Gamma sampling has no generator argument: draw it from a fork seeded by ``generator``.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        draws = gamma.sample()
    lam = float(draws[0] / draws.sum())
    partner = torch.randperm(feats.size(0), generator=generator)
    mixed = lam * feats + (1.0 - lam) * feats[partner]
    return mixed, torch.maximum(lengths, lengths[partner]), partner, lam


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times -scale backward (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


class SpeakerAdversary(nn.Module):
    """Classifies the training speaker from what the model's head reads (the pooled
    vector) through a gradient reversal: the encoder learns to hide the speaker, the
    cue that does not carry over to a held-out one. Used in training only; the
    exported model is unchanged."""

    def __init__(self, model: nn.Module, num_speakers: int, hidden: int = 128):
        super().__init__()
        size = model.head[1].in_features
        self.classifier = nn.Sequential(nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, num_speakers))
        self.pooled: torch.Tensor | None = None
        model.head.register_forward_pre_hook(self._keep)

    def _keep(self, _module, inputs):
        self.pooled = inputs[0]

    def forward(self, scale: float) -> torch.Tensor:
        """Speaker logits of the pooled vectors of the model's last forward pass."""
        return self.classifier(_ReverseGradient.apply(self.pooled, scale))


def adversary_scale(progress: float) -> float:
    """DANN's ramp from 0 to 1 over training: the speaker branch weighs in once the
    emotion branch has started to learn."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


@torch.no_grad()
def predict(model: nn.Module, data: Utterances, batch_size: int, device: str) -> np.ndarray:
    """Posteriors (utterances, classes) in the order of ``data``."""
    model.eval()
    posteriors = np.zeros((len(data), model.config["num_classes"]), dtype=np.float32)
    for indices in bucketed_batches([f.shape[0] for f in data.feats], batch_size, None):
        feats, lengths, _ = collate(data, indices, device)
        posteriors[indices] = torch.softmax(model(feats, lengths), dim=-1).cpu().numpy()
    return posteriors


def copy_factors(ids) -> list[str]:
    """The speed factors of the copies (``sp<factor>-<utt>``) among ``ids``, in order."""
    return sorted({m.group(1) for m in map(SPEED_PERTURBED.fullmatch, ids) if m}, key=float)


def average_with_copies(ids: list[str], posteriors: np.ndarray, copy_ids: list[str],
                        copy_posteriors: np.ndarray) -> np.ndarray:
    """Test-time augmentation: each utterance's posteriors averaged with those of its own
    speed-perturbed copies (``sp<factor>-<utt>`` in ``copy_ids``); an utterance without
    copies keeps its own."""
    row = {utt: i for i, utt in enumerate(ids)}
    total = np.asarray(posteriors, dtype=np.float64).copy()
    counts = np.ones(len(ids))
    for key, post in zip(copy_ids, copy_posteriors):
        match = SPEED_PERTURBED.fullmatch(key)
        if match is None or match.group(2) not in row:
            raise SerError(f"{key}: not a speed-perturbed copy (sp<factor>-<utt>) of a scored utterance")
        total[row[match.group(2)]] += post
        counts[row[match.group(2)]] += 1
    return (total / counts[:, None]).astype(np.float32)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


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
    adversary, speaker_ids = None, []
    if config.speaker_adversary > 0:
        if train.speakers is None:
            raise SerError(f"{out_dir}: speaker_adversary needs the training utterances' speakers")
        speakers = sorted(set(train.speakers))
        if len(speakers) < 2:
            raise SerError(f"{out_dir}: speaker_adversary needs at least 2 training speakers, got {speakers}")
        speaker_ids = [speakers.index(s) for s in train.speakers]
        adversary = SpeakerAdversary(model, len(speakers)).to(config.device)
    parameters = list(model.parameters()) + (list(adversary.parameters()) if adversary else [])
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(parameters, lr=config.lr, weight_decay=config.weight_decay)
    lengths = [f.shape[0] for f in train.feats]
    copies = copies_of_originals(train.ids) if config.copy_share < 1.0 else {}
    # Always the same number of examples per epoch: the schedule's step count is known in advance.
    epoch_size = len(train) - sum(len(m) - copies_drawn(len(m), config.copy_share) for m in copies.values())
    steps_per_epoch = math.ceil(epoch_size / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = min(total_steps, round(config.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, config.scheduler))
    weight = class_weights(train.labels, len(labels), config.class_weight)
    loss_fn = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(config.device),
                                  label_smoothing=config.label_smoothing)
    history: list[dict] = []
    best: dict | None = None
    recent: list[dict] = []  # weights of the last average_epochs epochs (select=average)
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=config.device, weights_only=False)
        if with_neutral_options(state["train_config"], asdict(config)) != asdict(config) or state["model_config"] != model.config:
            raise SerError(f"{checkpoint_path}: written with other settings; remove {out_dir} "
                           "to train again with the new ones")
        model.load_state_dict(state["model"])
        if adversary is not None:
            adversary.load_state_dict(state["adversary"])
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
        # Its own generator: copy_share 1 leaves the batches exactly as they were before it existed.
        examples = epoch_examples(len(train), copies, config.copy_share, random.Random(epoch_seed + 7919))
        example_lengths = [lengths[i] for i in examples]
        if config.batch_pool > 0:
            batches = pooled_batches(example_lengths, config.batch_size, config.batch_pool, random.Random(epoch_seed))
        else:
            batches = bucketed_batches(example_lengths, config.batch_size, random.Random(epoch_seed))
        batches = [[examples[i] for i in batch] for batch in batches]
        mask_rng = torch.Generator().manual_seed(epoch_seed)
        for step, indices in enumerate(tqdm(batches, desc=f"epoch {epoch}", leave=False, mininterval=10)):
            windows = crop_windows([lengths[i] for i in indices], config.crop_share, mask_rng)
            feats, lens, targets = collate(train, indices, "cpu", windows)
            if config.time_masks or config.feat_masks:
                mask_batch(feats, lens, config, mask_rng)
            partner, lam = None, 1.0
            if config.mixup_alpha > 0:
                feats, lens, partner, lam = mix_batch(feats, lens, config.mixup_alpha, mask_rng)
            feats, lens, targets = feats.to(config.device), lens.to(config.device), targets.to(config.device)
            logits = model(feats, lens)
            loss = loss_fn(logits, targets)
            if partner is not None:
                loss = lam * loss + (1.0 - lam) * loss_fn(logits, targets[partner.to(config.device)])
            if adversary is not None:
                progress = (epoch - 1 + step / len(batches)) / config.epochs
                speaker_logits = adversary(config.speaker_adversary * adversary_scale(progress))
                speaker_targets = torch.tensor([speaker_ids[i] for i in indices], device=config.device)
                speaker_loss = nn.functional.cross_entropy(speaker_logits, speaker_targets)
                if partner is not None:
                    speaker_loss = lam * speaker_loss + (1.0 - lam) * nn.functional.cross_entropy(
                        speaker_logits, speaker_targets[partner.to(config.device)])
                loss = loss + speaker_loss
            optimizer.zero_grad()
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += (loss.item() - (speaker_loss.item() if adversary is not None else 0.0)) * len(indices)
            dominant = targets if partner is None or lam >= 0.5 else targets[partner.to(config.device)]
            correct += int((logits.argmax(-1) == dominant).sum())
        entry = {"epoch": epoch, "train_loss": total_loss / len(examples), "train_acc": correct / len(examples),
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
                      "adversary": adversary.state_dict() if adversary is not None else None,
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
    (out_dir / "history.json").write_text(json.dumps({"history": history, "selected": best}, indent=1) + "\n")
    plot_learning_curve(history, out_dir / "learning_curve.png", title, best)
    return best


def load_fold_data(data: DataDir, feat_dir: Path, utts: list[str], normalizer: Normalizer,
                   perturbed_scp: Path | None = None) -> Utterances:
    """The features of ``utts`` (those extracted), normalised. With ``perturbed_scp``
    (a feats.scp of speed-perturbed copies keyed ``sp0.9-<utt>``, ``sp1.1-<utt>``), the
    copies of ``utts`` are appended: pass it for a fold's training list only."""
    utterances = Utterances.load(utts, read_table(feat_dir / "feats.scp"), data, normalizer)
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
        match = SPEED_PERTURBED.fullmatch(key)
        if match and match.group(2) in wanted:
            copies.setdefault(match.group(2), []).append((key, ark))
    if utts and not copies:
        raise SerError(f"{perturbed_scp}: no speed-perturbed copy (sp<factor>-<utt>) "
                       f"of any of the {len(utts)} utterances asked for")
    ids, feats, labels, speakers = [], [], [], []
    for utt in utts:
        for key, ark in copies.get(utt, []):
            ids.append(key)
            feats.append(normalizer(kaldiio.load_mat(ark), data.utt2spk[utt]))
            labels.append(data.label(utt))
            speakers.append(data.utt2spk[utt])
    return Utterances(ids, feats, labels, speakers)
