"""How many times the client reaches the store: a command reads each unit's key
once, many new units go in a few transactions, and a waiting client re-reads
nothing for events about keys it does not wait on."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest
from click.testing import CliRunner

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.client import Client
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState
from unitctl.registry.kv import Compare, KeyValue, Op, Range
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

M1 = "113f16a7" + "1" * 24
HELLO = "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/sleep 1000\n"
TEMPLATE = "[Service]\nExecStart=/bin/echo %i\n"


class CountingKV(MemoryKV):
    """A MemoryKV that counts reads per key (gets) and per prefix, and transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: Counter[str] = Counter()
        self.prefixes: Counter[str] = Counter()
        self.txns = 0
        self.many: list[int] = []  # the number of keys of each get_many

    async def get(self, key: str) -> KeyValue | None:
        self.gets[key] += 1
        return await super().get(key)

    async def get_prefix(self, prefix: str) -> Range:
        self.prefixes[prefix] += 1
        return await super().get_prefix(prefix)

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        self.many.append(len(keys))
        return await super().get_many(keys)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        self.txns += 1
        return await super().txn(compares, success, failure)

    def reset(self) -> None:
        self.gets.clear()
        self.prefixes.clear()
        self.txns = 0
        self.many.clear()


@pytest.fixture
def kv(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> CountingKV:
    monkeypatch.chdir(tmp_path)
    store = CountingKV()
    asyncio.run(Registry(store).ensure_schema())
    store.reset()
    return store


def invoke(kv: CountingKV, *args: str) -> str:
    res = CliRunner().invoke(cli, list(args), obj=Session(registry=Registry(kv)))
    assert res.exit_code == 0, res.output
    return res.stdout


def test_start_reads_the_unit_key_once_before_the_registry_write(kv: CountingKV) -> None:
    with open("hello.service", "w", encoding="utf-8") as f:
        f.write(HELLO)
    assert invoke(kv, "start", "--no-block", "hello.service") == \
        "Triggered unit hello.service start\n"
    # one read by the client; the desired state's compare-and-swap is on the value it
    # read and wrote (Registry.set_desired_many's known records), not on a re-read
    assert kv.gets["/unitctl/units/hello.service"] == 1
    assert not kv.prefixes["/unitctl/units/"]


def test_many_instances_are_created_in_batches(kv: CountingKV) -> None:
    with open("svc@.service", "w", encoding="utf-8") as f:
        f.write(TEMPLATE)
    names = [f"svc@{i}.service" for i in range(40)]
    invoke(kv, "submit", *names)
    assert kv.prefixes["/unitctl/units/"] == 1  # all records in one read
    # the only unit key read alone: the (absent) registry template, once
    assert {k: n for k, n in kv.gets.items() if k.startswith("/unitctl/units/")} == \
        {"/unitctl/units/svc@.service": 1}
    assert kv.txns == 2  # 40 units, 30 per transaction
    kv.reset()
    invoke(kv, "start", "--no-block", *names)
    assert kv.prefixes["/unitctl/units/"] == 1
    # no unit key read alone: the states go in batched compare-and-swaps on the
    # values just read (Registry.set_desired_many), not one read and write each
    assert not any(kv.gets[f"/unitctl/units/{n}"] for n in names)
    assert kv.txns <= 2


def test_instances_read_the_registry_template_once(kv: CountingKV) -> None:
    tmpl = UnitFile.parse(TEMPLATE)
    asyncio.run(Registry(kv).create_unit(UnitRecord("svc@.service", tmpl.hash(),
                                                    DesiredState.INACTIVE), tmpl.serialize()))
    kv.reset()
    invoke(kv, "submit", *[f"svc@{i}.service" for i in range(5)])
    assert kv.gets["/unitctl/units/svc@.service"] == 1
    assert kv.gets[f"/unitctl/bodies/{tmpl.hash()}"] == 1


def test_a_waiting_client_ignores_other_units(kv: CountingKV) -> None:
    reg = Registry(kv)
    hello = UnitFile.parse(HELLO)

    async def go() -> None:
        await reg.register_machine(Machine(M1, "10.0.0.1"), 0)
        await reg.create_unit(UnitRecord("hello.service", hello.hash(), DesiredState.LAUNCHED),
                              hello.serialize())
        client = Client(reg, out=lambda s: None, err=lambda s: None, attempt_seconds=30)

        async def later() -> None:
            await asyncio.sleep(0.05)
            for i in range(30):  # other units' reports: no wake-up, no read
                await reg.put_state(UnitState(f"other{i}.service", M1, "loaded", "active",
                                              "running", "x"), 0)
            await asyncio.sleep(0.05)
            reads_before = sum(kv.prefixes.values())
            await asyncio.sleep(0.05)
            assert sum(kv.prefixes.values()) == reads_before
            await reg.kv.put(reg.keys.placement("hello.service"), M1.encode())
            await asyncio.sleep(0.05)  # the placement and the report wake the client apart
            await reg.put_state(UnitState("hello.service", M1, "loaded", "active", "running",
                                          hello.hash()), 0)

        task = asyncio.create_task(later())
        kv.reset()
        await asyncio.wait_for(client.wait_for(["hello.service"],
                                               client.reached(DesiredState.LAUNCHED), 1), 10)
        await task
        # the unit's own keys to start (no other unit's), then only the keys its events named
        assert kv.prefixes["/unitctl/units/"] == 0
        assert kv.gets["/unitctl/units/hello.service"] == 1
        assert kv.prefixes["/unitctl/machines/"] <= 2
        assert kv.prefixes["/unitctl/states/"] == 0
        assert kv.prefixes["/unitctl/states/hello.service/"] <= 3

    asyncio.run(go())



async def _placed_and_active(reg: Registry, name: str, unit: UnitFile) -> None:
    """What the engine and M1's agent write once ``name`` runs: its placement, then
    its active state."""
    await reg.kv.put(reg.keys.placement(name), M1.encode())
    await reg.put_state(UnitState(name, M1, "loaded", "active", "running", unit.hash()), 0)


async def _wait_launched(kv: CountingKV, client: Client, later: Coroutine[Any, Any, None]
                         ) -> None:
    """Count from now, run ``later`` beside a wait for hello.service to be launched."""
    task = asyncio.create_task(later)
    kv.reset()
    await asyncio.wait_for(client.wait_for(["hello.service"],
                                           client.reached(DesiredState.LAUNCHED), 1), 10)
    await task


def test_a_waiting_client_reads_only_its_units_keys(kv: CountingKV) -> None:
    """With 200 other units placed and reporting, waiting for one reads no other
    unit's record, placement or state (the old waiter read every prefix, twice)."""
    reg = Registry(kv)
    hello = UnitFile.parse(HELLO)

    async def go() -> None:
        await reg.register_machine(Machine(M1, "10.0.0.1"), 0)
        for i in range(200):
            name = f"other{i}.service"
            await reg.create_unit(UnitRecord(name, hello.hash(), DesiredState.LAUNCHED),
                                  hello.serialize())
            await _placed_and_active(reg, name, hello)
        await reg.create_unit(UnitRecord("hello.service", hello.hash(), DesiredState.LAUNCHED),
                              hello.serialize())
        client = Client(reg, out=lambda s: None, err=lambda s: None, attempt_seconds=30)

        async def later() -> None:
            await asyncio.sleep(0.05)
            await _placed_and_active(reg, "hello.service", hello)

        await _wait_launched(kv, client, later())
        whole = {p: n for p, n in kv.prefixes.items() if p in (
            "/unitctl/units/", "/unitctl/placements/", "/unitctl/states/", "/unitctl/explain/")}
        assert whole == {}
        assert set(kv.prefixes) <= {"/unitctl/version", "/unitctl/machines/",
                                    "/unitctl/placements/hello.service",
                                    "/unitctl/states/hello.service/"}

    asyncio.run(go())


def test_a_broken_watch_is_reopened_after_a_full_read() -> None:
    kv = CountingKV()
    reg = Registry(kv)
    hello = UnitFile.parse(HELLO)

    async def go() -> None:
        await reg.register_machine(Machine(M1, "10.0.0.1"), 0)
        await reg.create_unit(UnitRecord("hello.service", hello.hash(), DesiredState.LAUNCHED),
                              hello.serialize())
        client = Client(reg, out=lambda s: None, err=lambda s: None, attempt_seconds=2)

        async def later() -> None:
            await asyncio.sleep(0.05)
            kv.break_watches()
            await asyncio.sleep(0.7)  # the waiter waits attempt_seconds / 4, then re-reads
            await _placed_and_active(reg, "hello.service", hello)

        await _wait_launched(kv, client, later())
        # the first read and the one after the break (the unit's own key each time)
        assert kv.gets["/unitctl/units/hello.service"] == 2

    asyncio.run(go())


def test_list_unit_files_reads_distinct_bodies_a_batch_per_round_trip(kv: CountingKV) -> None:
    """20 units with 20 different bodies: one round trip for all of them, not 20 gets."""
    names = [f"u{i}.service" for i in range(20)]
    for i, name in enumerate(names):
        with open(name, "w", encoding="utf-8") as f:
            f.write(HELLO.replace("Hello", f"Hello {i}"))
    invoke(kv, "submit", *names)
    kv.reset()
    out = invoke(kv, "list-unit-files")
    assert all(name in out for name in names)
    assert kv.many == [20]
    assert not [k for k in kv.gets if k.startswith("/unitctl/bodies/")]
