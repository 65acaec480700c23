"""The seed's ``mgmt service`` example, rewritten as ``unitctl generate`` flags, on real
systemd machines running a real container.

The seed (issue 13)::

    mgmt service --id testdb --image … --cpu 0.5 --mem 512
        --env "DBUSER=…, DBPORT=@PORT" --port @PORT:5432
        --volume /var/crash:/var/crash --brick 131072:/var/lib/pgsql/9.6/data/

goes through the real ``unitctl generate`` with exactly these flags; only the
id carries a per-run suffix (the docker engine is shared with the host) and the
image is a local one (``docker commit`` of the busybox test image, no
registry) whose default command answers on the container port 5432 like the
database would: busybox httpd serving ``DBUSER``/``DBPORT`` and the lines
it appended to a file in its data directory at every start.

The machines drive the host's dockerd through its socket
(``Cluster(docker_socket=True)``, as tests/cluster/test_containers.py), so two
things are the host's in this harness, not the machine's: the published port
listens on the host (the test connects to the host's bridge address from
another machine, and to 127.0.0.1 from the host), and the brick's ``-v``
source directory is resolved on the host. The agent still makes and records
the volume in its machine and keeps the unit there (``unitctl volume ls``).

The restart is ``unitctl restart``: a new invocation, the same container started
again. (It once failed 2 of 6 tries: systemd's stop also SIGTERMed docker-run's
own ``docker container inspect``, which ended the stop with exit 9, and the
"404" / "marked for removal" on the next start were, by their timing, this
test's teardown ``docker rm -f`` racing that start. docker-run now runs such a CLI call again;
tests/cluster/test_container_restart.py restarts a container unit ten times.)
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.helpers import REPO, service, unitctl, wait, where_active, write_unit
from tests.integration.dockerd import IMAGE as BUSYBOX
from tests.integration.dockerd import dockerd_fixture  # noqa: F401  (the fixture)
from unitctl.resources import parse_size
from unitctl.unitfile import UnitFile
from unitctl_testing.cluster import Cluster
from unitctl_testing.mounts import safe_rmtree

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SFX = uuid.uuid4().hex[:6]
NAME = f"testdb-{SFX}"
IMAGE = f"unitctl-seeddb-{SFX}:test"
DATA = "/var/lib/pgsql/9.6/data"
BRICK_DIR = f"/var/lib/unitctl/volumes/{NAME}"  # the default brick volume: the unit's name
# Own tag/bridge/subnet: other cluster tests may run on this host at the same time.
NET = {"tag": "sd", "bridge": "br-unitctl-sd", "subnet": "10.231.94"}
# What the seed's database does for this test: answer on 5432, keep its data in DATA.
SERVE = (f"echo \"start DBPORT=$DBPORT\" >> {DATA}/starts; busybox mkdir -p /www; "
         "{ echo \"testdb DBUSER=$DBUSER DBPORT=$DBPORT\"; "
         f"cat {DATA}/starts; }} > /www/index.html; "
         # stops on SIGTERM, as a database does (PID 1 has no default handler)
         "busybox httpd -f -p 5432 -h /www & pid=$!; "
         "trap 'kill $pid; wait $pid; exit 0' TERM; wait $pid")
SEED_FLAGS = ["--name", NAME, "--image", IMAGE, "--cpu", "0.5", "--mem", "512",
              "--env", "DBUSER=postgres, DBPORT=@PORT", "--port", "@PORT:5432",
              "--volume", "/var/crash:/var/crash", "--brick", f"131072:{DATA}/"]
Factory = Callable[..., Cluster]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def seed_image(dockerd: None) -> Iterator[str]:
    """The busybox test image with SERVE as its default command (docker commit)."""
    cid = docker("create", BUSYBOX, "true").stdout.strip()
    try:
        docker("commit", "--change", f"CMD {json.dumps(['sh', '-c', SERVE])}", cid, IMAGE)
    finally:
        docker("rm", "-f", cid, check=False)
    yield IMAGE
    docker("rmi", "-f", IMAGE, check=False)


@pytest.fixture
def cluster2(seed_image: str, cluster_factory: Factory) -> Iterator[Cluster]:
    c = cluster_factory(2, docker_socket=True, **NET)
    yield c
    docker("rm", "-f", NAME, check=False)
    if Path(BRICK_DIR).is_dir():  # the host's: the shared engine resolved -v here
        safe_rmtree(BRICK_DIR)
    for parent in (Path(BRICK_DIR).parent, Path(BRICK_DIR).parent.parent):
        with contextlib.suppress(OSError):  # only when empty: docker made them for us
            parent.rmdir()


def generate(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "unitctl", "generate", *args],
                       capture_output=True, text=True, timeout=60, cwd=str(REPO),
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert r.returncode == 0, f"unitctl generate {shlex.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def show(c: Cluster, machine: str, prop: str, unit: str) -> str:
    return c.exec(machine, "systemctl", "show", "-p", prop, "--value", unit,
                  timeout=10).stdout.strip()


def resolved(c: Cluster) -> list[dict[str, Any]]:
    r = unitctl(c, "resolve", "--json", "--full", NAME, check=False)
    rows: list[dict[str, Any]] = json.loads(r.stdout) if r.returncode == 0 else []
    return rows


def container_env(name: str) -> dict[str, str]:
    out = docker("exec", name, "env").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def fetch_from(c: Cluster, machine: str, url: str) -> str:
    """GET ``url`` from inside ``machine`` (its python3)."""
    code = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=3)" \
           ".read().decode(), end='')"
    r = c.exec(machine, "python3", "-c", code, url, check=False, timeout=15)
    return r.stdout if r.returncode == 0 else ""


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def fill_memory(c: Cluster, tmp: Path, full: str, roomy: str) -> list[str]:
    """One unit on ``full`` leaving under 512 MiB of it free, two small ones on ``roomy``
    (by unit count alone, ``full`` would be chosen); return their names."""
    rows = json.loads(unitctl(c, "list-machines", "--json", "--full", "--fields",
                              "machine,mem").stdout)
    text = next(r["mem"] for r in rows if r["machine"] == c.machine_id(full))
    mib = (parse_size(text.replace(" ", "").replace("iB", "")) or 0) // 2**20
    assert mib > 1024, rows
    # "23.4 GiB" is rounded to 0.05 GiB: between 250 and 350 MiB stay free
    big = service(xfleet=f"MachineID={c.machine_id(full)}\nMemory={mib - 300}M")
    small = service(xfleet=f"MachineID={c.machine_id(roomy)}")
    files = [write_unit(tmp, "filler-big.service", big),
             *(write_unit(tmp, f"filler-{i}.service", small) for i in (1, 2))]
    unitctl(c, "start", *files, timeout=90)
    return [Path(f).name for f in files]


def mem_free_mib(c: Cluster, machine: str) -> int:
    rows = json.loads(unitctl(c, "list-machines", "--json", "--full", "--fields",
                              "machine,mem_free").stdout)
    text = next(r["mem_free"] for r in rows if r["machine"] == c.machine_id(machine))
    return (parse_size(text.replace(" ", "").replace("iB", "")) or 0) // 2**20


def inspect(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(docker("container", "inspect", name).stdout)[0]
    return data


def answer(port: int, starts: int) -> str:
    return f"testdb DBUSER=postgres DBPORT={port}\n" + f"start DBPORT={port}\n" * starts


def check_container(c: Cluster, machine: str, port: int) -> None:
    """The container docker-run made: env, port, brick, limits, machine label."""
    env = container_env(NAME)
    assert (env["DBPORT"], env["DBUSER"]) == (str(port), "postgres"), env
    data = inspect(NAME)
    mounts = {m["Destination"]: m["Source"] for m in data["Mounts"]}
    assert mounts == {DATA: BRICK_DIR, "/var/crash": "/var/crash"}, mounts
    host = data["HostConfig"]
    assert [b["HostPort"] for b in host["PortBindings"]["5432/tcp"]] == [str(port)], host
    assert (host["Memory"], host["NanoCpus"]) == (512 * 2**20, 5 * 10**8), host
    assert data["Config"]["Labels"]["unitctl.machine"] == c.machine_id(machine)


def answers_everywhere(c: Cluster, other: str, port: int, starts: int) -> None:
    """The answer on the published port, from the host and from the other machine (to
    the host's bridge address: the shared engine publishes on the host)."""
    want = answer(port, starts)
    wait(lambda: fetch(f"http://127.0.0.1:{port}/") == want, timeout=20,
         what=f"the answer on host port {port}: {want!r}")
    assert fetch_from(c, other, f"http://{c.lan.ip}:{port}/") == want


def test_the_seeds_mgmt_service_as_generate_flags_starts_and_answers_on_its_port(
        cluster2: Cluster, tmp_path: Path) -> None:
    c = cluster2
    full, roomy = c.names
    fillers = fill_memory(c, tmp_path, full, roomy)
    assert mem_free_mib(c, full) < 512 <= mem_free_mib(c, roomy)
    assert generate(*SEED_FLAGS, "-o", str(tmp_path)) == f"wrote {tmp_path}/{NAME}.service\n"
    path = tmp_path / f"{NAME}.service"
    assert UnitFile.parse(path.read_text()).values("X-Fleet", "Volume") == \
        [f"{NAME}:128G:{DATA}"]
    started = unitctl(c, "start", str(path), timeout=120).stdout

    # placed where the 512 MiB are free (by unit count alone it would be `full`)
    assert where_active(c, f"{NAME}.service") == {roomy}
    assert f"Placed on {c.machine_id(roomy)[:8]}" in unitctl(c, "explain",
                                                            f"{NAME}.service").stdout
    [rec] = resolved(c)
    port = rec["ports"]["PORT"]
    assert (rec["machine"], rec["address"]) == (c.machine_id(roomy), c.ip(roomy)), rec
    assert f"Unit {NAME}.service on {c.ip(roomy)}: PORT={port}" in started, started
    assert f"PORT={port}" in show(c, roomy, "Environment", f"{NAME}.service").split()
    check_container(c, roomy, port)
    answers_everywhere(c, full, port, starts=1)
    # the brick: a volume the agent made and recorded on the unit's machine
    vols = json.loads(unitctl(c, "volume", "ls", "--json", "--full").stdout)
    assert vols == [{"volume": NAME, "machine": c.machine_id(roomy), "path": BRICK_DIR,
                     "size": 131072 * 2**20, "unit": f"{NAME}.service",
                     "store": None}], vols  # a local volume: no shared store
    assert c.exec(roomy, "test", "-d", BRICK_DIR, check=False).returncode == 0
    assert Path(BRICK_DIR, "starts").read_text() == f"start DBPORT={port}\n"  # the data

    # a restart: a new invocation on the same machine, same name, port and data
    first = show(c, roomy, "InvocationID", f"{NAME}.service")
    unitctl(c, "restart", f"{NAME}.service", timeout=120)
    assert show(c, roomy, "InvocationID", f"{NAME}.service") != first
    assert where_active(c, f"{NAME}.service") == {roomy}
    wait(lambda: resolved(c) == [rec], timeout=20, what=f"the same record again: {rec}")
    check_container(c, roomy, port)
    answers_everywhere(c, full, port, starts=2)
    assert Path(BRICK_DIR, "starts").read_text() == f"start DBPORT={port}\n" * 2
    unitctl(c, "destroy", f"{NAME}.service", *fillers, timeout=60)
    unitctl(c, "volume", "rm", NAME)
