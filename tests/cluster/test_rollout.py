"""Rolling updates on real systemd machines (issue 14, item 3), one cluster for the module.

* a rollout of 4 instances with ``--max-unavailable 1`` never has more than one
  down: the downtime intervals come from systemd's own records, the journal
  of PID 1 in every machine (Stopping/Stopped/Failed ... Started), and no two
  overlap;
* a rollout to a body whose health check fails reverts by itself: every
  instance back on the old body, active and healthy;
* a rollout interrupted by killing the engine leader's machine finishes (or
  reverts) on the new leader. This test kills a machine: it runs last.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tests.cluster.helpers import active_state, unitctl, wait, write_unit
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.etcd import EtcdKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.cluster import Cluster

Spans = list[tuple[int, int]]
INSTANCES = [f"web@{i}.service" for i in range(1, 5)]
CHECK_OK = "[X-Health]\nCmd=/bin/true\nInterval=1s\nTimeout=2s\n"
CHECK_BAD = "[X-Health]\nCmd=/bin/false\nInterval=1s\nTimeout=2s\nRetries=2\nOnFailure=none\n"

# systemd's catalog ids (sd-messages.h) of PID 1's unit messages
STARTED = "39f53479d3a045ac8e11786248231fbf"
DOWN = {"de5b426a63be47a7b6ac3eaac82e2f6f",  # stopping
        "9d1aaa27d60140bd96365438aad20286",  # stopped
        "be02cf6855d2428ba40df7e9d022f03d",  # failed
        "7ad2d189f7e94e70a38c781354912448"}  # deactivated


def _body(version: str, check: str = "", pre: str = "") -> str:
    return ("[Unit]\nDescription=web %i\n[Service]\n" + pre
            + f"ExecStart=/bin/sh -c 'echo web %i {version}; exec sleep infinity'\n" + check)


def _template(tmp: Path, version: str, body: str) -> str:
    d = tmp / version
    d.mkdir(exist_ok=True)
    return write_unit(d, "web@.service", body)


def _rows(c: Cluster) -> dict[str, dict[str, str]]:
    rows = json.loads(unitctl(c, "list-units", "--json", "--full", "--fields",
                              "unit,machine,active,hash,health").stdout)
    return {r["unit"]: r for r in rows if r["unit"] in INSTANCES}


def _machine_name(c: Cluster, machine_id: str) -> str:
    return next(n for n in c.names if c.machine_id(n) == machine_id)


def _all_on(c: Cluster, sha: str, names: list[str] | None = None) -> bool:
    """Every instance reported active and healthy on body ``sha``, and systemd agrees."""
    rows = _rows(c)
    if sorted(rows) != INSTANCES:
        return False
    for inst, row in rows.items():
        if (row["hash"], row["active"], row["health"] or "") != (sha, "active", "healthy"):
            return False
        machine = _machine_name(c, row["machine"].split("/")[0])
        if (names is not None and machine not in names) or \
                active_state(c, machine, inst) != "active":
            return False
    return True


def _down_intervals(c: Cluster, since_us: int, names: list[str]) -> dict[str, Spans]:
    """Each instance's downtime intervals (µs, from PID 1's journal in every machine)."""
    events: list[tuple[int, str, str]] = []
    for m in names:
        out = c.exec(m, "journalctl", "-o", "json", "--no-pager", "_PID=1",
                     f"--since=@{since_us // 10**6 - 1}", timeout=30).stdout
        for line in out.splitlines():
            e = json.loads(line)
            t = int(e["__REALTIME_TIMESTAMP"])
            if t >= since_us and e.get("UNIT") in INSTANCES and \
                    e.get("MESSAGE_ID") in DOWN | {STARTED}:
                kind = "up" if e["MESSAGE_ID"] == STARTED else "down"
                events.append((t, e["UNIT"], kind))
    intervals: dict[str, Spans] = {i: [] for i in INSTANCES}
    down_since: dict[str, int] = {}
    for t, unit, kind in sorted(events):
        if kind == "down":
            down_since.setdefault(unit, t)
        elif unit in down_since:
            intervals[unit].append((down_since.pop(unit), t))
    for unit, t in down_since.items():  # still down: open interval
        intervals[unit].append((t, 2**63))
    return intervals


def _most_down_at_once(intervals: dict[str, Spans]) -> int:
    edges = sorted((t, +1 if k == 0 else -1) for spans in intervals.values()
                   for span in spans for k, t in enumerate(span))
    worst = now = 0
    for _, d in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start at a tie
        now += d
        worst = max(worst, now)
    return worst


def _status(c: Cluster) -> dict[str, object]:
    data = json.loads(unitctl(c, "rollout", "status", "--json", "web@.service").stdout)
    assert isinstance(data, list) and len(data) == 1
    return dict(data[0])


def _leader(c: Cluster) -> str:
    async def read() -> str:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=(c.endpoint,), timeout=5))
        try:
            got = await kv.get(Registry(kv).keys.leader)
            return got.value.decode() if got else ""
        finally:
            await kv.close()
    return asyncio.run(read())


def test_rollout_of_4_never_has_more_than_one_down(cluster: Cluster, tmp_path: Path) -> None:
    v1 = _template(tmp_path, "v1", _body("v1"))
    unitctl(cluster, "start", *[str(Path(v1).parent / i) for i in INSTANCES], timeout=120)
    v2_text = _body("v2", CHECK_OK)
    v2 = _template(tmp_path, "v2", v2_text)
    since = time.time_ns() // 1000
    r = unitctl(cluster, "rollout", v2, "--max-unavailable", "1", timeout=300)
    sha = UnitFile.parse(v2_text).hash()
    assert "rollout web@.service: done" in r.stdout, r.stdout
    assert _all_on(cluster, sha)
    intervals = _down_intervals(cluster, since, cluster.names)
    assert all(len(spans) >= 1 for spans in intervals.values()), intervals  # each replaced
    assert _most_down_at_once(intervals) == 1, intervals
    status = _status(cluster)
    assert status["phase"] == "done" and status["target"] == sha
    assert sorted(status["replaced"]) == INSTANCES  # type: ignore[call-overload]


def test_rollout_to_a_failing_health_check_reverts_by_itself(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    good = UnitFile.parse(_body("v2", CHECK_OK)).hash()
    assert _all_on(cluster, good)
    bad = _template(tmp_path, "v3", _body("v3", CHECK_BAD))
    since = time.time_ns() // 1000
    r = unitctl(cluster, "rollout", bad, "--max-unavailable", "1", "--batch-timeout", "60",
                check=False, timeout=300)
    assert r.returncode == 8, r.stdout + r.stderr
    assert "rollout web@.service reverted" in r.stderr and "unhealthy" in r.stderr, r.stderr
    wait(lambda: _all_on(cluster, good), timeout=60, what="every instance back on v2")
    status = _status(cluster)
    assert status["phase"] == "reverted"
    # the bad body did run (systemd logged it) and only one instance ever got it
    logs = "".join(cluster.exec(m, "journalctl", "--no-pager", "-o", "cat",
                                f"--since=@{since // 10**6 - 1}", timeout=30).stdout
                   for m in cluster.names)
    ran_bad = [i for i in range(1, 5) if f"web {i} v3" in logs]
    assert len(ran_bad) == 1, logs[-3000:]
    assert _most_down_at_once(_down_intervals(cluster, since, cluster.names)) == 1


def test_rollout_finishes_after_the_leader_machine_is_killed(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    good = UnitFile.parse(_body("v2", CHECK_OK)).hash()
    assert _all_on(cluster, good)
    text = _body("v4", CHECK_OK, pre="ExecStartPre=/bin/sleep 3\n")
    v4 = _template(tmp_path, "v4", text)
    unitctl(cluster, "rollout", v4, "--max-unavailable", "1", "--batch-timeout", "120",
            "--no-block")
    wait(lambda: len(_status(cluster)["replaced"]) >= 1, timeout=60,  # type: ignore[arg-type]
         what="the first batch replaced")
    before = _status(cluster)
    assert before["phase"] == "rolling" and len(before["replaced"]) < 4  # type: ignore[arg-type]
    leader = _leader(cluster)
    dead = _machine_name(cluster, leader)
    cluster.kill(dead)
    live = [n for n in cluster.names if n != dead]
    wait(lambda: _leader(cluster) not in ("", leader), timeout=60, what="a new leader")
    wait(lambda: _status(cluster)["phase"] in ("done", "reverted", "failed"), timeout=240,
         what="the rollout ended on the new leader")
    end = _status(cluster)
    assert end["phase"] in ("done", "reverted"), end
    sha = UnitFile.parse(text).hash() if end["phase"] == "done" else good
    wait(lambda: _all_on(cluster, sha, live), timeout=60,
         what=f"every instance {end['phase']}, active and healthy on the live machines")
    journal = cluster.journal(_machine_name(cluster, _leader(cluster)), "-u", "unitctl-agent")
    assert "engine: rollout web@.service" in journal  # the new leader drove it
