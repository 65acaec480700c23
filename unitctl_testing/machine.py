"""One machine of the cluster: its names, addresses, paths and process ids.

A :class:`Machine` is plain data; the state file holds every field but the
``Popen`` of its systemd-nspawn (a cluster attached from the state file has
only the pids). Its agent options (beyond the etcd endpoints, address, metadata
and TTL the harness writes) are part of it, so every boot writes them again.
Commands run inside a running machine through nsenter into
the namespaces of its systemd. ``name`` is also the hostname; ``full_name`` (tag + name) is
unique on the host and names its nspawn machine, netns and cgroup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from unitctl.config import DEFAULTS as AGENT_OPTION_DEFAULTS
from unitctl_testing.cgroups import cgroup_dir
from unitctl_testing.host import ClusterError, pid_alive, sh

# PATH of the commands run inside a machine (nsenter, see Cluster.exec).
MACHINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AGENT_OPTION_KEYS = frozenset(AGENT_OPTION_DEFAULTS)


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


#: unitctl.conf keys the harness writes itself at every boot (not per-machine options)
HARNESS_AGENT_KEYS = frozenset({"etcd_servers", "public_ip", "metadata", "agent_ttl",
                                "etcd_key_prefix"})


def check_agent_options(options: dict[str, str]) -> dict[str, str]:
    """``options`` when each is an agent option (unitctl.conf) the harness does not write
    itself, with a one-line value; ClusterError naming a bad one."""
    for key, value in options.items():
        if key not in AGENT_OPTION_KEYS or key in HARNESS_AGENT_KEYS:
            raise ClusterError(f"agent option {key!r} is not one a machine may set "
                               f"(the harness writes {', '.join(sorted(HARNESS_AGENT_KEYS))})")
        if "\n" in value or "\r" in value:
            raise ClusterError(f"agent option {key!r}: the value must be one line")
    return dict(options)


def check_binds(binds: list[str]) -> list[str]:
    """``binds`` when each is ``/host/dir:/machine/path`` of existing host directories;
    ClusterError naming a bad one."""
    for bind in binds:
        host, sep, inside = bind.partition(":")
        if not sep or not os.path.isabs(host) or not os.path.isabs(inside) \
                or ":" in inside or not os.path.isdir(host):
            raise ClusterError(f"bind {bind!r} is not /existing/host/dir:/machine/path")
    return list(binds)


@dataclass
class Machine:
    """One nspawn machine; everything but ``proc`` goes into the state file."""

    name: str  # also the hostname
    full_name: str  # tag + name: nspawn's -M, unique on the host
    idx: int
    ip: str
    netns: str
    veth: str
    cgroup: str  # relative to each hierarchy, e.g. unitctl-test/m1
    dir: str
    metadata: dict[str, str] = field(default_factory=dict)
    #: ``HOST_DIR:MACHINE_PATH`` bind mounts given to systemd-nspawn (``--bind=``)
    binds: list[str] = field(default_factory=list)
    #: the machine's own options of /etc/unitctl/unitctl.conf (``template_dirs``...),
    #: written with the harness's own at every boot (:meth:`Cluster.set_agent_options`)
    agent_options: dict[str, str] = field(default_factory=dict)
    machine_id: str = ""
    nspawn_pid: int = 0
    leader_pid: int = 0
    mounted: bool = False
    netns_made: bool = False
    lock_file: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def root(self) -> str:
        return os.path.join(self.dir, "root")

    @property
    def upper(self) -> str:
        return os.path.join(self.dir, "upper")

    @property
    def console_log(self) -> str:
        return os.path.join(self.dir, "console.log")

    @property
    def notify_socket(self) -> str:
        return os.path.join(self.dir, "notify.sock")

    def cgroup_dir(self, hierarchy: str = "unified") -> Path:
        return cgroup_dir(self.cgroup, hierarchy)

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.nspawn_pid)

    def to_state(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "proc"}

    def exec(self, *argv: str, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the machine (all its namespaces, its binaries)."""
        if not self.leader_pid or not pid_alive(self.leader_pid):
            raise ClusterError(f"{self.name} is not running")
        cmd = ["nsenter", "-t", str(self.leader_pid), "-m", "-u", "-i", "-n", "-p", "--", *argv]
        env = {"PATH": MACHINE_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           check=False)
        if check and p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, list(argv), p.stdout, p.stderr)
        return p

    def journal(self, *args: str) -> str:
        """The machine's journal (from inside, or from its overlay when not running)."""
        base = ["journalctl", "--no-pager", "-o", "short-precise", *args]
        if self.leader_pid and pid_alive(self.leader_pid):
            p = self.exec(*base, check=False, timeout=60)
            return p.stdout + p.stderr
        if os.path.isdir(self.root) and shutil.which("journalctl"):
            p = sh(*base, f"--root={self.root}", check=False)
            return p.stdout + p.stderr
        return ""
