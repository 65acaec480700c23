"""Booting and stopping a machine: systemd-nspawn --boot in the machine's cgroup.

``boot`` starts systemd-nspawn through a sh wrapper that first joins the
machine's own cgroups (pitfall 1), in the machine's netns, with the source
tree bind-mounted read-only at /opt/unitctl/src, and waits for READY=1 on a
``NOTIFY_SOCKET`` (the machine's systemd finished booting). ``stop`` is a hard
kill: ``cgroup.kill`` of the whole machine; its overlay, netns and machine-id
stay for the next boot.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from unitctl_testing import cgroups, docker_socket
from unitctl_testing.host import ClusterError, pid_alive, wait_until
from unitctl_testing.machine import Machine
from unitctl_testing.machine_files import MACHINE_SRC
from unitctl_testing.mounts import safe_rmtree
from unitctl_testing.rootfs import REPO

NSPAWN_STATE = Path("/run/systemd/nspawn")
# sh wrapper: join the machine's own cgroups, then become systemd-nspawn.
CGROUP_WRAPPER = 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"'
INHERITED_NOTIFY = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "WATCHDOG_PID")


def nspawn_argv(m: Machine, with_docker: bool) -> list[str]:
    argv = ["systemd-nspawn", "-D", m.root, "-M", m.full_name, f"--hostname={m.name}",
            "--boot", "--register=no",
            "--keep-unit", "--console=read-only", "--notify-ready=yes",
            "--link-journal=no", "--settings=no",
            f"--network-namespace-path=/run/netns/{m.netns}",
            f"--bind-ro={REPO}:{MACHINE_SRC}", *(f"--bind={b}" for b in m.binds)]
    if with_docker:
        argv += docker_socket.nspawn_binds()
    return argv


def boot(m: Machine, boot_timeout: float, with_docker: bool) -> float:
    """Start the machine and wait until it booted; return the seconds it took."""
    if m.running():
        raise ClusterError(f"{m.name} is already running (pid {m.nspawn_pid})")
    procs = cgroups.make_cgroups(m.cgroup)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(m.notify_socket)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(m.notify_socket)
        t0 = time.monotonic()
        _spawn(m, [*procs, *nspawn_argv(m, with_docker)])
        _wait_ready(m, sock, boot_timeout)
        seconds = time.monotonic() - t0
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(m.notify_socket)
    _remember_lock(m)
    return seconds


def _spawn(m: Machine, wrapper_args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_NOTIFY}
    env["NOTIFY_SOCKET"] = m.notify_socket
    with open(m.console_log, "ab") as console:
        console.write(f"\n=== boot {time.strftime('%F %T')} ===\n".encode())
        console.flush()
        m.proc = subprocess.Popen(
            ["/bin/sh", "-c", CGROUP_WRAPPER, "unitctl-nspawn", *wrapper_args],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console, env=env,
            start_new_session=True)
    m.nspawn_pid = m.proc.pid
    m.leader_pid = 0


def _wait_ready(m: Machine, sock: socket.socket, boot_timeout: float) -> None:
    deadline = time.monotonic() + boot_timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            msg = sock.recv(4096).decode(errors="replace")
        except TimeoutError:
            msg = ""
        for line in msg.splitlines():
            if line.startswith("X_NSPAWN_LEADER_PID="):
                m.leader_pid = int(line.split("=", 1)[1])
            elif line == "READY=1":
                if not m.leader_pid:
                    m.leader_pid = _find_leader(m)
                return
        if not m.running():
            raise ClusterError(f"{m.name}: systemd-nspawn exited "
                               f"({m.proc.returncode if m.proc else '?'}): "
                               f"{console_tail(m)}")
    raise ClusterError(f"{m.name}: no READY=1 within {boot_timeout}s: {console_tail(m)}")


def _find_leader(m: Machine) -> int:
    try:
        kids = Path(f"/proc/{m.nspawn_pid}/task/{m.nspawn_pid}/children").read_text().split()
        return int(kids[0]) if kids else 0
    except OSError:
        return 0


def console_tail(m: Machine, n: int = 1500) -> str:
    try:
        with open(m.console_log, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def _remember_lock(m: Machine) -> None:
    with contextlib.suppress(OSError):
        st = os.stat(m.root)
        m.lock_file = str(NSPAWN_STATE / "locks" / f"inode-{st.st_dev}:{st.st_ino}")


def stop(m: Machine, timeout: float = 15, remove_containers: bool = False) -> None:
    """cgroup.kill the machine (nspawn included) and wait until its cgroup is empty."""
    cgroups.kill_cgroup(m.cgroup, timeout, m.name)
    if m.proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            m.proc.wait(timeout)
    elif not wait_until(lambda: not pid_alive(m.nspawn_pid), timeout):
        raise ClusterError(f"{m.name}: systemd-nspawn {m.nspawn_pid} survived cgroup.kill")
    if remove_containers:
        docker_socket.remove_containers(m.machine_id, m.name)
    m.proc = None
    m.nspawn_pid = m.leader_pid = 0
    cgroups.clean_cgroups(m.cgroup, keep_top=True)


def remove_nspawn_state(m: Machine) -> None:
    """What systemd-nspawn leaves on the host: its propagate and lock files."""
    for sub in ("propagate", "unix-export"):
        with contextlib.suppress(OSError, RuntimeError):
            safe_rmtree(NSPAWN_STATE / sub / m.full_name)
    if m.lock_file:
        with contextlib.suppress(OSError):
            os.unlink(m.lock_file)
