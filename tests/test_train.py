"""Training: a killed run resumes from its checkpoint and ends with the same model
as an uninterrupted one; the same seed gives the same result. Then the pieces of
ser/train.py in-process: defaults, batches, schedule, masks, speed-perturbed copies."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import kaldiio
import numpy as np
import pytest
import torch
import yaml

import ser.train as train_module
from conftest import ROOT, toy_utterances
from ser.cmvn import Normalizer
from ser.datadir import DataDir
from ser.errors import SerError
from ser.train import (TrainConfig, Utterances, class_weights, collate, copies_of_originals, crop_windows,
                       epoch_examples,
                       load_fold_data, lr_factor, mask_batch, mix_batch, pooled_batches, train_fold)

EPOCHS = 10  # room for the kill to land mid-training on a fast machine


def train_cmd(recipe, out, seed=1):
    data = recipe / "data" / "synth"
    return [sys.executable, "-m", "ser.bin.train", "--data-dir", str(data),
            "--feat-dir", str(data / "feats/fbank"), "--folds-dir", str(data / "folds/loso"),
            "--fold", "fold1", "--cmvn", "train", "--cmvn-dir", str(data / "feats/fbank/cmvn/loso"),
            "--model", "lstm_tf", "--model-opts", "hidden_size=16 num_layers=1 attention_size=8",
            "--train-conf", str(ROOT / "conf/train.yaml"),
            "--train-opts", f"epochs={EPOCHS} patience={EPOCHS} batch_size=8 lr=3e-3",
            "--seed", str(seed), "--out", str(out)]


def run(cmd, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)


def weights(out):
    return torch.load(out / "best.pt", weights_only=False)["model"]


def test_resume_after_kill_gives_the_same_model(tiny_recipe, tmp_path):
    whole = tmp_path / "whole"
    assert run(train_cmd(tiny_recipe, whole)).returncode == 0
    history = json.loads((whole / "history.json").read_text())["history"]
    assert len(history) == EPOCHS

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(tiny_recipe, killed), env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "log" / "train.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and f"epoch 2/{EPOCHS}" in log.read_text()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before_kill = len(torch.load(killed / "checkpoint.pt", weights_only=False)["history"])
    assert 1 <= done_before_kill < EPOCHS, "the kill came too late to test resumption"
    assert not (killed / ".done").exists()

    out = run(train_cmd(tiny_recipe, killed))
    assert out.returncode == 0, out.stderr
    assert f"resuming from {killed / 'checkpoint.pt'} after epoch {done_before_kill}" in out.stderr
    assert json.loads((killed / "history.json").read_text())["history"][-1]["train_loss"] == history[-1]["train_loss"]
    for name, tensor in weights(whole).items():
        assert torch.equal(tensor, weights(killed)[name]), name


def test_changed_settings_do_not_resume_silently(tiny_recipe, tmp_path):
    out_dir = tmp_path / "run"
    cmd = train_cmd(tiny_recipe, out_dir)
    assert run(cmd).returncode == 0
    cmd[cmd.index("--seed") + 1] = "2"
    out = run(cmd)
    assert out.returncode == 1 and "written with other settings" in out.stderr


# In-process tests of ser/train.py's pieces (small and fast).


def test_training_defaults_live_in_conf_train_yaml_only(tmp_path):
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(TrainConfig))
    defaults = yaml.safe_load((ROOT / "conf/train.yaml").read_text())
    assert dataclasses.asdict(TrainConfig.from_dict({})) == defaults
    assert TrainConfig.from_dict({"lr": 0.5}).lr == 0.5
    with pytest.raises(SerError, match="unknown training option"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(SerError, match="optimizer 'sgd' is not supported"):
        TrainConfig.from_dict({"optimizer": "sgd"})
    with pytest.raises(SerError, match="average_epochs"):
        TrainConfig.from_dict({"select": "average", "average_epochs": 0})
    # Values of the wrong type or out of range are caught here, not inside the training tasks.
    for options, message in [({"lr": "abc"}, "lr='abc' is not a float"), ({"lr": 0}, "lr must be positive"),
                             ({"epochs": 2.5}, "epochs=2.5 is not an int"), ({"seed": True}, "seed=True is not an int"),
                             ({"device": 1}, "device=1 is not a str"), ({"time_masks": -1}, "time_masks must be >= 0"),
                             ({"num_threads": 0}, "num_threads must be positive")]:
        with pytest.raises(SerError, match=re.escape(message)):
            TrainConfig.from_dict(options)
    assert TrainConfig.from_dict({"lr": 1, "warmup_epochs": 0.5}).lr == 1  # an int is a float too
    partial = tmp_path / "train.yaml"
    partial.write_text("lr: 1.0e-3\n")
    with pytest.raises(SerError, match="no default for training option"):
        TrainConfig.from_dict({}, defaults=partial)


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


def test_lr_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, 100, 10, "cosine") for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:])) and factors[-1] < 1e-3
    assert factors[55] == pytest.approx(0.5, abs=0.02)
    assert lr_factor(80, 100, 10, "constant") == 1.0


def test_masks_touch_only_the_valid_frames():
    config = TrainConfig.from_dict({"time_masks": 3, "time_mask_width": 4, "feat_masks": 2,
                                    "feat_mask_width": 3})
    feats = torch.ones(3, 40, 10)
    lengths = torch.tensor([40, 25, 6])
    feats[1, 25:] = 7.0  # padding
    feats[2, 6:] = 7.0
    masked = mask_batch(feats.clone(), lengths, config, torch.Generator().manual_seed(0))
    assert torch.equal(masked[1, 25:], feats[1, 25:]) and torch.equal(masked[2, 6:], feats[2, 6:])
    assert (masked[0] == 0).any() and (masked[0] == 1).any()
    # A time mask takes at most a fifth of the utterance: 1 frame of 6.
    again = mask_batch(feats.clone(), lengths, config, torch.Generator().manual_seed(0))
    assert torch.equal(masked, again)


def test_crops_are_windows_of_the_asked_share_and_repeatable():
    lengths = [100, 40, 3, 1]
    whole = crop_windows(lengths, 1.0, torch.Generator().manual_seed(0))
    assert whole == [(0, 100), (0, 40), (0, 3), (0, 1)]
    for seed in range(20):
        windows = crop_windows(lengths, 0.5, torch.Generator().manual_seed(seed))
        assert windows == crop_windows(lengths, 0.5, torch.Generator().manual_seed(seed))
        for (start, end), length in zip(windows, lengths):
            assert 0 <= start < end <= length and end - start >= min(length, round(0.5 * length))
    starts = {crop_windows([100], 0.5, torch.Generator().manual_seed(s))[0] for s in range(20)}
    assert len(starts) > 5  # other windows for other epochs
    data = Utterances(["a", "b"], [np.arange(20, dtype=np.float32).reshape(10, 2),
                                   np.ones((4, 2), dtype=np.float32)], [0, 1])
    feats, lengths, _ = collate(data, [0, 1], "cpu", [(3, 7), (0, 2)])
    assert lengths.tolist() == [4, 2] and feats.shape == (2, 4, 2)
    assert torch.equal(feats[0], torch.from_numpy(data.feats[0][3:7])) and (feats[1, 2:] == 0).all()


def test_mixup_blends_pairs_and_keeps_the_longer_length():
    feats = torch.zeros(4, 6, 2)
    for row in range(4):
        feats[row, :3 + row] = float(row + 1)
    lengths = torch.tensor([3, 4, 5, 6])
    mixed, mixed_lengths, partner, lam = mix_batch(feats, lengths, 0.4, torch.Generator().manual_seed(3))
    assert 0.0 <= lam <= 1.0 and sorted(partner.tolist()) == [0, 1, 2, 3]
    assert torch.allclose(mixed, lam * feats + (1 - lam) * feats[partner])
    assert mixed_lengths.tolist() == [max(a, b) for a, b in zip(lengths.tolist(), lengths[partner].tolist())]
    again = mix_batch(feats, lengths, 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(again[0], mixed) and again[3] == lam
    lams = {round(mix_batch(feats, lengths, 0.4, torch.Generator().manual_seed(s))[3], 6) for s in range(10)}
    assert len(lams) > 5


def test_speaker_adversary_reverses_the_gradient_into_the_model_only():
    from ser.model import build_model
    from ser.train import SpeakerAdversary
    torch.manual_seed(0)
    model = build_model(4, 3, "lstm_tf_at", hidden_size=8, fc_dim=8).eval()  # no dropout: same forward twice
    adversary = SpeakerAdversary(model, num_speakers=2)
    feats, lengths = torch.randn(5, 12, 4), torch.tensor([12, 10, 9, 7, 3])
    speakers = torch.tensor([0, 1, 0, 1, 1])

    def grads(scale):
        model.zero_grad()
        adversary.zero_grad()
        model(feats, lengths)
        torch.nn.functional.cross_entropy(adversary(scale), speakers).backward()
        return model.encoder_grad(), [p.grad.clone() for p in adversary.parameters()]

    model.encoder_grad = lambda: torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    model_plus, adversary_plus = grads(1.0)
    model_half, adversary_half = grads(0.5)
    # The adversary learns to tell the speakers apart (its own gradient is not reversed) ...
    assert all(torch.allclose(a, b) for a, b in zip(adversary_plus, adversary_half))
    # ... and the encoder gets the reversed gradient, times the scale.
    assert torch.allclose(model_half, 0.5 * model_plus, atol=1e-7) and model_plus.abs().sum() > 0
    with torch.no_grad():
        pooled = adversary.pooled.clone()
    pooled.requires_grad_(True)
    adversary.pooled = pooled
    torch.nn.functional.cross_entropy(adversary(1.0), speakers).backward()
    plain = pooled.grad.clone()
    pooled.grad = None
    adversary.pooled = pooled
    torch.nn.functional.cross_entropy(adversary.classifier(pooled), speakers).backward()
    assert torch.allclose(plain, -pooled.grad)


def test_speaker_adversary_needs_speakers(tmp_path):
    config = TrainConfig.from_dict({"epochs": 1, "batch_size": 8, "speaker_adversary": 1.0})
    train, valid = toy_utterances(12, 0), toy_utterances(6, 1)
    model_config = {"variant": "lstm", "hidden_size": 8, "fc_dim": 8}
    with pytest.raises(SerError, match="speakers"):
        train_fold(tmp_path / "a", Utterances(train.ids, train.feats, train.labels), valid, ["a", "b", "c"],
                   model_config, config)
    one = Utterances(train.ids, train.feats, train.labels, ["spk0"] * len(train))
    with pytest.raises(SerError, match="at least 2 training speakers"):
        train_fold(tmp_path / "b", one, valid, ["a", "b", "c"], model_config, config)


@pytest.mark.parametrize("option", ["crop_share=0", "crop_share=1.5", "copy_share=0", "copy_share=1.2",
                                    "mixup_alpha=-1", "speaker_adversary=-1"])
def test_crop_and_mixup_options_are_checked(option):
    key, value = option.split("=")
    with pytest.raises(SerError, match=key):
        TrainConfig.from_dict({key: float(value)})


def test_balanced_class_weights_are_the_svms_and_refuse_other_modes():
    torch.testing.assert_close(class_weights([0, 0, 0, 1, 2, 2], 4, "balanced"),
                               torch.tensor([2 / 3, 2.0, 1.0, 0.0]))  # 6 / (3 * count); absent: 0
    torch.testing.assert_close(class_weights([0, 1, 2] * 4, 3, "balanced"), torch.ones(3))
    assert class_weights([0, 0, 1], 2, "none") is None
    with pytest.raises(SerError, match="class_weight"):
        TrainConfig.from_dict({"class_weight": "inverse"})


def test_balanced_weights_change_training_only_where_the_emotions_are_unbalanced(tmp_path):
    def trained(train, mode):
        out = tmp_path / f"{len(train)}_{mode}"
        train_fold(out, train, toy_utterances(9, 1), ["a", "b", "c"], {"variant": "lstm", "hidden_size": 8,
                   "fc_dim": 8}, TrainConfig.from_dict({"epochs": 2, "batch_size": 8, "class_weight": mode}))
        return weights(out)

    balanced = toy_utterances(24, 0)
    for name, value in trained(balanced, "none").items():
        torch.testing.assert_close(trained(balanced, "balanced")[name], value, rtol=0, atol=0)
    keep = [i for i, label in enumerate(balanced.labels) if label != 2 or i < 6]  # two of eight 2s
    unbalanced = Utterances([balanced.ids[i] for i in keep], [balanced.feats[i] for i in keep],
                            [balanced.labels[i] for i in keep], [balanced.speakers[i] for i in keep])
    plain, weighted = trained(unbalanced, "none"), trained(unbalanced, "balanced")
    assert any(not torch.equal(plain[name], weighted[name]) for name in plain)


def test_each_epoch_trains_on_every_original_and_a_fresh_share_of_its_copies():
    ids = ["a", "b", "c"] + [f"sp{f}-{u}" for u in ("a", "b") for f in ("0.8", "0.9", "1.1", "1.2")]
    ids += ["sp0.9-gone"]  # a copy whose original is not trained on counts as an utterance
    copies = copies_of_originals(ids)
    assert copies == {0: [3, 4, 5, 6], 1: [7, 8, 9, 10]}
    assert epoch_examples(len(ids), copies, 1.0, random.Random(0)) == list(range(len(ids)))
    draws = [epoch_examples(len(ids), copies, 0.5, random.Random(seed)) for seed in range(20)]
    for chosen in draws:
        assert len(chosen) == 4 + 2 + 2 and {0, 1, 2, 11} <= set(chosen)
        picked = [ids[i] for i in chosen if i not in (0, 1, 2, 11)]
        assert sorted(p.split("-", 1)[1] for p in picked) == ["a", "a", "b", "b"]
    assert len({tuple(c) for c in draws}) > 5  # other copies in other epochs
    assert draws[3] == epoch_examples(len(ids), copies, 0.5, random.Random(3))
    assert len(epoch_examples(len(ids), copies, 0.01, random.Random(0))) == 4 + 1 + 1  # at least one each


def test_copy_share_trains_on_fewer_examples_per_epoch(tmp_path, monkeypatch):
    train, valid = toy_utterances(24, 0), toy_utterances(9, 1)
    copies = Utterances([f"sp{f}-{u}" for f in ("0.9", "1.1") for u in train.ids],
                        [x * 1.1 for x in train.feats] * 2, train.labels * 2, train.speakers * 2)
    config = TrainConfig.from_dict({"epochs": 2, "batch_size": 8, "copy_share": 0.5})
    batches, collate_batch = [], train_module.collate

    def counting(data, indices, *args):
        batches.append(list(indices))
        return collate_batch(data, indices, *args)
    monkeypatch.setattr(train_module, "collate", counting)
    train_fold(tmp_path / "half", train + copies, valid, ["a", "b", "c"],
               {"variant": "lstm", "hidden_size": 8, "fc_dim": 8}, config)
    seen = [i for batch in batches[:6] for i in batch]  # epoch 1: 24 originals + 24 copies, 6 batches
    assert len(seen) == 48 and set(range(24)) <= set(seen) and len(set(seen)) == 48


def _data_dir(tmp_path, utts):
    feats = {u: np.random.default_rng(i).normal(size=(5 + i, 3)).astype(np.float32) for i, u in enumerate(utts)}
    return DataDir(path=tmp_path, wav={u: "x.wav" for u in utts}, utt2spk={u: u.split("-")[0] for u in utts},
                   utt2emo={u: u.split("-")[1] for u in utts}, utt2dur={u: 1.0 for u in utts},
                   emotions=["angry", "sad"]), feats


def test_speed_perturbed_copies_of_training_utterances_only(tmp_path):
    utts = ["a-angry-1", "a-sad-2", "b-sad-3"]
    data, feats = _data_dir(tmp_path, utts)
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/feats.ark,{tmp_path}/feats.scp") as writer:
        for utt in utts:
            writer(utt, feats[utt])
    aug = tmp_path / "aug"
    aug.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{aug}/feats.ark,{aug}/feats.scp") as writer:
        for utt in utts:
            for factor in ("0.9", "1.1"):
                writer(f"sp{factor}-{utt}", feats[utt] * float(factor))
    norm = Normalizer("utt")
    train = load_fold_data(data, tmp_path, ["a-angry-1", "b-sad-3"], norm, perturbed_scp=aug / "feats.scp")
    assert train.ids == ["a-angry-1", "b-sad-3", "sp0.9-a-angry-1", "sp1.1-a-angry-1",
                         "sp0.9-b-sad-3", "sp1.1-b-sad-3"]  # never a-sad-2, outside the list
    assert train.labels == [0, 1, 0, 0, 1, 1]
    np.testing.assert_allclose(train.feats[2], norm(feats["a-angry-1"] * 0.9), atol=1e-6)
    assert len(load_fold_data(data, tmp_path, ["a-sad-2"], norm)) == 1  # no copies unless asked
    empty = tmp_path / "empty.scp"
    empty.write_text("")
    with pytest.raises(SerError, match="no speed-perturbed copy"):
        load_fold_data(data, tmp_path, ["a-sad-2"], norm, perturbed_scp=empty)


@pytest.mark.parametrize("select", ["average", "uar"])
def test_interrupted_training_resumes_to_the_same_model(tmp_path, monkeypatch, select):
    """Scheduler, masks, crops, mixup, the speaker adversary, dropout and the averaged
    epochs all survive a resumption."""
    train, valid = toy_utterances(40, 0), toy_utterances(12, 1)
    model_config = {"variant": "lstm_tf_at", "hidden_size": 8, "fc_dim": 8, "frame_stack": 2,
                    "rnn_dropout": 0.2, "input_dropout": 0.1}
    config = TrainConfig.from_dict({"epochs": 5, "batch_size": 8, "batch_pool": 2, "select": select,
                                    "average_epochs": 3, "warmup_epochs": 1, "time_masks": 1,
                                    "feat_masks": 1, "feat_mask_width": 2, "crop_share": 0.7,
                                    "mixup_alpha": 0.4, "speaker_adversary": 0.5})
    labels = ["a", "b", "c"]
    whole = train_fold(tmp_path / "whole", train, valid, labels, model_config, config)

    evaluate, calls = train_module._evaluate, []

    def dies_in_epoch_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(*args)

    monkeypatch.setattr(train_module, "_evaluate", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_fold(tmp_path / "resumed", train, valid, labels, model_config, config)
    monkeypatch.setattr(train_module, "_evaluate", evaluate)
    torch.manual_seed(123)  # the resumed run must not depend on the process's RNG state
    resumed = train_fold(tmp_path / "resumed", train, valid, labels, model_config, config)
    def timeless(entry):
        return {k: v for k, v in entry.items() if k != "seconds"}
    assert timeless(resumed) == timeless(whole)
    if select == "average":
        assert whole["averaged"] == [3, 5] and whole["epoch"] == 5
    a = torch.load(tmp_path / "whole/best.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed/best.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
