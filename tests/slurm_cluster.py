"""A single-node Slurm on 127.0.0.1 for the tests: installs Debian's slurm-wlm
and munge where they are missing (root only), then runs munged, slurmctld and
slurmd as root with every file (keys, sockets, state, logs) in one directory,
on free ports, so that neither a system Slurm nor another test session is
touched. The node has two partitions: ``debug`` (the default) and ``gpu``,
whose one GPU is /dev/null, enough to check --gres requests."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def install() -> str | None:
    """Installs slurm-wlm and munge where missing; the reason it cannot, or None."""
    if all(shutil.which(p) for p in PROGRAMS):
        return None
    if os.geteuid() != 0:
        return "Slurm (slurm-wlm, munge) is not installed, and installing it needs root"
    if not shutil.which("apt-get"):
        return "Slurm (slurm-wlm, munge) is not installed, and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another apt (an install beside the tests) must not turn the Slurm tests into skips:
    # install waits for dpkg's lock itself; update does not wait for the lists lock, so retry it.
    install_cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q",
                   "--no-install-recommends", "slurm-wlm", "munge"]
    for cmd in (["apt-get", "update", "-q"], install_cmd):
        deadline = time.time() + 300
        while True:
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if result.returncode == 0 or "Could not get lock" not in result.stderr or time.time() > deadline:
                break
            time.sleep(5)
        if result.returncode != 0:
            return f"cannot install Slurm: '{' '.join(cmd)}' failed:\n{result.stderr[-2000:]}"
    missing = [p for p in PROGRAMS if not shutil.which(p)]
    return f"installed slurm-wlm and munge, but {' '.join(missing)} is missing" if missing else None


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class SlurmCluster:
    """``start()`` brings the cluster up (the node idle), ``stop()`` takes it down;
    ``env`` holds SLURM_CONF for the clients, ``logs()`` the daemons' logs."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = {"SLURM_CONF": str(self.conf)}

    def _run(self, *cmd: str) -> None:
        result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **self.env},
                                timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"'{' '.join(cmd)}' failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}\n{self.logs()}")

    def start(self, timeout: float = 60) -> "SlurmCluster":
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        r = self.root
        for sub in ("state", "spool"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        r.chmod(0o755)  # munged wants its socket's directory readable by all
        (r / "munge.key").write_bytes(os.urandom(1024))
        (r / "munge.key").chmod(0o600)
        self._run("munged", "--force", f"--key-file={r}/munge.key", f"--socket={r}/munge.socket",
                  f"--pid-file={r}/munged.pid", f"--log-file={r}/munged.log", f"--seed-file={r}/munged.seed")
        hardware = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
        cpus = int(hardware.split("CPUs=")[1].split()[0])
        memory = int(hardware.split("RealMemory=")[1].split()[0])
        ctld_port, slurmd_port = free_ports(2)
        # config_overrides: the node is taken as configured, so that a small machine
        # still fits the recipe's --mem requests (memory is not enforced here).
        self.conf.write_text(f"""\
ClusterName=sertest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={r}/munge.socket
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MessageTimeout=5
KillWait=2
ReturnToService=2
MpiDefault=none
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={max(memory, 16384)} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
""")
        (r / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")
        self._run("slurmctld")
        self._run("slurmd", "-N", "localhost")
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%T"], capture_output=True,
                                   text=True, env={**os.environ, **self.env}).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Slurm node is not idle after {timeout} s (state: {state!r})\n{self.logs()}")

    def stop(self) -> None:
        """Stops the daemons and waits until they are gone (at most 10 s, then kills them)."""
        pids = []
        for name in ("slurmd", "slurmctld", "munged"):
            try:
                pid = int((self.root / f"{name}.pid").read_text())
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
            except (OSError, ValueError):
                pass
        deadline = time.time() + 10
        for pid in pids:
            while time.time() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)

    def logs(self) -> str:
        return "".join(f"\n===== {path} =====\n{path.read_text(errors='replace')[-5000:]}"
                       for path in sorted(self.root.glob("*.log")))
