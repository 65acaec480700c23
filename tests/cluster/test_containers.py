"""Container units (``unitctl generate`` + ``docker-run``) on real systemd machines.

The machines use the host's dockerd through the bind-mounted socket
(``Cluster(docker_socket=True)``): the harness installs
``/usr/local/bin/docker-run`` (the repo's bin/docker-run) and a ``docker.service``
stand-in in every machine. docker-run labels each container
``unitctl.machine=<machine id>`` and hashes that identity into the spec, so on
this shared engine a unit that moved never adopts the container its dead
machine left behind. ``Cluster.kill`` removes a machine's containers (they "die
with the machine"); ``kill(keep_containers=True)`` leaves them running, as an
engine that outlives its machine would.

Each test boots its own cluster (agent TTL 3 s) on a tag/bridge/subnet of this
module, so it does not collide with other clusters on the host; container
names carry a per-run suffix, since the engine is shared with everything else
on the host. scripts/setup-docker.sh (dockerd + unitctl-busybox:test) runs once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.helpers import REPO, active_state, unitctl, wait, where_active
from tests.real import require_root
from unitctl.unitfile import UnitFile
from unitctl_testing.cluster import Cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TTL = 3.0
IMAGE = "unitctl-busybox:test"
MACHINE_LABEL = "unitctl.machine"
SFX = uuid.uuid4().hex[:6]
# Own tag/bridge/subnet (not cluster_factory's x0..x7): other cluster tests may run
# on this host at the same time.
NET = {"tag": "ct", "bridge": "br-unitctl-ct", "subnet": "10.231.93"}
LOOP = 'sh -c "while true; do echo {word}; sleep 1; done"'
Factory = Callable[..., Cluster]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def dockerd() -> None:
    """dockerd runs and the test image exists (scripts/setup-docker.sh, idempotent)."""
    require_root("container cluster tests need root (systemd-nspawn, dockerd)")
    p = subprocess.run(["bash", str(REPO / "scripts" / "setup-docker.sh")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=900, check=False)
    if p.returncode != 0:
        pytest.fail(f"scripts/setup-docker.sh failed: {p.stderr.strip()}")


@pytest.fixture
def names() -> dict[str, str]:
    return {k: f"{k}-{SFX}" for k in ("web", "db", "mongo", "site")}


@pytest.fixture
def make_cluster(dockerd: None, cluster_factory: Factory,
                 names: dict[str, str]) -> Iterator[Factory]:
    """``make(n)``: a booted docker_socket cluster; this test's containers are removed after."""
    made: list[Cluster] = []

    def make(n: int) -> Cluster:
        c = cluster_factory(n, docker_socket=True, **NET)
        made.append(c)
        return c

    yield make
    # cluster.down() removes what its machines labelled; this catches the rest
    docker("rm", "-f", *names.values(), check=False)


# --------------------------------------------------------------------------- helpers

def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=120, stdin=subprocess.DEVNULL)


def generate(*args: str) -> str:
    """``unitctl generate ARGS`` (the real CLI); its stdout."""
    r = subprocess.run([sys.executable, "-m", "unitctl", "generate", *args],
                       capture_output=True, text=True, timeout=60, cwd=str(REPO),
                       env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert r.returncode == 0, f"unitctl generate {args} failed: {r.stdout}{r.stderr}"
    return r.stdout


def unit_file(tmp: Path, name: str, *args: str) -> str:
    """Generate ``NAME.service`` into ``tmp`` and return its path."""
    out = generate("--name", name, "--image", IMAGE, *args, "-o", str(tmp))
    assert out.startswith("wrote "), out
    return str(tmp / f"{name}.service")


def container(name: str) -> dict[str, Any] | None:
    """``docker inspect NAME`` (None when absent)."""
    p = docker("container", "inspect", name, check=False)
    if p.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(p.stdout)[0]
    return data


def running(name: str) -> tuple[str, str] | None:
    """(container id, unitctl.machine label) of container NAME if it runs."""
    data = container(name)
    if data is None or not data["State"]["Running"]:
        return None
    return data["Id"], (data["Config"]["Labels"] or {}).get(MACHINE_LABEL, "")


def cid(name: str) -> str:
    """Id of the running container NAME (fails when it does not run)."""
    state = running(name)
    assert state is not None, f"container {name} does not run"
    return state[0]


def running_labelled(machine_id: str) -> list[str]:
    """Names of the running containers labelled with ``machine_id``."""
    out = docker("ps", "--filter", f"label={MACHINE_LABEL}={machine_id}",
                 "--format", "{{.Names}}").stdout
    return sorted(out.split())


def containers_named(name: str) -> list[str]:
    """``docker ps -a`` lines (id state) of every container whose name is exactly NAME."""
    out = docker("ps", "-a", "--filter", f"name=^/{name}$", "--format",
                 "{{.ID}} {{.State}}").stdout
    return out.splitlines()


def colocated(c: Cluster, units: list[str], machines: list[str] | None = None) -> str | None:
    """The one machine where systemd runs every unit, else None."""
    where = [where_active(c, f"{u}.service", machines) for u in units]
    if all(len(w) == 1 for w in where) and len({next(iter(w)) for w in where}) == 1:
        return next(iter(where[0]))
    return None


def placed_and_running(c: Cluster, units: list[str],
                       machines: list[str] | None = None) -> str | None:
    """The machine running all ``units`` whose containers run labelled with it, else None."""
    m = colocated(c, units, machines)
    if m is None:
        return None
    states = [running(u) for u in units]
    if all(s is not None and s[1] == c.machine_id(m) for s in states):
        return m
    return None


def n_restarts(c: Cluster, machine: str, unit: str) -> int:
    r = c.exec(machine, "systemctl", "show", "-p", "NRestarts", "--value", unit, timeout=10)
    return int(r.stdout.strip() or 0)


def hosts_of(name: str) -> str:
    return docker("exec", name, "cat", "/etc/hosts").stdout


def ip_of(name: str) -> str:
    data = container(name)
    assert data is not None, f"no container {name}"
    return str(data["NetworkSettings"]["IPAddress"])


def agent_back(c: Cluster, m: str) -> bool:
    """The machine's agent runs and its machine is registered again."""
    if active_state(c, m, "unitctl-agent.service") != "active":
        return False
    return c.machine_id(m)[:8] in unitctl(c, "list-machines", check=False).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as r:  # loopback only
        body: bytes = r.read()
        return body.decode()


def assert_stays(c: Cluster, units: list[str], m: str, ids: dict[str, str],
                 seconds: float) -> None:
    """For ``seconds``: every unit runs on ``m`` only, its container unchanged."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for u in units:
            assert where_active(c, f"{u}.service") == {m}, f"{u} left {m}"
            assert running(u) == (ids[u], c.machine_id(m)), f"container {u} changed"
            assert len(containers_named(u)) == 1, containers_named(u)
        time.sleep(0.5)


def start_linked_pair(c: Cluster, tmp: Path, db: str, web: str) -> tuple[str, dict[str, str]]:
    """Start ``db`` and ``web --link db``; return their machine and container ids."""
    db_path = unit_file(tmp, db, "--command", LOOP.format(word=db))
    web_path = unit_file(tmp, web, "--command", LOOP.format(word=web), "--link", db)
    xfleet = UnitFile.parse(Path(web_path).read_text())
    assert xfleet.values("X-Fleet", "MachineOf") == [f"{db}.service"]
    unitctl(c, "start", db_path, web_path)
    wait(lambda: placed_and_running(c, [db, web]) is not None, timeout=30,
         what="db and web running on one machine, containers labelled with it")
    m = placed_and_running(c, [db, web])
    assert m is not None
    labelled = running_labelled(c.machine_id(m))
    assert labelled == sorted([db, web]), labelled
    assert f"{ip_of(db)}\t{db}" in hosts_of(web)  # the --link works
    for u in (db, web):
        assert n_restarts(c, m, f"{u}.service") == 0  # web waited for db: no failed try
    ids = {u: cid(u) for u in (db, web)}
    return m, ids


def check_old_machine_returns(c: Cluster, old: str, new: str, units: list[str]) -> None:
    """Boot ``old`` again: nothing of it runs, each unit keeps one container on ``new``."""
    ids = {u: cid(u) for u in units}
    t0 = time.monotonic()
    c.boot(old)
    took = wait(lambda: agent_back(c, old), timeout=30, what=f"{old}'s agent back")
    print(f"{old} booted, agent registered after {time.monotonic() - t0:.2f}s "
          f"({took:.2f}s of waiting)")
    for u in units:
        assert active_state(c, old, f"{u}.service") in ("inactive", ""), u
    assert_stays(c, units, new, ids, seconds=TTL)
    assert running_labelled(c.machine_id(old)) == []
    assert sorted(running_labelled(c.machine_id(new))) == sorted(units)


# --------------------------------------------------------------------------- tests

def test_linked_containers_move_with_a_killed_machine(make_cluster: Factory, tmp_path: Path,
                                                       names: dict[str, str]) -> None:
    c = make_cluster(3)
    db, web = names["db"], names["web"]
    m, old_ids = start_linked_pair(c, tmp_path, db, web)
    print(f"{db}, {web} running on {m}: {running_labelled(c.machine_id(m))}")

    t0 = time.monotonic()
    c.kill(m)  # its containers die with it
    alive = [x for x in c.names if x != m]
    wait(lambda: colocated(c, [db, web], alive) is not None, timeout=TTL + 10, step=0.05,
         what="units active on another machine")
    t_active = time.monotonic() - t0
    wait(lambda: placed_and_running(c, [db, web], alive) is not None, timeout=TTL + 10,
         step=0.05, what="containers running on the new machine")
    t_running = time.monotonic() - t0
    new = placed_and_running(c, [db, web], alive)
    assert new is not None and new != m
    print(f"hard kill of {m}: units active on {new} after {t_active:.2f}s, containers "
          f"running there after {t_running:.2f}s (TTL {TTL}s)")
    assert t_running < TTL + 7
    for u in (db, web):
        assert cid(u) != old_ids[u]
        assert container(old_ids[u]) is None
        assert n_restarts(c, new, f"{u}.service") == 0
    assert f"{ip_of(db)}\t{db}" in hosts_of(web)

    check_old_machine_returns(c, m, new, [db, web])


def test_container_left_by_a_dead_machine_is_not_adopted(make_cluster: Factory,
                                                          tmp_path: Path,
                                                          names: dict[str, str]) -> None:
    c = make_cluster(2)
    db, web = names["db"], names["web"]
    m, old_ids = start_linked_pair(c, tmp_path, db, web)

    t0 = time.monotonic()
    c.kill(m, keep_containers=True)  # the engine outlives the machine
    for u in (db, web):
        assert running(u) == (old_ids[u], c.machine_id(m)), f"{u} should survive the kill"
    (new,) = [x for x in c.names if x != m]
    wait(lambda: placed_and_running(c, [db, web], [new]) is not None, timeout=TTL + 10,
         step=0.05, what="containers recreated on the new machine")
    print(f"hard kill of {m} (containers kept): recreated on {new} after "
          f"{time.monotonic() - t0:.2f}s")
    for u in (db, web):
        assert cid(u) != old_ids[u], f"{new} adopted {m}'s container {u}"
        assert container(old_ids[u]) is None, f"{m}'s container {u} survived"
        assert len(containers_named(u)) == 1
        assert n_restarts(c, new, f"{u}.service") == 0
    assert running_labelled(c.machine_id(m)) == []
    assert f"{ip_of(db)}\t{db}" in hosts_of(web)  # linked to the new db, not the old one

    check_old_machine_returns(c, m, new, [db, web])


def test_generate_link_renders_machine_of() -> None:
    text = generate("--name", "web", "--image", IMAGE, "--port", "8080:80", "--link", "mongo")
    unit = UnitFile.parse(text)
    assert unit.values("X-Fleet", "MachineOf") == ["mongo.service"]
    assert "mongo.service" in (unit.value("Unit", "After") or "").split()
    exec_start = " ".join((unit.value("Service", "ExecStart") or "").split())
    assert exec_start == ("/usr/local/bin/docker-run --name web -p 8080:80 "
                          f"--link mongo:mongo {IMAGE}")
    assert unit.value("Service", "ExecStop") == "/usr/bin/env docker stop -t 1 web"
    assert unit.value("Service", "TimeoutStopSec") == "2"


def test_generated_web_starts_beside_mongo(make_cluster: Factory, tmp_path: Path,
                                           names: dict[str, str]) -> None:
    c = make_cluster(3)
    mongo, web = names["mongo"], names["site"]
    port = free_port()
    serve = "echo {text} > /tmp/index.html && exec busybox httpd -f -p {port} -h /tmp"
    mongo_path = unit_file(tmp_path, mongo, "--command",
                           f"sh -c '{serve.format(text=mongo, port=27017)}'")
    web_path = unit_file(tmp_path, web, "--port", f"{port}:80", "--link", mongo,
                         "--command", f"sh -c '{serve.format(text=web, port=80)}'")
    assert UnitFile.parse(Path(web_path).read_text()).values("X-Fleet", "MachineOf") == \
        [f"{mongo}.service"]
    unitctl(c, "start", mongo_path)
    unitctl(c, "start", web_path)
    wait(lambda: placed_and_running(c, [mongo, web]) is not None, timeout=30,
         what="web running beside mongo")
    m = placed_and_running(c, [mongo, web])
    print(f"{web} runs beside {mongo} on {m}")

    def served() -> bool:
        try:
            return http_get(f"http://127.0.0.1:{port}/") == f"{web}\n"
        except OSError:
            return False

    wait(served, timeout=15, what=f"{web} answering on host port {port}")
    # web reaches mongo by its link alias
    r = docker("exec", web, "busybox", "wget", "-qO-", f"http://{mongo}:27017/")
    assert r.stdout == f"{mongo}\n"


def test_start_returns_once_the_container_is_healthy(make_cluster: Factory, tmp_path: Path,
                                                      names: dict[str, str]) -> None:
    """Type=notify: docker-run's READY=1 waits for the health check, so `unitctl start`
    (which waits for systemd's `active`) returns only once the container is healthy."""
    c = make_cluster(1)
    web = names["web"]
    spec = tmp_path / f"{web}.yaml"
    spec.write_text(
        f"name: {web}\nimage: {IMAGE}\nhealth_cmd: '[ -f /tmp/ok ]'\nhealth_interval: 1s\n"
        "command: [sh, -c, 'sleep 3; echo > /tmp/ok; exec sleep 1000']\n")
    out = generate("--spec", str(spec), "-o", str(tmp_path))
    assert out.startswith("wrote "), out
    unitctl(c, "start", str(tmp_path / f"{web}.service"))
    data = container(web)
    assert data is not None and data["State"]["Health"]["Status"] == "healthy", data
    assert active_state(c, c.names[0], f"{web}.service") == "active"
