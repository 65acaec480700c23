"""`curl` of /metrics on the agent inside a real nspawn machine (its own network
namespace: the agent's default metrics_address is the machine's loopback)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.helpers import service, unitctl, wait, write_unit
from unitctl_testing.cluster import Cluster


def curl_metrics(c: Cluster, name: str) -> str:
    r = subprocess.run(["ip", "netns", "exec", c.machine(name).netns, "curl", "-sS",
                        "--max-time", "5", "http://127.0.0.1:9479/metrics"],
                       capture_output=True, text=True, timeout=15, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def values(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_curl_metrics_on_every_agent(cluster: Cluster, tmp_path: Path) -> None:
    unit = write_unit(tmp_path, "metrics-probe.service", service())
    unitctl(cluster, "start", unit)
    leaders = []
    for name in cluster.names:
        text = curl_metrics(cluster, name)
        got = values(text)
        assert got["unitctl_fenced"] == {(): 0.0}
        assert ("unitctl_etcd_request_seconds_count" in got
                and any(dict(k)["op"] == "txn" for k in got["unitctl_etcd_request_seconds_count"]))
        leaders += [name] if got["unitctl_engine_leader"][()] == 1 else []
    assert len(leaders) == 1
    leader = leaders[0]

    def leader_counts_the_unit() -> bool:
        got = values(curl_metrics(cluster, leader))
        return got["unitctl_engine_placements"][()] >= 1 and \
            got["unitctl_engine_round_seconds_count"][()] >= 1

    wait(leader_counts_the_unit, what="the leader's placements metric")
    active = sum(values(curl_metrics(cluster, n)).get("unitctl_units", {}).get(
        (("state", "active"),), 0) for n in cluster.names)
    assert active == 1
    unitctl(cluster, "destroy", "metrics-probe.service")
