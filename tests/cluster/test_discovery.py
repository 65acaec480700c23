"""Service discovery on real systemd machines: ``unitctl resolve`` and the agents' DNS.

One module-scoped cluster of 3 nspawn machines. A unit with a dynamic port is
started; ``resolve`` prints its machine's address and allocated port, and a
DNS query sent from inside *another* machine to that machine's agent
(``127.0.0.2:53``, with dnspython from the machine's own venv) answers A and
SRV. The record goes when the unit stops, and when its machine is killed
(with the lease), and comes back on the machine the unit moves to.

The machines do not run systemd-resolved (the rootfs masks it), so the query
goes to the agent's address directly; docs/reference.md "Service discovery"
shows the resolved drop-in (contrib/resolved-unitctl.conf) for real machines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import name_of, service, unitctl, units_json, wait, write_unit
from unitctl_testing.cluster import Cluster
from unitctl_testing.rootfs import VENV

QUERY = """
import sys, dns.message, dns.query, dns.rcode
q = dns.message.make_query(sys.argv[1], sys.argv[2])
r = dns.query.udp(q, "127.0.0.2", port=53, timeout=3)
print(dns.rcode.to_text(r.rcode()))
for rrset in r.answer:
    for rd in rrset:
        print(rd.to_text())
"""


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    r = unitctl(cluster, "list-unit-files", "--json", "--full")
    names = [u["unit"] for u in json.loads(r.stdout)]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=30, what="units destroyed")


def dig(c: Cluster, machine: str, name: str, rdtype: str = "A") -> list[str]:
    """rcode, then the answer's records, as the machine's agent answers them."""
    r = c.exec(machine, f"{VENV}/bin/python", "-c", QUERY, name, rdtype, timeout=15)
    return r.stdout.split("\n")[:-1]


def resolved(c: Cluster, name: str) -> list[dict[str, object]]:
    r = unitctl(c, "resolve", "--json", "--full", name, check=False)
    if r.returncode == 3:
        return []
    assert r.returncode == 0, r.stdout + r.stderr
    rows: list[dict[str, object]] = json.loads(r.stdout)
    return rows


def test_resolve_and_dns_answer_and_the_record_goes_on_stop_and_machine_loss(
        cluster: Cluster, tmp_path: Path) -> None:
    unit = write_unit(tmp_path, "testdb.service", service(xfleet="Ports=@PORT"))
    unitctl(cluster, "start", unit, timeout=90)
    wait(lambda: bool(resolved(cluster, "testdb")), timeout=20, what="a service record")
    [rec] = resolved(cluster, "testdb")
    host = name_of(cluster, str(rec["machine"]))
    assert rec["address"] == cluster.ip(host)
    port = rec["ports"]["PORT"]  # type: ignore[index]
    table = unitctl(cluster, "resolve", "testdb").stdout
    assert f"PORT={port}" in table and cluster.ip(host) in table
    other = next(n for n in cluster.names if n != host)
    assert dig(cluster, other, "testdb.unitctl.") == ["NOERROR", cluster.ip(host)]
    srv = dig(cluster, other, "_port._tcp.testdb.unitctl.", "SRV")
    assert srv[0] == "NOERROR" and srv[1].startswith(f"0 0 {port} m-"), srv

    unitctl(cluster, "stop", "testdb.service", timeout=60)
    wait(lambda: resolved(cluster, "testdb") == [], timeout=5,
         what="the record deleted at once after stop")
    wait(lambda: dig(cluster, other, "testdb.unitctl.") == ["NXDOMAIN"], timeout=10,
         what="the DNS name gone after stop")

    unitctl(cluster, "start", "testdb.service", timeout=90)
    wait(lambda: bool(resolved(cluster, "testdb")), timeout=20, what="the record back")
    [rec] = resolved(cluster, "testdb")
    victim = name_of(cluster, str(rec["machine"]))
    witness = next(n for n in cluster.names if n != victim)
    cluster.kill(victim)
    wait(lambda: all(r["machine"] != rec["machine"] for r in resolved(cluster, "testdb")),
         timeout=40, what="the killed machine's record gone with its lease")
    wait(lambda: bool(resolved(cluster, "testdb")), timeout=60, what="the unit published "
         "again from the machine it moved to")
    [moved] = resolved(cluster, "testdb")
    new_host = name_of(cluster, str(moved["machine"]))
    wait(lambda: dig(cluster, witness, "testdb.unitctl.") == ["NOERROR", cluster.ip(new_host)],
         timeout=10, what="DNS answering with the new machine")
