"""``unitctl`` against a real etcd, reached through ``--endpoint`` / ``UNITCTL_ENDPOINT``."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.model import Machine, UnitState
from unitctl.registry import codec
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.etcd import EtcdCluster, etcd_cluster, free_port

pytestmark = pytest.mark.etcd

HELLO = "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/sleep 1000\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    if shutil.which(os.environ.get("UNITCTL_ETCD_BIN", "etcd")) is None:
        pytest.fail("etcd is not installed: run scripts/install-deps.sh")
    with etcd_cluster(1) as c:
        yield c


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    # a fresh Session per call: nothing injected, the CLI connects to etcd itself
    res = CliRunner().invoke(cli, list(args), obj=Session(), env=env)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return Result(res.exit_code, res.stdout, res.stderr)


@pytest.fixture
def prefix() -> str:
    return f"/cli-{uuid.uuid4().hex[:10]}/"


def test_round_trip_through_endpoint(cluster: EtcdCluster, prefix: str, tmp_path: object,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(str(tmp_path))
    with open("hello.service", "w", encoding="utf-8") as f:
        f.write(HELLO)
    base = ["--endpoint", cluster.endpoint, "--etcd-key-prefix", prefix]
    r = run(*base, "submit", "hello.service")
    assert (r.code, r.out, r.err) == (0, "Unit hello.service inactive\n", "")
    r = run(*base, "list-unit-files", "--no-legend")
    short = UnitFile.parse(HELLO).hash()[:7]
    assert (r.code, r.out) == (0, f"hello.service\t{short}\tinactive\tinactive\t-\n")
    r = run(*base, "cat", "hello")
    assert (r.code, r.out) == (0, HELLO)
    r = run(*base, "start", "--no-block", "hello")
    assert (r.code, r.out) == (0, "Triggered unit hello.service start\n")
    r = run(*base, "destroy", "hello")
    assert (r.code, r.out) == (0, "Destroyed hello.service\n")
    r = run(*base, "list-unit-files")
    assert (r.code, r.out) == (0, "UNIT\tHASH\tDSTATE\tSTATE\tTARGET\n")
    r = run(*base, "cat", "hello")
    assert r.code == 3 and r.err == "Error: Unit hello.service not found\n"


def test_endpoint_from_environment(cluster: EtcdCluster, prefix: str, tmp_path: object,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(str(tmp_path))
    with open("env.service", "w", encoding="utf-8") as f:
        f.write(HELLO)
    env = {"UNITCTL_ENDPOINT": cluster.endpoint, "UNITCTL_ETCD_KEY_PREFIX": prefix}
    assert run("submit", "env.service", env=env).code == 0
    r = run("list-unit-files", "--fields", "unit,dstate", "--no-legend", env=env)
    assert (r.code, r.out) == (0, "env.service\tinactive\n")
    # another prefix is another cluster: nothing there
    r = run("list-unit-files", "--no-legend", env={**env, "UNITCTL_ETCD_KEY_PREFIX": "/other/"})
    assert (r.code, r.out) == (0, "")


def test_unreachable_etcd_is_one_line_exit_5_quickly() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    r = run("--endpoint", endpoint, "--request-timeout", "1", "list-units")
    elapsed = time.monotonic() - t0
    assert r.code == 5
    assert r.err.startswith(f"Error: cannot reach etcd at {endpoint}: ")
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert r.out == ""
    assert elapsed < 5


def test_blocking_start_watches_etcd(cluster: EtcdCluster, prefix: str, tmp_path: object,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(str(tmp_path))
    for name in ("placed", "stuck"):
        with open(f"{name}.service", "w", encoding="utf-8") as f:
            f.write(HELLO)
    m1 = "113f16a7" + "1" * 24
    digest = UnitFile.parse(HELLO).hash()

    async def fake_engine() -> None:
        reg = Registry(await EtcdKV.connect(EtcdConfig(endpoints=tuple(cluster.endpoints))),
                       prefix)
        try:
            await reg.register_machine(Machine(m1, "10.0.0.1"), 0)
            await reg.kv.put(reg.keys.placement("placed.service"), m1.encode())
            await reg.put_state(UnitState("placed.service", m1, "loaded", "active", "running",
                                          digest), 0)
            await reg.kv.put(reg.keys.explanation("stuck.service"),
                             codec.encode_explanation({m1: "conflicts with placed.service"}))
        finally:
            await reg.kv.close()

    asyncio.run(fake_engine())
    base = ["--endpoint", cluster.endpoint, "--etcd-key-prefix", prefix]
    r = run(*base, "start", "placed")
    assert (r.code, r.out) == (0, "Unit placed.service inactive\n"
                                  "Unit placed.service launched on 113f16a7.../10.0.0.1\n")
    t0 = time.monotonic()
    r = run(*base, "start", "--block-attempts", "2", "stuck")
    assert r.code == 7
    assert r.err.splitlines() == [
        "Unit stuck.service cannot be placed:",
        "  113f16a7...: conflicts with placed.service",
        "Error: Unit stuck.service cannot be placed: 113f16a7...: conflicts with placed.service"]
    assert 1.5 < time.monotonic() - t0 < 6
