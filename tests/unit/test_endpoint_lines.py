"""``start``'s endpoint lines, on a Registry over the in-memory KV: the machines are
read only when a unit holds host ports, and a start of a few units reads their own
schedule entries, never the whole schedule of their machine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from unitctl.client.endpoints import PER_UNIT_READS, endpoint_lines
from unitctl.model import DesiredState, Machine, ScheduleEntry
from unitctl.registry import codec
from unitctl.registry.kv import Range
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry

MID = "a" * 32


class CountingKV(MemoryKV):
    """The in-memory KV, recording every prefix read."""

    def __init__(self) -> None:
        super().__init__()
        self.prefixes: list[str] = []

    async def get_prefix(self, prefix: str) -> Range:
        self.prefixes.append(prefix)
        return await super().get_prefix(prefix)


def _lines(names: list[str], ports: tuple[tuple[str, int], ...], registered: bool = True,
           others: int = 50) -> tuple[list[str], CountingKV]:
    async def go() -> tuple[list[str], CountingKV]:
        kv = CountingKV()
        reg = Registry(kv)
        if registered:
            await kv.put(reg.keys.machine(MID), codec.encode_machine(Machine(MID, "10.0.0.2")))
        entries = {n: ports for n in names} | {f"other{i}.service": () for i in range(others)}
        for name, held in entries.items():
            await kv.put(reg.keys.placement(name), MID.encode())
            entry = ScheduleEntry(name, "h", DesiredState.LAUNCHED, held)
            await kv.put(reg.keys.scheduled(MID, name), codec.encode_entry(entry))
        kv.prefixes.clear()
        return await endpoint_lines(reg, names), kv
    return asyncio.run(go())


def test_a_unit_without_ports_reads_no_machines() -> None:
    lines, kv = _lines(["web.service"], ())
    assert lines == []
    assert not [p for p in kv.prefixes if "/machines/" in p]


def test_a_unit_with_ports_names_its_host() -> None:
    lines, _ = _lines(["web.service"], (("PORT", 31000),))
    assert lines == ["Unit web.service on 10.0.0.2: PORT=31000"]


def test_a_machine_that_is_not_registered_prints_nothing() -> None:
    assert _lines(["web.service"], (("PORT", 31000),), registered=False)[0] == []


@pytest.mark.parametrize("count", [1, PER_UNIT_READS, PER_UNIT_READS + 1])
def test_a_few_units_read_their_own_entries_and_many_the_schedule(count: int) -> None:
    names = [f"w{i}.service" for i in range(count)]
    lines, kv = _lines(names, (("PORT", 31000),))
    assert sorted(lines) == sorted(f"Unit {n} on 10.0.0.2: PORT=31000" for n in names)
    schedule = Registry(MemoryKV()).keys.schedule(MID)
    whole: Any = [p for p in kv.prefixes if p == schedule]
    assert whole == ([] if count <= PER_UNIT_READS else [schedule])
