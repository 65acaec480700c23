"""Local volumes on real systemd machines: data kept across restarts, the unit kept
with its data.

One module-scoped cluster of 3 nspawn machines. A unit with
``[X-Fleet] Volume=NAME:SIZE:PATH`` writes into its volume; systemd's own
records (``InvocationID``, ``BindPaths``) and the file inside the machine are
read back.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from tests.cluster.helpers import name_of, service, unitctl, wait, where_active, write_unit
from unitctl_testing.cluster import Cluster

VOLUME_DIR = "/var/lib/unitctl/volumes/notes"

# Appends one line per start to a file in its volume, then sleeps.
BODY = service(cmd="/bin/sh -c 'echo $$INVOCATION_ID >> /data/notes.txt; exec sleep infinity'",
               xfleet="Volume=notes:128M:/data")


def show(c: Cluster, machine: str, prop: str, unit: str) -> str:
    return c.exec(machine, "systemctl", "show", "-p", prop, "--value", unit,
                  timeout=10).stdout.strip()


def volumes(c: Cluster) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(unitctl(c, "volume", "ls", "--json").stdout)
    return rows


def lines(c: Cluster, machine: str) -> list[str]:
    r = c.exec(machine, "cat", f"{VOLUME_DIR}/notes.txt", check=False, timeout=10)
    return r.stdout.split() if r.returncode == 0 else []


def test_volume_keeps_its_data_across_restart_and_its_unit_waits_for_its_machine(
        cluster: Cluster, tmp_path: Path) -> None:
    path = write_unit(tmp_path, "notes.service", BODY)
    unitctl(cluster, "start", path, timeout=90)
    (host,) = where_active(cluster, "notes.service")
    first = show(cluster, host, "InvocationID", "notes.service")
    assert "/var/lib/unitctl/volumes/notes" in show(cluster, host, "BindPaths", "notes.service")
    wait(lambda: lines(cluster, host) == [first], timeout=10, what="the first start's line")
    [rec] = volumes(cluster)
    assert rec == {"volume": "notes", "machine": cluster.machine_id(host), "store": None,
                   "path": VOLUME_DIR, "size": 128 * 2**20, "unit": "notes.service"}, rec

    # stop and start: a new invocation on the same machine, the old file still there
    unitctl(cluster, "stop", "notes.service", timeout=60)
    unitctl(cluster, "start", "notes.service", timeout=60)
    assert where_active(cluster, "notes.service") == {host}
    second = show(cluster, host, "InvocationID", "notes.service")
    assert second != first
    wait(lambda: lines(cluster, host) == [first, second], timeout=10,
         what="the second start's line appended to the first's")

    # its machine is lost: the unit waits for it instead of moving
    mid = cluster.machine_id(host)
    cluster.kill(host)
    reason = f"waits for machine {mid}: its volume notes lives there (data stays behind)"
    wait(lambda: reason in unitctl(cluster, "explain", "notes.service").stdout, timeout=60,
         what="explain names the machine the volume lives on")
    others = [n for n in cluster.names if n != host]
    assert where_active(cluster, "notes.service", others) == set()
    for other in others:  # no agent was ever given the unit: no volume made there
        assert cluster.exec(other, "test", "-e", VOLUME_DIR, check=False).returncode != 0

    # removing the record lets it move (with a new, empty volume)
    out = unitctl(cluster, "volume", "rm", "notes").stdout
    assert "stay on the machine" in out, out
    wait(lambda: bool(where_active(cluster, "notes.service", others)), timeout=60,
         what="the unit moved after volume rm")
    (moved,) = where_active(cluster, "notes.service", others)
    wait(lambda: [r["machine"] for r in volumes(cluster)] == [cluster.machine_id(moved)],
         timeout=20, what="the volume recorded on its new machine")
    assert name_of(cluster, str(volumes(cluster)[0]["machine"])) == moved
    # a new volume: the old data stayed behind
    wait(lambda: len(lines(cluster, moved)) == 1, timeout=10, what="one line in the new volume")
    unitctl(cluster, "destroy", "notes.service", timeout=60)
    unitctl(cluster, "volume", "rm", "notes")
    missing = unitctl(cluster, "volume", "rm", "notes", check=False)
    assert missing.returncode == 3 and "volume notes not found" in missing.stderr, missing


# -- MoveWithoutVolume=yes: the unit moves when its volume's machine is lost ----------

CACHE_DIR = "/var/lib/unitctl/volumes/cache"
CACHE = service(cmd="/bin/sh -c 'echo $$INVOCATION_ID >> /data/notes.txt; exec sleep infinity'",
                xfleet="Volume=cache:128M:/data\nMoveWithoutVolume=yes")


def registered(c: Cluster, name: str) -> bool:
    """The machine's agent runs and its machine is registered."""
    return c.machine_id(name)[:8] in unitctl(c, "list-machines", check=False).stdout


def boot_lost_machines(c: Cluster) -> None:
    """Boot again every machine an earlier test of this module killed."""
    for name in c.names:
        if not registered(c, name):
            c.boot(name)
            wait(partial(registered, c, name), timeout=60, what=f"{name} registered again")


def cache_lines(c: Cluster, machine: str) -> list[str]:
    r = c.exec(machine, "cat", f"{CACHE_DIR}/notes.txt", check=False, timeout=10)
    return r.stdout.split() if r.returncode == 0 else []


def test_a_unit_that_may_move_without_its_volume_moves_and_says_its_data_stays_behind(
        cluster: Cluster, tmp_path: Path) -> None:
    boot_lost_machines(cluster)
    unitctl(cluster, "start", write_unit(tmp_path, "cache.service", CACHE), timeout=90)
    (host,) = where_active(cluster, "cache.service")
    first = show(cluster, host, "InvocationID", "cache.service")
    wait(lambda: cache_lines(cluster, host) == [first], timeout=10, what="the first line")
    old = cluster.machine_id(host)
    assert [r["machine"] for r in volumes(cluster) if r["volume"] == "cache"] == [old]

    # its machine is lost: the unit moves, the new machine takes the record over
    cluster.kill(host)
    others = [n for n in cluster.names if n != host]
    wait(lambda: bool(where_active(cluster, "cache.service", others)), timeout=60,
         what="the unit moved without its volume")
    (moved,) = where_active(cluster, "cache.service", others)
    wait(lambda: [r["machine"] for r in volumes(cluster) if r["volume"] == "cache"]
         == [cluster.machine_id(moved)], timeout=20, what="the record taken over")
    second = show(cluster, moved, "InvocationID", "cache.service")
    wait(lambda: cache_lines(cluster, moved) == [second], timeout=10,
         what="a new, empty volume with one line")
    agent_log = cluster.journal(moved, "-u", "unitctl-agent")
    assert "MOVED WITHOUT ITS VOLUME cache" in agent_log, agent_log[-2000:]
    assert f"its data stays behind on machine {old}" in agent_log, agent_log[-2000:]
    engine_logs = "".join(cluster.journal(n, "-u", "unitctl-agent") for n in others)
    assert (f"MOVED WITHOUT ITS VOLUME cache: its data stays behind on machine {old}"
            in engine_logs)

    # the old machine comes back: a probe pinned to it proves the engine saw it, and
    # the unit stayed where it is (same invocation), its old data still on the old machine
    cluster.boot(host)
    wait(lambda: registered(cluster, host), timeout=60, what=f"{host} registered again")
    probe = service(xfleet=f"MachineID={old}")
    unitctl(cluster, "start", write_unit(tmp_path, "probe.service", probe), timeout=90)
    assert where_active(cluster, "probe.service") == {host}
    assert where_active(cluster, "cache.service") == {moved}
    assert show(cluster, moved, "InvocationID", "cache.service") == second
    assert cache_lines(cluster, host) == [first]
    unitctl(cluster, "destroy", "cache.service", "probe.service", timeout=60)
    unitctl(cluster, "volume", "rm", "cache")
