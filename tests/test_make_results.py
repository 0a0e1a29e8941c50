"""local/make_results.py: rows saved per (setup, system), kept when their exp dirs are
gone, and paired tests over folds with the seeds averaged within each fold."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def fake_system(exp: Path, system: str, uars: dict[tuple[str, int], float], originals_only: float | None = None,
                commit: str = "abc", lr: float = 1, feat: str = "x", model_config: dict | None = None) -> None:
    """Scored runs; with ``originals_only``, scored with test-time copies (ser/bin/score.py)
    and that UAR for the same models on the originals alone."""
    for (fold, seed), uar in uars.items():
        run = exp / "casia" / system / "loso" / f"seed{seed}" / fold
        run.mkdir(parents=True)
        copies = {} if originals_only is None else {
            "test_copies": ["0.9", "1.1"],
            "originals_only": {"uar": originals_only, "wa": originals_only, "macro_f1": originals_only}}
        (run / "results.json").write_text(json.dumps({
            "fold": fold, "seed": seed, "uar": uar, "wa": uar, "macro_f1": uar, "train_seconds": 60,
            "num_utts": 300, "num_test_excluded": 0, **copies}))
        (run / "run_config.json").write_text(json.dumps({
            "feat_dir": f"data/casia/feats/{feat}", "cmvn": "train", "model_config": model_config or {}, "commit": commit,
            "train_config": {"seed": seed, "lr": lr}}))


def make_results(exp: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "local/make_results.py"), "--setups", "casia:loso",
                           "--systems", "svm lstm_tf_at", "--exp-dir", str(exp),
                           "--results-dir", str(tmp_path / "rows"), "--out", str(tmp_path / "RESULTS.md"), *extra],
                          capture_output=True, text=True)


@pytest.mark.slow
def test_rows_pairing_and_persistence(tmp_path):
    exp = tmp_path / "exp"
    folds = ["fold1", "fold2", "fold3"]
    fake_system(exp, "compare_functionals_svm", {(f, s): 0.40 for f in folds for s in (1, 2, 3)})
    # lstm_tf_at: seed 1 and 2 differ; per-fold means 0.50, 0.45, 0.55.
    fake_system(exp, "lld93_lstm_tf_at", {(f, s): m + (0.02 if s == 1 else -0.02)
                                          for f, m in zip(folds, (0.50, 0.45, 0.55)) for s in (1, 2)})
    out = make_results(exp, tmp_path, "--speed-perturb", "none")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| svm | x | train | 3 × 3 | 40.00 ± 0.00 |" in text
    assert "3 × 2 (**fewer than 3 seeds**)" in text
    assert "| svm | 3 | +10.00 | -2.4 to +22.4 |" in text  # paired over 3 folds, not 6 runs
    assert "--model lstm_tf_at" in text and "| abc |" in text
    # Rows stay once measured, also when exp/ is gone.
    import shutil
    shutil.rmtree(exp)
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    assert "| svm | 3 | +10.00 |" in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.slow
def test_encoder_systems_are_rows_of_their_own_paired_with_both_svms(tmp_path):
    exp = tmp_path / "exp"
    folds = ["fold1", "fold2", "fold3"]
    fake_system(exp, "compare_functionals_svm", {(f, s): 0.40 for f in folds for s in (1, 2, 3)})
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2", {(f, s): 0.38 for f in folds for s in (1, 2, 3)})
    fake_system(exp, "whisper_svm", {(f, s): m for f, m in zip(folds, (0.44, 0.46, 0.45)) for s in (1, 2, 3)},
                feat="whisper")
    fake_system(exp, "whisper_lstm_tf_at_sp0.8_0.9_1.1_1.2", {(f, s): m for f, m in zip(folds, (0.47, 0.48, 0.49)) for s in (1, 2, 3)},
                feat="whisper")
    out = make_results(exp, tmp_path, "--systems", "svm lstm_tf_at whisper:svm whisper:lstm_tf_at")
    assert out.returncode == 0, out.stderr
    rows = sorted(p.name for p in (tmp_path / "rows").iterdir())
    assert rows == ["casia_loso_lstm_tf_at_sp0.8_0.9_1.1_1.2.json", "casia_loso_svm.json", "casia_loso_whisper_lstm_tf_at_sp0.8_0.9_1.1_1.2.json",
                    "casia_loso_whisper_svm.json"]  # the ComParE svm's row is not overwritten
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| whisper_svm | whisper | train | 3 × 3 | 45.00 ± 0.87 |" in text
    # The paper's systems, then the encoder's in the same order.
    assert [line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ") and " | train | " in line] \
        == ["svm", "lstm_tf_at_sp0.8_0.9_1.1_1.2", "whisper_svm", "whisper_lstm_tf_at_sp0.8_0.9_1.1_1.2"]
    assert "--feat whisper --model lstm_tf_at" in text
    assert "| whisper_lstm_tf_at_sp0.8_0.9_1.1_1.2 − svm | 3 | +8.00 |" in text
    assert "| whisper_lstm_tf_at_sp0.8_0.9_1.1_1.2 − lstm_tf_at_sp0.8_0.9_1.1_1.2 | 3 | +10.00 |" in text
    assert "| whisper_lstm_tf_at_sp0.8_0.9_1.1_1.2 − whisper_svm | 3 | +3.00 |" in text
    assert "| whisper_svm − svm | 3 | +5.00 |" in text
    assert "| whisper_svm − whisper_svm |" not in text
    assert ": earlier defaults" not in text
    # The paper's model against the plain lstm on the same frames with the same options.
    assert "lstm_tf_at_sp0.8_0.9_1.1_1.2 − whisper_lstm" not in text
    fake_system(exp, "whisper_lstm_sp0.8_0.9_1.1_1.2", {(f, s): m for f, m in zip(folds, (0.45, 0.45, 0.45)) for s in (1, 2, 3)},
                feat="whisper")
    out = make_results(exp, tmp_path, "--systems", "whisper:lstm")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| whisper_lstm_tf_at_sp0.8_0.9_1.1_1.2 − whisper_lstm_sp0.8_0.9_1.1_1.2 | 3 | +3.00 |" in text
    assert "| whisper_lstm_sp0.8_0.9_1.1_1.2 − whisper_lstm" not in text
    shutil.rmtree(exp / "casia" / "whisper_lstm_sp0.8_0.9_1.1_1.2")
    # Encoder systems trained without copies (their default until 2026-12-06) are listed apart.
    fake_system(exp, "whisper_lstm_tf_at", {(f, 1): 0.41 for f in folds}, feat="whisper")
    out = make_results(exp, tmp_path, "--systems", "whisper:lstm_tf_at", "--speed-perturb", "none")
    assert out.returncode == 0, out.stderr
    earlier = (tmp_path / "RESULTS.md").read_text().split("### casia, loso: earlier defaults")[1]
    assert "| whisper_lstm_tf_at | whisper |" in earlier


@pytest.mark.slow
def test_speed_perturbed_runs_are_rows_of_their_own_and_the_reference(tmp_path):
    exp = tmp_path / "exp"
    folds = ["fold1", "fold2", "fold3"]
    fake_system(exp, "compare_functionals_svm", {(f, s): 0.40 for f in folds for s in (1, 2, 3)})
    fake_system(exp, "lld93_lstm_tf_at", {(f, s): 0.30 for f in folds for s in (1, 2, 3)})
    fake_system(exp, "lld93_lstm_tf_at_sp0.9_1.1", {(f, s): 0.42 for f in folds for s in (1, 2, 3)})
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    # Copies at factors that are not run.sh's default: the reference until the default's row exists.
    out = make_results(exp, tmp_path, "--speed-perturb", "0.9,1.1")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| lstm_tf_at_sp0.9_1.1 | x | train | 3 × 3 | 42.00 ± 0.00 |" in text
    assert "| lstm_tf_at_sp0.9_1.1 − system |" in text
    assert "--model lstm_tf_at --seeds \"1 2 3\" --speed-perturb \"0.9 1.1\"`" in text
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2", {(f, s): 0.45 for f in folds for s in (1, 2, 3)})
    out = make_results(exp, tmp_path)  # run.sh's default: its copies for the recurrent systems
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| lstm_tf_at | x | train | 3 × 3 | 30.00 ± 0.00 |" in text
    assert "| lstm_tf_at_sp0.8_0.9_1.1_1.2 | x | train | 3 × 3 | 45.00 ± 0.00 |" in text
    assert "| lstm_tf_at_sp0.8_0.9_1.1_1.2 − system |" in text
    assert "| svm | 3 | +5.00 |" in text and "| lstm_tf_at | 3 | +15.00 |" in text
    assert "| lstm_tf_at_sp0.9_1.1 | 3 | +3.00 |" in text
    assert "--model lstm_tf_at --seeds \"1 2 3\" --speed-perturb \"\"`" in text  # the run without copies
    assert "--model lstm_tf_at --seeds \"1 2 3\"`" in text  # the default run needs no option
    assert "Not measured yet" not in text


def test_rows_of_earlier_defaults_are_listed_apart_after_the_environment(tmp_path):
    """Rows trained without copies or at 0.9 1.1 (run.sh's defaults once) leave the setup's main
    table for its "earlier defaults" section; the setup opens with the records' environment."""
    head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%H %cs"], capture_output=True, text=True)
    commit, date = head.stdout.split() if head.returncode == 0 else ("unknown", "")
    exp = tmp_path / "exp"
    folds = ["fold1", "fold2", "fold3"]
    fake_system(exp, "compare_functionals_svm", {(f, s): 0.40 for f in folds for s in (1, 2, 3)}, commit="abc")
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2", {(f, s): 0.45 for f in folds for s in (1, 2, 3)},
                commit=f"{commit[:10]}-dirty")
    fake_system(exp, "lld93_lstm_tf_at", {(f, s): 0.30 for f in folds for s in (1, 2, 3)}, commit="abc")
    fake_system(exp, "lld93_lstm_tf_at_sp0.9_1.1", {(f, s): 0.42 for f in folds for s in (1, 2, 3)}, commit="abc")
    for speed_perturb in ("none", "0.9 1.1", "auto"):
        out = make_results(exp, tmp_path, "--speed-perturb", speed_perturb)
        assert out.returncode == 0, out.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    main, earlier = text.split("\n## casia, loso\n")[1].split("\n### casia, loso: earlier defaults\n")
    assert "| svm | x | train | 3 × 3 | 40.00 ± 0.00 |" in main
    assert "| lstm_tf_at_sp0.8_0.9_1.1_1.2 | x | train | 3 × 3 | 45.00 ± 0.00 |" in main
    assert "| lstm_tf_at | x |" not in main and "| lstm_tf_at_sp0.9_1.1 | x |" not in main
    assert "| lstm_tf_at | x | train | 3 × 3 | 30.00 ± 0.00 |" in earlier
    assert "| lstm_tf_at_sp0.9_1.1 | x | train | 3 × 3 | 42.00 ± 0.00 |" in earlier
    assert "no copies until a396ad8 (2026-11-26), copies at 0.9 and 1.1 until e2e61de (2026-11-27)" in earlier
    # Paired with the reference (the current default) in the section of the other row.
    assert "| svm | 3 | +5.00 |" in main and "| lstm_tf_at | 3 | +15.00 |" in earlier
    assert "| lstm_tf_at_sp0.9_1.1 | 3 | +3.00 |" in earlier
    assert "--speed-perturb \"\"`" in earlier and "--speed-perturb \"\"`" not in main
    # The environment, before the table: devices, commits with their dates, rows written.
    environment = main.split("| system |")[0]
    assert "- device: CPU for every run" in environment
    if date:  # a checkout with its git history: the known commit is dated, the other counted
        assert f"- trained at 2 commits, `{commit[:7]}` ({date}); each row's are in its commit column; " \
               "1 not in this repository's history" in environment
    assert re.search(r"- rows written \d{4}-\d\d-\d\d\n", environment)


def test_runs_scored_with_test_copies_give_a_tta_row_and_an_originals_row(tmp_path):
    exp = tmp_path / "exp"
    folds = ["fold1", "fold2", "fold3"]
    fake_system(exp, "compare_functionals_svm", {(f, s): 0.40 for f in folds for s in (1, 2, 3)})
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2", {(f, s): 0.47 for f in folds for s in (1, 2, 3)},
                originals_only=0.44)
    out = make_results(exp, tmp_path)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| lstm_tf_at_sp0.8_0.9_1.1_1.2_tta | x | train | 3 × 3 | 47.00 ± 0.00 |" in text
    assert "| lstm_tf_at_sp0.8_0.9_1.1_1.2 | x | train | 3 × 3 | 44.00 ± 0.00 |" in text
    # The tta row is the reference; its own models on the originals are paired with it.
    assert "| lstm_tf_at_sp0.8_0.9_1.1_1.2_tta − system |" in text
    assert "| svm | 3 | +7.00 |" in text and "| lstm_tf_at_sp0.8_0.9_1.1_1.2 | 3 | +3.00 |" in text
    rows = {p.name for p in (tmp_path / "rows").glob("*.json")}
    assert {"casia_loso_lstm_tf_at_sp0.8_0.9_1.1_1.2_tta.json", "casia_loso_lstm_tf_at_sp0.8_0.9_1.1_1.2.json"} <= rows
    assert "Not measured yet" not in text


def test_runs_scored_partly_with_test_copies_are_refused(tmp_path):
    exp = tmp_path / "exp"
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2", {("fold1", 1): 0.47}, originals_only=0.44)
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2", {("fold2", 1): 0.45})
    out = make_results(exp, tmp_path)
    assert out.returncode != 0 and "1 of 2 runs were scored with test-time copies" in out.stderr


@pytest.mark.slow
def test_a_row_collected_again_unchanged_keeps_its_file(tmp_path):
    exp = tmp_path / "exp"
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.40})
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    row = tmp_path / "rows" / "casia_loso_svm.json"
    row.write_text(row.read_text().replace(json.loads(row.read_text())["written"], "2000-01-01 00:00"))
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    assert json.loads(row.read_text())["written"] == "2000-01-01 00:00"  # nothing new: untouched
    fake_system(exp, "compare_functionals_svm", {("fold1", 2): 0.50})  # a new seed: a new row
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    assert json.loads(row.read_text())["written"] != "2000-01-01 00:00"
    assert json.loads(row.read_text())["num_runs"] == 2


@pytest.mark.slow
def test_seeds_added_in_a_fresh_checkout_join_the_saved_row(tmp_path):
    exp = tmp_path / "exp"
    folds = ["fold1", "fold2", "fold3"]
    fake_system(exp, "compare_functionals_svm", {(f, 1): 0.40 for f in folds}, commit="old")
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    shutil.rmtree(exp)  # a fresh checkout: only the saved row is left
    fake_system(exp, "compare_functionals_svm", {(f, s): 0.50 for f in folds for s in (2, 3)}, commit="new")
    out = make_results(exp, tmp_path, "--speed-perturb", "none")
    assert out.returncode == 0, out.stderr
    row = json.loads((tmp_path / "rows" / "casia_loso_svm.json").read_text())
    assert row["seeds"] == [1, 2, 3] and row["num_runs"] == 9 and row["num_folds"] == 3
    assert row["commits"] == ["new", "old"] and row["train_seconds"] == 9 * 60
    assert abs(row["uar"][0] - (0.40 + 2 * 0.50) / 3) < 1e-9
    assert row["per_fold_uar"]["fold2"] == {"1": 0.40, "2": 0.50, "3": 0.50}
    assert "| svm | x | train | 3 × 3 | 46.67 ± 5.00 |" in (tmp_path / "RESULTS.md").read_text()
    # Collected once more, with a run of exp/ measured again: exp/'s run wins, nothing is counted twice.
    shutil.rmtree(exp / "casia" / "compare_functionals_svm" / "loso" / "seed3")
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.70}, commit="new")
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    row = json.loads((tmp_path / "rows" / "casia_loso_svm.json").read_text())
    assert row["num_runs"] == 9 and row["per_fold_uar"]["fold1"] == {"1": 0.70, "2": 0.50, "3": 0.50}


@pytest.mark.slow
def test_a_row_saved_before_runs_carried_their_times_keeps_its_totals(tmp_path):
    """Rows saved before runs carried their own times (before 48c9ce5, 2026-11-28) keep only
    the sums of training time, commits and devices."""
    exp = tmp_path / "exp"
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.40, ("fold2", 1): 0.40}, commit="old")
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    path = tmp_path / "rows" / "casia_loso_svm.json"
    legacy = json.loads(path.read_text())
    legacy["runs"] = [{k: r[k] for k in ("fold", "seed", "uar", "wa", "macro_f1")} for r in legacy["runs"]]
    legacy["train_seconds"] = 1000.0
    path.write_text(json.dumps(legacy))
    shutil.rmtree(exp)
    fake_system(exp, "compare_functionals_svm", {("fold1", 2): 0.50, ("fold2", 2): 0.50}, commit="new")
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    row = json.loads(path.read_text())
    assert row["num_runs"] == 4 and row["train_seconds"] == 1000 + 2 * 60 and row["commits"] == ["new", "old"]
    # Some of its runs collected again beside new ones: its total cannot be split; said, and nothing written.
    path.write_text(json.dumps(legacy))
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.45}, commit="new")
    out = make_results(exp, tmp_path, "--speed-perturb", "none")
    assert out.returncode == 1 and f"{path}: exp/ holds 1 of its 2 runs again" in out.stderr
    assert json.loads(path.read_text()) == legacy


@pytest.mark.slow
def test_a_row_made_with_other_settings_is_replaced_not_joined(tmp_path):
    exp = tmp_path / "exp"
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.40}, lr=1)
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    shutil.rmtree(exp)
    fake_system(exp, "compare_functionals_svm", {("fold1", 2): 0.50}, lr=2)
    out = make_results(exp, tmp_path, "--speed-perturb", "none")
    assert out.returncode == 0, out.stderr
    assert "replacing the saved row (1 runs), made with other train_config" in out.stderr
    row = json.loads((tmp_path / "rows" / "casia_loso_svm.json").read_text())
    assert row["seeds"] == [2] and row["train_config"] == {"lr": 2}


@pytest.mark.slow
def test_svm_runs_join_whatever_training_options_they_recorded(tmp_path):
    """The svm reads only the seed; its runs record the training options of their day (another
    conf/train.yaml, a feature type's feat_train_opts), which must not split its row."""
    exp = tmp_path / "exp"
    svm = {"variant": "svm", "C": 0.01}
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.40}, lr=1, model_config=svm)
    assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
    row = json.loads((tmp_path / "rows" / "casia_loso_svm.json").read_text())
    assert row["train_config"] == {}
    shutil.rmtree(exp)
    fake_system(exp, "compare_functionals_svm", {("fold1", 2): 0.50}, lr=2, model_config=svm)
    out = make_results(exp, tmp_path, "--speed-perturb", "none")
    assert out.returncode == 0 and "replacing" not in out.stderr, out.stderr
    assert json.loads((tmp_path / "rows" / "casia_loso_svm.json").read_text())["seeds"] == [1, 2]
    # A row saved with the training options of its day joins too.
    path = tmp_path / "rows" / "casia_loso_svm.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "train_config": {"lr": 1, "epochs": 30}}))
    shutil.rmtree(exp)
    fake_system(exp, "compare_functionals_svm", {("fold1", 3): 0.45}, lr=3, model_config=svm)
    out = make_results(exp, tmp_path, "--speed-perturb", "none")
    assert out.returncode == 0 and "replacing" not in out.stderr, out.stderr
    assert json.loads(path.read_text())["seeds"] == [1, 2, 3]


@pytest.mark.slow
def test_options_that_name_systems_name_their_rows(tmp_path):
    """run.sh names the dirs; a row is never read from the dir of other settings."""
    exp = tmp_path / "exp"
    folds = ["fold1", "fold2"]
    fake_system(exp, "compare_functionals_svm", {(f, 1): 0.40 for f in folds})
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2", {(f, 1): 0.30 for f in folds})  # the defaults
    fake_system(exp, "compare_functionals_svm_lr0.5", {(f, 1): 0.41 for f in folds}, lr=0.5)
    fake_system(exp, "lld93_lstm_tf_at_sp0.8_0.9_1.1_1.2_lr0.5", {(f, 1): 0.55 for f in folds}, lr=0.5)
    out = make_results(exp, tmp_path, "--extra-opts", "--train-opts lr=0.5 --nj 4")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| lstm_tf_at_sp0.8_0.9_1.1_1.2_lr0.5 | x | train | 2 × 1 (**fewer than 3 seeds**) | 55.00 ± 0.00 |" in text
    assert "| svm_lr0.5 | x | train | 2 × 1 (**fewer than 3 seeds**) | 41.00 ± 0.00 |" in text
    assert "30.00" not in text and "40.00" not in text  # the defaults' rows were not asked for
    assert ("--systems svm --seeds \"1 2 3\" --extra-opts '--train-opts lr=0.5 --nj 4'  # = ./run.sh --corpus casia "
            "--casia-dir <CASIA> --protocol loso --feat compare_functionals --model svm --seeds \"1 2 3\" "
            "--train-opts lr=0.5 --nj 4`") in text
    # Options run.sh refuses name no dir: said, and nothing written.
    out = make_results(exp, tmp_path, "--extra-opts", "--cmvn utterance")
    assert out.returncode == 1 and "could not name the system's exp dir" in out.stderr
    assert "--cmvn 'utterance' is not a normalisation mode" in out.stderr
    assert not (tmp_path / "rows" / "casia_loso_svm.json").exists()


def test_random_repeats_pick_the_rows_folds(tmp_path):
    exp = tmp_path / "exp"
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.5})
    (exp / "casia" / "compare_functionals_svm" / "loso").rename(exp / "casia" / "compare_functionals_svm" / "random_k3")
    out = subprocess.run([sys.executable, str(ROOT / "local/make_results.py"), "--setups", "casia:random",
                          "--systems", "svm", "--random-repeats", "3", "--exp-dir", str(exp),
                          "--results-dir", str(tmp_path / "rows"), "--out", str(tmp_path / "RESULTS.md")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "## casia, random_k3" in (tmp_path / "RESULTS.md").read_text()
    assert (tmp_path / "rows" / "casia_random_k3_svm.json").is_file()


def test_run_ablation_checks_its_options_before_it_starts_anything(tmp_path):
    from conftest import copy_recipe
    recipe = copy_recipe(tmp_path / "recipe")

    def ablation(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["local/run_ablation.sh", *args], cwd=recipe, capture_output=True, text=True)

    assert "--systems" in ablation("--help").stdout + ablation("--help").stderr
    for args, message in [(("--parallel", "two"), "--parallel two: expected a whole number"),
                          (("--parallel", "0"), "--parallel 0: at least one system"),
                          (("--random-repeats", "5x"), "--random-repeats 5x: expected a whole number"),
                          (("--setups", "casia:loso"), "setup casia:loso needs --casia-dir")]:
        out = ablation(*args)
        assert out.returncode == 1 and message in out.stderr, (args, out.stderr)
    assert not (recipe / "exp" / "ablation" / "log" / "0.log").exists()  # no system was started


@pytest.mark.slow
def test_run_ablation_trains_scores_and_tabulates_every_system_and_resumes(tmp_path):
    """The table's driver end to end on a CASIA-layout tree of tones (3 speakers x 6 emotions
    x 3 sentences, the emotion in the pitch): the svm and one recurrent system with the
    recipe's defaults (fbank instead of lld93 for speed)."""
    from conftest import copy_recipe
    recipe = copy_recipe(tmp_path / "recipe")
    shutil.rmtree(recipe / "local" / "results")  # the committed rows: this test makes its own
    # 3 epochs instead of 30 in this copy's defaults: the driver is tested, not the model, and the
    # rows keep the default systems' names.
    train_yaml = recipe / "conf" / "train.yaml"
    train_yaml.write_text(re.sub(r"(?m)^epochs: \d+", "epochs: 3", train_yaml.read_text()))
    corpus = tmp_path / "casia"
    for s, speaker in enumerate(("liuchanhg", "wangzhe", "zhaoquanyin")):
        for e, emotion in enumerate(("angry", "fear", "happy", "neutral", "sad", "surprise")):
            (corpus / speaker / emotion).mkdir(parents=True)
            for sentence in range(3):
                subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16",
                                str(corpus / speaker / emotion / f"20{sentence}.wav"), "synth", "0.6",
                                "sine", str(150 + 60 * e + 10 * s + 3 * sentence), "vol", "0.5"],
                               check=True, capture_output=True)
    command = ["local/run_ablation.sh", "--casia-dir", str(corpus), "--setups", "casia:loso",
               "--systems", "svm lstm_tf_at", "--seeds", "1", "--lld-feat", "fbank"]
    first = subprocess.run(command, cwd=recipe, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    results = (recipe / "RESULTS.md").read_text()
    for system, row_name in (("svm", "svm"), ("lstm_tf_at", "lstm_tf_at_sp0.8_0.9_1.1_1.2_tta")):
        row = json.loads((recipe / "local" / "results" / f"casia_loso_{row_name}.json").read_text())
        assert row["num_folds"] == 3 and row["seeds"] == [1] and f"--model {system}" in row["command"]
        assert f"| {row_name} " in results
    assert "paired" in results.lower()
    again = subprocess.run(command, cwd=recipe, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0
    logs = "".join(p.read_text() for p in (recipe / "exp" / "ablation" / "log").glob("*.log"))  # the second call's
    assert not re.search(r"training \d+ run\(s\)", logs), logs
    assert logs.count("Stage 5") == 2 and "complete with these settings; skipping" in logs
    assert (recipe / "RESULTS.md").read_text() == results


@pytest.mark.slow
def test_rows_keep_one_order_whatever_systems_a_call_measures(tmp_path):
    """A partial run (one system, or the systems in another order) must not reorder RESULTS.md."""
    exp = tmp_path / "exp"
    fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.40})
    fake_system(exp, "lld93_lstm", {("fold1", 1): 0.35})
    fake_system(exp, "lld93_lstm_tf_at", {("fold1", 1): 0.45})

    def row_order() -> list[str]:
        table = (tmp_path / "RESULTS.md").read_text().split("\n## casia, loso\n")[1]  # earlier defaults too
        return [m.group(1) for m in re.finditer(r"^\| (svm|lstm|lstm_tf_at) \| x \|", table, re.M)]

    for systems in ("lstm_tf_at lstm svm", "lstm_tf_at", "svm lstm"):
        out = make_results(exp, tmp_path, "--speed-perturb", "none", "--systems", systems)
        assert out.returncode == 0, out.stderr
        assert row_order() == ["svm", "lstm", "lstm_tf_at"], systems
