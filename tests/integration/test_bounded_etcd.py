"""Bounded reads and writes, and poison keys, on a real etcd (issue 10, defects 3 and 6).

The real CLI, Client, Registry, Engine and Agent (fake systemd) run over a
real single-member etcd with its default limits: 1.5 MiB per request and
gRPC's 4 MiB reply limit on the client before the limits were set on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from tests.conftest import KVFactory
from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.engine.mirror import Mirror, read_view
from unitctl.model import DesiredState, ScheduleEntry, UnitRecord
from unitctl.registry import codec
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.kv import KV, Put
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import InProcessCluster, eventually

pytestmark = pytest.mark.etcd

SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


#: The adapter the agents, the engine and the test's own registry use: GatewayKV
#: (the daemon's) and EtcdKV (bench, API server), set per test by ``agents_adapter``.
ADAPTER: list[type[GatewayKV] | type[EtcdKV]] = [GatewayKV]


@pytest.fixture(autouse=True, params=["gateway", "etcd"])
def agents_adapter(request: pytest.FixtureRequest) -> None:
    ADAPTER[0] = GatewayKV if request.param == "gateway" else EtcdKV


def etcd_kv(etcd: EtcdCluster) -> KVFactory:
    async def make() -> KV:
        kv: KV = await ADAPTER[0].connect(EtcdConfig(endpoints=tuple(etcd.endpoints),
                                                     timeout=5))
        return kv
    return make


async def unitctl(etcd: EtcdCluster, prefix: str, *args: str, cwd: str = ".") -> Result:
    """The real CLI in a thread (it runs its own event loop), connecting to etcd itself."""
    def invoke() -> Result:
        argv = ["--endpoint", etcd.endpoints[0], "--etcd-key-prefix", prefix, *args]
        old = os.getcwd()
        os.chdir(cwd)
        try:
            res = CliRunner().invoke(cli, argv, obj=Session())
        finally:
            os.chdir(old)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return Result(res.exit_code, res.stdout, res.stderr)
    return await asyncio.to_thread(invoke)


def run_cluster(etcd: EtcdCluster, prefix: str, machines: int,
                body: Callable[[InProcessCluster, Registry], Awaitable[None]],
                timeout: float = 240) -> None:
    async def go() -> None:
        make = etcd_kv(etcd)
        sim = InProcessCluster(make, prefix, ttl=5)
        reg = Registry(await make(), prefix)
        await reg.ensure_schema()
        try:
            for i in range(1, machines + 1):
                await sim.add(i)
            await body(sim, reg)
        finally:
            await sim.close()
            await reg.close()
    asyncio.run(asyncio.wait_for(go(), timeout))


def big_unit(i: int, size: int) -> str:
    """A distinct unit file of about ``size`` bytes (a long Description)."""
    pad = f"{i:04d}" + "x" * size
    return f"[Unit]\nDescription=big {pad[:size]}\n\n{SERVICE}"


def test_fifty_distinct_900k_units_submitted_placed_and_listed(
        etcd: EtcdCluster, key_prefix: str, tmp_path: object) -> None:
    """50 x 900 KB (45 MB of bodies): submit batches each under etcd's 1.5 MiB
    request limit, the engine reads bodies in bounded batches and places every
    unit, and list-unit-files reads them without hitting the gRPC reply limit."""
    work = str(tmp_path)
    names = [f"big{i:02d}.service" for i in range(50)]
    for i, name in enumerate(names):
        with open(os.path.join(work, name), "w", encoding="utf-8") as f:
            f.write(big_unit(i, 900_000))

    async def body(sim: InProcessCluster, reg: Registry) -> None:
        r = await unitctl(etcd, key_prefix, "submit", *names, cwd=work)
        assert r.code == 0, r.err
        r = await unitctl(etcd, key_prefix, "start", "--no-block", *names, cwd=work)
        assert r.code == 0, r.err
        await eventually(lambda: len(sim.running()) == 50, timeout=120)
        assert all(len(on) == 1 for on in sim.running().values())
        r = await unitctl(etcd, key_prefix, "list-unit-files", "--no-legend", cwd=work)
        assert r.code == 0, r.err
        rows = [line.split("\t") for line in r.out.splitlines()]
        assert [row[0] for row in rows] == names
        assert {row[2] for row in rows} == {"launched"}
    run_cluster(etcd, key_prefix, 2, body)


def test_mirror_and_view_read_100k_schedule_entries(etcd: EtcdCluster,
                                                     key_prefix: str) -> None:
    """100,000 schedule entries (about 27 global units on 1,000 machines x 4): the
    engine's mirror and its one-shot view read them all, in pages."""
    async def go() -> None:
        reg = Registry(await etcd_kv(etcd)(), key_prefix)
        try:
            await reg.ensure_schema()
            value = codec.encode_entry(ScheduleEntry("g.service", "a" * 40,
                                                     DesiredState.LAUNCHED))
            keys = [reg.keys.scheduled(f"{m:032x}", f"global{u:03d}.service")
                    for m in range(1000) for u in range(100)]
            puts = [Put(k, value) for k in keys]
            sem = asyncio.Semaphore(8)

            async def write(i: int) -> None:
                async with sem:
                    await reg.kv.txn([], puts[i:i + 120])
            await asyncio.gather(*(write(i) for i in range(0, len(puts), 120)))
            mirror = Mirror(reg)
            await mirror.start()
            try:
                assert sum(len(e) for e in mirror.schedules.values()) == 100_000
            finally:
                await mirror.close()
            view = await read_view(reg)
            assert sum(len(e) for e in view.schedules.values()) == 100_000
        finally:
            await reg.close()
    asyncio.run(asyncio.wait_for(go(), 240))


async def submit(reg: Registry, name: str, text: str = SERVICE) -> None:
    uf = UnitFile.parse(text)
    await reg.create_unit(UnitRecord(name, uf.hash(), DesiredState.LAUNCHED), uf.serialize())


def test_poison_unit_key_is_skipped_listed_invalid_and_destroyable(
        etcd: EtcdCluster, key_prefix: str) -> None:
    """units/future.service with a desired state from a newer client: the engine
    still places good.service, the lists exit 0 and name it, destroy removes it."""
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        future = reg.keys.unit("future.service")
        await reg.kv.put(future, json.dumps({"desired": "paused", "hash": "ab" * 20}).encode())
        await reg.kv.put(reg.keys.scheduled(next(iter(sim.machines)), "future.service"),
                         b'{"desired": 7}')
        await submit(reg, "good.service")
        await eventually(lambda: "good.service" in sim.running(), timeout=20)
        for verb in ("list-units", "list-unit-files"):
            r = await unitctl(etcd, key_prefix, verb)
            assert r.code == 0, r.err
            assert "future.service is invalid (bad desired state)" in r.err
        r = await unitctl(etcd, key_prefix, "list-unit-files", "--no-legend")
        assert r.out.startswith("good.service\t")
        r = await unitctl(etcd, key_prefix, "destroy", "--no-block", "future.service")
        assert (r.code, r.out) == (0, "Destroyed future.service\n"), r.err
        assert await reg.kv.get(future) is None
        r = await unitctl(etcd, key_prefix, "list-unit-files")
        assert r.code == 0 and "invalid" not in r.err
        await submit(reg, "after.service")  # the engine is still at work
        await eventually(lambda: "after.service" in sim.running(), timeout=20)
    run_cluster(etcd, key_prefix, 2, body, timeout=90)


def test_corrupt_machine_key_never_stops_peer_watch_or_engine(
        etcd: EtcdCluster, key_prefix: str) -> None:
    """A corrupt machines/ key: the peer watch keeps following membership and the
    engine keeps placing units, on every leadership."""
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await reg.kv.put(reg.keys.machine("f" * 32), b"{not json")
        await reg.kv.put(reg.keys.machine("e" * 32), b'{"id": 5, "metadata": []}')
        first = next(iter(sim.machines.values()))
        await submit(reg, "one.service")
        await eventually(lambda: "one.service" in sim.running(), timeout=20)
        third = await sim.add(3)
        await eventually(lambda: third.machine.id in first.agent.peers, timeout=20)
        assert first.machine.id in third.agent.peers
        r = await unitctl(etcd, key_prefix, "list-machines", "--no-legend")
        assert r.code == 0 and len(r.out.splitlines()) == 3, r.err
        leader = sim.leader()
        assert leader is not None
        await sim.kill(leader)  # a new leader reads the corrupt key on taking over
        await submit(reg, "two.service")
        await eventually(lambda: "two.service" in sim.running(), timeout=30)
    run_cluster(etcd, key_prefix, 2, body, timeout=120)


def test_agent_body_cache_keeps_only_the_current_schedule(etcd: EtcdCluster,
                                                          key_prefix: str) -> None:
    """Each schedule refresh drops the bodies no scheduled unit names (defect 9)."""
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        (machine,) = sim.machines.values()
        texts = [f"[Unit]\nDescription=v{i}\n\n{SERVICE}" for i in range(3)]
        await submit(reg, "a.service", texts[0])
        await eventually(lambda: "a.service" in sim.running(), timeout=20)
        for text in texts[1:]:
            uf = UnitFile.parse(text)
            await reg.create_unit(UnitRecord("a.service", uf.hash(), DesiredState.LAUNCHED),
                                  uf.serialize(), replace=True)
            sha = uf.hash()
            await eventually(lambda sha=sha: machine.agent.schedule["a.service"].hash == sha
                             and set(machine.agent.bodies) == {sha}, timeout=20)
        await reg.destroy_unit("a.service")
        await eventually(lambda: "a.service" not in machine.agent.schedule, timeout=20)
        assert machine.agent.bodies == {}
    run_cluster(etcd, key_prefix, 1, body, timeout=90)
