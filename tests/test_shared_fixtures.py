"""The test suite on a busy machine: a recipe run is stopped for a stall, not for being
slow, and says what it waited for; a shared fixture that cannot be built is reported
once, and the other tests that need it are skipped with a line naming that report."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared_fixtures import run_command

TESTS = Path(__file__).resolve().parent


def test_a_slow_run_that_progresses_is_not_stopped(tmp_path):
    # 3 s in all, but never 1.5 s without a file written: passes a stall limit of 1.5 s.
    script = "for i in 1 2 3 4 5 6; do sleep 0.5; touch f$i; done; echo done"
    out = run_command(["bash", "-c", script], cwd=tmp_path, stall=1.5, limit=60)
    assert out.returncode == 0 and out.stdout == "done\n"


def test_a_silent_run_is_stopped_saying_what_it_waited_for(tmp_path):
    script = "echo 'Stage 5: train lstm'; sleep 120 & wait"
    start = time.time()
    with pytest.raises(AssertionError) as error:
        run_command(["bash", "-c", script], cwd=tmp_path, stall=1.0, limit=60)
    message = str(error.value)
    assert time.time() - start < 30
    assert "no progress (no output, no file written) for " in message
    assert "It was waiting for:" in message and ": sleep 120" in message
    assert message.endswith("Its last output:\nStage 5: train lstm\n")
    assert "Load average" in message
    with pytest.raises(AssertionError, match="still running after 1 s"):
        run_command(["bash", "-c", "while sleep 0.1; do echo .; done"], cwd=tmp_path, stall=30, limit=1)


CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import pytest
from shared_fixtures import build_once, pytest_runtest_makereport  # noqa: F401

@pytest.fixture(scope="session")
def recipe():
    def build():
        raise AssertionError("./run.sh --stage 1 failed")
    return build_once("recipe", build)

@pytest.fixture(scope="session")
def bundle(recipe):
    return recipe
"""


def test_a_shared_fixture_that_fails_is_reported_once(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_uses.py").write_text(
        "def test_a(recipe): pass\ndef test_b(recipe): pass\ndef test_c(bundle): pass\ndef test_d(): pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rs", "-q",
                          str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "1 passed, 2 skipped, 1 error" in out.stdout, out.stdout
    assert out.stdout.count("the shared fixture recipe could not be built: ./run.sh --stage 1 failed") == 1
    assert out.stdout.count("recipe could not be built; reported at test_uses.py::test_a") == 2
