"""A throw-away cluster of real systemd machines (systemd-nspawn) + host etcd.

Recipe and measurements: shared/docs/harness.md. In short, per machine:
overlayfs on the cached base rootfs (tests/harness/rootfs.py), its own
netns ``unitctl-<tag><name>`` with veth ``uv<tag><idx>`` on a bridge,
``systemd-nspawn --boot`` started from its own cgroup
``/sys/fs/cgroup/{systemd,unified}/unitctl-test/<tag><name>`` (pitfall 1),
readiness via ``NOTIFY_SOCKET`` (READY=1 once the machine's systemd booted).
etcd runs on the host and also listens on the bridge IP.

Usable from pytest (tests/cluster/conftest.py), from a demo, and as a CLI::

    python -m tests.harness.cluster up --machines 3 --metadata 'm1:region=eu,disk=ssd'
    python -m tests.harness.cluster status
    python -m tests.harness.cluster down

``up`` leaves the cluster running and writes a JSON state file (default
/run/unitctl-cluster/state.json) that ``status``/``down`` (or
``Cluster.attach``) read back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tests.harness import rootfs
from tests.harness.etcd import ETCD_BIN, EtcdCluster, EtcdMember
from tests.harness.rootfs import mounts_under, safe_rmtree

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_HIERARCHIES = ("systemd", "unified")  # name=systemd v1 + cgroup2 (hybrid host)
CGROUP_PARENT = "unitctl-test"
NSPAWN_STATE = Path("/run/systemd/nspawn")
DEFAULT_STATE_FILE = "/run/unitctl-cluster/state.json"
BRIDGE_ALIAS_PREFIX = "unitctl-cluster:"
MACHINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AGENT_UNIT = "unitctl-agent.service"
# sh wrapper: join the machine's own cgroups, then become systemd-nspawn.
CGROUP_WRAPPER = 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"'


class ClusterError(RuntimeError):
    """Setting up, driving or tearing down the cluster failed."""


def log(msg: str) -> None:
    print(f"cluster: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- texts

def agent_unit(agent_ttl: str = "3s") -> str:
    """The unit file of the agent inside every machine (adjust here)."""
    return f"""\
[Unit]
Description=unitctl agent (agent_ttl={agent_ttl})
Wants=dbus.service
After=dbus.service

[Service]
Type=notify
NotifyAccess=main
ExecStart=/opt/unitctl/venv/bin/python -m unitctl.daemon
ExecReload=/bin/kill -HUP $MAINPID
Environment=PYTHONPATH=/opt/unitctl/src
Environment=PYTHONUNBUFFERED=1
WatchdogSec=10
TimeoutStartSec=30
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


# docker_socket=True: what makes generated container units runnable in a machine
# (the engine is the host's, reached through the bind-mounted socket).
DOCKER_RUN_WRAPPER = """\
#!/bin/sh
# unitctl test harness: bin/docker-run of the bind-mounted repo (generated units
# call /usr/local/bin/docker-run); it labels containers unitctl.machine=MACHINE-ID.
PYTHONPATH=/opt/unitctl/src
export PYTHONPATH
exec /opt/unitctl/venv/bin/python /opt/unitctl/src/bin/docker-run "$@"
"""
DOCKER_STUB_UNIT = """\
# unitctl test harness: stands for the engine that generated units Require=;
# the engine is the host's dockerd behind the bind-mounted /var/run/docker.sock.
[Unit]
Description=host docker engine (via /var/run/docker.sock)

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/docker version
"""


def agent_config(etcd_servers: Sequence[str], public_ip: str, metadata: dict[str, str],
                 agent_ttl: str) -> str:
    """``/etc/unitctl/unitctl.conf`` of one machine."""
    meta = ",".join(f"{k}={v}" for k, v in metadata.items())
    return (f"etcd_servers = {','.join(etcd_servers)}\n"
            f"public_ip = {public_ip}\n"
            f"metadata = {meta}\n"
            f"agent_ttl = {agent_ttl}\n"
            f"etcd_key_prefix = /unitctl/\n")


def parse_metadata(spec: str) -> tuple[str, dict[str, str]]:
    """``'m1:region=eu,disk=ssd'`` -> ``('m1', {'region': 'eu', 'disk': 'ssd'})``."""
    name, sep, rest = spec.partition(":")
    if not sep or not name:
        raise ValueError(f"metadata {spec!r}: expected NAME:k=v[,k=v...]")
    meta: dict[str, str] = {}
    for pair in filter(None, rest.split(",")):
        k, eq, v = pair.partition("=")
        if not eq or not k:
            raise ValueError(f"metadata {spec!r}: bad pair {pair!r}")
        meta[k.strip()] = v.strip()
    return name, meta


# --------------------------------------------------------------------------- helpers

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


def wait_until(pred: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def rmdir_tree(path: Path) -> list[str]:
    """rmdir a cgroup directory tree depth-first; return what could not be removed."""
    failed: list[str] = []
    if not path.is_dir():
        return failed
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            pass
        except OSError as e:
            failed.append(f"{dirpath}: {e.strerror}")
    return failed


def cgroup_populated(path: Path) -> bool:
    try:
        for line in (path / "cgroup.events").read_text().splitlines():
            if line.startswith("populated "):
                return line.split()[1] == "1"
    except OSError:
        return False
    return False


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- model

def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


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
        return CGROUP_ROOT / hierarchy / self.cgroup

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.nspawn_pid)

    def to_state(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "proc"}


# --------------------------------------------------------------------------- cluster

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
                 boot_timeout: float = 120.0) -> None:
        if len(bridge) > 15 or len(f"uv{tag}{n_machines + 99}") > 15:
            raise ClusterError("interface names must be <= 15 characters (pitfall 4)")
        self.n_machines = n_machines
        self.etcd_size = etcd_size
        self.metadata = list(metadata or [])
        self.agent_ttl = agent_ttl
        self.bridge = bridge
        self.subnet = subnet.rstrip(".")
        self.docker_socket = docker_socket
        self.start_agent = start_agent
        self.tag = tag
        self.boot_timeout = boot_timeout
        # down() deletes the workdir only if it made it (else just what it put there)
        self._own_workdir = workdir is None or not os.path.exists(workdir)
        self.workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="unitctl-cluster-"))
        self.state_file = state_file or os.path.join(self.workdir, "state.json")
        self.base = ""
        self.machines: dict[str, Machine] = {}
        self.etcd: EtcdCluster | None = None
        self.etcd_pids: list[int] = []
        self.bridge_made = False
        self.iptables_rule = False
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ properties
    @property
    def bridge_ip(self) -> str:
        return f"{self.subnet}.1"

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
            self._check_host()
            os.makedirs(self.workdir, exist_ok=True)
            self._timed("rootfs", self._ensure_base)
            self._timed("bridge", self._make_bridge)
            self._timed("etcd", self._start_etcd)
            for i in range(1, self.n_machines + 1):
                meta = self.metadata[i - 1] if i <= len(self.metadata) else {}
                self._new_machine(i, meta)
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
            errors += self._destroy_machine(self.machines[name])
        errors += self._guard(self._stop_etcd)
        errors += self._guard(self._remove_bridge)
        with contextlib.suppress(OSError):
            os.rmdir(CGROUP_ROOT / "unified" / CGROUP_PARENT)
        with contextlib.suppress(OSError):
            os.rmdir(CGROUP_ROOT / "systemd" / CGROUP_PARENT)
        errors += self._guard(self._remove_workdir)
        self.timings["down"] = time.monotonic() - t0
        if errors:
            raise ClusterError("down() left things behind:\n  " + "\n  ".join(errors))

    # ------------------------------------------------------------ host checks
    def _check_host(self) -> None:
        if os.geteuid() != 0:
            raise ClusterError("the cluster harness needs root")
        for tool in ("systemd-nspawn", "nsenter", "ip", "mount", ETCD_BIN):
            if shutil.which(tool) is None:
                raise ClusterError(f"{tool} not found (run scripts/setup-cluster.sh)")
        if not (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
            raise ClusterError("expected a hybrid cgroup host with cgroup2 at "
                               "/sys/fs/cgroup/unified")
        if link_exists(self.bridge):
            alias = self._bridge_alias()
            owner = alias[len(BRIDGE_ALIAS_PREFIX):]
            hint = (f" (left by the unitctl cluster with workdir {owner};"
                    " run `python -m tests.harness.cluster down`)"
                    if alias.startswith(BRIDGE_ALIAS_PREFIX) else "")
            raise ClusterError(f"bridge {self.bridge} already exists and is not ours{hint}; "
                               "pick another with bridge=/--bridge")
        used = sh("ip", "-4", "-o", "addr", "show").stdout
        if f" {self.subnet}." in used:
            raise ClusterError(f"subnet {self.subnet}.0/24 is already used on this host; "
                               "pick another with subnet=/--subnet")
        if self.docker_socket and not (os.path.exists("/var/run/docker.sock")
                                       and shutil.which("docker")):
            raise ClusterError("docker_socket=True needs /var/run/docker.sock and a docker CLI")

    def _ensure_base(self) -> None:
        self.base = str(rootfs.ensure_rootfs(timings=self.timings))

    # ------------------------------------------------------------ bridge
    def _bridge_alias(self) -> str:
        try:
            return Path("/sys/class/net", self.bridge, "ifalias").read_text().strip()
        except OSError:
            return ""

    def _make_bridge(self) -> None:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.bridge_made = True
        sh("ip", "link", "set", self.bridge, "alias", BRIDGE_ALIAS_PREFIX + self.workdir)
        sh("ip", "addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        if shutil.which("iptables"):
            # docker's FORWARD DROP + br_netfilter drop bridged traffic (pitfall 3)
            sh("iptables", "-w", "-I", "FORWARD", "-i", self.bridge, "-o", self.bridge,
               "-j", "ACCEPT")
            self.iptables_rule = True
        self._save_state()

    def _remove_bridge(self) -> None:
        if self.iptables_rule:
            p = sh("iptables", "-w", "-D", "FORWARD", "-i", self.bridge, "-o", self.bridge,
                   "-j", "ACCEPT", check=False)
            if p.returncode != 0 and "does a matching rule exist" not in p.stderr \
                    and "Bad rule" not in p.stderr:
                raise ClusterError(f"iptables -D failed: {p.stderr.strip()}")
            self.iptables_rule = False
        if self.bridge_made:
            if link_exists(self.bridge):
                if self._bridge_alias() != BRIDGE_ALIAS_PREFIX + self.workdir:
                    raise ClusterError(f"bridge {self.bridge} is no longer ours; not deleting")
                sh("ip", "link", "del", self.bridge)
            self.bridge_made = False

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
        for pid in self.etcd_pids:  # attached from a state file: no Popen objects
            if pid_alive(pid) and any("etcd" in a for a in pid_cmdline(pid)[:1]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_until(lambda p=pid: not pid_alive(p), 10)  # type: ignore[misc]
        self.etcd_pids = []

    # ------------------------------------------------------------ machines
    def _new_machine(self, idx: int, metadata: dict[str, str]) -> Machine:
        name = f"m{idx}"
        full = f"{self.tag}{name}"
        m = Machine(name=name, full_name=full, idx=idx, ip=f"{self.subnet}.{10 + idx}",
                    netns=f"unitctl-{full}", veth=f"uv{self.tag}{idx}",
                    cgroup=f"{CGROUP_PARENT}/{full}", dir=os.path.join(self.workdir, name),
                    metadata=dict(metadata))
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
        self._make_fs(m)
        self._make_netns(m)
        self._start_nspawn(m)

    def _make_fs(self, m: Machine) -> None:
        for d in (m.root, m.upper, os.path.join(m.dir, "work")):
            os.makedirs(d, exist_ok=True)
        if not m.mounted:
            sh("mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir={self.base},upperdir={m.upper},workdir={m.dir}/work", m.root)
            m.mounted = True
        if not m.machine_id:
            m.machine_id = uuid.uuid4().hex
        self._write_machine_files(m)

    def _write_machine_files(self, m: Machine) -> None:
        root = Path(m.root)
        (root / "etc/machine-id").write_text(m.machine_id + "\n")
        (root / "etc/hostname").write_text(m.name + "\n")
        (root / "etc/unitctl").mkdir(parents=True, exist_ok=True)
        (root / "etc/unitctl/unitctl.conf").write_text(agent_config(
            self.machine_endpoints, m.ip, m.metadata, self.agent_ttl))
        (root / "etc/systemd/system" / AGENT_UNIT).write_text(agent_unit(self.agent_ttl))
        wants = root / "etc/systemd/system/multi-user.target.wants" / AGENT_UNIT
        wants.parent.mkdir(parents=True, exist_ok=True)
        if wants.is_symlink():
            wants.unlink()
        if self.start_agent:
            wants.symlink_to(f"/etc/systemd/system/{AGENT_UNIT}")
        with open(root / "etc/hosts", "w", encoding="utf-8") as f:
            f.write(f"127.0.0.1 localhost\n{m.ip} {m.name}\n")
        if self.docker_socket:
            self._write_docker_files(root)

    @staticmethod
    def _write_docker_files(root: Path) -> None:
        """docker_socket=True: /usr/local/bin/docker-run + a docker.service stand-in."""
        wrapper = root / "usr/local/bin/docker-run"
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(DOCKER_RUN_WRAPPER)
        wrapper.chmod(0o755)
        (root / "etc/systemd/system/docker.service").write_text(DOCKER_STUB_UNIT)

    def _make_netns(self, m: Machine) -> None:
        if m.netns_made:
            return
        if os.path.exists(f"/run/netns/{m.netns}") or link_exists(m.veth):
            raise ClusterError(f"netns {m.netns} or link {m.veth} already exists (another "
                               "cluster? `python -m tests.harness.cluster down`, or use tag=)")
        sh("ip", "netns", "add", m.netns)
        m.netns_made = True
        sh("ip", "link", "add", m.veth, "type", "veth", "peer", "name", "eth0",
           "netns", m.netns)
        sh("ip", "-n", m.netns, "addr", "add", f"{m.ip}/24", "dev", "eth0")
        sh("ip", "-n", m.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", m.netns, "link", "set", "lo", "up")
        sh("ip", "link", "set", m.veth, "master", self.bridge, "up")

    def nspawn_argv(self, m: Machine) -> list[str]:
        argv = ["systemd-nspawn", "-D", m.root, "-M", m.full_name, f"--hostname={m.name}",
                "--boot", "--register=no",
                "--keep-unit", "--console=read-only", "--notify-ready=yes",
                "--link-journal=no", "--settings=no",
                f"--network-namespace-path=/run/netns/{m.netns}",
                f"--bind-ro={REPO}:/opt/unitctl/src"]
        if self.docker_socket:
            argv += ["--bind=/var/run/docker.sock",
                     f"--bind-ro={shutil.which('docker')}:/usr/local/bin/docker"]
        return argv

    def _make_cgroups(self, m: Machine) -> list[str]:
        procs = []
        for h in CGROUP_HIERARCHIES:
            d = m.cgroup_dir(h)
            d.mkdir(parents=True, exist_ok=True)
            procs.append(str(d / "cgroup.procs"))
        return procs

    def _start_nspawn(self, m: Machine) -> None:
        if m.running():
            raise ClusterError(f"{m.name} is already running (pid {m.nspawn_pid})")
        procs = self._make_cgroups(m)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(m.notify_socket)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(m.notify_socket)
            env = {k: v for k, v in os.environ.items()
                   if k not in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "WATCHDOG_PID")}
            env["NOTIFY_SOCKET"] = m.notify_socket
            t0 = time.monotonic()
            with open(m.console_log, "ab") as console:
                console.write(f"\n=== boot {time.strftime('%F %T')} ===\n".encode())
                console.flush()
                m.proc = subprocess.Popen(
                    ["/bin/sh", "-c", CGROUP_WRAPPER, "unitctl-nspawn", *procs,
                     *self.nspawn_argv(m)],
                    stdin=subprocess.DEVNULL, stdout=console, stderr=console, env=env,
                    start_new_session=True)
            m.nspawn_pid = m.proc.pid
            m.leader_pid = 0
            self._wait_ready(m, sock)
            self.timings[f"boot.{m.name}"] = time.monotonic() - t0
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(m.notify_socket)
        self._remember_lock(m)

    def _wait_ready(self, m: Machine, sock: socket.socket) -> None:
        deadline = time.monotonic() + self.boot_timeout
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
                        m.leader_pid = self._find_leader(m)
                    return
            if not m.running():
                raise ClusterError(f"{m.name}: systemd-nspawn exited "
                                   f"({m.proc.returncode if m.proc else '?'}): "
                                   f"{self._console_tail(m)}")
        raise ClusterError(f"{m.name}: no READY=1 within {self.boot_timeout}s: "
                           f"{self._console_tail(m)}")

    @staticmethod
    def _find_leader(m: Machine) -> int:
        try:
            kids = Path(f"/proc/{m.nspawn_pid}/task/{m.nspawn_pid}/children").read_text().split()
            return int(kids[0]) if kids else 0
        except OSError:
            return 0

    @staticmethod
    def _console_tail(m: Machine, n: int = 1500) -> str:
        try:
            with open(m.console_log, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def _remember_lock(self, m: Machine) -> None:
        with contextlib.suppress(OSError):
            st = os.stat(m.root)
            m.lock_file = str(NSPAWN_STATE / "locks" / f"inode-{st.st_dev}:{st.st_ino}")

    def _kill_machine(self, m: Machine, timeout: float = 15,
                      keep_containers: bool = False) -> None:
        """cgroup.kill the machine (nspawn included) and wait until its cgroup is empty."""
        cg = m.cgroup_dir("unified")
        if cg.exists():
            with contextlib.suppress(FileNotFoundError):
                (cg / "cgroup.kill").write_text("1")
            if not wait_until(lambda: not cgroup_populated(cg), timeout):
                raise ClusterError(f"{m.name}: cgroup {cg} still populated after cgroup.kill")
        if m.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                m.proc.wait(timeout)
        elif not wait_until(lambda: not pid_alive(m.nspawn_pid), timeout):
            raise ClusterError(f"{m.name}: systemd-nspawn {m.nspawn_pid} survived cgroup.kill")
        if not keep_containers:
            self._remove_docker_containers(m)
        m.proc = None
        m.nspawn_pid = m.leader_pid = 0
        self._clean_cgroups(m, keep_top=True)

    def _clean_cgroups(self, m: Machine, keep_top: bool) -> list[str]:
        failed: list[str] = []
        for h in CGROUP_HIERARCHIES:
            top = m.cgroup_dir(h)
            if not top.is_dir():
                continue
            if keep_top:
                for sub in [p for p in top.iterdir() if p.is_dir()]:
                    failed += rmdir_tree(sub)
            else:
                failed += rmdir_tree(top)
        return failed

    def _remove_docker_containers(self, m: Machine) -> None:
        if not self.docker_socket or shutil.which("docker") is None:
            return
        # docker-run labels its containers unitctl.machine=<machine id>; the name
        # is kept for containers labelled by hand
        ids: list[str] = []
        for ident in filter(None, (m.machine_id, m.name)):
            ids += sh("docker", "ps", "-aq", "--filter", f"label=unitctl.machine={ident}",
                      check=False).stdout.split()
        ids = list(dict.fromkeys(ids))
        if ids:
            sh("docker", "rm", "-f", *ids, check=False, timeout=120)

    def _destroy_machine(self, m: Machine) -> list[str]:
        errors: list[str] = []
        errors += self._guard(lambda: self._kill_machine(m))
        errors += self._clean_cgroups(m, keep_top=False)
        if m.mounted or os.path.ismount(m.root):
            p = sh("umount", m.root, check=False)
            if p.returncode != 0 and os.path.ismount(m.root):
                p = sh("umount", "-l", m.root, check=False)
            if os.path.ismount(m.root):
                errors.append(f"{m.name}: umount {m.root}: {p.stderr.strip()}")
            else:
                m.mounted = False
        if link_exists(m.veth):
            sh("ip", "link", "del", m.veth, check=False)
        if m.netns_made or os.path.exists(f"/run/netns/{m.netns}"):
            sh("ip", "netns", "del", m.netns, check=False)
            if os.path.exists(f"/run/netns/{m.netns}"):
                errors.append(f"{m.name}: netns {m.netns} still exists")
            else:
                m.netns_made = False
        if link_exists(m.veth):
            errors.append(f"{m.name}: link {m.veth} still exists")
        for sub in ("propagate", "unix-export"):
            with contextlib.suppress(OSError, RuntimeError):
                safe_rmtree(NSPAWN_STATE / sub / m.full_name)
        if m.lock_file:
            with contextlib.suppress(OSError):
                os.unlink(m.lock_file)
        return errors

    @staticmethod
    def _guard(fn: Any) -> list[str]:
        try:
            fn()
        except Exception as e:  # down() collects and goes on
            return [str(e)]
        return []

    def _remove_workdir(self) -> None:
        # safe_rmtree refuses while anything is mounted below: a recursive
        # delete through a live overlay/bind mount would destroy its source
        left = mounts_under(self.workdir)
        if left:
            raise ClusterError(f"not removing {self.workdir}: still mounted: {left}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.state_file)
        if self._own_workdir:
            safe_rmtree(self.workdir)
        else:
            made = [m.dir for m in self.machines.values()]
            for sub in [*made, os.path.join(self.workdir, "etcd")]:
                safe_rmtree(sub)
        if os.path.exists(self.workdir) and self._own_workdir:
            raise ClusterError(f"could not remove {self.workdir}")

    # ------------------------------------------------------------ operations
    def exec(self, name: str, *argv: str, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside machine ``name`` (all its namespaces, its binaries)."""
        m = self.machine(name)
        if not m.leader_pid or not pid_alive(m.leader_pid):
            raise ClusterError(f"{name} is not running")
        cmd = ["nsenter", "-t", str(m.leader_pid), "-m", "-u", "-i", "-n", "-p", "--", *argv]
        env = {"PATH": MACHINE_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           check=False)
        if check and p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, list(argv), p.stdout, p.stderr)
        return p

    def systemctl(self, name: str, *args: str, check: bool = True,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.exec(name, "systemctl", *args, check=check, timeout=timeout)

    def system_state(self, name: str, wait: bool = True, timeout: float = 60) -> str:
        """``systemctl is-system-running [--wait]`` -> running/degraded/..."""
        args = ["is-system-running", *(["--wait"] if wait else [])]
        return self.systemctl(name, *args, check=False, timeout=timeout).stdout.strip()

    def kill(self, name: str, keep_containers: bool = False) -> None:
        """Hard-kill a machine (cgroup.kill); overlay, netns and machine-id stay for boot().

        ``keep_containers=True`` (docker_socket only): leave the machine's containers
        running in the host engine, as an engine that outlives its machine would
        (a shared or remote engine); by default they die with the machine.
        """
        self._kill_machine(self.machine(name), keep_containers=keep_containers)
        self._save_state()

    def boot(self, name: str) -> None:
        """Boot a killed/powered-off machine again (same upper, netns, machine-id)."""
        m = self.machine(name)
        self._create_and_boot(m)
        self._save_state()

    def poweroff(self, name: str, timeout: float = 30) -> None:
        """Graceful shutdown: SIGTERM to nspawn (SIGRTMIN+3 to the machine's systemd)."""
        m = self.machine(name)
        if m.running():
            os.kill(m.nspawn_pid, signal.SIGTERM)
            if not wait_until(lambda: not m.running(), timeout):
                log(f"{name}: poweroff timed out; killing")
        self._kill_machine(m)
        self._save_state()

    def stop_agent(self, name: str) -> None:
        self.systemctl(name, "stop", AGENT_UNIT)

    def start_agent_unit(self, name: str) -> None:
        self.systemctl(name, "start", AGENT_UNIT)

    def partition(self, name: str) -> None:
        sh("ip", "link", "set", self.machine(name).veth, "down")

    def heal(self, name: str) -> None:
        sh("ip", "link", "set", self.machine(name).veth, "up")

    def freeze(self, name: str) -> None:
        self._freeze(name, "1")

    def thaw(self, name: str) -> None:
        self._freeze(name, "0")

    def _freeze(self, name: str, value: str) -> None:
        cg = self.machine(name).cgroup_dir("unified") / "payload"
        (cg / "cgroup.freeze").write_text(value)
        want = "frozen 1" if value == "1" else "frozen 0"
        if not wait_until(lambda: want in (cg / "cgroup.events").read_text(), 10):
            raise ClusterError(f"{name}: cgroup.freeze={value} did not settle")

    def machine_id(self, name: str) -> str:
        return self.machine(name).machine_id

    def ip(self, name: str) -> str:
        return self.machine(name).ip

    def leader_pid(self, name: str) -> int:
        return self.machine(name).leader_pid

    def journal(self, name: str, *args: str) -> str:
        """The machine's journal (from inside, or from its overlay when not running)."""
        m = self.machine(name)
        base = ["journalctl", "--no-pager", "-o", "short-precise", *args]
        if m.leader_pid and pid_alive(m.leader_pid):
            p = self.exec(name, *base, check=False, timeout=60)
            return p.stdout + p.stderr
        if os.path.isdir(m.root) and shutil.which("journalctl"):
            p = sh(*base, f"--root={m.root}", check=False)
            return p.stdout + p.stderr
        return ""

    def bus_address(self, name: str) -> str:
        return f"unix:path=/proc/{self.machine(name).leader_pid}/root/run/dbus/system_bus_socket"

    def add_machine(self, metadata: dict[str, str] | None = None) -> str:
        """Create and boot one more machine; return its name."""
        idx = max((m.idx for m in self.machines.values()), default=0) + 1
        m = self._new_machine(idx, metadata or {})
        self._save_state()
        try:
            self._create_and_boot(m)
        finally:
            self._save_state()
        return m.name

    def collect_logs(self, dest_dir: str) -> str:
        """Write every machine's journal + console log, the etcd logs and the state."""
        os.makedirs(dest_dir, exist_ok=True)
        for name in self.names:
            m = self.machines[name]
            try:
                text = self.journal(name)
            except Exception as e:  # best effort diagnostics
                text = f"journal unavailable: {e}\n"
            Path(dest_dir, f"{name}.journal.txt").write_text(text)
            with contextlib.suppress(OSError):
                shutil.copyfile(m.console_log, os.path.join(dest_dir, f"{name}.console.log"))
        if self.etcd is not None:
            for em in self.etcd.members:
                with contextlib.suppress(OSError):
                    shutil.copyfile(em.log_path, os.path.join(dest_dir, f"etcd-{em.name}.log"))
        write_json_atomic(os.path.join(dest_dir, "state.json"), self.to_state())
        return dest_dir

    # ------------------------------------------------------------ state file
    def _timed(self, what: str, fn: Any) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[what] = time.monotonic() - t0

    def to_state(self) -> dict[str, Any]:
        etcd = None
        if self.etcd is not None:
            etcd = {"base_dir": self.etcd.base_dir, "members": [
                {"name": m.name, "client_port": m.client_port, "peer_port": m.peer_port,
                 "data_dir": m.data_dir, "log_path": m.log_path,
                 "pid": m.proc.pid if m.proc else 0} for m in self.etcd.members]}
        return {
            "version": 1, "workdir": self.workdir, "own_workdir": self._own_workdir,
            "state_file": self.state_file, "base": self.base, "bridge": self.bridge,
            "subnet": self.subnet, "bridge_made": self.bridge_made,
            "iptables_rule": self.iptables_rule, "tag": self.tag,
            "agent_ttl": self.agent_ttl, "start_agent": self.start_agent,
            "docker_socket": self.docker_socket, "etcd_size": self.etcd_size,
            "etcd": etcd, "etcd_pids": self.etcd_pids,
            "endpoint": self.etcd.endpoint if self.etcd else "",
            "machines": [self.machines[n].to_state() for n in self.names],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def _save_state(self) -> None:
        with self._lock:
            if os.path.isdir(self.workdir):
                write_json_atomic(self.state_file, self.to_state())

    @classmethod
    def attach(cls, state_file: str = DEFAULT_STATE_FILE) -> Cluster:
        """Rebuild a Cluster object from the state file of a running cluster."""
        with open(state_file, encoding="utf-8") as f:
            st = json.load(f)
        c = cls(n_machines=0, etcd_size=st["etcd_size"], agent_ttl=st["agent_ttl"],
                workdir=st["workdir"], bridge=st["bridge"], subnet=st["subnet"],
                docker_socket=st["docker_socket"], start_agent=st["start_agent"],
                tag=st["tag"], state_file=state_file)
        c._own_workdir = st.get("own_workdir", True)
        c.n_machines = len(st["machines"])
        c.base, c.bridge_made, c.iptables_rule = st["base"], st["bridge_made"], st["iptables_rule"]
        c.etcd_pids = list(st.get("etcd_pids", []))
        if st.get("etcd"):
            e = st["etcd"]
            c.etcd = EtcdCluster(size=0, extra_client_hosts=[c.bridge_ip], base_dir=e["base_dir"])
            for mm in e["members"]:
                c.etcd.members.append(EtcdMember(
                    name=mm["name"], client_port=mm["client_port"], peer_port=mm["peer_port"],
                    data_dir=mm["data_dir"], extra_client_hosts=[c.bridge_ip],
                    log_path=mm["log_path"]))
        for d in st["machines"]:
            c.machines[d["name"]] = Machine(**d)
        return c


# --------------------------------------------------------------------------- CLI

def _cmd_up(args: argparse.Namespace) -> int:
    if os.path.exists(args.state_file):
        log(f"{args.state_file} exists: a cluster is up (run `down` first)")
        return 1
    per_name: dict[str, dict[str, str]] = {}
    for spec in args.metadata:
        name, meta = parse_metadata(spec)
        per_name.setdefault(name, {}).update(meta)
    metadata = [per_name.get(f"m{i}", {}) for i in range(1, args.machines + 1)]
    c = Cluster(n_machines=args.machines, etcd_size=args.etcd_size, metadata=metadata,
                agent_ttl=args.agent_ttl, workdir=args.workdir, bridge=args.bridge,
                subnet=args.subnet, docker_socket=args.docker_socket,
                start_agent=not args.no_agent, tag=args.tag, state_file=args.state_file)
    c.up()
    for k in sorted(c.timings):
        log(f"timing {k}: {c.timings[k]:.2f}s")
    _print_status(c)
    return 0


def _print_status(c: Cluster) -> None:
    print(f"etcd endpoint: {c.endpoint}  (machines use {','.join(c.machine_endpoints)})")
    print(f"bridge: {c.bridge} {c.bridge_ip}/24  workdir: {c.workdir}  state: {c.state_file}")
    print(f"{'NAME':6} {'IP':15} {'STATE':8} {'NSPAWN':>7} {'LEADER':>7} MACHINE-ID"
          "                        METADATA")
    for n in c.names:
        m = c.machines[n]
        state = "running" if pid_alive(m.nspawn_pid) else "stopped"
        meta = ",".join(f"{k}={v}" for k, v in m.metadata.items())
        print(f"{n:6} {m.ip:15} {state:8} {m.nspawn_pid:>7} {m.leader_pid:>7} "
              f"{m.machine_id:32} {meta}")


def _cmd_status(args: argparse.Namespace) -> int:
    if not os.path.exists(args.state_file):
        log(f"no cluster ({args.state_file} missing)")
        return 1
    c = Cluster.attach(args.state_file)
    if args.json:
        print(json.dumps(c.to_state(), indent=2, sort_keys=True))
    else:
        _print_status(c)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    if not os.path.exists(args.state_file):
        log(f"no cluster ({args.state_file} missing); nothing to do")
        return 0
    c = Cluster.attach(args.state_file)
    c.down()
    log(f"down in {c.timings['down']:.2f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.harness.cluster",
                                 description="Boot/inspect/remove a unitctl test cluster.")
    ap.add_argument("--state-file", default=DEFAULT_STATE_FILE)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="boot a cluster and leave it running")
    up.add_argument("--machines", type=int, default=3)
    up.add_argument("--etcd-size", type=int, default=1)
    up.add_argument("--metadata", action="append", default=[], metavar="NAME:k=v,...")
    up.add_argument("--agent-ttl", default="3s")
    up.add_argument("--no-agent", action="store_true", help="do not start unitctl-agent")
    up.add_argument("--bridge", default="br-unitctl")
    up.add_argument("--subnet", default="10.231.77")
    up.add_argument("--tag", default="", help="name prefix for netns/veth/cgroups")
    up.add_argument("--docker-socket", action="store_true")
    up.add_argument("--workdir", default=None)
    st = sub.add_parser("status", help="show machines, IPs, leader pids, etcd endpoint")
    st.add_argument("--json", action="store_true")
    sub.add_parser("down", help="remove everything the state file lists")
    for p in sub.choices.values():  # accept --state-file after the sub-command too
        p.add_argument("--state-file", default=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        return {"up": _cmd_up, "status": _cmd_status, "down": _cmd_down}[args.cmd](args)
    except (ClusterError, ValueError, OSError, subprocess.SubprocessError) as e:
        log(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
