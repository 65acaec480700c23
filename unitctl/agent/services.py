"""This machine's service records (:mod:`unitctl.registry.services`), kept true.

A unit scheduled here has a record ``services/<name>/<machine>`` while systemd
reports it ``active`` and, when it has a health check, while that check says
``healthy`` (a ``starting`` or ``unhealthy`` instance is left out). Records
are written under the machine's lease, so they vanish with a lost machine; a
unit that stops, leaves the schedule or turns unhealthy has its record
deleted at once. Every change of a state, of a health or of the schedule pokes
the publisher (:meth:`ServicePublisher.poke`); one loop compares what should be
published with what was, and writes only the difference, in one transaction
per burst: in the same transaction as the burst's states when the state
publisher writes one (:meth:`~unitctl.registry.registry.Registry.publish_states`),
else on its own (:meth:`~unitctl.registry.services.ServiceStore.write_changes`).
A new lease (after an expiry) starts from nothing: the old records went with
the old lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from unitctl.errors import RegistryError
from unitctl.loop import checkpoint
from unitctl.model import Machine, ScheduleEntry
from unitctl.registry.services import (
    ServiceChanges,
    ServiceRecord,
    ServiceStore,
    service_name,
)

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
    """Publishes and withdraws this machine's service records.

    The state publisher carries the records' changes in its own transaction
    (:meth:`changes`, :meth:`written`, under :attr:`lock`): a burst of state
    changes costs one write, not two. The publisher's own loop writes what no
    state write carried: a poke while ``carrier_busy()`` (the state publisher
    has reports queued or in flight) is left to that write, which pokes again
    when it ends.
    """

    def __init__(self, store: ServiceStore, machine: Machine, lease: Callable[[], int],
                 wanted: Callable[[], dict[str, ServiceRecord]],
                 carrier_busy: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.machine = machine
        self.lease = lease
        self.wanted = wanted
        self.carrier_busy = carrier_busy
        #: service → the record last written (under :attr:`_lease`)
        self.published: dict[str, ServiceRecord] = {}
        #: held from :meth:`changes` to :meth:`written` (one writer of the records at a time)
        self.lock = asyncio.Lock()
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
            if self.carrier_busy():
                continue  # the state write carries it, and pokes when it ends
            try:
                await self.sync()
            except RegistryError as exc:
                log.warning("agent: cannot publish service records: %s", exc)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def sync(self) -> None:
        """Write the difference between the wanted records and the published ones."""
        async with self.lock:
            changes = self.changes()
            if changes is None:
                return
            await self.store.write_changes(self.machine.id, changes.withdrawn,
                                           changes.published, self._lease)
            self.written(changes)

    def changes(self) -> ServiceChanges | None:
        """The difference to write now under the current lease (None: nothing, or
        unregistered). Call with :attr:`lock` held, and :meth:`written` after the
        write succeeded."""
        lease = self.lease()
        if not lease:
            return None
        if lease != self._lease:  # the old records went with the old lease
            self.published, self._lease = {}, lease
        wanted = self.wanted()
        gone = tuple(s for s in self.published if s not in wanted)
        changed = tuple(r for s, r in wanted.items() if self.published.get(s) != r)
        return ServiceChanges(gone, changed) if gone or changed else None

    def written(self, changes: ServiceChanges) -> None:
        """``changes`` (from :meth:`changes`) are in etcd."""
        for service in changes.withdrawn:
            self.published.pop(service, None)
            log.info("agent: service %s withdrawn", service)
        for record in changes.published:
            self.published[record.service] = record
            log.info("agent: service %s published at %s %s", record.service, record.address,
                     dict(record.ports))
