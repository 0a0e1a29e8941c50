"""The recipe across corpora and on external features, end to end on small slices: the
tiny synth corpus and a CASIA-shaped fixture (2 speakers, angry and sad only)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from ser.cmvn import Normalizer, accumulate
from ser.datadir import read_data_dir, read_table
from ser.folds import read_fold
from tests.conftest import copy_recipe, run_recipe
from tests.fixtures_corpora import make_casia

TINY_CROSS = ("--synth-speakers", "3", "--synth-sentences", "4", "--feat", "fbank", "--model", "lstm",
              "--model-opts", "hidden_size=32 num_layers=1", "--train-opts", "epochs=2 batch_size=16",
              "--baseline", "")
SYSTEM = "fbank_lstm_cmvn-train_hidden_size32_num_layers1_batch_size16_epochs2"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cross")
    return copy_recipe(root / "recipe"), make_casia(root / "corpora")


@pytest.mark.slow
def test_synth_to_casia_trains_on_shared_classes_and_reports_the_rest(recipe):
    recipe, casia = recipe
    run_recipe(recipe, "--test-corpus", "casia", "--casia-dir", str(casia), "--stage", "1", "--cmvn", "train",
               *TINY_CROSS)
    data = read_data_dir(recipe / "data" / "synth_to_casia")
    assert data.emotions == ["angry", "sad"]  # CASIA's fixture has only these
    excluded = (recipe / "data" / "synth_to_casia" / "excluded.txt").read_text().splitlines()
    assert len(excluded) == 3 * 4 * 4 and all("\tsynth\t" in line for line in excluded)  # 4 other classes
    fold = read_fold(recipe / "data" / "synth_to_casia" / "folds" / "cross_corpus", "fold1")
    assert sorted(fold.test) == sorted(u for u in data.utts if data.utt2corpus[u] == "casia") and len(fold.test) == 8
    assert not {data.utt2corpus[u] for u in fold.train + fold.valid} - {"synth"}
    # train statistics from the training corpus only
    feat_dir = recipe / "data" / "synth_to_casia" / "feats" / "fbank"
    feats = read_table(feat_dir / "feats.scp")
    with np.load(feat_dir / "cmvn" / "cross_corpus" / "fold1.npz") as npz:
        expected = accumulate(fold.train, lambda u: kaldiio.load_mat(feats[u]), lambda _: "train")
        assert npz["count"][0] == expected["count"][0]
        np.testing.assert_allclose(npz["sum"], expected["sum"], rtol=1e-6)
    system = recipe / "exp" / "synth_to_casia" / SYSTEM
    results = (system / "RESULTS.md").read_text()
    assert "- test corpus: casia (8 utterances)" in results
    assert "utterances of other classes left out: **48** (synth: 48 (fear 12, happy 12, neutral 12, " \
           "surprise 12); casia: 0)" in results
    assert "Per-class recall" in results and "Confusion matrix" in results and "ref \\ hyp" in results
    run = json.loads((system / "cross_corpus" / "seed1" / "fold1" / "results.json").read_text())
    assert run["num_utts"] == 8 and set(run["per_class_recall"]) == {"angry", "sad"}
    assert (recipe / "exp" / "synth_to_casia" / "RESULTS.md").is_file()
    # a second run is complete: nothing is trained again
    again = run_recipe(recipe, "--test-corpus", "casia", "--casia-dir", str(casia), "--stage", "1",
                       "--stop-stage", "5", "--cmvn", "train", *TINY_CROSS)
    assert "are complete with these settings; skipping" in again.stderr


@pytest.mark.slow
def test_casia_to_synth_uses_test_corpus_statistics_only_when_asked(recipe):
    recipe, casia = recipe
    args = ("--corpus", "casia", "--casia-dir", str(casia), "--test-corpus", "synth", "--stage", "1",
            "--stop-stage", "4", *TINY_CROSS)
    run_recipe(recipe, *args, "--cmvn", "train")
    data_dir = recipe / "data" / "casia_to_synth"
    data = read_data_dir(data_dir)
    assert data.emotions == ["angry", "sad"]
    fold = read_fold(data_dir / "folds" / "cross_corpus", "fold1")
    assert {data.utt2corpus[u] for u in fold.test} == {"synth"}
    feat_dir = data_dir / "feats" / "fbank"
    feats = read_table(feat_dir / "feats.scp")
    with np.load(feat_dir / "cmvn" / "cross_corpus" / "fold1.npz") as npz:
        frames = sum(kaldiio.load_mat(feats[u]).shape[0] for u in fold.train)
        assert npz["count"][0] == frames  # no synth utterance
    run_recipe(recipe, *args, "--cmvn", "corpus")
    normalizer = Normalizer.load("corpus", feat_dir / "cmvn" / "corpus_cross_corpus" / "fold1.npz")
    synth = np.concatenate([kaldiio.load_mat(feats[u]) for u in fold.test])
    np.testing.assert_allclose(normalizer.shift["synth"], synth.mean(0), rtol=1e-4, atol=1e-4)
    # a protocol that would train on the test corpus is refused
    refused = run_recipe(recipe, *args, "--protocol", "loso", check=False)
    assert refused.returncode != 0 and "--test-corpus takes --protocol cross_corpus" in refused.stderr


@pytest.mark.slow
def test_external_features_through_every_stage_and_infer(recipe, tmp_path):
    recipe, _ = recipe
    data = recipe / "data" / "synth"
    run_recipe(recipe, "--stage", "1", "--stop-stage", "1", "--synth-speakers", "3", "--synth-sentences", "4")
    subprocess.run(["tools/venv/bin/python", "local/make_fbank_scp.py", str(data / "wav.scp"),
                    str(tmp_path / "ext"), "--num-filters", "20"], cwd=recipe, check=True, capture_output=True)
    scp = tmp_path / "ext" / "feats.scp"
    args = ("--stage", "1", "--stop-stage", "7", "--synth-speakers", "3", "--synth-sentences", "4",
            "--feat", "external", "--feats-scp", str(scp), "--model", "lstm", "--model-opts",
            "hidden_size=16 num_layers=1", "--train-opts", "epochs=2 batch_size=16", "--baseline", "")
    run_recipe(recipe, *args)
    feat_dirs = [d for d in (data / "feats").glob("external_*") if d.is_dir()]
    assert len(feat_dirs) == 1
    assert (feat_dirs[0] / "feat_dim").read_text() == "20\n"
    assert float((feat_dirs[0] / "frame_shift").read_text()) == pytest.approx(0.01, abs=0.001)
    systems = [d for d in (recipe / "exp" / "synth").glob("external_*_lstm_*") if d.is_dir()]
    assert len(systems) == 1
    assert "external frame-level features from" in (systems[0] / "RESULTS.md").read_text()
    bundle = systems[0] / "final"
    out = subprocess.run(["tools/venv/bin/python", "-m", "ser", "infer", "--model", str(bundle),
                          "--feats-scp", str(scp)], cwd=recipe, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("id,emotion,") and len(lines) == 1 + len(read_table(scp))
    wav = next(iter(read_table(data / "wav.scp").values()))
    refused = subprocess.run(["tools/venv/bin/python", "-m", "ser", "infer", "--model", str(bundle), wav],
                             cwd=recipe, capture_output=True, text=True)
    assert refused.returncode == 2 and "trained on external features" in refused.stderr
    assert "--feats-scp" in refused.stderr
    # the svm system on the same external features
    run_recipe(recipe, *args[:-4], "--model", "svm", "--model-opts", "", "--train-opts", "",
               "--stop-stage", "6")
    assert list((recipe / "exp" / "synth").glob("external_*_svm/RESULTS.md"))
