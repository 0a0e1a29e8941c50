"""ser/batching.py: batches of similar length, drawn afresh every epoch in training and
in a fixed order for inference, padded into one tensor."""
from __future__ import annotations

import random

import numpy as np
import torch

from ser.batching import Utterances, bucketed_batches, collate, pooled_batches


def test_pooled_batches_cover_every_utterance_once_and_change_every_epoch():
    rng = random.Random(0)
    lengths = [rng.randint(10, 300) for _ in range(103)]
    first = pooled_batches(lengths, 8, 4, random.Random(1))
    assert sorted(i for b in first for i in b) == list(range(103))
    assert len(first) == 13 and sorted(len(b) for b in first)[1:] == [8] * 12
    second = pooled_batches(lengths, 8, 4, random.Random(2))
    assert {tuple(sorted(b)) for b in first} != {tuple(sorted(b)) for b in second}
    assert first == pooled_batches(lengths, 8, 4, random.Random(1))  # (seed, epoch) decides
    # Grouped by length: far less padding than random batches.
    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    order = list(range(103))
    random.Random(3).shuffle(order)
    assert padding(first) < 0.5 * padding([order[i:i + 8] for i in range(0, 103, 8)])


def test_bucketed_batches_group_by_length_in_a_fixed_order_unless_shuffled():
    lengths = [5, 1, 9, 3, 7, 3]
    assert bucketed_batches(lengths, 2, None) == [[1, 3], [5, 0], [4, 2]]  # ties by index
    shuffled = bucketed_batches(lengths, 2, random.Random(0))
    assert sorted(shuffled) == sorted(bucketed_batches(lengths, 2, None))
    assert shuffled == bucketed_batches(lengths, 2, random.Random(0))
    assert bucketed_batches([], 4, None) == []


def test_collate_pads_each_utterance_to_the_longest():
    data = Utterances(["a", "b"], [np.arange(20, dtype=np.float32).reshape(10, 2),
                                   np.ones((4, 2), dtype=np.float32)], [0, 1])
    feats, lengths, labels = collate(data, [1, 0], "cpu")
    assert lengths.tolist() == [4, 10] and labels.tolist() == [1, 0] and feats.shape == (2, 10, 2)
    assert torch.equal(feats[1], torch.from_numpy(data.feats[0])) and (feats[0, 4:] == 0).all()
