"""Health checks and the failure policy on real systemd machines (issue 14, items 1-2).

* a unit whose HTTP check passes is healthy before ``start`` returns;
* a unit whose HTTP check fails is reported unhealthy (list-units HEALTH) and,
  past its retries, moves to another machine;
* a unit that fails to start three times on one machine moves, and that
  machine is avoided afterwards (systemd's own records in the machines, and
  the failure record in etcd through ``explain --json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cluster.helpers import active_state, unitctl, units_json, wait, write_unit
from unitctl_testing.cluster import Cluster

_Factory = Callable[..., Cluster]


def _health_on(c: Cluster, unit: str, machine_id: str) -> str:
    """HEALTH of ``unit`` on ``machine_id``, from ``list-units --json``."""
    rows = json.loads(unitctl(c, "list-units", "--json", "--full", "--fields",
                              "unit,machine,active,health").stdout)
    return next((r["health"] or "" for r in rows
                 if r["unit"] == unit and r["machine"].startswith(machine_id)), "")


def _explain(c: Cluster, unit: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(unitctl(c, "explain", "--json", unit).stdout)
    return data


def _placed(c: Cluster, unit: str) -> str:
    return str(_explain(c, unit)["machine"] or "")


def test_passing_http_check_is_healthy_before_start_returns(cluster_factory: _Factory,
                                                            tmp_path: Path) -> None:
    c = cluster_factory(1)
    body = ("[Unit]\nDescription=web\n[Service]\n"
            "ExecStart=/usr/bin/python3 -m http.server 18080 --bind 127.0.0.1\n"
            "[X-Health]\nHTTP=http://127.0.0.1:18080/\nInterval=1s\nTimeout=2s\n")
    r = unitctl(c, "start", write_unit(tmp_path, "web.service", body))
    assert "healthy" in r.stdout
    rows = [u for u in units_json(c) if u["unit"] == "web.service"]
    assert [(u["active"], u.get("health")) for u in rows] == [("active", "healthy")]
    table = unitctl(c, "list-units").stdout
    assert "HEALTH" in table.splitlines()[0] and "healthy" in table


def test_failing_http_check_is_unhealthy_then_moves(cluster_factory: _Factory,
                                                     tmp_path: Path) -> None:
    c = cluster_factory(2)
    ids = {n: c.machine_id(n) for n in c.names}
    first = min(c.names, key=lambda n: ids[n])  # where an empty cluster places first
    second = next(n for n in c.names if n != first)
    body = ("[Unit]\nDescription=sick\n[Service]\nExecStart=/bin/sleep infinity\n"
            "[X-Health]\nHTTP=http://127.0.0.1:1/healthz\nInterval=1s\nTimeout=1s\n"
            "Retries=2\nOnFailure=none\n[X-Failover]\nFailures=2\nBackoff=10min\n")
    unitctl(c, "start", "--no-block", write_unit(tmp_path, "sick.service", body))
    wait(lambda: _placed(c, "sick.service") == ids[second], timeout=60,
         what="sick.service moved off the machine it was unhealthy on")
    wait(lambda: active_state(c, second, "sick.service") == "active", timeout=30,
         what="sick.service active on the second machine")
    assert active_state(c, first, "sick.service") in ("", "inactive")  # unloaded there
    # unhealthy there too, and it stays (the next move backs off 10 min)
    wait(lambda: _health_on(c, "sick.service", ids[second]) == "unhealthy", timeout=30,
         what="unhealthy reported in list-units")
    table = unitctl(c, "list-units").stdout.splitlines()
    assert "HEALTH" in table[0] and any("unhealthy" in line for line in table[1:])
    info = _explain(c, "sick.service")
    failures = info["failures"]
    assert isinstance(failures, list)
    assert ("unhealthy", 2) in [(f["why"], f["count"]) for f in failures
                                if f["machine"] == ids[first]]
    moves = info["moves"]
    assert isinstance(moves, list) and [m["from"] for m in moves] == [ids[first]]
    assert _placed(c, "sick.service") == ids[second]
    text = unitctl(c, "explain", "sick.service").stdout
    assert f"unhealthy 2 times on {ids[first][:8]}" in text and "moved at" in text


def test_unit_failing_to_start_moves_and_the_machine_is_avoided(cluster_factory: _Factory,
                                                                 tmp_path: Path) -> None:
    c = cluster_factory(2)
    ids = {n: c.machine_id(n) for n in c.names}
    bad = min(c.names, key=lambda n: ids[n])  # where an empty cluster places first
    good = next(n for n in c.names if n != bad)
    c.exec(bad, "touch", "/etc/unitctl-fail-here")
    body = ("[Unit]\nDescription=flaky\n[Service]\n"
            "ExecStartPre=/bin/sh -c '! test -e /etc/unitctl-fail-here'\n"
            "ExecStart=/bin/sleep infinity\nRestart=on-failure\nRestartSec=1\n"
            "[X-Failover]\nBackoff=10min\n")
    path = write_unit(tmp_path, "flaky.service", body)
    unitctl(c, "start", "--no-block", path)
    wait(lambda: _placed(c, "flaky.service") == ids[good], timeout=60,
         what="flaky.service moved to the machine where it can start")
    wait(lambda: active_state(c, good, "flaky.service") == "active", timeout=30,
         what="flaky.service active on the good machine")
    journal = c.exec(bad, "journalctl", "-u", "flaky.service", "--no-pager", "-o", "cat",
                     check=False).stdout
    assert journal.count("Failed with result") >= 3, journal
    assert active_state(c, bad, "flaky.service") in ("", "inactive")  # unloaded there
    info = _explain(c, "flaky.service")
    failures = info["failures"]
    assert isinstance(failures, list) and [(f["machine"], f["count"]) for f in failures] == [
        (ids[bad], 3)]
    # avoided: unloaded and started again, it does not go back to the (empty,
    # lowest-id) machine it failed on, though that is where an empty cluster places
    invocation = c.exec(good, "systemctl", "show", "-p", "InvocationID", "--value",
                        "flaky.service").stdout.strip()
    unitctl(c, "unload", "flaky.service")
    unitctl(c, "start", "flaky.service")
    assert _placed(c, "flaky.service") == ids[good]
    again = c.exec(good, "systemctl", "show", "-p", "InvocationID", "--value",
                   "flaky.service").stdout.strip()
    assert again and again != invocation
    assert "failed 3 times on" in unitctl(c, "explain", "flaky.service").stdout
