"""``unitctl apply -f Clusterfile`` on real systemd machines and a real etcd:
apply, re-apply (no change: no key of units/, bodies/, owners/, bundles/ ...
written; the global revision is checked on an agent-less etcd in
tests/integration/test_bundle_etcd.py), diff, prune, rollback.

One module-scoped cluster of 2 machines; each test uses its own bundle name
and destroys the units it made.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import unitctl, units_json, wait, where_active
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.etcd import EtcdKV
from unitctl.registry.registry import Registry
from unitctl_testing.cluster import Cluster

CLUSTER_KWARGS = {"n_machines": 2}

CLUSTERFILE = """\
apiVersion: unitctl.io/v1
kind: Bundle
metadata:
  name: {bundle}
spec:
  env:
    seconds: {seconds}
  units:
    - name: {bundle}-a.service
      body: |
        [Unit]
        Description=bundle {{{{ bundle }}}} unit a
        [Service]
        ExecStart=/bin/sleep {{{{ seconds }}}}
{extra}"""

TEMPLATE = """\
    - name: {bundle}-w@.service
      instances: [1, 2]
      body: |
        [Service]
        ExecStart=/bin/sleep 300{{{{ instance }}}}
"""


def _write(tmp: Path, bundle: str, seconds: int = 1001, template: bool = True) -> str:
    path = tmp / f"{bundle}.yaml"
    extra = TEMPLATE.format(bundle=bundle) if template else ""
    path.write_text(CLUSTERFILE.format(bundle=bundle, seconds=seconds, extra=extra))
    return str(path)


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    names = [u["unit"] for u in json.loads(
        unitctl(cluster, "list-unit-files", "--json", "--full").stdout)]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=30, what="units destroyed")


#: the client-owned prefixes an apply writes (agents keep writing states/ meanwhile)
CLIENT_PREFIXES = ("units/", "bodies/", "bodyrefs/", "owners/", "bundles/", "bundlebodies/")


def _client_keys(c: Cluster) -> dict[str, int]:
    """Every client-owned key with its mod revision (etcd's record of its last write)."""
    async def read() -> dict[str, int]:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=(c.endpoint,), timeout=5))
        try:
            prefix = Registry(kv).keys.prefix
            out: dict[str, int] = {}
            for sub in CLIENT_PREFIXES:
                out.update((x.key, x.mod_rev) for x in (await kv.get_prefix(prefix + sub)).kvs)
            return out
        finally:
            await kv.close()
    return asyncio.run(read())


def _show(c: Cluster, unit: str, prop: str) -> str:
    """systemd's ``prop`` of ``unit`` on the one machine running it ("" if none runs it)."""
    machines = where_active(c, unit)
    if len(machines) != 1:
        return ""
    return str(c.exec(machines.pop(), "systemctl", "show", "-p", prop, "--value", unit,
                      timeout=10).stdout.strip())


def _running(c: Cluster, *units: str) -> None:
    for unit in units:
        wait(lambda u=unit: len(where_active(c, u)) == 1, timeout=40,  # type: ignore[misc]
             what=f"{unit} active on one machine")


def test_apply_runs_the_units_and_a_second_apply_changes_nothing(cluster: Cluster,
                                                                 tmp_path: Path) -> None:
    path = _write(tmp_path, "b1")
    r = unitctl(cluster, "apply", "-f", path)
    assert "bundle b1: revision 1 (apply)" in r.stdout
    _running(cluster, "b1-a.service", "b1-w@1.service", "b1-w@2.service")
    assert "/bin/sleep 1001" in _show(cluster, "b1-a.service", "ExecStart")
    assert "/bin/sleep 3002" in _show(cluster, "b1-w@2.service", "ExecStart")
    invocation = _show(cluster, "b1-a.service", "InvocationID")
    before = _client_keys(cluster)
    r = unitctl(cluster, "apply", "-f", path)
    assert r.stdout == "bundle b1: no changes\n"
    assert _client_keys(cluster) == before  # no key written, not even with the same value
    assert _show(cluster, "b1-a.service", "InvocationID") == invocation


def test_diff_exits_1_with_the_changes_and_0_once_applied(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    path = _write(tmp_path, "b2", template=False)
    r = unitctl(cluster, "diff", "-f", path, check=False)
    assert r.returncode == 1, r.stderr
    assert "+++ b/b2-a.service" in r.stdout and "+ExecStart=/bin/sleep 1001" in r.stdout
    assert "state b2-a.service: inactive -> launched" in r.stdout
    unitctl(cluster, "apply", "-f", path)
    r = unitctl(cluster, "diff", "-f", path, check=False)
    assert (r.returncode, r.stdout) == (0, "")
    path = _write(tmp_path, "b2", seconds=1002, template=False)
    r = unitctl(cluster, "diff", "-f", path, check=False)
    assert r.returncode == 1
    assert "-ExecStart=/bin/sleep 1001\n+ExecStart=/bin/sleep 1002\n" in r.stdout


def test_prune_removes_only_the_units_the_bundle_owns(cluster: Cluster,
                                                      tmp_path: Path) -> None:
    path = _write(tmp_path, "b3")
    unitctl(cluster, "apply", "-f", path)
    mine = tmp_path / "b3-hand.service"
    mine.write_text("[Service]\nExecStart=/bin/sleep 4000\n")
    unitctl(cluster, "start", str(mine))
    _running(cluster, "b3-a.service", "b3-w@1.service", "b3-hand.service")
    path = _write(tmp_path, "b3", template=False)
    r = unitctl(cluster, "apply", "-f", path, "--prune")
    assert "Unit b3-w@1.service pruned" in r.stdout and "b3-hand" not in r.stdout
    wait(lambda: not where_active(cluster, "b3-w@1.service")
         and not where_active(cluster, "b3-w@2.service"), timeout=30,
         what="pruned units stopped")
    assert len(where_active(cluster, "b3-hand.service")) == 1
    assert len(where_active(cluster, "b3-a.service")) == 1
    names = {u["unit"] for u in json.loads(
        unitctl(cluster, "list-unit-files", "--json", "--full").stdout)}
    assert names == {"b3-a.service", "b3-hand.service"}


def test_rollback_runs_the_previous_body_again(cluster: Cluster, tmp_path: Path) -> None:
    unitctl(cluster, "apply", "-f", _write(tmp_path, "b4", template=False))
    _running(cluster, "b4-a.service")
    unitctl(cluster, "apply", "-f", _write(tmp_path, "b4", seconds=1002, template=False))
    wait(lambda: "/bin/sleep 1002" in _show(cluster, "b4-a.service", "ExecStart"),
         timeout=40, what="the new body running")
    second = _show(cluster, "b4-a.service", "InvocationID")
    r = unitctl(cluster, "rollback", "b4")
    assert "bundle b4: revision 3 (rollback to 1)" in r.stdout
    wait(lambda: len(where_active(cluster, "b4-a.service")) == 1
         and "/bin/sleep 1001" in _show(cluster, "b4-a.service", "ExecStart"),
         timeout=40, what="the first body running again")
    assert _show(cluster, "b4-a.service", "InvocationID") != second
    history = unitctl(cluster, "history", "b4").stdout.splitlines()
    assert [line.split()[0] for line in history] == ["REVISION", "1", "2", "3"]
