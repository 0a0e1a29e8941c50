"""Batches of utterances, for training (ser/train.py, ser/svm.py) and for inference
(ser/inference.py, ser/explain.py) alike: the features in memory, batches of similar
length, and their padding into one tensor."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Utterances:
    """Normalised features with their emotions' indices, kept in memory: the corpora are
    small. Inference, which has no labels, gives zeros."""

    ids: list[str]
    feats: list[np.ndarray]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.ids)

    def __add__(self, other: "Utterances") -> "Utterances":
        return Utterances(self.ids + other.ids, self.feats + other.feats, self.labels + other.labels)


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


def collate(data: Utterances, indices: list[int], device: str) -> tuple[torch.Tensor, ...]:
    """Padded batch of ``indices``: features, lengths and labels."""
    lengths = torch.tensor([data.feats[i].shape[0] for i in indices], dtype=torch.int64)
    batch = torch.zeros(len(indices), int(lengths.max()), data.feats[indices[0]].shape[1])
    for row, i in enumerate(indices):
        batch[row, :lengths[row]] = torch.from_numpy(data.feats[i])
    labels = torch.tensor([data.labels[i] for i in indices], dtype=torch.int64)
    return batch.to(device), lengths.to(device), labels.to(device)
