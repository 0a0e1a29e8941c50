"""The --gpu 1 path: every variant computes on CUDA what it computes on the CPU, training
with every option runs there, and the recipe's train and score tools take a CUDA-trained
run. Skipped where torch sees no CUDA device (CI has none: run them on a GPU machine)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import torch

from conftest import ROOT, toy_utterances
from ser.model import MODEL_VARIANTS, build_model, load_model_config
from ser.batching import Utterances
from ser.train import TrainConfig, predict, train_fold

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(autouse=True)
def full_float32_precision():
    """cuDNN's TF32 would differ from the CPU by ~1e-3; the comparison is of the code."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _model_config(variant, **small):
    config = {**load_model_config(variant), "hidden_size": 32, "fc_dim": 16, **small}
    if config.get("attention_size"):
        config["attention_size"] = 16
    return config


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_each_variant_computes_the_same_on_cuda_as_on_the_cpu(variant):
    torch.manual_seed(0)
    # Training mode (cuDNN's RNN backward needs it) with no dropout, so both are deterministic.
    config = _model_config(variant, dropout=0.0, input_dropout=0.0, rnn_dropout=0.0)
    cpu = build_model(20, 5, **config).train()
    cuda = build_model(20, 5, **config).train()
    cuda.load_state_dict(cpu.state_dict())
    cuda.cuda()
    lengths = torch.tensor([37, 30, 12, 5])  # padding and a length under frame_stack's multiple
    feats = torch.randn(4, 37, 20)
    feats[torch.arange(37)[None, :] >= lengths[:, None]] = 0.0
    out_cpu = cpu(feats, lengths)
    out_cuda = cuda(feats.cuda(), lengths.cuda())
    torch.testing.assert_close(out_cuda.cpu(), out_cpu, rtol=1e-4, atol=1e-5)
    (out_cpu * torch.arange(5.0)).sum().backward()
    (out_cuda * torch.arange(5.0, device="cuda")).sum().backward()
    for (name, p_cpu), p_cuda in zip(cpu.named_parameters(), cuda.parameters()):
        torch.testing.assert_close(p_cuda.grad.cpu(), p_cpu.grad, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("variant", ["lstm_tf_at", "gru"])
def test_training_with_every_option_runs_on_cuda_and_the_model_loads_on_the_cpu(tmp_path, variant):
    train, valid = toy_utterances(48, 0), toy_utterances(12, 1)
    copies = Utterances([f"sp{f}-{u}" for f in ("0.9", "1.1") for u in train.ids],
                        [x * 1.05 for x in train.feats] * 2, train.labels * 2)
    config = TrainConfig.from_dict({"epochs": 3, "batch_size": 8, "batch_pool": 2, "warmup_epochs": 1,
                                    "time_masks": 1, "feat_masks": 1, "average_epochs": 2, "device": "cuda"})
    model_config = _model_config(variant, frame_stack=2)
    chosen = train_fold(tmp_path, train + copies, valid, ["a", "b", "c"], model_config, config)
    assert 0.0 <= chosen["valid_uar"] <= 1.0
    best = torch.load(tmp_path / "best.pt", map_location="cpu", weights_only=False)
    on_cpu = build_model(4, 3, **model_config)
    on_cpu.load_state_dict(best["model"])
    on_cuda = build_model(4, 3, **model_config).cuda()
    on_cuda.load_state_dict(best["model"])
    np.testing.assert_allclose(predict(on_cuda.eval(), valid, 8, "cuda"), predict(on_cpu.eval(), valid, 8, "cpu"),
                               rtol=1e-4, atol=1e-5)


def _done(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / ".done").write_text(f"made by {__name__} for {path.name}\n")


def test_the_train_and_score_tools_train_on_cuda_with_gpu_1(tmp_path):
    """ser.bin.train --gpu 1 (what steps/train.sh runs for run.sh --gpu 1), then
    ser.bin.score (stage 6) on the CPU-side loader."""
    data, feats, folds = tmp_path / "data", tmp_path / "data/feats", tmp_path / "data/folds/loso"
    rng = np.random.default_rng(0)
    emotions = ["angry", "happy", "sad"]
    utts = sorted(f"spk{s}-{e}-{i:02d}" for s in range(3) for e in emotions for i in range(6))
    _done(data)
    for name, table in (("wav.scp", {u: f"/nonexistent/{u}.wav" for u in utts}),
                        ("utt2spk", {u: u.split("-")[0] for u in utts}),
                        ("utt2emo", {u: u.split("-")[1] for u in utts}), ("utt2dur", {u: "1.0" for u in utts})):
        (data / name).write_text("".join(f"{u} {v}\n" for u, v in table.items()))
    (data / "emotions.txt").write_text("\n".join(emotions) + "\n")
    _done(feats)
    with kaldiio.WriteHelper(f"ark,scp:{feats}/feats.ark,{feats}/feats.scp") as writer:
        for u in utts:
            writer(u, (rng.normal(size=(int(rng.integers(20, 60)), 8)) + emotions.index(u.split("-")[1]))
                   .astype(np.float32))
    (feats / "feat_names.txt").write_text("\n".join(f"f{i}" for i in range(8)) + "\n")
    _done(folds)
    test = [u for u in utts if u.startswith("spk2")]
    valid = [u for u in utts if u.startswith("spk1")][:6]
    (folds / "fold1").mkdir()
    for part, lst in (("train", [u for u in utts if u not in test and u not in valid]), ("valid", valid),
                      ("test", test)):
        (folds / "fold1" / part).write_text("".join(f"{u}\n" for u in lst))
    (folds / "folds.json").write_text(json.dumps({"settings": {}, "folds": [{"name": "fold1"}]}))
    run = tmp_path / "exp/seed1/fold1"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    train = subprocess.run(
        [sys.executable, "-m", "ser.bin.train", "--data-dir", data, "--feat-dir", feats, "--folds-dir", folds,
         "--fold", "fold1", "--cmvn", "utt", "--model", "lstm_tf_at",
         "--model-opts", "hidden_size=16 fc_dim=8 frame_stack=2", "--train-conf", ROOT / "conf/train.yaml",
         "--train-opts", "epochs=3 batch_size=8", "--gpu", "1", "--out", run],
        capture_output=True, text=True, env=env, cwd=ROOT)
    assert train.returncode == 0, train.stderr[-3000:]
    assert json.loads((run / "run_config.json").read_text())["device"] == "cuda"
    assert (run / ".done").is_file()
    score = subprocess.run([sys.executable, "-m", "ser.bin.score", run], capture_output=True, text=True, env=env,
                           cwd=ROOT)
    assert score.returncode == 0, score.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert sum(map(sum, results["confusion"])) == len(test)
