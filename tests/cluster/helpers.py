"""Helpers for cluster tests: drive `unitctl` from the host, read systemd in machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from unitctl_testing.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]


def unitctl(c: Cluster, *args: str, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `unitctl` CLI (a subprocess) against the cluster's etcd."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "unitctl", "--endpoint", c.endpoint,
                        "--request-timeout", "2", *args],
                       capture_output=True, text=True, timeout=timeout, cwd=str(REPO), env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"unitctl {' '.join(args)} failed ({r.returncode}):\n"
                             f"{r.stdout}{r.stderr}")
    return r


def write_unit(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text(body)
    return str(path)


def service(cmd: str = "/bin/sleep infinity", xfleet: str = "", extra: str = "") -> str:
    text = f"[Unit]\nDescription=test unit\n{extra}\n[Service]\nExecStart={cmd}\n"
    return text + (f"[X-Fleet]\n{xfleet}\n" if xfleet else "")


def active_state(c: Cluster, machine: str, unit: str) -> str:
    """systemd's ActiveState of ``unit`` inside ``machine`` ('' if unreachable)."""
    try:
        r = c.exec(machine, "systemctl", "show", "-p", "ActiveState", "--value", unit,
                   check=False, timeout=10)
    except Exception:
        return ""
    return r.stdout.strip()


def where_active(c: Cluster, unit: str, machines: list[str] | None = None) -> set[str]:
    """Machines (by name) where systemd runs ``unit`` right now."""
    return {m for m in (machines or list(c.names)) if active_state(c, m, unit) == "active"}


def units_json(c: Cluster) -> list[dict[str, str]]:
    r = unitctl(c, "list-units", "--json", "--full")
    data: list[dict[str, str]] = json.loads(r.stdout)
    return data


def name_of(c: Cluster, machine_id: str) -> str:
    for n in c.names:
        if c.machine_id(n) == machine_id:
            return n
    raise KeyError(machine_id)


def wait(cond: Callable[[], bool], timeout: float = 20, step: float = 0.1,
         what: str = "condition") -> float:
    """Wait until ``cond()``; return the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(step)
    return time.monotonic() - t0
