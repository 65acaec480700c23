"""Bundles on a real etcd, through the real CLI (GatewayKV for diff/history, EtcdKV for
apply): no change means no write, a bad file stores nothing, revisions stay bounded
with their bodies collected, and two applies cannot both record one revision."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.errors import ConflictError
from unitctl.model import DesiredState
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.registry import Registry
from unitctl.registry.revisions import KEEP, Revision
from unitctl_testing.etcd import EtcdCluster, etcd_cluster

pytestmark = pytest.mark.etcd

CLUSTERFILE = """\
apiVersion: unitctl.io/v1
kind: Bundle
metadata:
  name: web
spec:
  env:
    n: {n}
  units:
    - name: hello.service
      body: |
        [Service]
        ExecStart=/bin/sleep {{{{ n }}}}
    - name: web@.service
      instances: [a, b]
      body: |
        [Service]
        ExecStart=/bin/sleep 1%i
"""


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    if shutil.which(os.environ.get("UNITCTL_ETCD_BIN", "etcd")) is None:
        pytest.fail("etcd is not installed: run scripts/install-deps.sh")
    with etcd_cluster(1) as c:
        yield c


@pytest.fixture
def prefix() -> str:
    return f"/bundle-{uuid.uuid4().hex[:10]}/"


def run(etcd: EtcdCluster, prefix: str, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["--endpoint", etcd.endpoint, "--etcd-key-prefix", prefix,
                                   *args], obj=Session())
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def _read(etcd: EtcdCluster, prefix: str) -> tuple[dict[str, bytes], int]:
    async def go() -> tuple[dict[str, bytes], int]:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=(etcd.endpoint,), timeout=5))
        try:
            rng = await kv.get_prefix(prefix)
            return {x.key: x.value for x in rng.kvs}, await kv.revision()
        finally:
            await kv.close()
    return asyncio.run(go())


def _file(tmp: Path, n: int) -> str:
    path = tmp / "Clusterfile.yaml"
    path.write_text(CLUSTERFILE.format(n=n))
    return str(path)


def test_a_second_apply_writes_nothing_and_diff_agrees(etcd: EtcdCluster, prefix: str,
                                                      tmp_path: Path) -> None:
    path = _file(tmp_path, 100)
    assert run(etcd, prefix, "diff", "-f", path)[0] == 1
    code, out = run(etcd, prefix, "apply", "-f", path)
    assert code == 0 and out.endswith("bundle web: revision 1 (apply)\n")
    keys, revision = _read(etcd, prefix)
    assert keys[f"{prefix}owners/web@a.service"] == b"web"
    assert run(etcd, prefix, "apply", "-f", path) == (0, "bundle web: no changes\n")
    assert _read(etcd, prefix) == (keys, revision)
    assert run(etcd, prefix, "diff", "-f", path) == (0, "")
    assert _read(etcd, prefix)[1] == revision


def test_a_bad_file_stores_nothing(etcd: EtcdCluster, prefix: str, tmp_path: Path) -> None:
    path = _file(tmp_path, 100)
    assert run(etcd, prefix, "apply", "-f", path)[0] == 0
    before = _read(etcd, prefix)
    bad = tmp_path / "bad.yaml"
    bad.write_text(CLUSTERFILE.format(n=200).replace("instances: [a, b]", "instances: [a, 'b/c']"))
    code, out = run(etcd, prefix, "apply", "-f", str(bad))
    assert code == 2 and "bad.yaml:14:" in out and "not a valid instance name" in out
    bad.write_text(CLUSTERFILE.format(n=200).replace("Service]\n        ExecStart=/bin/sleep 1",
                                                     "Service]\n        ExecStart /bin/sleep 1"))
    code, out = run(etcd, prefix, "apply", "-f", str(bad))
    assert code == 2 and "bad.yaml:13:7: unit web@a.service" in out
    assert _read(etcd, prefix) == before


def test_revisions_are_bounded_and_their_bodies_collected(etcd: EtcdCluster, prefix: str,
                                                          tmp_path: Path) -> None:
    for n in range(1, KEEP + 4):
        assert run(etcd, prefix, "apply", "-f", _file(tmp_path, n))[0] == 0
    keys, _ = _read(etcd, prefix)
    revs = sorted(k for k in keys if k.startswith(f"{prefix}bundles/web/"))
    assert [int(k.rpartition("/")[2]) for k in revs] == list(range(4, KEEP + 4))
    bodies = [k for k in keys if k.startswith(f"{prefix}bundlebodies/web/")]
    assert len(bodies) == KEEP + 1  # a hello body per kept revision, one shared by web@a, web@b
    code, out = run(etcd, prefix, "rollback", "web", "--to", "4")
    assert code == 0 and "rollback to 4" in out
    code, out = run(etcd, prefix, "cat", "hello.service")
    assert "ExecStart=/bin/sleep 4" in out
    assert run(etcd, prefix, "rollback", "web", "--to", "3")[0] == 3


def test_two_applies_cannot_record_one_revision(etcd: EtcdCluster, prefix: str,
                                               tmp_path: Path) -> None:
    assert run(etcd, prefix, "apply", "-f", _file(tmp_path, 1))[0] == 0
    late = Revision("web", 1, 0.0, "apply", "x", (("hello.service", "0" * 40,
                                                   DesiredState.LAUNCHED),))

    async def go() -> None:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=(etcd.endpoint,), timeout=5))
        try:  # an apply that read no revision yet, recording revision 1 after the first
            await Registry(kv, prefix).bundles.record(late, {"0" * 40: "x"}, [])
        finally:
            await kv.close()

    with pytest.raises(ConflictError, match="revision 1"):
        asyncio.run(go())
    assert run(etcd, prefix, "history", "web")[1].splitlines()[1].split()[0] == "1"
