"""Stop means stop: no process of a run outlives its driver (run.sh, or a script
that sources utils/lib.sh), nor utils/run.pl its caller.

Each task of run.pl runs in its own process group, so a kill of the caller's group
does not reach it; run.pl and the task's group leader must notice the death
themselves, even after a kill -9 that leaves nothing a chance to clean up. A kill
of the driver alone reaches neither its steps/ script nor run.pl: the driver's
watchdog (utils/watchdog.pl) and run.pl's check of SER_DRIVER end them.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY, TINY_SYSTEM, copy_recipe, run_recipe

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


# ---- Drivers: a script that sources utils/lib.sh, and everything it starts ----

KILL_LIMIT = 2.0  # seconds from the kill of a driver to the end of its last process

# A driver as run.sh is one: it sources lib.sh, then starts a process directly
# (as a stage runs python) and a stage's job array through run.pl; with an
# argument, it runs itself as a nested driver (as run.sh runs its baseline) first.
LIB_DRIVER = r"""#!/usr/bin/env bash
set -euo pipefail
export PATH=UTILS:$PATH
. UTILS/lib.sh
become_driver
name=${1:-outer}
echo "$SER_DRIVER" > $name.token.tmp && mv $name.token.tmp $name.token
sleep 300 &
echo $! > $name.direct
if [ "$name" = outer ] && [ -n "${NESTED:-}" ]; then ./driver.sh inner & echo $! > inner.pid; fi
run.pl JOB=1:2 log/$name.JOB.log bash -c \
  "sleep 300 & echo \$! > $name.child.JOB; echo \$\$ > $name.task.JOB.tmp && mv $name.task.JOB.tmp $name.task.JOB; wait"
"""


def marked(token: str) -> list[int]:
    """Live processes whose environment's SER_DRIVER holds ``token``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        values = [e[len(b"SER_DRIVER="):].decode().split() for e in env if e.startswith(b"SER_DRIVER=")]
        if values and token in values[0] and stat(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def watchdogs(token: str) -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()
            and f"watchdog.pl\0{token}".encode() in _cmdline(e) and stat(int(e.name))]


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


class Driver:
    """LIB_DRIVER, started in a session of its own; ``tokens``: its drivers' marks."""

    def __init__(self, tmp_path: Path, nested: bool = False):
        self.dir = tmp_path
        script = tmp_path / "driver.sh"
        script.write_text(LIB_DRIVER.replace("UTILS", str(ROOT / "utils")))
        script.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if k != "SER_DRIVER"}
        if nested:
            env["NESTED"] = "1"
        self.proc = subprocess.Popen([str(script)], cwd=tmp_path, start_new_session=True, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        names = ("outer", "inner") if nested else ("outer",)
        files = [f"{n}.{f}" for n in names for f in ("token", "direct", "task.1", "task.2")]
        self.tokens = {}
        if not wait_for(lambda: all((tmp_path / f).is_file() for f in files)):
            self.cleanup()
            pytest.fail(f"the driver did not start its processes; {self.proc.communicate()}")
        self.tokens = {n: (tmp_path / f"{n}.token").read_text().split()[-1] for n in names}

    def alive(self, name: str) -> list[int]:
        return marked(self.tokens[name]) + watchdogs(self.tokens[name])

    def cleanup(self) -> None:
        for token in self.tokens.values():
            for pid in marked(token) + watchdogs(token):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.communicate()


@pytest.fixture
def make_driver(tmp_path):
    drivers = []

    def make(**kwargs) -> Driver:
        drivers.append(Driver(tmp_path, **kwargs))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.cleanup()


def gone_within(check, limit: float) -> tuple[bool, float]:
    """Whether ``check()`` came back empty within ``limit`` seconds, and when."""
    start = time.monotonic()
    ok = wait_for(lambda: not check(), timeout=limit)
    return ok, time.monotonic() - start


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_a_killed_driver_takes_every_process_of_its_run_along(make_driver, sig):
    driver = make_driver()
    token = driver.tokens["outer"]
    before = marked(token)
    # The direct child, run.pl, its group leaders, the tasks' shells and their children.
    assert len(before) >= 8 and len(watchdogs(token)) == 1, before
    os.kill(driver.proc.pid, sig)  # the driver alone: its group, and the tasks' groups, are left alone
    ok, took = gone_within(lambda: driver.alive("outer"), KILL_LIMIT)
    assert ok, f"still running {KILL_LIMIT} s after the kill: {driver.alive('outer')}"
    assert driver.proc.wait(timeout=DEADLINE) == -sig
    print(f"{sig.name}: every process gone after {took:.2f} s")


def test_a_nested_driver_killed_alone_takes_only_its_own_processes(make_driver):
    driver = make_driver(nested=True)
    outer, inner = driver.tokens["outer"], driver.tokens["inner"]
    assert inner != outer and (driver.dir / "inner.token").read_text().split() == [outer, inner]
    os.kill(int((driver.dir / "inner.pid").read_text()), signal.SIGKILL)
    ok, _ = gone_within(lambda: driver.alive("inner"), KILL_LIMIT)
    assert ok, f"the inner driver's processes outlived it: {driver.alive('inner')}"
    # The outer driver runs on, and so do its own processes (its direct child, its tasks).
    assert driver.proc.poll() is None
    assert stat(int((driver.dir / "outer.direct").read_text()))
    assert len(marked(outer)) >= 8
    os.kill(driver.proc.pid, signal.SIGKILL)
    ok, _ = gone_within(lambda: driver.alive("outer"), KILL_LIMIT)
    assert ok, f"still running: {driver.alive('outer')}"


def test_the_watchdog_holds_no_file_of_the_driver(make_driver):
    # Not its output (a reader of the pipe would wait for the watchdog), nor the lock
    # a stage holds (a rerun would wait for it).
    driver = make_driver()
    (pid,) = watchdogs(driver.tokens["outer"])
    fds = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    assert fds == {"/dev/null"}
    # A session of its own: neither a Ctrl-C nor a kill of the driver's group reaches it.
    assert os.getsid(pid) == pid != os.getsid(driver.proc.pid)


def test_a_driver_that_ends_leaves_nothing_and_no_watchdog(tmp_path):
    # Whatever it left running in the background is ended with it.
    script = (f"export PATH={ROOT / 'utils'}:$PATH; . {ROOT / 'utils/lib.sh'}; echo $SER_DRIVER > token; "
              "sleep 300 & echo $! > left; echo done")
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE,
                         env={k: v for k, v in os.environ.items() if k != "SER_DRIVER"})
    assert out.returncode == 0 and out.stdout == "done\n", out.stderr
    token = (tmp_path / "token").read_text().strip()
    assert wait_for(lambda: stat(int((tmp_path / "left").read_text())) is None, KILL_LIMIT)
    assert wait_for(lambda: not watchdogs(token), KILL_LIMIT)


def test_a_live_driver_keeps_the_scripts_it_starts_from_becoming_drivers(tmp_path):
    # A steps/ script under run.sh is no driver: the one watchdog is run.sh's.
    script = (f". {ROOT / 'utils/lib.sh'}; echo $SER_DRIVER; "
              f"bash -c '. {ROOT / 'utils/lib.sh'}; echo $SER_DRIVER'")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=DEADLINE,
                         env={k: v for k, v in os.environ.items() if k != "SER_DRIVER"})
    first, second = out.stdout.split("\n")[:2]
    assert out.returncode == 0 and first == second and len(first.split()) == 1, out


def test_an_interactive_shell_that_sources_lib_sh_is_no_driver(tmp_path):
    # What it starts (say, nohup ./run.sh before logging out) must not end with it.
    script = f'. {ROOT / "utils/lib.sh"}; echo "[${{SER_DRIVER:-}}]"'
    env = {k: v for k, v in os.environ.items() if k != "SER_DRIVER"}
    interactive = subprocess.run(["bash", "-i", "-c", script], capture_output=True, text=True, timeout=DEADLINE,
                                 env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert interactive.stdout.splitlines()[-1] == "[]", interactive
    script_run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=DEADLINE, env=env)
    assert script_run.stdout.strip() != "[]"


def sleeper_token() -> tuple[subprocess.Popen, str]:
    """A process to play a driver, and its SER_DRIVER token."""
    proc = subprocess.Popen(["sleep", "300"])
    text = Path(f"/proc/{proc.pid}/stat").read_text()
    return proc, f"{proc.pid}:{text[text.rindex(')') + 2:].split()[19]}"


def test_run_pl_stops_its_tasks_when_a_driver_ends(tmp_path):
    # run.pl's own check, without any watchdog: the "driver" is a sleep process.
    sleeper, token = sleeper_token()
    proc = subprocess.Popen([str(RUN_PL), "JOB=1:2", "log/t.JOB.log", "bash", "-c", TASK.format(trap="")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SER_DRIVER": token})
    try:
        assert wait_for(lambda: all((tmp_path / f"task.{j}").is_file() for j in (1, 2)))
        pids = [int((tmp_path / f"{f}.{j}").read_text()) for f in ("task", "child") for j in (1, 2)]
        sleeper.kill()
        sleeper.wait()
        _, stderr = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 1
        assert f"run.pl: the driver (pid {sleeper.pid}) died; stopped the running tasks of log/t.JOB.log" in stderr
        assert wait_for(lambda: not any(stat(p) for p in pids), KILL_LIMIT)
    finally:
        sleeper.kill()
        proc.kill()
        proc.communicate()


def test_run_pl_takes_a_reused_pid_for_a_dead_driver(tmp_path):
    # The pid is alive, but its start time is not the driver's: another process now.
    sleeper, token = sleeper_token()
    try:
        pid, start = token.split(":")
        out = run_pl("JOB=1:2", "log/r.JOB.log", "touch", "ran.JOB", cwd=tmp_path, timeout=DEADLINE,
                     env={**os.environ, "SER_DRIVER": f"{pid}:{int(start) + 1}"})
        assert out.returncode == 1 and f"the driver (pid {pid}) died" in out.stderr
        assert not list(tmp_path.glob("ran.*"))
        out = run_pl("JOB=1:2", "log/r.JOB.log", "touch", "ran.JOB", cwd=tmp_path, timeout=DEADLINE,
                     env={**os.environ, "SER_DRIVER": token})
        assert out.returncode == 0 and len(list(tmp_path.glob("ran.*"))) == 2, out.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- run.sh itself ----

def processes_of(recipe: Path) -> list[int]:
    """Live processes working in ``recipe`` (every process of a run does: run.sh cds
    there) or naming it on their command line: independent of the marks the watchdog
    goes by."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (cwd == str(recipe) or cwd.startswith(f"{recipe}/") or str(recipe).encode() in _cmdline(entry)) \
                and stat(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def started_since(log: Path, since: float, text: str = "") -> bool:
    """Whether a job log of this call (not a kept one of an earlier call) holds ``text``."""
    try:
        return log.stat().st_mtime >= since and text in log.read_text()
    except OSError:
        return False


@pytest.mark.slow
def test_killing_run_sh_ends_its_stage_at_once_and_the_rerun_matches(tiny_recipe, tmp_path):
    """run.sh itself is killed (not its process group), with kill -9 and with a plain
    kill, while stage 3 computes features and while stage 5 trains, and then the
    stage's script alone: within KILL_LIMIT s nothing of the run is left, no stage
    completes after the kill, and the immediate rerun ends with the uninterrupted
    run's features and models."""
    recipe = copy_recipe(tmp_path / "recipe")
    shutil.copytree(tiny_recipe / "data", recipe / "data", ignore=shutil.ignore_patterns("feats"))  # stages 1-2
    feats = recipe / "data/synth/feats/fbank"
    exp = recipe / TINY_SYSTEM / "loso"
    env = {k: v for k, v in os.environ.items() if k != "SER_DRIVER"}
    attempts = [("run.sh", signal.SIGKILL, 3, feats / "log/make_feats.1.log", ""),
                ("run.sh", signal.SIGTERM, 3, feats / "log/make_feats.1.log", ""),
                ("run.sh", signal.SIGKILL, 5, exp / "log/train.1.log", "INFO (train) training fold"),
                ("run.sh", signal.SIGTERM, 5, exp / "log/train.2.log", "INFO (train) training fold"),
                # The stage's script alone: run.sh ends on its failure, and its watchdog ends the rest.
                ("steps/train.sh", signal.SIGKILL, 5, exp / "log/train.1.log", "INFO (train) training fold")]
    for victim, sig, stage, log, text in attempts:
        since = time.time() - 1  # file times are coarser than time.time()
        driver = subprocess.Popen(["./run.sh", "--stage", "3", "--stop-stage", "5", *TINY], cwd=recipe, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        try:
            assert wait_for(lambda: started_since(log, since, text) or driver.poll() is not None, timeout=300)
            assert driver.poll() is None, f"stage {stage} ended before the kill:\n{driver.stderr.read()[-3000:]}"
            running = processes_of(recipe)
            assert len(running) >= 4, running  # run.sh, the stage's script, run.pl, the tasks
            if victim == "run.sh":
                os.kill(driver.pid, sig)
            else:
                (pid,) = [p for p in running if f"\0{victim}\0".encode() in _cmdline(Path(f"/proc/{p}"))]
                os.kill(pid, sig)
            ok, took = gone_within(lambda: processes_of(recipe), KILL_LIMIT)
            assert ok, f"{sig.name} of {victim} at stage {stage}: still running after {KILL_LIMIT} s: " \
                       f"{processes_of(recipe)}"
            print(f"{sig.name} of {victim} at stage {stage}: {len(running)} processes, all gone after {took:.2f} s")
            assert driver.wait(timeout=DEADLINE) == (-sig if victim == "run.sh" else 128 + sig)
        finally:
            for pid in processes_of(recipe):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            driver.kill()
            driver.communicate()
        # Nothing that was stopped finishes its stage late.
        time.sleep(1)
        if stage == 3:
            assert not (feats / ".done").exists() and not (feats / "feats.scp").exists()
        else:
            assert not list(exp.glob("seed1/fold*/.done"))
            assert not (exp / "log/train.1.log").read_text().count("# Ended (code 0)")

    run_recipe(recipe, "--stage", "3", "--stop-stage", "5", *TINY, env=env)
    import kaldiio
    import numpy as np
    import torch
    got, want = (dict(kaldiio.load_scp(str(r / "data/synth/feats/fbank/feats.scp"))) for r in (recipe, tiny_recipe))
    assert sorted(got) == sorted(want)
    for utt in want:
        np.testing.assert_array_equal(got[utt], want[utt])
    for fold in ("fold1", "fold2", "fold3"):
        got, want = (torch.load(r / TINY_SYSTEM / "loso/seed1" / fold / "best.pt", weights_only=False)["model"]
                     for r in (recipe, tiny_recipe))
        assert got.keys() == want.keys()
        for name in want:
            assert torch.equal(got[name], want[name]), (fold, name)
