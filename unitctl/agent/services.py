"""This machine's service records (:mod:`unitctl.registry.services`), kept true.

A unit scheduled here has a record ``services/<name>/<machine>`` while systemd
reports it ``active`` and, when it has a health check, while that check says
``healthy`` (a ``starting`` or ``unhealthy`` instance is left out). Records
are written under the machine's lease, so they vanish with a lost machine; a
unit that stops, leaves the schedule or turns unhealthy has its record
deleted at once. Every change of a state, of a health or of the schedule pokes
the publisher (:meth:`ServicePublisher.poke`); one loop compares what should be
published with what was, and writes only the difference, in one transaction
per burst (:meth:`~unitctl.registry.services.ServiceStore.write_changes`). A new lease (after
an expiry) starts from nothing: the old records went with the old lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from unitctl.errors import RegistryError
from unitctl.loop import checkpoint
from unitctl.model import Machine, ScheduleEntry
from unitctl.registry.services import ServiceRecord, ServiceStore, service_name

from .ports import SystemdState

log = logging.getLogger("unitctl.agent.services")

#: health values that keep a record out (the unit has a check and is not healthy)
NOT_READY = frozenset({"starting", "unhealthy"})


def wanted_records(machine: Machine, schedule: Mapping[str, ScheduleEntry],
                   states: Mapping[str, SystemdState],
                   health: Callable[[str], str]) -> dict[str, ServiceRecord]:
    """service → the record this machine should publish for it."""
    out: dict[str, ServiceRecord] = {}
    for name, entry in schedule.items():
        service = service_name(name)
        state = states.get(name)
        if not service or "/" in service or state is None or state.active != "active":
            continue
        if health(name) in NOT_READY:
            continue
        out[service] = ServiceRecord(name, machine.id, machine.public_ip, dict(entry.ports))
    return out


class ServicePublisher:
    """Publishes and withdraws this machine's service records."""

    def __init__(self, store: ServiceStore, machine: Machine, lease: Callable[[], int],
                 wanted: Callable[[], dict[str, ServiceRecord]]) -> None:
        self.store = store
        self.machine = machine
        self.lease = lease
        self.wanted = wanted
        #: service → the record last written (under :attr:`_lease`)
        self.published: dict[str, ServiceRecord] = {}
        self._lease = 0
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Something a record depends on changed: look again."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            checkpoint()
            await self._wake.wait()
            await asyncio.sleep(0.005)  # let a burst of state changes gather into one txn
            self._wake.clear()
            try:
                await self.sync()
            except RegistryError as exc:
                log.warning("agent: cannot publish service records: %s", exc)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def sync(self) -> None:
        """Write the difference between the wanted records and the published ones."""
        lease = self.lease()
        if not lease:
            return
        if lease != self._lease:  # the old records went with the old lease
            self.published, self._lease = {}, lease
        wanted = self.wanted()
        gone = [s for s in self.published if s not in wanted]
        changed = {s: r for s, r in wanted.items() if self.published.get(s) != r}
        if not gone and not changed:
            return
        await self.store.write_changes(self.machine.id, gone, changed.values(), lease)
        for service in gone:
            del self.published[service]
            log.info("agent: service %s withdrawn", service)
        for service, record in changed.items():
            self.published[service] = record
            log.info("agent: service %s published at %s %s", service, record.address,
                     dict(record.ports))
