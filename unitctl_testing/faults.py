"""Faults injected into a running machine, as the fault tests and the demo use them.

* power: ``poweroff`` is a graceful shutdown (SIGTERM to systemd-nspawn, which
  sends SIGRTMIN+3 to the machine's systemd); a hard kill is ``nspawn.stop``.
* network: ``partition``/``heal`` take the machine's veth down/up, so the
  machine and etcd see each other vanish without any process noticing.
* time: ``freeze``/``thaw`` freeze the machine's cgroup payload (a machine
  that hangs: no process runs, nothing exits).
"""

from __future__ import annotations

import os
import signal

from unitctl_testing import network, nspawn
from unitctl_testing.host import ClusterError, log, wait_until
from unitctl_testing.machine import Machine


def poweroff(m: Machine, timeout: float, remove_containers: bool) -> None:
    """Shut the machine down and wait (hard-kill it if that times out)."""
    if m.running():
        os.kill(m.nspawn_pid, signal.SIGTERM)
        if not wait_until(lambda: not m.running(), timeout):
            log(f"{m.name}: poweroff timed out; killing")
    nspawn.stop(m, remove_containers=remove_containers)


def partition(m: Machine) -> None:
    network.set_link(m.veth, "down")


def heal(m: Machine) -> None:
    network.set_link(m.veth, "up")


def freeze(m: Machine, frozen: bool) -> None:
    """Write ``cgroup.freeze`` of the machine's payload and wait until it settled."""
    value = "1" if frozen else "0"
    cg = m.cgroup_dir("unified") / "payload"
    (cg / "cgroup.freeze").write_text(value)
    want = f"frozen {value}"
    if not wait_until(lambda: want in (cg / "cgroup.events").read_text(), 10):
        raise ClusterError(f"{m.name}: cgroup.freeze={value} did not settle")
