"""Stages hand back only what was made from the inputs and settings asked for, and
survive kills and concurrent runs: the records of utils/lib.sh and ser/provenance.py,
the exp-dir names, the fold-list check at scoring, and the job lifetime of run.pl."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from conftest import TINY, TINY_SYSTEM, copy_recipe, run_recipe
from fixtures_corpora import make_casia, make_iemocap
from ser.datadir import read_table
from ser.provenance import code_version, corpus_digest, differences, options_tag

SYSTEM = TINY_SYSTEM


def clone_trained(tiny_recipe: Path, dest: Path) -> Path:
    """A copy of the trained tiny recipe (its scp files still point into the original's
    arks and corpus, which the tests here only read)."""
    shutil.copytree(tiny_recipe, dest, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    return dest


def test_corpus_digest_reads_contents_not_times_and_keeps_a_cache(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "spk").mkdir(parents=True)
    (corpus / "spk" / "a.wav").write_bytes(b"abcd")
    (corpus / "b.txt").write_bytes(b"xy")
    cache = tmp_path / "cache" / "c.json"
    first = corpus_digest(corpus, cache)
    assert json.loads(cache.read_text())["spk/a.wav"][0] == 4
    os.utime(corpus / "spk" / "a.wav", (1e9, 1e9))
    assert corpus_digest(corpus, cache) == corpus_digest(corpus) == first
    (corpus / "spk" / "a.wav").write_bytes(b"abce")  # same size, new contents
    assert corpus_digest(corpus, cache) != first
    (corpus / "spk" / "a.wav").write_bytes(b"abcd")
    cache.write_text("{not json")  # a damaged cache costs a re-read, not an error
    assert corpus_digest(corpus, cache) == first
    (corpus / "c.wav").write_bytes(b"")
    assert corpus_digest(corpus, cache) != first
    assert corpus_digest(tmp_path / "nowhere") == "absent"


def test_code_version_is_dirty_for_code_changes_but_not_for_results(tmp_path):
    """Runs record the commit they were made at; make_results rewriting RESULTS.md and
    local/results/ (or a README edit) while a sweep trains must not mark them -dirty."""
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})

    assert code_version(tmp_path) == "unknown"  # not a git checkout
    git("init", "-q")
    (tmp_path / "ser").mkdir()
    (tmp_path / "local" / "results").mkdir(parents=True)
    for name in ("ser/train.py", "RESULTS.md", "local/results/casia.json", "README.md"):
        (tmp_path / name).write_text("v1\n")
    git("add", ".")
    git("commit", "-q", "-m", "v1")
    clean = code_version(tmp_path)
    assert len(clean) == 10 and not clean.endswith("-dirty")

    for name in ("RESULTS.md", "local/results/casia.json", "README.md"):
        (tmp_path / name).write_text("v2\n")
    (tmp_path / "local" / "results" / "new.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("untracked")
    assert code_version(tmp_path) == clean

    (tmp_path / "ser" / "train.py").write_text("v2\n")
    assert code_version(tmp_path) == clean + "-dirty"


def test_options_tag_and_differences():
    assert options_tag("lr=1e-3 epochs=15") == options_tag("epochs=15, lr=1e-3") == "epochs15_lr0.001"
    assert options_tag("") == ""
    long = options_tag("hidden_size=64 num_layers=1 dropout=0.2 attention_size=32 fc_dim=64")
    assert long.startswith("opts") and len(long) == 12
    assert differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}}) == ["b.c: 2 -> 3"]


@pytest.mark.slow
def test_new_train_or_model_options_never_reuse_old_models(tiny_recipe):
    assert (tiny_recipe / SYSTEM / "loso/seed1/fold1/.done").is_file()
    opts = list(TINY)
    opts[opts.index("--train-opts") + 1] = "epochs=1 batch_size=16"
    out = run_recipe(tiny_recipe, "--stage", "5", "--stop-stage", "6", *opts)
    assert "training 3 run(s)" in out.stderr and "are complete" not in out.stderr.split("Stage 6")[0]
    new = tiny_recipe / "exp/synth/fbank_lstm_cmvn-train_hidden_size32_num_layers1_batch_size16_epochs1/loso"
    for fold in ("fold1", "fold2", "fold3"):
        history = json.loads((new / "seed1" / fold / "history.json").read_text())["history"]
        assert len(history) == 1
    assert '"epochs": 1' in out.stdout
    # The first system's models are untouched.
    assert len(json.loads((tiny_recipe / SYSTEM / "loso/seed1/fold1/history.json").read_text())["history"]) == 2


@pytest.mark.slow
def test_models_are_not_reused_or_scored_on_rebuilt_features(tiny_recipe, tmp_path):
    recipe = clone_trained(tiny_recipe, tmp_path / "recipe")
    conf = recipe / "conf/feats/fbank.yaml"
    conf.write_text(conf.read_text().replace("num_filters: 80", "num_filters: 40"))
    out = run_recipe(recipe, "--stage", "3", *TINY, check=False)
    assert out.returncode != 0
    assert "rebuilding data/synth/feats/fbank" in out.stderr
    assert "were made from other inputs or settings" in out.stderr and "inputs.feats" in out.stderr
    assert "dim 40" in out.stderr
    out = run_recipe(recipe, "--stage", "6", *TINY, check=False)
    assert out.returncode != 0 and "were made from other inputs or settings" in out.stderr
    # Scoring one run directly refuses too.
    run = recipe / SYSTEM / "loso/seed1/fold1"
    out = subprocess.run(["bash", "-c", f". ./path.sh && python -m ser.bin.score {run}"], cwd=recipe,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "has been rebuilt since the model was trained" in out.stderr


@pytest.mark.slow
def test_scoring_checks_the_fold_lists(tiny_recipe, tmp_path):
    recipe = clone_trained(tiny_recipe, tmp_path / "recipe")
    fold = recipe / "data/synth/folds/loso/fold1"
    train, test = (fold / "train").read_text().split(), (fold / "test").read_text().split()
    (fold / "test").write_text("".join(f"{u}\n" for u in [train[0]] + test[1:]))
    run = recipe / SYSTEM / "loso/seed1/fold1"
    (run / "results.json").unlink()
    out = subprocess.run(["bash", "-c", f". ./path.sh && python -m ser.bin.score --folds-dir {fold.parent} {run}"],
                         cwd=recipe, capture_output=True, text=True)
    assert out.returncode == 1 and "trained with other utterance lists" in out.stderr
    assert not (run / "results.json").exists()


@pytest.mark.slow
def test_changed_corpus_is_prepared_again(tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    corpus = make_casia(tmp_path / "corpora")
    args = ("--corpus", "casia", "--casia-dir", str(corpus), "--stage", "1", "--stop-stage", "1")
    run_recipe(recipe, *args)
    assert len(read_table(recipe / "data/casia/wav.scp")) == 8
    out = run_recipe(recipe, *args)
    assert "data/casia is complete; skipping" in out.stderr
    # The same files with new modification times (a fresh copy) are the same corpus.
    for path in corpus.rglob("*"):
        os.utime(path, (1e9, 1e9))
    out = run_recipe(recipe, *args)
    assert "data/casia is complete; skipping" in out.stderr
    # An edit that keeps a file's size is a change.
    first = sorted(corpus.glob("*/*/*.wav"))[0]
    audio = bytearray(first.read_bytes())
    audio[-2:] = bytes([audio[-2] ^ 1, audio[-1]])
    first.write_bytes(bytes(audio))
    out = run_recipe(recipe, *args)
    assert "rebuilding data/casia" in out.stderr and "corpus_contents" in out.stderr
    removed = sorted(corpus.glob("*/*/*.wav"))[:3]
    for path in removed:
        path.unlink()
    shutil.copyfile(sorted(corpus.glob("*/*/*.wav"))[0], corpus / "wangzhe/sad/203.wav")
    out = run_recipe(recipe, *args)
    assert "rebuilding data/casia" in out.stderr and "corpus_contents" in out.stderr
    wavs = read_table(recipe / "data/casia/wav.scp")
    assert len(wavs) == 6 and not {str(p) for p in removed} & set(wavs.values())
    assert any(v.endswith("wangzhe/sad/203.wav") for v in wavs.values())


@pytest.mark.slow
def test_iemocap_defaults_to_leave_one_session_out(tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    corpus = make_iemocap(tmp_path / "corpora")
    out = run_recipe(recipe, "--corpus", "iemocap", "--iemocap-dir", str(corpus), "--stage", "1",
                     "--stop-stage", "2")
    assert "Stage 2: session folds" in out.stderr
    folds = json.loads((recipe / "data/iemocap/folds/session/folds.json").read_text())
    assert [f["test_groups"] for f in folds["folds"]] == [["Session1"], ["Session2"]]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _processes_under(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if (str(path) in cmdline or cwd.startswith(str(path))) and _alive(int(proc.name)):
                pids.append(int(proc.name))
    return pids


def _read_feats(scp: Path) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in kaldiio.load_scp(str(scp)).items()}


@pytest.mark.slow
def test_kill_9_of_the_driver_leaves_no_job_and_the_rerun_matches(tiny_recipe, tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    args = ["./run.sh", "--stage", "1", "--stop-stage", "3", *TINY]
    driver = subprocess.Popen(args, cwd=recipe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    job_log = recipe / "data/synth/feats/fbank/log/make_feats.1.log"
    deadline = time.time() + 300
    while not job_log.is_file() and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
    assert driver.poll() is None, "the stages ended before the kill"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    # The immediate rerun must neither race the killed run's jobs nor fail.
    run_recipe(recipe, "--stage", "1", "--stop-stage", "3", *TINY)
    deadline = time.time() + 20
    while _processes_under(recipe) and time.time() < deadline:
        time.sleep(0.1)
    assert _processes_under(recipe) == []
    got = _read_feats(recipe / "data/synth/feats/fbank/feats.scp")
    want = _read_feats(tiny_recipe / "data/synth/feats/fbank/feats.scp")
    assert sorted(got) == sorted(want)
    for utt in want:
        np.testing.assert_array_equal(got[utt], want[utt])


@pytest.mark.slow
def test_two_runs_on_one_dir_wait_for_each_other(tmp_path):
    recipe = copy_recipe(tmp_path / "recipe")
    args = ["./run.sh", "--stage", "1", "--stop-stage", "3", *TINY]
    first = subprocess.Popen(args, cwd=recipe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.Popen(args, cwd=recipe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert any("another run is writing" in err for _, err in outs)
    feats = read_table(recipe / "data/synth/feats/fbank/feats.scp")
    assert len(feats) == 72 and len(_read_feats(recipe / "data/synth/feats/fbank/feats.scp")) == 72


@pytest.mark.slow
def test_corpus_under_a_path_with_spaces_runs_end_to_end(tiny_recipe, tmp_path):
    corpus = tmp_path / "corpora with spaces" / "synth ü"
    shutil.copytree(tiny_recipe / "data/synth/corpus", corpus)
    recipe = copy_recipe(tmp_path / "recipe")
    out = run_recipe(recipe, "--synth-dir", str(corpus), "--stage", "1", *TINY)
    assert "| **mean ± std** |" in out.stdout
    wavs = read_table(recipe / "data/synth/wav.scp")
    assert all(v.endswith("|") for v in wavs.values())
    assert len(read_table(recipe / "data/synth/feats/fbank/feats.scp")) == 72


def test_a_record_holding_the_retired_options_matches_only_at_their_no_op_values():
    from ser.bin.train import same_record
    from ser.train import RETIRED_OPTIONS

    now = {"model_config": {"variant": "lstm_tf_at"}, "inputs": {"data": "abc"}, "train_config": {"lr": 0.002}}
    older = {**now, "train_config": {"lr": 0.002, **RETIRED_OPTIONS}}  # recorded before their removal
    assert same_record(older, now) and same_record(now, now)
    for option, value in (("crop_share", 0.6), ("mixup_alpha", 0.2), ("speaker_adversary", 1.0)):
        assert not same_record({**older, "train_config": {**older["train_config"], option: value}}, now)
    assert not same_record({**older, "inputs": {"data": "other"}}, now)
    assert not same_record({**older, "train_config": {"lr": 0.001}}, now)
    assert not same_record(None, now)


def test_a_corpus_named_through_dot_dot_is_the_same_setting_as_its_plain_path(tmp_path):
    """steps/prepare_data.sh records the corpus dir without "." and "..": naming it again by
    its plain path finds the data dir complete instead of preparing it again."""
    recipe = copy_recipe(tmp_path / "recipe")
    corpus = make_casia(tmp_path / "corpora")
    (tmp_path / "corpora/other").mkdir()

    def prepare(corpus_dir: str) -> str:
        out = subprocess.run(["steps/prepare_data.sh", "casia", corpus_dir, "data/casia"], cwd=recipe,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stderr

    assert "preparing casia from " + str(corpus) in prepare("../corpora/other/./../casia")
    assert "skipping" in prepare(str(corpus))
    assert str(corpus) + "/" in next(iter(read_table(recipe / "data/casia/wav.scp").values()))


def test_the_svm_record_holds_only_the_seed_so_training_options_do_not_retrain_it(tmp_path):
    """The svm reads only the seed of the training options (ser.train.options_read): its
    run record leaves the others out, while a recurrent model's record changes with them."""
    from ser.bin.train import get_parser, run_record

    (tmp_path / "folds/fold1").mkdir(parents=True)
    for part in ("train", "valid", "test"):
        (tmp_path / "folds/fold1" / part).write_text("utt1\n")

    def record(model: str, train_opts: str, seed: int = 1) -> dict:
        args = get_parser().parse_args(["--data-dir", str(tmp_path), "--feat-dir", str(tmp_path), "--folds-dir",
                                        str(tmp_path / "folds"), "--cmvn", "utt", "--model", model,
                                        "--train-opts", train_opts])
        return run_record(args, "fold1", seed)

    assert record("svm", "lr=0.5 epochs=3")["train_config"] == {"seed": 1}
    assert record("svm", "lr=0.5") == record("svm", "") != record("svm", "", seed=2)
    assert record("lstm_tf_at", "lr=0.5") != record("lstm_tf_at", "")
    assert record("lstm_tf_at", "lr=0.5")["train_config"]["lr"] == 0.5


@pytest.mark.slow
def test_runs_recorded_before_the_retired_options_went_are_scored_not_retrained(tiny_recipe, tmp_path):
    from ser.train import RETIRED_OPTIONS

    recipe = clone_trained(tiny_recipe, tmp_path / "recipe")
    run = recipe / SYSTEM / "loso/seed1/fold1"
    record = json.loads((run / ".done").read_text())
    record["train_config"].update(RETIRED_OPTIONS)
    (run / ".done").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    out = run_recipe(recipe, "--stage", "5", "--stop-stage", "6", *TINY)
    assert "are complete with these settings; skipping" in out.stderr and "training 1 run" not in out.stderr
    assert json.loads((run / "results.json").read_text())["run_record"]  # scored
    record["train_config"]["mixup_alpha"] = 0.2  # trained with mixup: not these settings
    (run / ".done").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    out = run_recipe(recipe, "--stage", "5", "--stop-stage", "6", *TINY, check=False)
    assert out.returncode != 0 and "made from other inputs or settings" in out.stderr


@pytest.mark.slow
def test_results_of_rebuilt_inputs_are_listed_apart_as_out_of_date(tiny_recipe, tmp_path):
    # exp/<corpus>/RESULTS.md is rewritten whenever any system is scored: rows of a
    # system trained on an earlier version of the data, features or folds must not
    # stand among the current ones.
    from ser.report import write_corpus_results

    recipe = clone_trained(tiny_recipe, tmp_path / "recipe")
    exp = recipe / "exp" / "synth"
    row = f"| {Path(SYSTEM).name} | loso | fbank |"

    def tables() -> tuple[str, str]:
        current, _, stale = write_corpus_results(exp).read_text().partition("## Out of date")
        return current, stale

    current, stale = tables()
    assert row in current and stale == ""
    # The data dir prepared again from another version of the corpus, then the features.
    for done, changed in ((recipe / "data/synth/.done", "data"),
                          (recipe / "data/synth/feats/fbank/.done", "data, features")):
        done.write_text(done.read_text() + "corpus_contents=another\n")
        current, stale = tables()
        assert row not in current
        assert [line for line in stale.splitlines() if line.startswith(row)][0].endswith(f"| {changed} |")
        assert "Not results of the current data" in stale
    # A run without a record of its inputs cannot be vouched for either.
    for done in (recipe / "data/synth/.done", recipe / "data/synth/feats/fbank/.done"):
        shutil.copy(tiny_recipe / done.relative_to(recipe), done)
    assert row in tables()[0]
    run_done = exp / Path(SYSTEM).name / "loso/seed1/fold2/.done"
    run_done.write_text("{}\n")
    current, stale = tables()
    assert row not in current and "| no record of its inputs |" in stale


@pytest.mark.slow
def test_a_feature_rebuild_names_the_setting_that_changed(tiny_recipe, tmp_path):
    # The feature record holds a hash of conf/feats/<feat>.*; the message says which line changed.
    recipe = clone_trained(tiny_recipe, tmp_path / "recipe")
    conf = recipe / "conf/feats/fbank.yaml"
    conf.write_text(conf.read_text().replace("num_filters: 80", "num_filters: 40"))
    out = run_recipe(recipe, "--stage", "3", "--stop-stage", "3", *TINY)
    assert "data/synth/feats/fbank was made from other inputs or settings:" in out.stderr
    assert "  then: feat_conf=" in out.stderr  # the hash, as before
    assert ("  then: conf/feats/fbank.yaml: num_filters: 80\n"
            "  now:  conf/feats/fbank.yaml: num_filters: 40\n") in out.stderr
    assert (recipe / "data/synth/feats/fbank/feat_dim").read_text().strip() == "40"
