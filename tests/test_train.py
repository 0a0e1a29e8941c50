"""Training: a killed run resumes from its checkpoint and ends with the same model
as an uninterrupted one; the same seed gives the same result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch

from conftest import ROOT

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
