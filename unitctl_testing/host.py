"""The host side of the harness: its one error, host commands and process probes.

Every host command is an argument list (never a shell string) run with no
stdin; a failure raises :class:`ClusterError` carrying the command's output.
The probes read /proc and never signal anything.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


class ClusterError(RuntimeError):
    """Setting up, driving or tearing down the cluster failed."""


def log(msg: str) -> None:
    print(f"cluster: {msg}", file=sys.stderr, flush=True)


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a host command (argument list, never a shell string)."""
    p = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=timeout, check=False)
    if check and p.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed ({p.returncode}): "
                           f"{(p.stderr or p.stdout).strip()}")
    return p


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def pid_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def wait_until(pred: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()
