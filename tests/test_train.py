"""Training: a killed run resumes from its checkpoint and ends with the same model
as an uninterrupted one; the same seed gives the same result. Then the pieces of
ser/train.py in-process: defaults, schedule, masks, retired options, speed-perturbed copies."""
from __future__ import annotations

import dataclasses
import json
import os
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
from ser.train import (RETIRED_OPTIONS, TrainConfig, load_fold_data, lr_factor, mask_batch, train_fold,
                       without_retired_options)

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.parametrize("option", sorted(RETIRED_OPTIONS))
def test_retired_options_are_unknown_at_any_value(option):
    with pytest.raises(SerError, match=f"unknown training option.*{option}"):
        TrainConfig.from_dict({option: RETIRED_OPTIONS[option]})


def test_a_config_recorded_before_the_retired_options_went_matches_only_at_their_no_op_values():
    now = dataclasses.asdict(TrainConfig.from_dict({}))
    assert without_retired_options({**now, **RETIRED_OPTIONS}) == now
    assert without_retired_options({**now, "crop_share": 1}) == now  # 1 as written by YAML
    for option, value in (("crop_share", 0.6), ("copy_share", 0.5), ("mixup_alpha", 0.2),
                          ("speaker_adversary", 1.0), ("class_weight", "balanced")):
        assert without_retired_options({**now, option: value}) != now


def test_a_checkpoint_written_before_the_retired_options_went_resumes(tmp_path):
    train, valid = toy_utterances(16, 0), toy_utterances(6, 1)
    model_config = {"variant": "lstm", "hidden_size": 8, "fc_dim": 8}
    short = TrainConfig.from_dict({"epochs": 1, "batch_size": 8})
    train_fold(tmp_path / "run", train, valid, ["a", "b", "c"], model_config, short)
    checkpoint_path = tmp_path / "run/checkpoint.pt"
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    longer = dataclasses.replace(short, epochs=2)
    for retired, resumes in ((RETIRED_OPTIONS, True), ({**RETIRED_OPTIONS, "mixup_alpha": 0.4}, False)):
        torch.save({**checkpoint, "train_config": {**checkpoint["train_config"], "epochs": 2, **retired}},
                   checkpoint_path)
        if resumes:
            assert train_fold(tmp_path / "run", train, valid, ["a", "b", "c"], model_config, longer)["epoch"] == 2
        else:
            with pytest.raises(SerError, match="written with other settings"):
                train_fold(tmp_path / "run", train, valid, ["a", "b", "c"], model_config, longer)


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
    """Scheduler, masks, dropout and the averaged epochs all survive a resumption."""
    train, valid = toy_utterances(40, 0), toy_utterances(12, 1)
    model_config = {"variant": "lstm_tf_at", "hidden_size": 8, "fc_dim": 8, "frame_stack": 2,
                    "rnn_dropout": 0.2, "input_dropout": 0.1}
    config = TrainConfig.from_dict({"epochs": 5, "batch_size": 8, "batch_pool": 2, "select": select,
                                    "average_epochs": 3, "warmup_epochs": 1, "time_masks": 1,
                                    "feat_masks": 1, "feat_mask_width": 2})
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
