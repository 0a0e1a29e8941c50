"""ser/recipe.py names run.sh's data, fold, feature and exp dirs exactly as run.sh named them
in bash before (tests/golden/dir_names.json, recorded at b2a971e with --show-exp-dir for 45
option sets, the baseline's with the options of its then recursive run.sh call; the six
whisper/ssl sets renamed since, when speed copies became the encoder systems' default, and the
whisper sets' training options given 20 epochs since, from conf/feat_defaults/whisper.conf);
run.sh and local/make_results.py both ask it."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from ser.errors import SerError
from ser.config import shell_assignments
from ser.recipe import dir_names, recipe_settings

GOLDEN = json.loads((ROOT / "tests/golden/dir_names.json").read_text())
# The external features' scp files of the recorded option sets: their paths name the features.
SCP_FILES = (Path("/tmp/ser-golden/a.scp"), Path("/tmp/ser-golden/b.scp"))


@pytest.fixture(scope="module", autouse=True)
def scp_files():
    for path in SCP_FILES:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"u1 /{path.stem}.ark:1\n")


def recorded(names, record: dict) -> dict:
    """``names`` (one system of a RecipeDirs) in the recorded form."""
    dirs, system = names
    return {"exp": system.exp, "data": dirs.data, "folds": dirs.folds, "feat_dir": system.feat_dir,
            "aug_feat_dir": system.aug_feat_dir, "speed_perturb": system.speed_perturb, "cmvn": system.cmvn,
            "protocol": dirs.protocol, "train_opts": system.train_opts, "corpus_data": dirs.corpus_data}


@pytest.mark.parametrize("record", GOLDEN, ids=[" ".join(r["args"]) or "defaults" for r in GOLDEN])
def test_dir_names_are_those_run_sh_gave(record):
    dirs = dir_names(["--stage", "1", *record["args"]])
    assert recorded((dirs, dirs.systems[0]), record) == record["main"]
    if "baseline" in record:
        assert len(dirs.systems) == 2
        assert recorded((dirs, dirs.systems[1]), record) == record["baseline"]
    else:
        assert len(dirs.systems) == 1


# Through run.sh too (a few: each starts bash and Python), one with --name=value options.
RUN_SH_CASES = [GOLDEN[i] for i in (0, 10, 23, 40)]


@pytest.mark.parametrize("record, equals", [(r, i == 3) for i, r in enumerate(RUN_SH_CASES)],
                         ids=[" ".join(r["args"]) or "defaults" for r in RUN_SH_CASES])
def test_run_sh_shows_the_same_exp_dir(record, equals):
    args = record["args"]
    if equals:
        args = [f"{args[i]}={args[i + 1]}" for i in range(0, len(args), 2)]
    out = subprocess.run(["./run.sh", "--stage", "1", *args, "--show-exp-dir", "true"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == record["main"]["exp"] + "\n"


def test_settings_follow_run_sh_defaults_then_the_confs_then_the_command_line(tmp_path):
    defaults = shell_assignments(ROOT / "run.sh", stop_at="parse_options.sh")
    assert defaults["model"] == "lstm_tf_at" and defaults["stage"] == "0" and "cmvn_default" not in defaults
    whisper = recipe_settings(["--feat", "whisper"])
    assert whisper["cmvn"] == whisper["cmvn_default"] == "train"  # conf/feat_defaults/whisper.conf
    assert recipe_settings(["--feat", "whisper", "--cmvn", "utt"])["cmvn"] == "utt"
    assert recipe_settings(["--corpus=casia"])["auto_speed_factors"] == ""
    assert recipe_settings([])["auto_speed_factors"] == "0.9 1.1"  # conf/corpus/synth.conf
    config = tmp_path / "my.conf"
    config.write_text('model=gru  # a comment\nexp_tag="a b"\n')
    s = recipe_settings(["--model", "lstm", "--config", str(config), "--seeds", "1 2"])
    assert (s["model"], s["exp_tag"], s["seeds"]) == ("gru", "a b", "1 2")


@pytest.mark.parametrize("args, message", [
    (["--no-such-option", "1"], "unknown option --no-such-option"),
    (["--cmvn-default", "train"], "unknown option --cmvn-default"),
    (["--model"], "option --model needs a value"),
    (["stray"], "unexpected argument(s): stray"),
    (["--config", "/nonexistent.conf"], "config file '/nonexistent.conf' not found"),
    (["--cmvn", "utterance", "--model", "lstm_ft_at"],
     "--model 'lstm_ft_at' has no config"),
    (["--cmvn", "utterance"], "--cmvn 'utterance' is not a normalisation mode"),
    (["--corpus", "casia", "--test-corpus", "emodb", "--protocol", "loso"],
     "--test-corpus takes --protocol cross_corpus (got loso)"),
    (["--feat", "external"], "--feat external needs --feats-scp PATH"),
    (["--feat", "external", "--feats-scp", "/nonexistent/feats.scp"], "--feats-scp /nonexistent/feats.scp: no such file"),
])
def test_bad_settings_name_no_dir(args, message):
    with pytest.raises(SerError) as err:
        dir_names(args)
    assert message in str(err.value)


def test_a_conf_line_that_is_not_a_plain_assignment_is_refused(tmp_path):
    conf = tmp_path / "x.conf"
    conf.write_text("cmvn=$other\n")
    with pytest.raises(SerError, match="is not a plain name=value line"):
        shell_assignments(conf)


def test_the_synth_size_is_its_confs_wherever_synth_is_used():
    from ser.corpora.synth import default_size
    conf = shell_assignments(ROOT / "conf/corpus/synth.conf")
    assert default_size() == (int(conf["synth_speakers"]), int(conf["synth_sentences"]))
    cross = dir_names(["--corpus", "casia", "--test-corpus", "synth"])  # synth's conf is not --corpus's here
    assert (cross.synth_speakers, cross.synth_sentences) == (conf["synth_speakers"], conf["synth_sentences"])
    given = dir_names(["--synth-speakers", "3", "--synth-sentences", "4"])
    assert (given.synth_speakers, given.synth_sentences) == ("3", "4")
