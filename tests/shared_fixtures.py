"""Time limits and failures of the expensive shared fixtures (a recipe run of a minute
or more), made for a machine whose cores other work keeps busy.

- :func:`run_command` fails a run that shows no progress (no output, no file written
  under its directory) for ``stall`` seconds, or that runs ``limit`` seconds in all;
  the message says what it was waiting for: its last output, the processes still
  running in its directory, and the machine's load. A busy machine makes a run slower,
  not silent, so the stall limit catches a hang without failing a slow run.
- :func:`build_once` turns a failed build into a :class:`FixtureBuildError`, which the
  ``pytest_runtest_makereport`` hook below reports in full at the first test that
  needs the fixture, and as a one-line skip naming that test at every later one
  (pytest re-raises a session fixture's error at each test that requests it).
  Import both names into a conftest to use them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest

T = TypeVar("T")

STALL_SECONDS = float(os.environ.get("SER_TEST_STALL_SECONDS", 600))
LIMIT_SECONDS = float(os.environ.get("SER_TEST_LIMIT_SECONDS", 3600))


class FixtureBuildError(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(f"the shared fixture {name} could not be built: {message}")
        self.name = name


_first_report: dict[str, str] = {}  # fixture name -> the test whose error reported it


def build_once(name: str, build: Callable[[], T]) -> T:
    try:
        return build()
    except (AssertionError, OSError, subprocess.SubprocessError) as err:
        raise FixtureBuildError(name, str(err)) from err


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    error = call.excinfo.value if call.when == "setup" and call.excinfo is not None else None
    if isinstance(error, FixtureBuildError):
        first = _first_report.setdefault(error.name, item.nodeid)
        if first != item.nodeid:
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0,
                               f"Skipped: {error.name} could not be built; reported at {first}")


def _newest_change(directory: Path) -> float:
    newest = 0.0
    for top, _, names in os.walk(directory):
        for name in names:
            try:
                newest = max(newest, os.lstat(os.path.join(top, name)).st_mtime)
            except OSError:
                pass
    return newest


def _running_in(directory: Path) -> list[str]:
    """The command lines of the processes working in ``directory`` (or below it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if (cwd == str(directory) or cwd.startswith(f"{directory}/")) and cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def run_command(cmd: list[str], cwd: Path, env: dict | None = None, stall: float | None = None,
                limit: float | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)``, with the time limits above."""
    stall = STALL_SECONDS if stall is None else stall
    limit = LIMIT_SECONDS if limit is None else limit
    cwd = Path(cwd).absolute()
    start = last_progress = time.time()
    load_at_start = os.getloadavg()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
    last_line = [start]

    def read(name: str) -> None:
        for line in getattr(proc, name):
            streams[name].append(line)
            last_line[0] = time.time()

    readers = [threading.Thread(target=read, args=(name,), daemon=True) for name in streams]
    for reader in readers:
        reader.start()
    newest = _newest_change(cwd)
    while True:
        try:
            proc.wait(timeout=min(5.0, stall / 4))
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.time()
        changed = _newest_change(cwd)
        if changed > newest:
            newest, last_progress = changed, now
        last_progress = max(last_progress, last_line[0])
        if now - last_progress < stall and now - start < limit:
            continue
        running = _running_in(cwd)
        # Its process group; a driver's watchdog ends the rest of its run (utils/watchdog.pl).
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        why = (f"no progress (no output, no file written) for {now - last_progress:.0f} s" if now - start < limit
               else f"still running after {limit:.0f} s")
        tail = "".join(streams["stderr"][-15:] or streams["stdout"][-15:]) or "(nothing)\n"
        raise AssertionError(
            f"{' '.join(cmd)} in {cwd}: stopped, {why} (limits: {stall:.0f} s without progress, "
            f"{limit:.0f} s in all; SER_TEST_STALL_SECONDS, SER_TEST_LIMIT_SECONDS). Load average "
            f"{load_at_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} now, on {os.cpu_count()} cores.\n"
            f"It was waiting for:\n" + "".join(f"  {p}\n" for p in running[:8]) +
            f"Its last output:\n{tail}")
    for reader in readers:
        reader.join(timeout=10)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(streams["stdout"]), "".join(streams["stderr"]))
