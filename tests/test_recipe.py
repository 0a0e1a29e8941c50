"""Every stage of run.sh end to end on a tiny synth corpus, and the stages' contracts:
manifests agree with the data dir, features read back and match the manifests,
results and reports exist, and a second run does no work again."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import kaldiio
import pytest
from lhotse import load_manifest

from conftest import SVM, TINY, TINY_SYSTEM, copy_recipe, run_recipe
from ser.datadir import read_table, validate_data_dir
from ser.features import FEATURE_TYPES

EXP = f"{TINY_SYSTEM}/loso"
SYSTEM_NAME = TINY_SYSTEM.split("/")[-1]


def _default_speed_perturbation(opts) -> list[str]:
    opts = list(opts)
    del opts[opts.index("--speed-perturb"):opts.index("--speed-perturb") + 2]
    return opts


@pytest.mark.slow
def test_recurrent_models_get_speed_perturbed_copies_by_default_and_the_svm_none(tiny_recipe):
    out = run_recipe(tiny_recipe, "--stage", "3", "--stop-stage", "3", *_default_speed_perturbation(TINY))
    assert "speed-perturbed copies (0.9 1.1)" in out.stderr
    data = tiny_recipe / "data" / "synth"
    copies = read_table(data / "feats" / "fbank_sp0.9_1.1" / "feats.scp")
    utts = read_table(data / "utt2spk")
    assert sorted(copies) == sorted(f"sp{f}-{u}" for f in ("0.9", "1.1") for u in utts)
    # The system is named after its copies' factors: runs with other factors never share its dir.
    out = run_recipe(tiny_recipe, "--stage", "6", "--stop-stage", "6", *_default_speed_perturbation(TINY),
                     check=False)
    assert out.returncode != 0
    assert "exp/synth/fbank_lstm_cmvn-train_sp0.9_1.1_hidden_size32" in out.stderr
    out = run_recipe(tiny_recipe, "--stage", "3", "--stop-stage", "3", *_default_speed_perturbation(SVM))
    assert "speed-perturbed" not in out.stderr


def test_every_stage_produces_its_outputs(tiny_recipe):
    data = tiny_recipe / "data" / "synth"
    supervisions = load_manifest(data / "manifests" / "synth_supervisions.jsonl.gz")
    recordings = load_manifest(data / "manifests" / "synth_recordings.jsonl.gz")
    assert len(supervisions) == len(recordings) == 3 * 6 * 4
    assert {s.custom["emotion"] for s in supervisions} == {"angry", "fear", "happy", "neutral", "sad", "surprise"}
    assert {s.gender for s in supervisions} == {"m", "f"}
    validate_data_dir(data, supervisions)

    feats = dict(kaldiio.load_scp(str(data / "feats" / "fbank" / "feats.scp")))
    assert sorted(feats) == sorted(s.id for s in supervisions)
    num_frames = read_table(data / "feats" / "fbank" / "utt2num_frames", int)
    for sup in supervisions:
        assert feats[sup.id].shape == (num_frames[sup.id], 80)
        assert abs(feats[sup.id].shape[0] * 0.01 - sup.duration) < 0.05

    folds = sorted(p.name for p in (data / "folds" / "loso").glob("fold*") if p.is_dir())
    assert folds == ["fold1", "fold2", "fold3"]
    for fold in folds:
        assert (data / "feats" / "fbank" / "cmvn" / "loso" / f"{fold}.npz").is_file()
        run = tiny_recipe / EXP / "seed1" / fold
        results = json.loads((run / "results.json").read_text())
        assert set(results) >= {"uar", "wa", "macro_f1", "per_class_recall", "confusion"}
        assert results["num_utts"] == 24 and 0 <= results["uar"] <= 1
        for name in ("best.pt", "checkpoint.pt", "history.json", "learning_curve.png", "confusion.png",
                     "predictions.tsv", "log/train.log"):
            assert (run / name).is_file(), name
        assert "epoch 2/2" in (run / "log" / "train.log").read_text()
    report = (tiny_recipe / TINY_SYSTEM / "RESULTS.md").read_text()
    assert "| **mean ± std** |" in report and "fold3" in report
    assert "training part only" in report
    assert f"{SYSTEM_NAME} | loso" in (tiny_recipe / "exp" / "synth" / "RESULTS.md").read_text()


@pytest.mark.slow
def test_second_run_does_no_work(tiny_recipe):
    watched = [tiny_recipe / "data/synth/wav.scp", tiny_recipe / "data/synth/feats/fbank/feats.scp",
               tiny_recipe / "data/synth/folds/loso/fold1/test", tiny_recipe / EXP / "seed1/fold1/best.pt",
               tiny_recipe / EXP / "seed1/fold1/results.json"]
    before = [p.stat().st_mtime_ns for p in watched]
    out = run_recipe(tiny_recipe, "--stage", "1", *TINY)
    assert [p.stat().st_mtime_ns for p in watched] == before
    for skipped in ("data/synth is complete", "folds/loso is complete", "fbank is complete",
                    "cmvn/loso is complete", "are complete with these settings; skipping"):
        assert skipped in out.stderr
    assert "| **mean ± std** |" in out.stdout
    assert not [d for d in (tiny_recipe / EXP / "log").iterdir() if d.is_dir() and d.name.startswith("train.")]


@pytest.mark.slow
def test_a_resumed_training_keeps_the_earlier_calls_job_logs(tiny_recipe, tmp_path):
    recipe = tmp_path / "recipe"
    shutil.copytree(tiny_recipe, recipe, symlinks=True)
    exp = recipe / EXP
    first_logs = {p.name: p.read_text() for p in (exp / "log").glob("train.*.log")}
    first_tasks = (exp / "tasks.txt").read_text()
    assert len(first_logs) == 3
    shutil.rmtree(exp / "seed1" / "fold2")
    run_recipe(recipe, "--stage", "5", "--stop-stage", "5", *TINY)
    kept = [d for d in (exp / "log").iterdir() if d.is_dir() and d.name.startswith("train.")]
    assert len(kept) == 1
    assert {p.name: p.read_text() for p in kept[0].glob("train.*.log")} == first_logs
    assert (kept[0] / "tasks.txt").read_text() == first_tasks
    # The new call's task 1 is the one run it had to train, and its log says so.
    assert (exp / "tasks.txt").read_text().split()[:2] == ["fold2", "1"]
    assert "fold2" in (exp / "log" / "train.1.log").read_text()
    assert not (exp / "log" / "train.2.log").exists()
    assert (exp / "seed1" / "fold2" / "best.pt").is_file()


@pytest.mark.slow
def test_bad_options_and_missing_corpus_are_clear(tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    out = run_recipe(recipe, "--stage", "1", "--no-such-option", "1", check=False)
    assert out.returncode != 0 and "unknown option --no-such-option" in out.stderr
    out = run_recipe(recipe, "--stage", "1", "--corpus", "casia", check=False)
    assert out.returncode != 0 and "--casia-dir" in out.stderr
    out = run_recipe(recipe, "--stage", "1", "--corpus", "casia", "--casia-dir", str(tmp_path / "nowhere"),
                     check=False)
    assert out.returncode != 0 and f"{tmp_path / 'nowhere'} does not exist" in out.stderr
    assert not (recipe / "data" / "casia" / ".done").exists()
    help_text = run_recipe(recipe, "--help").stdout
    for option in ("--stage", "--stop-stage", "--corpus", "--feat", "--model", "--cmvn", "--protocol"):
        assert option in help_text
    # run.sh's own bookkeeping is neither listed nor settable
    assert "--all-args" not in help_text and "--cmvn-default" not in help_text
    out = run_recipe(recipe, "--stage", "1", "--cmvn-default", "train", check=False)
    assert out.returncode != 0 and "unknown option --cmvn-default" in out.stderr
    # A misspelt setting stops the run before stage 1, naming every bad one and what is known.
    out = run_recipe(recipe, "--stage", "1", "--feat", "lld39", "--model", "lstm_ft_at", "--baseline", "svn",
                     "--cmvn", "utterance", "--protocol", "loo", check=False)
    assert out.returncode == 1
    for message in ("--feat 'lld39' is not a feature type; known: fbank, mfcc, lld93",
                    "--model 'lstm_ft_at' has no config", "--baseline 'svn' has no config",
                    "known: gru, lstm, lstm_at, lstm_f, lstm_t, lstm_tf, lstm_tf_at, svm",
                    "--cmvn 'utterance' is not a normalisation mode; known: train, speaker, corpus, utt, none",
                    "--protocol 'loo' is not a protocol; known: loso"):
        assert message in out.stderr
    assert "Stage 1" not in out.stderr and not (recipe / "data" / "synth").exists()
    out = run_recipe(recipe, "--stage", "3", "--feat", "lld39", "--baseline", "", check=False)
    assert out.returncode == 1 and out.stderr.strip().endswith("known: " + ", ".join(FEATURE_TYPES) + ", external")
    for options, message in [(("--stage", "abc"), "--stage abc: expected a whole number"),
                             (("--stop-stage", "-1"), "--stop-stage -1: expected a whole number"),
                             (("--nj", "0"), "--nj 0: at least one job is needed"),
                             (("--num-folds", "x"), "--num-folds x: expected a whole number"),
                             (("--seeds", "1,2"), "--seeds '1,2': expected whole numbers separated by spaces"),
                             (("--show-exp-dir", "yes"), "--show-exp-dir yes: expected true or false")]:
        out = run_recipe(recipe, *options, check=False)
        assert out.returncode == 1 and message in out.stderr and "Stage 1" not in out.stderr, options
    out = run_recipe(recipe, "--stage", "1", "--feat", "external", check=False)
    assert out.returncode == 1 and "--feat external needs --feats-scp PATH" in out.stderr
    # --show-exp-dir names the system's dir from the settings and runs nothing.
    out = run_recipe(recipe, "--stage", "1", "--model", "lstm", "--train-opts", "lr=0.5", "--show-exp-dir", "true")
    assert out.stdout.strip() == "exp/synth/lld93_lstm_sp0.9_1.1_lr0.5/loso" and "Stage 1" not in out.stderr
    assert not (recipe / "data" / "synth").exists()
    out = run_recipe(recipe, "--stage", "1", "--feat", "external", "--feats-scp", str(tmp_path / "no/feats.scp"),
                     check=False)
    assert out.returncode == 1 and f"--feats-scp {tmp_path / 'no/feats.scp'}: no such file" in out.stderr
    # The steps check it too when called by themselves.
    out = subprocess.run(["steps/make_feats.sh", "--feat", "lld39", "data/synth", "data/synth/feats/lld39"],
                         cwd=recipe, capture_output=True, text=True)
    assert out.returncode == 1 and "--feat 'lld39' is not a feature type" in out.stderr


@pytest.mark.slow
@pytest.mark.real_data
def test_casia_preparation_and_features(casia_dir, tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    run_recipe(recipe, "--corpus", "casia", "--casia-dir", str(casia_dir), "--stage", "1",
               "--stop-stage", "3", "--feat", "fbank", "--speed-perturb", "")
    data = validate_data_dir(recipe / "data" / "casia")
    assert len(data.utts) == 1200 and len(data.speakers) == 4 and len(data.emotions) == 6
    assert len(read_table(recipe / "data/casia/feats/fbank/feats.scp")) == 1200


SMALL_SYSTEM = "exp/synth/fbank_lstm_cmvn-train_hidden_size16_num_layers1_batch_size16_epochs2_small"


@pytest.mark.parametrize("model, model_opts, message", [
    ("lstm", "hidden_size=0", "hidden_size must be a positive integer, got 0"),
    ("lstm", "gate_size=8", "gate_size applies to the LSTM-AT variants, not 'lstm'"),
    ("lstm_tf_at", "bogus_key=1", "unknown option 'bogus_key'; lstm_tf_at takes hidden_size"),
    ("svm", "c_grid=-1", "svm c_grid value -1 is not a positive number"),
])
@pytest.mark.slow
def test_bad_model_options_stop_the_training_stage_before_any_task(tiny_recipe, tmp_path, model, model_opts,
                                                                      message):
    recipe = copy_recipe(tmp_path / "recipe")  # stages 1-4 of the tiny run, not its exp/
    shutil.copytree(tiny_recipe / "data", recipe / "data")
    out = run_recipe(recipe, "--stage", "5", "--stop-stage", "5", *TINY, "--model", model,
                     "--model-opts", model_opts, check=False)
    assert out.returncode == 1 and message in out.stderr
    assert "Traceback" not in out.stderr and "training " not in out.stderr  # no task was submitted
    assert not list(recipe.glob("exp/synth/*/loso/log/train.*.log"))


@pytest.mark.slow
def test_compare_two_systems(tiny_recipe):
    opts = list(TINY)
    opts[opts.index("--model-opts") + 1] = "hidden_size=16 num_layers=1"
    run_recipe(tiny_recipe, "--stage", "5", *opts, "--exp-tag", "small")
    out = subprocess.run([sys.executable, "local/compare.py", SMALL_SYSTEM, TINY_SYSTEM], cwd=tiny_recipe, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| fold3 | 1 |" in out.stdout and "left-tailed p (A < B)" in out.stdout and "(95 % CI " in out.stdout
    corpus_table = (tiny_recipe / "exp" / "synth" / "RESULTS.md").read_text()
    assert f"{SMALL_SYSTEM.split('/')[-1]} | loso" in corpus_table
    assert f"{SYSTEM_NAME} | loso" in corpus_table
    out = subprocess.run([sys.executable, "local/compare.py", TINY_SYSTEM, "exp/synth/nothing"],
                         cwd=tiny_recipe, capture_output=True, text=True)
    assert out.returncode == 1 and "choose --protocol" in out.stderr


@pytest.mark.slow
def test_baseline_runs_on_the_same_folds_and_both_rows_are_printed(tiny_recipe):
    out = run_recipe(tiny_recipe, "--stage", "3", "--stop-stage", "6", *TINY, "--baseline", "svm")
    assert "Baseline svm (stages 3-6)" in out.stderr
    svm = tiny_recipe / "exp/synth/compare_functionals_svm/loso"
    for fold in ("fold1", "fold2", "fold3"):
        result = json.loads((svm / "seed1" / fold / "results.json").read_text())
        lstm = json.loads((tiny_recipe / EXP / "seed1" / fold / "results.json").read_text())
        assert result["num_utts"] == lstm["num_utts"] == 24
        assert (svm / "seed1" / fold / "svm.joblib").is_file()
    assert "compare_functionals_svm | loso" in out.stdout and f"{SYSTEM_NAME} | loso" in out.stdout
