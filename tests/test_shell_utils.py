"""utils/parse_options.sh and utils/run.pl: the recipe's shell interface."""
from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ROOT

SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
foo_bar=default   # what foo-bar does
count=1
help_message="Usage: demo.sh [options] <arg>"
. {root}/utils/parse_options.sh
echo "foo_bar=$foo_bar count=$count rest=$*"
"""


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "demo.sh"
    script.write_text(SCRIPT.format(root=ROOT))
    script.chmod(0o755)
    return subprocess.run([str(script), *args], capture_output=True, text=True)


def test_options_set_variables(tmp_path):
    out = demo(tmp_path, "--foo-bar", "x y", "--count=3", "positional")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "foo_bar=x y count=3 rest=positional"


def test_unknown_option_is_an_error(tmp_path):
    out = demo(tmp_path, "--no-such-thing", "1")
    assert out.returncode != 0
    assert "unknown option --no-such-thing" in out.stderr


def test_missing_value_is_an_error(tmp_path):
    out = demo(tmp_path, "--count")
    assert out.returncode != 0
    assert "needs a value" in out.stderr


def test_help_lists_every_option_with_default_and_comment(tmp_path):
    out = demo(tmp_path, "--help")
    assert out.returncode == 0
    assert "Usage: demo.sh" in out.stdout
    assert "--foo-bar" in out.stdout and "[default]" in out.stdout and "what foo-bar does" in out.stdout
    assert "--count" in out.stdout


def test_config_file_sets_defaults(tmp_path):
    conf = tmp_path / "x.conf"
    conf.write_text("count=7\n")
    out = demo(tmp_path, "--config", str(conf), "--foo-bar", "z")
    assert out.stdout.strip() == "foo_bar=z count=7 rest="


def run_pl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "utils" / "run.pl"), *args], cwd=cwd, capture_output=True,
                          text=True)


def test_run_pl_substitutes_job_in_log_and_command(tmp_path):
    out = run_pl("JOB=1:3", "log/echo.JOB.log", "echo", "task", "JOB", "a b", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for job in (1, 2, 3):
        log = (tmp_path / f"log/echo.{job}.log").read_text()
        assert f"task {job} a b\n" in log
        assert "# Ended (code 0)" in log


def test_run_pl_failure_names_the_failed_log(tmp_path):
    out = run_pl("JOB=1:3", "log/x.JOB.log", "bash", "-c", "echo oops >&2; [ JOB != 2 ]", cwd=tmp_path)
    assert out.returncode == 1
    assert "1 / 3 failed" in out.stderr and "log/x.2.log" in out.stderr
    assert "oops" in (tmp_path / "log/x.2.log").read_text()
    assert "# Ended (code 1)" in (tmp_path / "log/x.2.log").read_text()


def test_run_pl_single_job_and_max_jobs_run(tmp_path):
    out = run_pl("log/one.log", "true", cwd=tmp_path)
    assert out.returncode == 0 and (tmp_path / "log/one.log").is_file()
    # With one job at a time the tasks never overlap: each sees no other's lock.
    cmd = "set -o noclobber; : > running || exit 3; sleep 0.2; rm running"
    out = run_pl("--max-jobs-run", "1", "JOB=1:3", "log/s.JOB.log", "bash", "-c", cmd, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_run_pl_rejects_bad_usage(tmp_path):
    assert run_pl("--bogus", "1", "log", "true", cwd=tmp_path).returncode != 0
    out = run_pl("JOB=1:2", "log/no-job-in-name.log", "true", cwd=tmp_path)
    assert out.returncode != 0 and "must contain JOB" in out.stderr


def keep_job_logs(log_dir: Path, *args: str) -> subprocess.CompletedProcess:
    # Under the steps' shell options: a failing pipe would end the script there.
    return subprocess.run(["bash", "-c", f'set -euo pipefail; . {ROOT}/utils/lib.sh && keep_job_logs "$@"; echo done',
                           "_", str(log_dir), *args],
                          capture_output=True, text=True, check=True)


def test_keep_job_logs_moves_an_earlier_calls_logs_aside(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    for name, text in [("train.1.log", "first call, job 1"), ("train.2.log", "first call, job 2"),
                       ("train.log", "not an array log"), ("score.1.log", "another array")]:
        (log_dir / name).write_text(text)
    (tmp_path / "tasks.txt").write_text("fold1 1 exp/seed1/fold1\nfold2 1 exp/seed1/fold2\n")
    keep_job_logs(log_dir, "train", str(tmp_path / "tasks.txt"), str(tmp_path / "absent.txt"))
    kept = [d for d in log_dir.iterdir() if d.is_dir()]
    assert len(kept) == 1 and kept[0].name.startswith("train.")
    assert sorted(p.name for p in kept[0].iterdir()) == ["tasks.txt", "train.1.log", "train.2.log"]
    assert (kept[0] / "train.2.log").read_text() == "first call, job 2"
    assert (tmp_path / "tasks.txt").exists()  # copied: the caller replaces it
    assert sorted(p.name for p in log_dir.iterdir() if p.is_file()) == ["score.1.log", "train.log"]
    # A second call in the same second gets its own dir; with nothing to keep, nothing happens.
    (log_dir / "train.1.log").write_text("second call, job 1")
    keep_job_logs(log_dir, "train")
    keep_job_logs(log_dir, "train")
    kept = sorted(d for d in log_dir.iterdir() if d.is_dir())
    assert len(kept) == 2
    assert {(d / "train.1.log").read_text() for d in kept} == {"first call, job 1", "second call, job 1"}


def test_keep_job_logs_keeps_the_schedulers_output_of_each_task(tmp_path):
    # slurm.pl and queue.pl write q/<name>.<n>.out beside the logs; it holds what a task
    # printed before it could log (a kill by the scheduler, a missing module).
    log_dir = tmp_path / "log"
    (log_dir / "q").mkdir(parents=True)
    (log_dir / "train.1.log").write_text("first call, job 1")
    (log_dir / "q" / "train.1.out").write_text("slurmstepd: task 1 killed: out of memory")
    (log_dir / "q" / "train.sh").write_text("the job script")
    (log_dir / "q" / "make_feats.1.out").write_text("another array")
    keep_job_logs(log_dir, "train")
    kept = [d for d in log_dir.iterdir() if d.is_dir() and d.name != "q"]
    # Under run.pl there is no q/, and with nothing to keep, or no log dir at all, nothing happens.
    for empty in (tmp_path / "run_pl_log", tmp_path / "absent"):
        (tmp_path / "run_pl_log").mkdir(exist_ok=True)
        assert keep_job_logs(empty, "train").stdout.endswith("done\n")
    assert not (tmp_path / "absent").exists()
    assert len(kept) == 1
    assert (kept[0] / "train.1.log").read_text() == "first call, job 1"
    assert (kept[0] / "q" / "train.1.out").read_text() == "slurmstepd: task 1 killed: out of memory"
    assert sorted(p.name for p in (log_dir / "q").iterdir()) == ["make_feats.1.out", "train.sh"]
    # A task killed before it wrote its log leaves only the scheduler's output: kept too.
    (log_dir / "q" / "train.2.out").write_text("killed before it could log")
    keep_job_logs(log_dir, "train")
    kept = sorted(d for d in log_dir.iterdir() if d.is_dir() and d.name != "q")
    assert len(kept) == 2
    assert [p.name for p in (kept[1] / "q").iterdir()] == ["train.2.out"]
    assert not list(kept[1].glob("*.log"))


def lib(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``script`` after sourcing utils/lib.sh, under the steps' shell options."""
    return subprocess.run(["bash", "-c", f"set -euo pipefail; . {ROOT}/utils/lib.sh; {script}", "_", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def test_a_rebuild_names_the_setting_behind_a_changed_hash(tmp_path):
    # A record holds hashes (of an input's record, of config files); the detail kept
    # beside it says what they stood for, so the message names the setting itself.
    out = lib('mkdir -p "$1"; mark_done "$1" "$2" "$3"; is_done "$1" "$4" "$5" || echo rebuild',
              str(tmp_path / "d"), "feat=fbank\ndata=aaa", "data: corpus_dir=/c/one\ndata: corpus_opts=",
              "feat=fbank\ndata=bbb", "data: corpus_dir=/c/two\ndata: corpus_opts=")
    assert out.stdout == "rebuild\n", out.stderr
    assert "  then: data=aaa\n  now:  data=bbb\n" in out.stderr
    assert "  then: data: corpus_dir=/c/one\n  now:  data: corpus_dir=/c/two\n" in out.stderr
    assert "corpus_opts" not in out.stderr  # what did not change is not shown
    assert not (tmp_path / "d/.done").exists()
    # An output made before the detail was kept: the hashes, and a word on why only they are shown.
    out = lib('mkdir -p "$1"; mark_done "$1" "$2"; is_done "$1" "$3" "$4" || echo rebuild',
              str(tmp_path / "e"), "data=aaa", "data=bbb", "data: corpus_dir=/c/two")
    assert out.stdout == "rebuild\n" and "  then: data=aaa\n" in out.stderr
    assert "what the hashes stood for was not kept" in out.stderr
    out = lib('d=$(mktemp -d); mark_done "$d" x; mark_done "$d" y "$1"; record_detail in "$d"; '
              'printf "a: 1\\nb: 2\\n" > "$d/f.yaml"; SER_ROOT=$d file_detail "$d/f.yaml"', "z: 3")
    assert out.stdout == "in: y\nin: z: 3\nf.yaml: a: 1\nf.yaml: b: 2\n", out.stderr


def test_a_missing_input_names_its_cause(tmp_path):
    data = tmp_path / "data" / "casia"
    check = 'require_done "$1" corpus && echo complete'
    out = lib(check, str(data))
    assert out.returncode == 1 and "data/casia is not prepared (no .done); run the corpus stage" in out.stderr
    data.mkdir(parents=True)
    (data / "wav.scp").write_text("u1 a.wav\n")
    out = lib(check, str(data))
    assert out.returncode == 1 and "data/casia is incomplete (no .done)" in out.stderr
    # Another run is rebuilding it (with another --casia-dir, say): it holds the lock.
    holder = subprocess.Popen(["bash", "-c", f'. {ROOT}/utils/lib.sh; lock_dir "$1"; echo locked; sleep 60',
                               "_", str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        out = lib(check, str(data))
        assert out.returncode == 1
        assert f"{data} is being rebuilt by another run (it holds {data}.lock)" in out.stderr
        # As the stages say it, after the stage that made it.
        steps = subprocess.run([str(ROOT / "steps/make_folds.sh"), "--protocol", "loso", str(data),
                                str(tmp_path / "folds")], capture_output=True, text=True, timeout=60)
        assert steps.returncode == 1 and "is being rebuilt by another run" in steps.stderr
    finally:
        holder.kill()
        holder.wait()
    (data / ".done").write_text("stage=prepare_data\n")
    assert lib(check, str(data)).stdout == "complete\n"
