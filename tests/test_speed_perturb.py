"""Speed-perturbed training copies: Kaldi-style ids and sox pipes, audio of the
right length, and copies of training utterances only; test-time copies in stage 6 and
in the exported bundle."""
from __future__ import annotations

import json
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from conftest import TINY, run_recipe
from ser.audio import load_audio, speed_perturbed_entry
from ser.cmvn import Normalizer
from ser.datadir import DataDir
from ser.errors import SerError
from ser.speed import (AUTO_FACTORS, average_with_copies, copy_factors, factors_tag, original_of, perturb_utt2dur,
                       perturb_wav_scp, perturbed_id, split_factors)
from ser.train import load_perturbed


def test_ids_and_entries_cannot_be_taken_for_originals(tmp_path):
    wav = tmp_path / "a b.wav"
    sf.write(wav, np.sin(np.arange(16000) / 10).astype(np.float32) * 0.3, 16000)
    table = perturb_wav_scp({"spk1-u1": str(wav)}, ["0.9", "1.1"])
    assert sorted(table) == ["sp0.9-spk1-u1", "sp1.1-spk1-u1"]
    assert table["sp0.9-spk1-u1"] == f"sox -R '{wav}' -t wav - speed 0.9 |"
    slow, fast = load_audio(table["sp0.9-spk1-u1"]), load_audio(table["sp1.1-spk1-u1"])
    assert abs(slow.size - 16000 / 0.9) < 200 and abs(fast.size - 16000 / 1.1) < 200
    durations = perturb_utt2dur({"spk1-u1": 1.0}, ["0.9", "1.1"])
    assert durations == pytest.approx({"sp0.9-spk1-u1": 1 / 0.9, "sp1.1-spk1-u1": 1 / 1.1})
    # An entry that is already a pipe gets sox chained after it.
    chained = speed_perturbed_entry(f"sox '{wav}' -t wav - |", "1.1")
    assert abs(load_audio(chained).size - 16000 / 1.1) < 200
    # The same copy twice is the same audio (sox's default dither is random).
    assert np.array_equal(slow, load_audio(table["sp0.9-spk1-u1"]))
    assert np.array_equal(load_audio(chained), load_audio(chained))
    for bad in (["1.0"], ["3"], ["fast"]):
        with pytest.raises(SerError, match="speed factor"):
            perturb_wav_scp({"u": str(wav)}, bad)


def test_a_copys_id_reads_back_as_its_factor_and_original():
    for utt in ("spk1-u1", "sp0.9-u", "a b"):
        for factor in ("0.9", "1.15", "2"):
            assert original_of(perturbed_id(utt, factor)) == (factor, utt)
    # Originals, Kaldi-style ids that start with "sp" included, are no copies.
    for original in ("spk1-u1", "sp-u1", "sp0.9", "u1", "spx0.9-u1"):
        assert original_of(original) is None
    assert copy_factors(["u", "sp1.1-u", "sp0.8-u", "sp1.1-v", "spk1-u"]) == ["0.8", "1.1"]
    for bad in (".9", "0.9e0"):  # factors sox takes whose ids would not read back
        with pytest.raises(SerError, match=f"speed factor '{bad}'"):
            perturbed_id("u", bad)


def test_factors_name_the_copies_and_auto_is_the_recipe_default():
    assert split_factors("0.9,1.1") == split_factors(" 0.9  1.1 ") == ["0.9", "1.1"]
    assert split_factors("auto") == list(AUTO_FACTORS) == ["0.8", "0.9", "1.1", "1.2"]
    assert factors_tag("0.9 1.1") == "sp0.9_1.1"
    assert factors_tag("auto") == "sp0.8_0.9_1.1_1.2"
    assert factors_tag("") == ""
    # Other factors, other names: a system trained with them never shares a dir.
    assert len({factors_tag(f) for f in ("0.9 1.1", "0.8 1.2", "auto", "0.9")}) == 4


def test_only_the_training_utterances_copies_are_loaded(tmp_path):
    feats = {f"sp{f}-{u}": np.full((3, 2), i, dtype=np.float32)
             for i, (f, u) in enumerate((f, u) for f in ("0.9", "1.1") for u in ("s-a", "s-b", "s-c"))}
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/f.ark,{tmp_path}/feats.scp") as writer:
        for key, mat in sorted(feats.items()):
            writer(key, mat)
    data = DataDir(Path(tmp_path), wav={}, utt2spk={u: "s" for u in ("s-a", "s-b", "s-c")},
                   utt2emo={"s-a": "x", "s-b": "y", "s-c": "x"}, utt2dur={}, emotions=["x", "y"])
    copies = load_perturbed(data, tmp_path / "feats.scp", ["s-a", "s-b"], Normalizer("none"))
    assert copies.ids == ["sp0.9-s-a", "sp1.1-s-a", "sp0.9-s-b", "sp1.1-s-b"]
    assert copies.labels == [0, 0, 1, 1]
    with pytest.raises(SerError, match="no speed-perturbed copy"):
        load_perturbed(data, tmp_path / "feats.scp", ["s-z"], Normalizer("none"))


def test_feature_stage_stores_copies_apart_from_the_originals(tmp_path):
    import subprocess

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    data.mkdir()
    wav = tmp_path / "x.wav"
    sf.write(wav, (np.sin(np.arange(16000) / 7) * 0.3).astype(np.float32), 16000)
    (data / "wav.scp").write_text(f"s-a {wav}\n")
    (data / ".done").write_text("stage=hand-made\n")
    out = subprocess.run([str(root / "steps/make_feats.sh"), "--nj", "1", "--feat", "fbank",
                          "--speed-perturb", "0.9 1.1", str(data), str(tmp_path / "sp")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    frames = {k: v.shape[0] for k, v in kaldiio.load_scp(str(tmp_path / "sp/feats.scp")).items()}
    assert sorted(frames) == ["sp0.9-s-a", "sp1.1-s-a"]
    assert frames["sp0.9-s-a"] > 105 > 95 > frames["sp1.1-s-a"]
    record = (tmp_path / "sp/.done").read_text()
    assert "speed_perturb=0.9 1.1" in record and "perturb_command=sox -R WAV -t wav - speed F |" in record
    # Copies made by another command (before -R, with random dither): rebuilt, not reused.
    (tmp_path / "sp/.done").write_text(record.replace("sox -R WAV", "sox WAV"))
    again = subprocess.run([str(root / "steps/make_feats.sh"), "--nj", "1", "--feat", "fbank",
                            "--speed-perturb", "0.9 1.1", str(data), str(tmp_path / "sp")],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "complete; skipping" not in again.stderr and "computing fbank" in again.stderr
    assert (tmp_path / "sp/.done").read_text() == record


def test_test_time_copies_average_each_utterance_with_its_own_copies():
    posteriors = np.array([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    copy_ids = ["sp0.9-s-a", "sp1.1-s-a", "sp0.9-s-b"]  # s-c has no copy
    copy_posteriors = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    averaged = average_with_copies(["s-a", "s-b", "s-c"], posteriors, copy_ids, copy_posteriors)
    np.testing.assert_allclose(averaged, [[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], atol=1e-6)
    assert averaged.argmax(1).tolist() == [1, 0, 0]  # the copies turned both decisions
    for bad in ("sp0.9-s-z", "s-a"):  # another utterance's copy, or no copy at all
        with pytest.raises(SerError, match=bad):
            average_with_copies(["s-a"], posteriors[:1], [bad], copy_posteriors[:1])


COPIES = list(TINY)
COPIES[COPIES.index("--speed-perturb") + 1] = "0.9 1.1"
COPIES_SYSTEM = "exp/synth/fbank_lstm_cmvn-train_sp0.9_1.1_hidden_size32_num_layers1_batch_size16_epochs2"


@pytest.mark.slow
def test_systems_trained_with_copies_are_scored_with_the_test_utterances_copies(tiny_recipe):
    opts = COPIES
    out = run_recipe(tiny_recipe, "--stage", "3", "--stop-stage", "6", *opts)
    system = tiny_recipe / COPIES_SYSTEM
    run = system / "loso/seed1/fold1"
    result = json.loads((run / "results.json").read_text())
    assert result["test_copies"] == ["0.9", "1.1"] and result["num_test_copies"] == 2 * result["num_utts"]
    assert set(result["originals_only"]) >= {"uar", "wa", "macro_f1", "confusion"}
    assert "UAR % originals" in (system / "RESULTS.md").read_text()
    assert "test_copies" in json.loads((system / "summary.json").read_text())["loso"]
    # Scored before test-time copies existed: scored again, never handed back as it was.
    del result["test_copies"], result["originals_only"]
    result["uar"] = -1.0
    (run / "results.json").write_text(json.dumps(result))
    out = run_recipe(tiny_recipe, "--stage", "6", "--stop-stage", "6", *opts)
    assert "with their copies at 0.9 1.1" in out.stderr
    result = json.loads((run / "results.json").read_text())
    assert result["uar"] >= 0 and result["test_copies"] == ["0.9", "1.1"]
    out = run_recipe(tiny_recipe, "--stage", "6", "--stop-stage", "6", *opts)
    assert "with their copies" not in out.stderr  # nothing left to score


def test_a_summary_of_runs_scored_partly_with_test_copies_says_so():
    from ser.report import summarize_protocol

    run = {"fold": "fold1", "seed": 1, "uar": 0.5, "wa": 0.5, "macro_f1": 0.5, "train_seconds": 1.0}
    scored = {**run, "test_copies": ["0.9", "1.1"],
              "originals_only": {"uar": 0.4, "wa": 0.4, "macro_f1": 0.4}}
    summary = summarize_protocol([scored, {**scored, "fold": "fold2"}])
    assert summary["test_copies"] == ["0.9", "1.1"] and summary["uar_originals_only"][0] == 0.4
    mixed = summarize_protocol([scored, {**run, "fold": "fold2"}])
    assert mixed["mixed_scoring"] == "1 of 2 runs" and "uar_originals_only" not in mixed


@pytest.mark.slow
def test_the_bundle_of_a_run_with_copies_classifies_as_stage_6_scores(tiny_recipe, tmp_path, capsys, monkeypatch):
    from ser.bin.infer import main as infer_main
    from ser.export import export_bundle
    from ser.inference import EmotionClassifier
    from ser.speed import trained_copy_factors
    from ser.datadir import read_data_dir

    run_recipe(tiny_recipe, "--stage", "3", "--stop-stage", "6", *COPIES)  # nothing to do after the test above
    monkeypatch.chdir(tiny_recipe)  # a run's config names its inputs from the recipe's root
    run = tiny_recipe / COPIES_SYSTEM / "loso/seed1/fold1"
    bundle = export_bundle(run, tmp_path / "bundle")
    assert json.loads((bundle / "bundle.json").read_text())["test_copies"] == ["0.9", "1.1"]
    lines = [line.split("\t") for line in (run / "predictions.tsv").read_text().splitlines()]
    labels, ids = lines[0][3:], [row[0] for row in lines[1:]]
    scored = np.array([[float(x) for x in row[3:]] for row in lines[1:]])
    wavs = read_data_dir(tiny_recipe / "data" / "synth").wav

    def matrix(predictions):
        return np.array([[p.posteriors[label] for label in labels] for p in predictions])

    classifier = EmotionClassifier.load(bundle)
    got = classifier.predict_batch([wavs[u] for u in ids])
    np.testing.assert_allclose(matrix(got), scored, atol=2e-5)  # predictions.tsv: 5 decimals
    assert {p.num_copies for p in got} == {2}
    alone = EmotionClassifier.load(bundle, test_copies=[]).predict_batch([wavs[u] for u in ids])
    assert {p.num_copies for p in alone} == {0} and not np.allclose(matrix(alone), scored, atol=1e-3)
    # An array is perturbed as 16-bit audio: the same copies as its 16-bit file's.
    array = classifier.predict(load_audio(wavs[ids[0]]), sample_rate=16000)
    np.testing.assert_allclose(matrix([array]), matrix(got[:1]), atol=1e-6)

    with pytest.raises(SerError, match="speed factor '3'"):
        EmotionClassifier.load(bundle, test_copies=["0.9", "3"])
    with pytest.raises(SerError, match="gone/feats.scp: missing"):
        trained_copy_factors(run, {"aug_feat_dir": str(tmp_path / "gone")})
    for option in ("none", "1.1"):
        with pytest.raises(SystemExit) as exit_info:
            infer_main(["--model", str(bundle), "--format", "json", "--test-copies", option, wavs[ids[0]]])
        assert exit_info.value.code == 0
        line = json.loads(capsys.readouterr().out)
        expected = EmotionClassifier.load(bundle, test_copies=[] if option == "none" else [option])
        assert line["posteriors"] == expected.predict(wavs[ids[0]]).posteriors
    with pytest.raises(SystemExit) as exit_info:
        infer_main(["--model", str(bundle), "--test-copies", "fast", wavs[ids[0]]])
    assert exit_info.value.code == 2 and "speed factor 'fast'" in capsys.readouterr().err


@pytest.mark.slow
def test_training_refuses_copies_whose_feature_stage_did_not_finish(tiny_recipe, tmp_path, capsys, monkeypatch):
    """An interrupted stage 3 leaves the copies' dir without .done (or feats.scp): stage 5
    says so before any task starts."""
    from ser.bin import run_tool
    from ser.bin.train import main as train_main

    monkeypatch.chdir(tiny_recipe)
    (tmp_path / "sp").mkdir()
    (tmp_path / "sp" / "wav.scp").write_text("sp0.9-a sox -R a.wav -t wav - speed 0.9 |\n")
    with pytest.raises(SystemExit):
        run_tool(train_main, ["--plan", "--data-dir", "data/synth", "--feat-dir", "data/synth/feats/fbank",
                              "--folds-dir", "data/synth/folds/loso", "--cmvn", "utt", "--model", "lstm",
                              "--aug-feat-dir", str(tmp_path / "sp"), "--exp-dir", str(tmp_path / "exp"),
                              "--task-list", str(tmp_path / "tasks.txt")])
    assert f"{tmp_path / 'sp'}: the speed copies' features stage is not complete" in capsys.readouterr().err
    assert not (tmp_path / "tasks.txt").exists()
