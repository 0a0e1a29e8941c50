"""tools/install.sh on an existing environment: packages pinned since it was made
are installed (the stamp of the requirements it installed differs), and nothing is
done when the stamp matches."""
from __future__ import annotations

import os
import shutil
import subprocess

from conftest import ROOT


def test_install_adds_newly_pinned_packages_to_an_existing_venv(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy2(ROOT / "tools" / "install.sh", tools / "install.sh")
    shutil.copy2(ROOT / "tools" / "requirements.txt", tools / "requirements.txt")
    venv_bin = tools / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(shutil.which("python3"))
    calls = tmp_path / "pip.calls"
    (venv_bin / "pip").write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n")  # records, installs nothing
    (venv_bin / "pip").chmod(0o755)
    old = "".join(line for line in (ROOT / "tools/requirements.txt").read_text().splitlines(True)
                  if not line.startswith("onnx"))
    (tools / "venv" / ".installed").write_text(old)  # a venv made before the onnx pins
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    run = subprocess.run(["bash", tools / "install.sh"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert f"install -q -r {tools / 'requirements.txt'}" in calls.read_text()
    assert (tools / "venv" / ".installed").read_text() == (tools / "requirements.txt").read_text()
    calls.unlink()
    run = subprocess.run(["bash", tools / "install.sh"], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and not calls.exists()  # up to date: nothing to install
