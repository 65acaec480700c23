"""Start throw-away etcd members on free loopback ports (tests, bench, demo).

Never assumes 2379 is free: every port comes from the kernel (bind to 0). A
3-member cluster is available for the fault tests. Members are SIGKILLed on
stop (a polite SIGTERM of a quorum cluster waits ~5 s, harness.md pitfall 9).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from unitctl_testing.host import pid_alive, pid_cmdline, wait_until

ETCD_BIN = os.environ.get("UNITCTL_ETCD_BIN", "etcd")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class EtcdMember:
    """One etcd process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str
    host: str = "127.0.0.1"
    extra_client_hosts: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, state: str = "new", token: str = "unitctl") -> None:
        """Start the process (does not wait for health)."""
        os.makedirs(self.data_dir, exist_ok=True)
        hosts = ["127.0.0.1", *self.extra_client_hosts]
        listen = ",".join(f"http://{h}:{self.client_port}" for h in hosts)
        advertise = ",".join(f"http://{h}:{self.client_port}" for h in reversed(hosts))
        args = [
            ETCD_BIN, "--name", self.name, "--data-dir", self.data_dir,
            "--listen-client-urls", listen, "--advertise-client-urls", advertise,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", token,
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--unsafe-no-fsync", "--logger", "zap", "--log-level", "warn",
        ]
        self.log_path = os.path.join(os.path.dirname(self.data_dir), f"{self.name}.log")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client_port}/health",
                                        timeout=0.5) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the member (keeps its data dir, so it can be restarted)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the member stops answering but keeps its state (an outage)."""
        if self.proc:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGCONT)


@dataclass
class EtcdCluster:
    """A 1- or N-member etcd cluster on loopback."""

    size: int = 1
    extra_client_hosts: Sequence[str] = ()
    base_dir: str = ""
    members: list[EtcdMember] = field(default_factory=list)
    _own_dir: bool = False

    def __post_init__(self) -> None:
        if not self.base_dir:
            self.base_dir = tempfile.mkdtemp(prefix="unitctl-etcd-")
            self._own_dir = True
        for i in range(self.size):
            self.members.append(EtcdMember(
                name=f"e{i}", client_port=free_port(), peer_port=free_port(),
                data_dir=os.path.join(self.base_dir, f"e{i}.data"),
                extra_client_hosts=self.extra_client_hosts))

    @property
    def token(self) -> str:
        return f"unitctl-{os.getpid()}-{self.members[0].peer_port}"

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.url for m in self.members]

    @property
    def endpoint(self) -> str:
        """Comma-separated client URLs, as ``--endpoint`` takes them."""
        return ",".join(self.endpoints)

    #: First starts tried when a port picked free was taken before etcd bound it.
    START_TRIES = 3

    def start(self, timeout: float = 30.0) -> None:
        """Start every member and wait until all are healthy.

        :func:`free_port` closes the port it found, so another process (any
        outgoing connection's ephemeral port) can take it before etcd binds it
        (seen in CI: "bind: address already in use"). Then the members are
        killed, their new data dirs removed, new ports picked and the start
        tried again, up to :data:`START_TRIES` times; any other failure raises.
        """
        for attempt in range(self.START_TRIES):
            for m in self.members:
                m.start(self.initial_cluster, token=self.token)
            try:
                self.wait_healthy(timeout)
                return
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt + 1 == self.START_TRIES:
                    raise
            self._new_ports()

    def _new_ports(self) -> None:
        """Kill the members of a failed first start and give each fresh ports."""
        for m in self.members:
            m.kill()
            shutil.rmtree(m.data_dir, ignore_errors=True)  # etcd's own files, no mounts
            with contextlib.suppress(OSError):
                os.remove(m.log_path)  # the next failure's log is its own
            m.client_port, m.peer_port = free_port(), free_port()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [m for m in self.members if m.proc is not None]
            if live and all(m.healthy() for m in live):
                return
            for m in live:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited: {self.log_tail(m)}")
            time.sleep(0.05)
        raise RuntimeError(f"etcd not healthy after {timeout}s: {self.log_tail(self.members[0])}")

    def restart_member(self, index: int) -> None:
        m = self.members[index]
        m.kill()
        m.start(self.initial_cluster, state="existing", token=self.token)

    @staticmethod
    def log_tail(m: EtcdMember, n: int = 2000) -> str:
        with contextlib.suppress(OSError), open(m.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
        return ""

    def stop(self) -> None:
        for m in self.members:
            m.resume()
            m.kill()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


@contextlib.contextmanager
def etcd_cluster(size: int = 1, **kw: object) -> Iterator[EtcdCluster]:
    """Context manager: a started cluster, removed on exit."""
    c = EtcdCluster(size=size, **kw)  # type: ignore[arg-type]
    try:
        c.start()
        yield c
    finally:
        c.stop()


def kill_etcd_pids(pids: Sequence[int]) -> None:
    """SIGKILL the etcd processes ``pids`` (of a cluster attached from its state file).

    A pid that is gone, or was reused by something that is not etcd, is left alone.
    """
    for pid in pids:
        if pid_alive(pid) and any("etcd" in a for a in pid_cmdline(pid)[:1]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda p=pid: not pid_alive(p), 10)  # type: ignore[misc]
