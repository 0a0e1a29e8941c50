"""utils/run.pl: tasks never outlive the script that started them.

Each task runs in its own process group, so a kill of the caller's group does not
reach it; run.pl and the task's group leader must notice the death themselves,
even after a kill -9 that leaves nothing a chance to clean up.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT

RUN_PL = ROOT / "utils" / "run.pl"

# The caller of run.pl, as a stage script is: it runs run.pl in the background
# only to be able to say which pid is run.pl's, and waits for it.
DRIVER = """#!/usr/bin/env bash
{run_pl} "$@" &
echo $! > runpl.pid
wait $!
"""

# Each task records its own pid and that of a child it waits for; the files are
# renamed into place so that a reader never sees them half written.
TASK = ("{trap}sleep 60 & echo $! > child.JOB.tmp && mv child.JOB.tmp child.JOB; "
        "echo $$ > task.JOB.tmp && mv task.JOB.tmp task.JOB; wait")

DEADLINE = 20.0  # seconds: generous, the runner reacts within a fraction of one


def stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process; None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[2]))


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = stat(int(entry.name))
            if st is not None and st[1] == pgid:
                members.append(int(entry.name))
    return members


def wait_for(predicate, timeout: float = DEADLINE) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Run:
    """A driver script that calls run.pl with two tasks that sleep for a minute."""

    def __init__(self, tmp_path: Path, ignore_term: bool = False):
        self.dir = tmp_path
        driver = tmp_path / "driver.sh"
        driver.write_text(DRIVER.format(run_pl=RUN_PL))
        driver.chmod(0o755)
        task = TASK.format(trap="trap '' TERM; " if ignore_term else "")
        self.proc = subprocess.Popen([str(driver), "JOB=1:2", "log/task.JOB.log", "bash", "-c", task],
                                     cwd=tmp_path, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = wait_for(lambda: all((tmp_path / f"task.{j}").is_file() for j in (1, 2)))
        self.pids = []
        self.groups = set()
        if started:
            self.runpl = int((tmp_path / "runpl.pid").read_text())
            for j in (1, 2):
                task_pid = int((tmp_path / f"task.{j}").read_text())
                self.pids += [task_pid, int((tmp_path / f"child.{j}").read_text())]
                self.groups.add(stat(task_pid)[1])
        else:
            self.cleanup()
            pytest.fail(f"the tasks did not start; {self.proc.communicate()}")

    def all_gone(self) -> bool:
        return not any(stat(p) for p in self.pids) and not any(group_members(g) for g in self.groups)

    def survivors(self) -> list[int]:
        return [p for p in self.pids if stat(p)] + [p for g in self.groups for p in group_members(g)]

    def cleanup(self) -> None:
        """Leave nothing behind whatever the test found, so one failure stays one."""
        for target in [*self.pids, *(-g for g in self.groups)]:
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.communicate()


@pytest.fixture
def make_run(tmp_path):
    runs = []

    def make(**kwargs) -> Run:
        runs.append(Run(tmp_path, **kwargs))
        return runs[-1]

    yield make
    for run in runs:
        run.cleanup()


def test_tasks_are_in_their_own_groups(make_run):
    # What makes the rest necessary: a signal to the caller's group misses them.
    run = make_run()
    assert os.getpgid(run.proc.pid) not in run.groups
    assert len(run.groups) == 2


def test_kill_9_of_the_callers_group_kills_every_task(make_run):
    run = make_run()
    os.killpg(run.proc.pid, signal.SIGKILL)
    run.proc.wait()
    assert wait_for(run.all_gone), f"still running: {run.survivors()}"


def test_kill_9_of_the_caller_alone_stops_the_tasks_and_run_pl(make_run):
    run = make_run()
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait()
    assert wait_for(run.all_gone), f"still running: {run.survivors()}"
    assert wait_for(lambda: stat(run.runpl) is None)
    # The tasks were stopped with TERM, so their group leaders logged the end.
    for j in (1, 2):
        assert "# Ended (code 143)" in (run.dir / f"log/task.{j}.log").read_text()


def test_tasks_that_ignore_term_are_killed_after_the_grace(make_run):
    run = make_run(ignore_term=True)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait()
    assert wait_for(run.all_gone), f"still running: {run.survivors()}"
    assert wait_for(lambda: stat(run.runpl) is None)


def test_kill_9_of_run_pl_kills_every_task(make_run):
    run = make_run()
    os.kill(run.runpl, signal.SIGKILL)
    assert run.proc.wait(timeout=DEADLINE) == 128 + signal.SIGKILL
    assert wait_for(run.all_gone), f"still running: {run.survivors()}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_run_pl_stops_the_tasks_and_exits_130(make_run, sig):
    run = make_run()
    os.kill(run.runpl, sig)
    _, stderr = run.proc.communicate(timeout=DEADLINE)
    assert run.proc.returncode == 130
    assert "interrupted; stopped the running tasks of log/task.JOB.log" in stderr
    assert wait_for(run.all_gone), f"still running: {run.survivors()}"


def run_pl(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUN_PL), *args], cwd=cwd, capture_output=True, text=True, **kwargs)


def test_tasks_inherit_the_callers_open_files(tmp_path):
    # A lock the caller holds on an open file must stay held while its tasks run.
    (tmp_path / "lock").touch()
    with open(tmp_path / "lock") as lock:
        out = run_pl("JOB=1:2", "log/fd.JOB.log", "readlink", f"/proc/self/fd/{lock.fileno()}",
                     cwd=tmp_path, pass_fds=(lock.fileno(),))
    assert out.returncode == 0, out.stderr
    for j in (1, 2):
        assert f"{tmp_path / 'lock'}\n" in (tmp_path / f"log/fd.{j}.log").read_text()


def test_a_failing_task_still_fails_the_run_and_logs_are_complete(tmp_path):
    out = run_pl("--num-threads", "3", "JOB=1:3", "log/t.JOB.log", "bash", "-c",
                 'echo "threads=$OMP_NUM_THREADS"; [ JOB != 3 ]', cwd=tmp_path)
    assert out.returncode == 1
    assert "1 / 3 failed, log is in log/t.3.log" in out.stderr
    for j, code in ((1, 0), (2, 0), (3, 1)):
        log = (tmp_path / f"log/t.{j}.log").read_text()
        assert log.startswith(f"# bash -c 'echo \"threads=$OMP_NUM_THREADS\"; [ {j} != 3 ]'\n# Started at ")
        assert "threads=3\n" in log
        assert "# Accounting: time=" in log and " threads=3\n" in log
        assert f"# Ended (code {code}) at " in log


def test_a_task_killed_by_a_signal_reports_128_plus_the_signal(tmp_path):
    out = run_pl("log/k.log", "bash", "-c", "kill -KILL $$", cwd=tmp_path)
    assert out.returncode == 1 and "log is in log/k.log" in out.stderr
    assert "# Ended (code 137)" in (tmp_path / "log/k.log").read_text()


def test_a_missing_command_reports_127(tmp_path):
    out = run_pl("log/m.log", "no-such-command-xyz", cwd=tmp_path)
    assert out.returncode == 1
    assert "# Ended (code 127)" in (tmp_path / "log/m.log").read_text()


def test_bad_max_jobs_run_is_an_error(tmp_path):
    out = run_pl("--max-jobs-run", "two", "log/x.log", "true", cwd=tmp_path)
    assert out.returncode != 0 and "--max-jobs-run must be a positive integer" in out.stderr
    assert not (tmp_path / "log").exists()
