"""A throw-away cluster of real systemd machines (systemd-nspawn) + host etcd.

Recipe and measurements: shared/docs/harness.md. In short, per machine:
overlayfs on the cached base rootfs (:mod:`unitctl_testing.overlay`,
:mod:`unitctl_testing.rootfs`), its own netns ``unitctl-<tag><name>`` with
veth ``uv<tag><idx>`` on a bridge (:mod:`unitctl_testing.network`),
``systemd-nspawn --boot`` started from its own cgroup
``/sys/fs/cgroup/{systemd,unified}/unitctl-test/<tag><name>`` (pitfall 1,
:mod:`unitctl_testing.cgroups`, :mod:`unitctl_testing.nspawn`), readiness via
``NOTIFY_SOCKET``. Each machine runs the agent from the shipped
contrib/unitctl-agent.service (:mod:`unitctl_testing.machine_files`). etcd
runs on the host and also listens on the bridge IP.

:class:`Cluster` composes those parts: ``up``/``down`` (idempotent, also after a
failed ``up``), commands inside a machine, the faults of
:mod:`unitctl_testing.faults`, and the state file (:mod:`unitctl_testing.state`)
that ``Cluster.attach`` reads back. A CLI is in :mod:`unitctl_testing.cli`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from unitctl_testing import (
    cgroups,
    docker_socket,
    faults,
    logs,
    machine_files,
    network,
    nspawn,
    preflight,
    state,
    teardown,
)
from unitctl_testing import rootfs as rootfs_cache
from unitctl_testing.etcd import EtcdCluster, kill_etcd_pids
from unitctl_testing.host import ClusterError, log
from unitctl_testing.machine import Machine, check_agent_options, check_binds
from unitctl_testing.machine_files import AGENT_UNIT
from unitctl_testing.overlay import mount_root

T = TypeVar("T")


def _nth(items: list[T], i: int, empty: T) -> T:
    return items[i] if i < len(items) else empty


class Cluster:
    """N systemd machines on a bridge + an etcd cluster on the host.

    ``with Cluster(3) as c: c.exec("m1", "hostname")`` -- ``down()`` always
    removes everything made (processes, mounts, netns, veths, cgroups, bridge,
    iptables rule, workdir), idempotently, also after a partial ``up()``.
    """

    def __init__(self, n_machines: int = 3, etcd_size: int = 1,
                 metadata: list[dict[str, str]] | None = None, agent_ttl: str = "3s",
                 workdir: str | None = None, bridge: str = "br-unitctl",
                 subnet: str = "10.231.77", docker_socket: bool = False,
                 start_agent: bool = True, tag: str = "", state_file: str | None = None,
                 boot_timeout: float = 120.0,
                 binds: list[list[str]] | None = None,
                 agent_options: list[dict[str, str]] | None = None) -> None:
        if len(bridge) > 15 or len(f"uv{tag}{n_machines + 99}") > 15:
            raise ClusterError("interface names must be <= 15 characters (pitfall 4)")
        self.n_machines = n_machines
        self.etcd_size = etcd_size
        self.metadata = list(metadata or [])
        #: per machine (in order), ``HOST_DIR:MACHINE_PATH`` bind mounts (nspawn --bind)
        self.binds = list(binds or [])
        #: per machine (in order), its own unitctl.conf options (kept across boots)
        self.agent_options = list(agent_options or [])
        self.agent_ttl = agent_ttl
        self.docker_socket = docker_socket
        self.start_agent = start_agent
        self.tag = tag
        self.boot_timeout = boot_timeout
        # down() deletes the workdir only if it made it (else just what it put there)
        self._own_workdir = workdir is None or not os.path.exists(workdir)
        self.workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="unitctl-cluster-"))
        self.state_file = state_file or os.path.join(self.workdir, "state.json")
        self.lan = network.Bridge(bridge, subnet.rstrip("."), owner=self.workdir)
        self.base = ""
        self.machines: dict[str, Machine] = {}
        self.etcd: EtcdCluster | None = None
        self.etcd_pids: list[int] = []
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ properties
    @property
    def bridge(self) -> str:
        return self.lan.name

    @property
    def subnet(self) -> str:
        return self.lan.subnet

    @property
    def bridge_ip(self) -> str:
        return self.lan.ip

    @property
    def endpoint(self) -> str:
        """Host-reachable etcd client URL(s), comma-separated."""
        return self._etcd().endpoint

    @property
    def machine_endpoints(self) -> list[str]:
        """etcd client URLs as the machines reach them (over the bridge)."""
        return [f"http://{self.bridge_ip}:{m.client_port}" for m in self._etcd().members]

    @property
    def names(self) -> list[str]:
        return sorted(self.machines, key=lambda n: self.machines[n].idx)

    def _etcd(self) -> EtcdCluster:
        if self.etcd is None:
            raise ClusterError("cluster is not up (no etcd)")
        return self.etcd

    def machine(self, name: str) -> Machine:
        try:
            return self.machines[name]
        except KeyError:
            raise ClusterError(f"no machine {name!r} (have {self.names})") from None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> Cluster:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Cluster:
        """Start etcd, make the bridge and boot all machines in parallel."""
        t0 = time.monotonic()
        try:
            preflight.check_host(self.lan, self.docker_socket)
            os.makedirs(self.workdir, exist_ok=True)
            self._timed("rootfs", self._ensure_base)
            self._timed("bridge", lambda: self.lan.create(self._save_state))
            self._timed("etcd", self._start_etcd)
            for i in range(self.n_machines):
                self._new_machine(i + 1, _nth(self.metadata, i, {}), _nth(self.binds, i, []),
                                  _nth(self.agent_options, i, {}))
            self._save_state()
            self._timed("boot", lambda: self._boot_parallel(self.names))
        except BaseException:
            log("up() failed; tearing down what was made")
            with contextlib.suppress(Exception):
                self.down()
            raise
        self.timings["up"] = time.monotonic() - t0
        self._save_state()
        return self

    def down(self) -> None:
        """Remove everything; safe to call repeatedly and after a failed ``up()``."""
        errors: list[str] = []
        t0 = time.monotonic()
        for name in list(self.machines):
            errors += teardown.destroy_machine(self.machines[name], self.docker_socket)
        errors += teardown.guard(self._stop_etcd)
        errors += teardown.guard(self.lan.remove)
        cgroups.remove_parent()
        errors += teardown.guard(lambda: teardown.remove_workdir(
            self.workdir, self.state_file, self._own_workdir,
            [m.dir for m in self.machines.values()]))
        self.timings["down"] = time.monotonic() - t0
        if errors:
            raise ClusterError("down() left things behind:\n  " + "\n  ".join(errors))

    def _timed(self, what: str, fn: Callable[[], object]) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[what] = time.monotonic() - t0

    def _ensure_base(self) -> None:
        self.base = str(rootfs_cache.ensure_rootfs(timings=self.timings))

    # ------------------------------------------------------------ etcd
    def _start_etcd(self) -> None:
        self.etcd = EtcdCluster(size=self.etcd_size, extra_client_hosts=[self.bridge_ip],
                                base_dir=os.path.join(self.workdir, "etcd"))
        try:
            self.etcd.start()
        finally:
            self.etcd_pids = [m.proc.pid for m in self.etcd.members if m.proc is not None]
            self._save_state()

    def _stop_etcd(self) -> None:
        if self.etcd is not None:
            for m in self.etcd.members:
                m.kill()
        kill_etcd_pids(self.etcd_pids)  # attached from a state file: no Popen objects
        self.etcd_pids = []

    # ------------------------------------------------------------ machines
    def _new_machine(self, idx: int, metadata: dict[str, str], binds: list[str] | None = None,
                     agent_options: dict[str, str] | None = None) -> Machine:
        name = f"m{idx}"
        full = f"{self.tag}{name}"
        m = Machine(name=name, full_name=full, idx=idx, ip=f"{self.subnet}.{10 + idx}",
                    netns=f"unitctl-{full}", veth=f"uv{self.tag}{idx}",
                    cgroup=f"{cgroups.CGROUP_PARENT}/{full}",
                    dir=os.path.join(self.workdir, name), metadata=dict(metadata),
                    binds=check_binds(binds or []),
                    agent_options=check_agent_options(agent_options or {}))
        if name in self.machines:
            raise ClusterError(f"machine {name} exists")
        self.machines[name] = m
        return m

    def _boot_parallel(self, names: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), 16))) as pool:
            futures = {n: pool.submit(self._create_and_boot, self.machines[n]) for n in names}
            errors = []
            for n, fut in futures.items():
                exc = fut.exception()
                if exc is not None:
                    errors.append(f"{n}: {exc}")
        self._save_state()
        if errors:
            raise ClusterError("boot failed:\n  " + "\n  ".join(errors))

    def _create_and_boot(self, m: Machine) -> None:
        mount_root(m, self.base)
        if not m.machine_id:
            m.machine_id = uuid.uuid4().hex
        self._write_machine_files(m)
        if not m.netns_made:
            network.add_netns(m.netns, m.veth)
            m.netns_made = True
            network.wire_netns(m.netns, m.veth, m.ip, self.bridge)
        seconds = nspawn.boot(m, self.boot_timeout, self.docker_socket)
        self.timings[f"boot.{m.name}"] = seconds

    def _write_machine_files(self, m: Machine) -> None:
        root = Path(m.root)
        machine_files.write_identity(root, m)
        machine_files.write_agent_config(root, m, self.machine_endpoints, self.agent_ttl)
        machine_files.install_agent(root, enabled=self.start_agent)
        if self.docker_socket:
            docker_socket.write_docker_files(root)

    def _stop_machine(self, m: Machine, keep_containers: bool = False) -> None:
        nspawn.stop(m, remove_containers=self.docker_socket and not keep_containers)

    # ------------------------------------------------------------ operations
    def exec(self, name: str, *argv: str, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside machine ``name`` (all its namespaces, its binaries)."""
        return self.machine(name).exec(*argv, check=check, timeout=timeout, input=input)

    def systemctl(self, name: str, *args: str, check: bool = True,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.exec(name, "systemctl", *args, check=check, timeout=timeout)

    def system_state(self, name: str, wait: bool = True, timeout: float = 60) -> str:
        """``systemctl is-system-running [--wait]`` -> running/degraded/..."""
        args = ["is-system-running", *(["--wait"] if wait else [])]
        return self.systemctl(name, *args, check=False, timeout=timeout).stdout.strip()

    def journal(self, name: str, *args: str) -> str:
        """The machine's journal (from inside, or from its overlay when not running)."""
        return self.machine(name).journal(*args)

    def stop_agent(self, name: str) -> None:
        self.systemctl(name, "stop", AGENT_UNIT)

    def start_agent_unit(self, name: str) -> None:
        self.systemctl(name, "start", AGENT_UNIT)

    def machine_id(self, name: str) -> str:
        return self.machine(name).machine_id

    def ip(self, name: str) -> str:
        return self.machine(name).ip

    def leader_pid(self, name: str) -> int:
        return self.machine(name).leader_pid

    def bus_address(self, name: str) -> str:
        return f"unix:path=/proc/{self.machine(name).leader_pid}/root/run/dbus/system_bus_socket"

    def add_machine(self, metadata: dict[str, str] | None = None,
                    binds: list[str] | None = None,
                    agent_options: dict[str, str] | None = None) -> str:
        """Create and boot one more machine (``binds``: ``HOST_DIR:MACHINE_PATH`` bind
        mounts; ``agent_options``: its own unitctl.conf options); return its name."""
        idx = max((m.idx for m in self.machines.values()), default=0) + 1
        m = self._new_machine(idx, metadata or {}, binds, agent_options)
        self._save_state()
        try:
            self._create_and_boot(m)
        finally:
            self._save_state()
        return m.name

    def set_agent_options(self, name: str, options: dict[str, str],
                          restart: bool = True) -> None:
        """Make ``options`` machine ``name``'s own unitctl.conf options (``template_dirs``...),
        kept in the state file and written at every boot; written now (the agent restarted
        when it runs and ``restart``)."""
        m = self.machine(name)
        m.agent_options = check_agent_options(options)
        self._save_state()
        if os.path.isdir(os.path.join(m.root, "etc")):
            machine_files.write_agent_config(Path(m.root), m, self.machine_endpoints,
                                             self.agent_ttl)
        if restart and m.running():
            self.systemctl(name, "restart", AGENT_UNIT)

    # ------------------------------------------------------------ faults
    def kill(self, name: str, keep_containers: bool = False) -> None:
        """Hard-kill a machine (cgroup.kill); overlay, netns and machine-id stay for boot().

        ``keep_containers=True`` (docker_socket only): leave the machine's containers
        running in the host engine, as an engine that outlives its machine would
        (a shared or remote engine); by default they die with the machine.
        """
        self._stop_machine(self.machine(name), keep_containers=keep_containers)
        self._save_state()

    def boot(self, name: str) -> None:
        """Boot a killed/powered-off machine again (same upper, netns, machine-id)."""
        self._create_and_boot(self.machine(name))
        self._save_state()

    def poweroff(self, name: str, timeout: float = 30) -> None:
        """Graceful shutdown: SIGTERM to nspawn (SIGRTMIN+3 to the machine's systemd)."""
        faults.poweroff(self.machine(name), timeout, remove_containers=self.docker_socket)
        self._save_state()

    def partition(self, name: str) -> None:
        faults.partition(self.machine(name))

    def heal(self, name: str) -> None:
        faults.heal(self.machine(name))

    def freeze(self, name: str) -> None:
        faults.freeze(self.machine(name), frozen=True)

    def thaw(self, name: str) -> None:
        faults.freeze(self.machine(name), frozen=False)

    # ------------------------------------------------------------ state file
    def collect_logs(self, dest_dir: str) -> str:
        """Write every machine's journal + console log, the etcd logs and the state."""
        return logs.collect_logs(dest_dir, [self.machines[n] for n in self.names], self.etcd,
                                 self.to_state())

    def to_state(self) -> dict[str, Any]:
        return {
            "version": state.STATE_VERSION, "workdir": self.workdir,
            "own_workdir": self._own_workdir, "state_file": self.state_file,
            "base": self.base, "bridge": self.bridge,
            "subnet": self.subnet, "bridge_made": self.lan.made,
            "iptables_rule": self.lan.iptables_rule, "tag": self.tag,
            "agent_ttl": self.agent_ttl, "start_agent": self.start_agent,
            "docker_socket": self.docker_socket, "etcd_size": self.etcd_size,
            "etcd": state.etcd_to_state(self.etcd), "etcd_pids": self.etcd_pids,
            "endpoint": self.etcd.endpoint if self.etcd else "",
            "machines": [self.machines[n].to_state() for n in self.names],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def _save_state(self) -> None:
        with self._lock:
            if os.path.isdir(self.workdir):
                state.write_json(self.state_file, self.to_state())

    @classmethod
    def attach(cls, state_file: str = state.DEFAULT_STATE_FILE) -> Cluster:
        """Rebuild a Cluster object from the state file of a running cluster."""
        st = state.read_json(state_file)
        c = cls(n_machines=0, etcd_size=st["etcd_size"], agent_ttl=st["agent_ttl"],
                workdir=st["workdir"], bridge=st["bridge"], subnet=st["subnet"],
                docker_socket=st["docker_socket"], start_agent=st["start_agent"],
                tag=st["tag"], state_file=state_file)
        c._own_workdir = st.get("own_workdir", True)
        c.n_machines = len(st["machines"])
        c.base, c.lan.made, c.lan.iptables_rule = st["base"], st["bridge_made"], \
            st["iptables_rule"]
        c.etcd_pids = list(st.get("etcd_pids", []))
        if st.get("etcd"):
            c.etcd = state.etcd_from_state(st["etcd"], c.bridge_ip)
        for d in st["machines"]:
            c.machines[d["name"]] = Machine(**d)
        return c
