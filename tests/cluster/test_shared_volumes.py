"""Shared volumes on real systemd machines: the unit moves with its data.

One test-owned cluster of 3 nspawn machines: m1 and m2 bind-mount the same host
directory at /mnt/shared and declare it with the metadata
``storage.nfs1=/mnt/shared`` (the shared store "nfs1"); m3 has neither. A unit
with ``[X-Fleet] Volume=notes:128M:/data:shared=nfs1`` appends its
``INVOCATION_ID`` to a file in its volume; its machine is killed, and it comes
back on the other machine of the store with the same file. systemd's own
records (``InvocationID``, ``BindPaths``, m3's journal) and the host directory
are read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cluster.helpers import service, unitctl, wait, where_active, write_unit
from unitctl_testing.cluster import Cluster

MOUNT = "/mnt/shared"
STORE = {"storage.nfs1": MOUNT}
VOLUME_DIR = f"{MOUNT}/unitctl-volumes/notes"

BODY = service(cmd="/bin/sh -c 'echo $$INVOCATION_ID >> /data/notes.txt; exec sleep infinity'",
               xfleet="Volume=notes:128M:/data:shared=nfs1")
# a volume on a store no machine declares: placed nowhere
STRANDED = service(xfleet="Volume=scratch:1G:/scratch:shared=ceph")


def show(c: Cluster, machine: str, prop: str, unit: str) -> str:
    return c.exec(machine, "systemctl", "show", "-p", prop, "--value", unit,
                  timeout=10).stdout.strip()


def notes(shared: Path) -> list[str]:
    path = shared / "unitctl-volumes" / "notes" / "notes.txt"
    return path.read_text().split() if path.exists() else []


def test_a_unit_on_a_shared_store_moves_with_its_data_and_never_to_a_machine_without_it(
        cluster_factory: Callable[..., Cluster], tmp_path: Path) -> None:
    shared = tmp_path / "nfs1"
    shared.mkdir()
    c = cluster_factory(3, metadata=[STORE, STORE, {}],
                        binds=[[f"{shared}:{MOUNT}"], [f"{shared}:{MOUNT}"], []])
    # one unit pinned to each machine of the store: m3, without it, is the least loaded
    # machine, the one placement by load alone would pick at every step below
    fillers = [write_unit(tmp_path, f"filler-{m}.service",
                          service(xfleet=f"MachineID={c.machine_id(m)}")) for m in ("m1", "m2")]
    unitctl(c, "start", *fillers, timeout=90)
    unitctl(c, "start", write_unit(tmp_path, "notes.service", BODY), timeout=90)
    (host,) = where_active(c, "notes.service")
    assert host in ("m1", "m2"), host
    first = show(c, host, "InvocationID", "notes.service")
    assert VOLUME_DIR in show(c, host, "BindPaths", "notes.service")
    wait(lambda: notes(shared) == [first], timeout=10, what="the first start's line")
    [record] = json.loads(unitctl(c, "volume", "ls", "--json").stdout)
    assert record == {"volume": "notes", "machine": None, "store": "nfs1", "path": VOLUME_DIR,
                      "size": 128 * 2**20, "unit": "notes.service"}, record
    assert "nfs1" in unitctl(c, "volume", "ls").stdout

    # its machine is lost: it comes back on the other machine of the store, same data
    other = "m2" if host == "m1" else "m1"
    c.kill(host)
    wait(lambda: where_active(c, "notes.service", [other, "m3"]) == {other}, timeout=60,
         what=f"notes.service active again on {other}")
    second = show(c, other, "InvocationID", "notes.service")
    wait(lambda: notes(shared) == [first, second], timeout=10,
         what="the restart elsewhere appended to the same file")
    assert [r["store"] for r in json.loads(unitctl(c, "volume", "ls", "--json").stdout)] == [
        "nfs1"]

    # a unit on a store no machine declares: explain names the store on each live machine
    unitctl(c, "start", "--no-block", write_unit(tmp_path, "scratch.service", STRANDED))

    def refused() -> bool:
        text = unitctl(c, "explain", "scratch.service").stdout
        return text.count("no shared store ceph here (its volume scratch is on it") == 2

    wait(refused, timeout=30, what="explain names the missing store on both live machines")
    # m3 lacks nfs1: no engine ever scheduled notes.service there, its agent was never
    # given it, and systemd there never ran it (the journals)
    journal = c.exec("m3", "journalctl", "-q", "--no-pager", "-u", "notes.service", timeout=10)
    assert journal.stdout.strip() == "", journal.stdout
    m3 = c.machine_id("m3")[:8]
    for live in (other, "m3"):
        agent = c.exec(live, "journalctl", "-q", "--no-pager", "-u", "unitctl-agent.service",
                       timeout=10).stdout
        assert f"schedule notes.service on {m3}" not in agent, agent
        assert live != "m3" or "agent: load notes.service" not in agent, agent
    assert c.exec("m3", "test", "-e", MOUNT, check=False).returncode != 0
    unitctl(c, "destroy", "notes.service", "scratch.service", "filler-m1.service",
            "filler-m2.service", timeout=60)
    assert notes(shared) == [first, second]  # destroy leaves the data
    unitctl(c, "volume", "rm", "notes")
