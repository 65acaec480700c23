"""``unitctl restart`` of a container unit, many times in a row, on real systemd machines.

A generated unit (``unitctl generate``: ``docker-run`` under systemd,
``ExecStop=docker stop -t 1``, ``TimeoutStopSec=2``) on the host's dockerd
(``Cluster(docker_socket=True)``, as tests/cluster/test_containers.py). Two
workloads: one that exits cleanly on SIGTERM (as a database does) and one that
ignores it (sh as PID 1 without a trap: ``docker stop`` SIGKILLs it after 1 s).

Every restart must end with the unit active in a new invocation, its container
running and started anew (a new ``State.StartedAt``: docker-run starts the same
container again when its spec is unchanged), and nothing in systemd's own
records of a failed start: ``NRestarts`` stays 0 (``Restart=always`` would have
restarted a start that failed), and the unit's journal has no docker-run error
and no failed start.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.helpers import active_state, unitctl, wait, where_active
from tests.cluster.test_containers import docker, generate
from tests.integration.dockerd import IMAGE, dockerd_fixture  # noqa: F401  (the fixture)
from unitctl_testing.cluster import Cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SFX = uuid.uuid4().hex[:6]
RESTARTS = 10
# Own tag/bridge/subnet: other cluster tests may run on this host at the same time.
NET = {"tag": "rs", "bridge": "br-unitctl-rs", "subnet": "10.231.95"}
WORKLOADS = {
    # stops on SIGTERM, as a database does (PID 1 has no default handler): the seed's
    # stand-in (tests/cluster/test_seed_service.py), a server on the container port
    "clean": "sh -c 'busybox mkdir -p /www; echo up > /www/index.html; "
             "busybox httpd -f -p 5432 -h /www & pid=$!; "
             "trap \"kill $pid; wait $pid; exit 0\" TERM; wait $pid'",
    # ignores SIGTERM: docker stop -t 1 SIGKILLs it
    "stubborn": "sh -c 'echo up; while true; do sleep 1; done'",
}
# As the seed's unit: a dynamic port, an environment variable carrying it.
FLAGS = ["--port", "@PORT:5432", "--env", "DBUSER=postgres, DBPORT=@PORT"]
# What a failed or broken start leaves in the unit's journal.
FAILED_START = ("docker-run: error", "Failed to start", "unable to upgrade",
                "marked for removal", "Scheduled restart job")
Factory = Callable[..., Cluster]


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    made = {kind: f"restart-{kind}-{SFX}" for kind in WORKLOADS}
    yield made
    docker("rm", "-f", *made.values(), check=False)


@pytest.fixture
def cluster1(dockerd: None, cluster_factory: Factory, names: dict[str, str]) -> Cluster:
    return cluster_factory(1, docker_socket=True, **NET)


def show(c: Cluster, machine: str, unit: str) -> dict[str, str]:
    """systemd's records of ``unit`` that a restart changes (or must not)."""
    props = ("ActiveState", "SubState", "InvocationID", "NRestarts", "ExecMainStartTimestamp")
    r = c.exec(machine, "systemctl", "show", *(f"-p{p}" for p in props), unit, timeout=10)
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def container_state(name: str) -> dict[str, Any]:
    r = docker("container", "inspect", name, check=False)
    assert r.returncode == 0, f"no container {name}: {r.stderr}"
    data: dict[str, Any] = json.loads(r.stdout)[0]
    return data


def journal(c: Cluster, machine: str, unit: str) -> list[str]:
    r = c.exec(machine, "journalctl", "--no-pager", "-o", "cat", "-u", unit, timeout=30)
    return r.stdout.splitlines()


def running_since(name: str) -> str:
    """The container's ``State.StartedAt`` once it runs ("" while it does not)."""
    state = container_state(name)["State"]
    return str(state["StartedAt"]) if state["Running"] else ""


# The stubborn container's stop is recorded as failed (docker-run exits with the
# container's 137, as systemd records a service it had to SIGKILL); `unitctl
# restart` used to take that failed report of the stopped invocation, published
# again after the start was asked, for a failed start (unitctl/client/wait.py
# `reached`, now told with failed_before).


@pytest.mark.parametrize("kind", ["clean", "stubborn"])
def test_restart_of_a_container_unit_ten_times_never_fails_a_start(
        cluster1: Cluster, names: dict[str, str], tmp_path: Path, kind: str) -> None:
    c, name = cluster1, names[kind]
    unit = f"{name}.service"
    out = generate("--name", name, "--image", IMAGE, "--command", WORKLOADS[kind], *FLAGS,
                   "-o", str(tmp_path))
    assert out == f"wrote {tmp_path}/{unit}\n", out
    unitctl(c, "start", str(tmp_path / unit), timeout=120)
    [machine] = where_active(c, unit)
    before = show(c, machine, unit)
    started = running_since(name)
    assert started, container_state(name)["State"]
    for attempt in range(1, RESTARTS + 1):
        # systemd's start rate limit (5 starts in 10 s) is not what this test is
        # about: `unitctl restart` queues the start while the stop runs, and systemd
        # counts each retry of that waiting job. Flushed here (reset-failed also
        # zeroes NRestarts, which was checked after the restart before).
        c.systemctl(machine, "reset-failed", unit)
        r = unitctl(c, "restart", unit, check=False, timeout=120)
        after = show(c, machine, unit)
        where = f"restart {attempt}/{RESTARTS}: {r.stdout}{r.stderr}\n{after}\n" + \
            "\n".join(journal(c, machine, unit)[-30:])
        assert r.returncode == 0, where
        assert (after["ActiveState"], after["SubState"]) == ("active", "running"), where
        assert after["InvocationID"] != before["InvocationID"], where
        assert after["NRestarts"] == "0", where
        # Type=notify: active means READY=1, sent once the container ran
        now = running_since(name)
        assert now and now != started, f"{where}\ncontainer started at {now!r}, was {started!r}"
        before, started = after, now
    lines = journal(c, machine, unit)
    bad = [ln for ln in lines if any(word in ln for word in FAILED_START)]
    assert not bad, "\n".join(lines[-60:])
    assert sum("READY" in ln for ln in lines) == RESTARTS + 1, "\n".join(lines[-60:])
    unitctl(c, "destroy", unit, timeout=60)
    wait(lambda: active_state(c, machine, unit) in ("inactive", ""), timeout=30,
         what=f"{unit} gone")
