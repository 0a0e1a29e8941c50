"""Cluster execution: utils/slurm.pl on a real single-node Slurm started for the
session (tests/slurm_cluster.py; skipped where it can be neither installed nor
started as root), and utils/queue.pl against a fake Grid Engine whose qsub runs
the tasks itself."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY, TINY_SYSTEM, build_once, copy_recipe, run_recipe
from slurm_cluster import SlurmCluster, install

UTILS = ROOT / "utils"
# One Slurm for the session: its tests run on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("slurm")
NEEDS_OK_FILE = ("bash", "-c", "[ -f ok.JOB ] || exit 1; date +%s.%N > start.JOB; sleep 1; date +%s.%N > end.JOB")


@pytest.fixture(scope="session")
def slurm_session(tmp_path_factory):
    reason = install()
    if reason is None and os.geteuid() != 0:
        reason = "starting the test Slurm (munged, slurmctld, slurmd) needs root"
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(slurm_session, request):
    """The session's Slurm; prints the daemons' logs when the test fails."""
    failed = request.session.testsfailed
    yield slurm_session
    if request.session.testsfailed > failed:
        print(slurm_session.logs())


def run(cmd, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def squeue(env, name) -> str:
    return run(["squeue", "-h", "-n", name, "-o", "%i %T"], cwd=None, env=env).stdout.strip()


def check_log(log: Path, code: int) -> None:
    lines = log.read_text().splitlines()
    assert lines[0].startswith("# bash -c ") and lines[1].startswith("# Started at "), lines
    assert lines[-2].startswith("# Accounting: time="), lines
    assert lines[-1].startswith(f"# Ended (code {code}) at "), lines


def test_slurm_failed_task_and_throttle(slurm, tmp_path):
    for task in (1, 3):
        (tmp_path / f"ok.{task}").touch()
    result = run([UTILS / "slurm.pl", "--max-jobs-run", "1", "JOB=1:3", "log/x.JOB.log", *NEEDS_OK_FILE],
                 tmp_path, slurm.env)
    assert result.returncode == 1, result.stderr
    assert "slurm.pl: 1 / 3 failed, log is in log/x.2.log" in result.stderr
    for task, code in ((1, 0), (2, 1), (3, 0)):
        check_log(tmp_path / f"log/x.{task}.log", code)
    assert "--array=1-3%1" in (tmp_path / "log/q/x.sh").read_text()
    # With a throttle of 1, task 3 starts after task 1 has ended.
    assert float((tmp_path / "start.3").read_text()) >= float((tmp_path / "end.1").read_text())
    assert not list((tmp_path / "log/q").glob("*.status"))


def test_slurm_options_map_to_flags(slurm, tmp_path):
    """conf/slurm.conf: --gpu 1 asks the gpu partition for a GPU, --num-threads
    for CPUs (and sets OMP_NUM_THREADS), --mem and --time pass through."""
    result = run([UTILS / "slurm.pl", "--config", ROOT / "conf/slurm.conf", "--gpu", "1", "--num-threads", "2",
                  "--mem", "1G", "--time", "10", "log/gpu.log", "env"], tmp_path, slurm.env)
    assert result.returncode == 0, result.stderr
    assert ("# Submitted with: sbatch --export=ALL --gres=gpu:1 -p gpu --mem=1G --cpus-per-task=2 --time=10 "
            in (tmp_path / "log/q/gpu.sh").read_text())
    env = (tmp_path / "log/gpu.log").read_text().splitlines()
    for line in ("SLURM_JOB_PARTITION=gpu", "SLURM_GPUS_ON_NODE=1", "SLURM_CPUS_PER_TASK=2", "OMP_NUM_THREADS=2"):
        assert line in env


@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGHUP, False)],
                         ids=["kill", "ctrl-c", "hangup"])
def test_slurm_interrupt_cancels_jobs(slurm, tmp_path, sig, group):
    """Killing the runner (or Ctrl-C: SIGINT to its process group) cancels its array."""
    name = f"sleep{sig.name}"
    driver = subprocess.Popen([UTILS / "slurm.pl", "--max-jobs-run", "1", "JOB=1:3", f"log/{name}.JOB.log",
                               "sleep", "300"], cwd=tmp_path, env={**os.environ, **slurm.env},
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 30
    while "RUNNING" not in squeue(slurm.env, name):
        assert time.time() < deadline and driver.poll() is None, "the array never started"
        time.sleep(0.5)
    (os.killpg if group else os.kill)(driver.pid, sig)
    assert driver.wait(timeout=30) == 128 + sig
    assert "cancelled job" in driver.stderr.read()
    deadline = time.time() + 30
    while squeue(slurm.env, name):
        assert time.time() < deadline, f"jobs left after the runner was stopped:\n{squeue(slurm.env, name)}"
        time.sleep(0.5)


# Callers of slurm.pl: a driver as run.sh is one (it sources utils/lib.sh), or a
# plain script; each records slurm.pl's pid.
SLURM_CALLER = """#!/usr/bin/env bash
set -euo pipefail
{source}
{runner} --max-jobs-run 1 JOB=1:3 log/{name}.JOB.log sleep 300 &
echo $! > runner.pid
wait $!
"""


@pytest.mark.parametrize("victim", ["driver", "runner", "caller"])
def test_slurm_kill_9_cancels_the_array(slurm, tmp_path, victim):
    """kill -9 of the driver (a script that sourced utils/lib.sh, as run.sh does), of
    slurm.pl itself, or of a caller that is no driver: slurm.pl's guard, or the
    driver's watchdog, cancels the array; within 10 s no job of it is in squeue."""
    name = f"k9{victim}"
    script = tmp_path / "caller.sh"
    script.write_text(SLURM_CALLER.format(source=f". {UTILS}/lib.sh" if victim == "driver" else "",
                                          runner=UTILS / "slurm.pl", name=name))
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "SER_DRIVER"}
    caller = subprocess.Popen([script], cwd=tmp_path, env={**env, **slurm.env}, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        deadline = time.time() + 60
        while "RUNNING" not in squeue(slurm.env, name):
            assert time.time() < deadline and caller.poll() is None, "the array never started"
            time.sleep(0.5)
        os.kill(int((tmp_path / "runner.pid").read_text()) if victim == "runner" else caller.pid, signal.SIGKILL)
        killed = time.time()
        while squeue(slurm.env, name):
            assert time.time() < killed + 10, f"jobs left 10 s after the kill:\n{squeue(slurm.env, name)}"
            time.sleep(0.2)
        print(f"{victim}: no job in squeue {time.time() - killed:.1f} s after the kill")
        _, stderr = caller.communicate(timeout=30)
        assert "; cancelled job " in stderr, stderr
    finally:
        try:
            os.killpg(caller.pid, signal.SIGKILL)
        except OSError:
            pass
        caller.communicate()
        run(["scancel", "-n", name], None, slurm.env)


@pytest.mark.slow
def test_slurm_cancelled_job_fails(slurm, tmp_path):
    """Tasks that leave the queue without an exit status (here: scancel from
    outside) are failures, found within about 10 s."""
    driver = subprocess.Popen([UTILS / "slurm.pl", "JOB=1:2", "log/lost.JOB.log", "sleep", "300"],
                              cwd=tmp_path, env={**os.environ, **slurm.env}, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not squeue(slurm.env, "lost"):
        assert time.time() < deadline, "the array was never queued"
        time.sleep(0.5)
    run(["scancel", "-n", "lost"], None, slurm.env)
    assert driver.wait(timeout=60) == 1
    stderr = driver.stderr.read()
    assert "task(s) 1 2 of job" in stderr and "left the queue without an exit status" in stderr
    assert "2 / 2 failed, log is in log/lost.1.log" in stderr


def results(recipe: Path) -> dict:
    """Each run's results.json, less its timing, and predictions.tsv."""
    runs = sorted((recipe / TINY_SYSTEM / "loso").glob("seed*/fold*"))
    assert len(runs) == 3, runs
    return {str(run.relative_to(recipe)): ({k: v for k, v in json.loads((run / "results.json").read_text()).items()
                                            if k != "train_seconds"}, (run / "predictions.tsv").read_text())
            for run in runs}


@pytest.fixture(scope="session")
def slurm_recipe(slurm_session, tiny_recipe, tmp_path_factory):
    """Stages 3-6 of the tiny run through Slurm, on a copy of the local run's
    stages 1-2 (data/ without features)."""
    recipe = copy_recipe(tmp_path_factory.mktemp("slurm_recipe") / "recipe")
    shutil.copytree(tiny_recipe / "data", recipe / "data", ignore=shutil.ignore_patterns("feats"))
    start = time.time()
    build_once("slurm_recipe", lambda: run_recipe(recipe, "--stage", "3", "--stop-stage", "6", *TINY,
                                                  env={"cmd_backend": "slurm", **slurm_session.env}))
    print(f"stages 3-6 through Slurm: {time.time() - start:.0f} s")
    return recipe


@pytest.mark.slow
def test_slurm_recipe_equals_local(slurm, slurm_recipe, tiny_recipe):
    for log in (slurm_recipe / "data/synth/feats/fbank/log/make_feats.1.log",
                slurm_recipe / TINY_SYSTEM / "loso/log/train.1.log"):
        assert "# Running on " in log.read_text(), f"{log} did not come from a Slurm job"
        assert (log.parent / "q").is_dir()
    assert results(slurm_recipe) == results(tiny_recipe)


@pytest.mark.slow
def test_slurm_failed_training_reruns_only_that_fold(slurm, slurm_recipe, tiny_recipe):
    """A training task that fails fails the stage, naming its log; the rerun
    trains only that fold. The rerun asks for a GPU (--gpu 1), which without
    CUDA changes nothing."""
    exp = slurm_recipe / TINY_SYSTEM / "loso/seed1"
    stats = slurm_recipe / "data/synth/feats/fbank/cmvn/loso/fold2.npz"
    shutil.rmtree(exp / "fold2")
    stats.rename(stats.with_suffix(".bak"))
    env = {"cmd_backend": "slurm", **slurm.env}
    result = run_recipe(slurm_recipe, "--stage", "5", "--stop-stage", "6", *TINY, env=env, check=False)
    assert result.returncode != 0
    log = f"{TINY_SYSTEM}/loso/log/train.1.log"
    assert f"slurm.pl: 1 / 1 failed, log is in {log}" in result.stderr
    assert "fold2.npz: normalisation statistics not found" in (slurm_recipe / log).read_text()

    stats.with_suffix(".bak").rename(stats)
    mtimes = {fold: (exp / fold / "best.pt").stat().st_mtime_ns for fold in ("fold1", "fold3")}
    result = run_recipe(slurm_recipe, "--stage", "5", "--stop-stage", "6", *TINY, "--gpu", "1", env=env)
    assert "training 1 run(s)" in result.stderr
    assert "--gres=gpu:1 -p gpu" in (exp.parent / "log/q/train.sh").read_text()
    # The failed call's log and Slurm's output of its task were kept, not overwritten.
    failed_call = [d for d in (exp.parent / "log").glob("train.*") if d.is_dir()
                   and "fold2.npz: normalisation statistics not found" in (d / "train.1.log").read_text()]
    assert len(failed_call) == 1 and (failed_call[0] / "q/train.1.out").is_file()
    assert {fold: (exp / fold / "best.pt").stat().st_mtime_ns for fold in mtimes} == mtimes
    assert results(slurm_recipe) == results(tiny_recipe)


@pytest.mark.slow
def test_slurm_kill_9_of_run_sh_cancels_the_training_array(slurm, slurm_recipe, tmp_path):
    """kill -9 of run.sh itself during stage 5: within 10 s no job of the run is in squeue."""
    recipe = copy_recipe(tmp_path / "recipe")
    shutil.copytree(slurm_recipe / "data", recipe / "data")  # stages 1-4 done
    args = [*TINY, "--train-opts", "epochs=3 batch_size=16"]  # a new system: stage 5 trains
    env = {**{k: v for k, v in os.environ.items() if k != "SER_DRIVER"}, "cmd_backend": "slurm", **slurm.env}
    driver = subprocess.Popen(["./run.sh", "--stage", "5", "--stop-stage", "5", *args], cwd=recipe, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "RUNNING" not in squeue(slurm.env, "train"):
            assert time.time() < deadline and driver.poll() is None, \
                f"the training array never started:\n{driver.communicate()[1][-3000:]}"
            time.sleep(0.5)
        os.kill(driver.pid, signal.SIGKILL)
        killed = time.time()
        while squeue(slurm.env, "train"):
            assert time.time() < killed + 10, f"jobs left 10 s after the kill:\n{squeue(slurm.env, 'train')}"
            time.sleep(0.2)
        print(f"run.sh: no job in squeue {time.time() - killed:.1f} s after the kill")
        assert "; cancelled job " in driver.communicate(timeout=30)[1]
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except OSError:
            pass
        driver.communicate()
        run(["scancel", "-n", "train"], None, slurm.env)


# A fake Grid Engine: qsub records its arguments and runs the array's tasks one
# after another in the background (SGE_TASK_ID, JOB_ID; -o with $TASK_ID);
# qstat -j tells whether they still run; qdel kills them.
FAKE_SGE = {
    "qsub": r"""#!/bin/bash
printf '%s\n' "$@" > "$FAKE_SGE/qsub.args"
while [ $# -gt 1 ]; do
  case $1 in -t) range=$2; shift ;; -o) out=$2; shift ;; esac
  shift
done
export SCRIPT=$1 OUT=$out FIRST=${range%:*} LAST=${range#*:} JOB_ID=$$
setsid bash -c 'for ((t = FIRST; t <= LAST; t++)); do
  SGE_TASK_ID=$t bash "$SCRIPT" > "${OUT//\$TASK_ID/$t}" 2>&1; done' </dev/null >/dev/null 2>&1 &
echo $! > "$FAKE_SGE/$JOB_ID.pid"
echo "$JOB_ID.$FIRST-$LAST:1"
""",
    "qstat": r"""#!/bin/bash
kill -0 "$(cat "$FAKE_SGE/$2.pid")" 2>/dev/null && exit 0
echo "Following jobs do not exist: $2"; exit 1
""",
    "qdel": r"""#!/bin/bash
echo "$*" >> "$FAKE_SGE/qdel.args"
kill -- -"$(cat "$FAKE_SGE/$1.pid")"
""",
}


@pytest.fixture
def fake_sge(tmp_path) -> dict:
    bin_dir = tmp_path / "fake_sge"
    bin_dir.mkdir()
    for name, text in FAKE_SGE.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SGE": str(bin_dir)}


def test_queue_pl_array_with_failed_task(fake_sge, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for task in (1, 3):
        (work / f"ok.{task}").touch()
    result = run([UTILS / "queue.pl", "--config", ROOT / "conf/queue.conf", "--mem", "2G", "--gpu", "1",
                  "--max-jobs-run", "2", "JOB=1:3", "log/x.JOB.log", *NEEDS_OK_FILE], work, fake_sge)
    assert result.returncode == 1, result.stderr
    assert "queue.pl: 1 / 3 failed, log is in log/x.2.log" in result.stderr
    qdir = work / "log/q"
    assert (tmp_path / "fake_sge/qsub.args").read_text().splitlines() == [
        "-V", "-cwd", "-S", "/bin/bash", "-j", "y", "-l", "gpu=1", "-q", "g.q", "-l", "mem_free=2G,ram_free=2G",
        "-terse", "-N", "x", "-t", "1:3", "-tc", "2", "-o", f"{qdir}/x.$TASK_ID.out", f"{qdir}/x.sh"]
    for task, code in ((1, 0), (2, 1), (3, 0)):
        check_log(work / f"log/x.{task}.log", code)
        assert (qdir / f"x.{task}.out").exists()
    assert (work / "end.3").exists() and not (work / "start.2").exists()


def test_queue_pl_config_rules(fake_sge, tmp_path):
    """Without --config (and no conf/queue.conf): the built-in rules; a config's
    default lines; an option the config does not map is an error."""
    args = tmp_path / "fake_sge/qsub.args"
    result = run([UTILS / "queue.pl", "--num-threads", "4", "log/a.log", "true"], tmp_path, fake_sge)
    assert result.returncode == 0, result.stderr
    assert args.read_text().splitlines()[:8] == ["-V", "-cwd", "-S", "/bin/bash", "-j", "y", "-pe", "smp"]

    conf = tmp_path / "my.conf"
    conf.write_text("command qsub -q all.q  # the queue\noption time=* -l h_rt=$0\ndefault time=1:00:00\n")
    for opts, flag in (([], "h_rt=1:00:00"), (["--time", "2:00:00"], "h_rt=2:00:00")):
        result = run([UTILS / "queue.pl", "--config", conf, *opts, "log/b.log", "true"], tmp_path, fake_sge)
        assert result.returncode == 0, result.stderr
        assert args.read_text().splitlines()[:4] == ["-q", "all.q", "-l", flag]

    result = run([UTILS / "queue.pl", "--config", conf, "--mem", "2G", "log/c.log", "true"], tmp_path, fake_sge)
    assert result.returncode != 0 and f"queue.pl: no rule for --mem in {conf}" in result.stderr


def test_queue_pl_interrupt_deletes_job(fake_sge, tmp_path):
    driver = subprocess.Popen([UTILS / "queue.pl", "JOB=1:2", "log/s.JOB.log", "sleep", "300"], cwd=tmp_path,
                              env={**os.environ, **fake_sge}, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (tmp_path / "log/s.1.log").exists():
        assert time.time() < deadline and driver.poll() is None, "the array never started"
        time.sleep(0.2)
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=30) == 128 + signal.SIGTERM
    job = next((tmp_path / "fake_sge").glob("*.pid")).stem
    assert (tmp_path / "fake_sge/qdel.args").read_text().split() == [job]


def test_queue_pl_kill_9_of_the_runner_deletes_the_job(fake_sge, tmp_path):
    script = tmp_path / "caller.sh"
    script.write_text(SLURM_CALLER.format(source="", runner=UTILS / "queue.pl", name="s"))
    script.chmod(0o755)
    caller = subprocess.Popen([script], cwd=tmp_path, env={**os.environ, **fake_sge}, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        deadline = time.time() + 30
        while not (tmp_path / "log/s.1.log").exists():
            assert time.time() < deadline and caller.poll() is None, "the array never started"
            time.sleep(0.2)
        os.kill(int((tmp_path / "runner.pid").read_text()), signal.SIGKILL)
        _, stderr = caller.communicate(timeout=30)
        job = next((tmp_path / "fake_sge").glob("*.pid")).stem
        assert f"queue.pl (pid {(tmp_path / 'runner.pid').read_text().strip()}) died; cancelled job {job}" in stderr
        assert (tmp_path / "fake_sge/qdel.args").read_text().split() == [job]
    finally:
        try:
            os.killpg(caller.pid, signal.SIGKILL)
        except OSError:
            pass
        caller.communicate()
