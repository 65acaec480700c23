"""``start``'s endpoint lines: the machines are read only when a unit holds host ports."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from unitctl.client.endpoints import endpoint_lines
from unitctl.model import DesiredState, Machine, ScheduleEntry
from unitctl.registry.registry import Registry

MID = "a" * 32


class FakeRegistry:
    """Placements, schedules and machines in memory; counts the machine reads."""

    def __init__(self, ports: tuple[tuple[str, int], ...], machines: list[Machine]) -> None:
        self.keys = SimpleNamespace(placement=lambda name: f"/p/{name}")
        self.schedule = {"web.service": ScheduleEntry("web.service", "h", DesiredState.LAUNCHED,
                                                      ports)}
        self.machines = machines
        self.machine_reads = 0

    async def records(self, key: str) -> tuple[list[Any], int]:
        return [SimpleNamespace(key=key, value=MID)], 1

    async def get_schedule(self, machine_id: str) -> tuple[dict[str, ScheduleEntry], int]:
        return (self.schedule if machine_id == MID else {}), 1

    async def list_machines(self) -> list[Machine]:
        self.machine_reads += 1
        return self.machines


def _lines(fake: FakeRegistry) -> list[str]:
    return asyncio.run(endpoint_lines(cast(Registry, fake), ["web.service"]))


def test_a_unit_without_ports_reads_no_machines() -> None:
    fake = FakeRegistry((), [Machine(MID, "10.0.0.2")])
    assert (_lines(fake), fake.machine_reads) == ([], 0)


def test_a_unit_with_ports_names_its_host() -> None:
    fake = FakeRegistry((("PORT", 31000),), [Machine(MID, "10.0.0.2")])
    assert _lines(fake) == ["Unit web.service on 10.0.0.2: PORT=31000"]


def test_a_machine_that_is_not_registered_prints_nothing() -> None:
    assert _lines(FakeRegistry((("PORT", 31000),), [])) == []
