"""The demo cluster, found through its state file; the demo's root check."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from unitctl_testing.cluster import Cluster
from unitctl_testing.demo.console import PROG, die


def require_root() -> None:
    if os.geteuid() != 0:
        die("must run as root (systemd-nspawn, network namespaces, cgroups): "
            f"sudo {PROG} {' '.join(sys.argv[1:])}")


def attach(state_file: str) -> Cluster:
    if not os.path.exists(state_file):
        die(f"no demo cluster ({state_file} does not exist): start one with `{PROG} up`")
    try:
        return Cluster.attach(state_file)
    except (OSError, ValueError, KeyError, TypeError) as e:
        die(f"cannot read {state_file}: {e}")


def machine_name_of(c: Cluster, machine_id: str) -> str:
    for n in c.names:
        if c.machines[n].machine_id == machine_id:
            return n
    return "?"


def find_machine(c: Cluster, name: str) -> Any:
    if name not in c.machines:
        die(f"no machine {name!r} (the demo has {', '.join(c.names)})")
    return c.machines[name]


def rmdir_state_dir(state_file: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(os.path.abspath(state_file)))  # only if empty
