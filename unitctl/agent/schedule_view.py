"""This machine's schedule and the unit bodies it names, kept current with few reads.

The agent's hot path (a schedule change → units loaded and started) costs etcd
no request per unit on the agent's side but the state it publishes:

* :meth:`ScheduleView.read` reads the whole schedule (at start, after a watch
  ends, at each resync) and returns the revision of the read;
* :meth:`ScheduleView.follow` watches from a revision and applies each batch of
  the watch's own events to :attr:`ScheduleView.entries` (no read per change;
  :meth:`~unitctl.registry.schedules.ScheduleStore.apply_events`), then yields
  the batch (for the loop's wake-up). :attr:`entries` is replaced, never
  changed in place: a snapshot a caller holds stays as it was; each read and
  each batch is a contact with etcd (``contact``, the session's), and nothing
  else is: a wake-up from a local source (a retry timer, a unit's state)
  reconciles with the entries held, without counting as etcd answering;
* :meth:`ScheduleView.desired` turns the entries into
  :class:`~.reconcile.DesiredUnit`\\ s; the bodies not cached yet are read in
  one batch (:meth:`~unitctl.registry.registry.Registry.get_bodies_by_hash`),
  and the cache (:attr:`ScheduleView.bodies`) keeps only the bodies the current
  schedule names. A unit whose body is missing or does not parse is left out
  (logged), and so is one this machine refuses (:func:`.reconcile.accept`).
  A global unit refused for lacking metadata is checked once more against the
  metadata set through the API (``metadata/<machine>/``, read only then): the
  engine places with those values laid over the agent's, so the agent must too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping

from unitctl.dependencies import parse as parse_dependencies
from unitctl.errors import InvalidUnitError
from unitctl.model import Machine, ScheduleEntry
from unitctl.registry.dynmeta import merged
from unitctl.registry.kv import Event
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl.xfleet import requirements

from .reconcile import LACKS_METADATA, DesiredUnit, accept

log = logging.getLogger("unitctl.agent")


class ScheduleView:
    """One machine's schedule entries and the bodies they name."""

    def __init__(self, registry: Registry, machine_id: str,
                 contact: Callable[[], None] = lambda: None) -> None:
        self.registry = registry
        self.machine_id = machine_id
        #: called on each answer from etcd (a read, a watch batch): the session's contact
        self.contact = contact
        #: unit name -> its entry in this machine's schedule (replaced on each change)
        self.entries: dict[str, ScheduleEntry] = {}
        #: body hash -> unit text, for the hashes :attr:`entries` names
        self.bodies: dict[str, str] = {}

    async def read(self) -> int:
        """Read the whole schedule; return the revision of the read."""
        self.entries, rev = await self.registry.get_schedule(self.machine_id)
        self.contact()
        return rev

    async def follow(self, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch the schedule from ``start_rev``; apply each batch, then yield it."""
        async for batch in self.registry.watch_schedule(self.machine_id, start_rev):
            self.entries = self.registry.schedules.apply_events(self.machine_id, self.entries,
                                                                batch)
            self.contact()
            yield batch

    async def desired(self, machine: Machine,
                      entries: Mapping[str, ScheduleEntry]) -> dict[str, DesiredUnit]:
        """The units of ``entries`` this machine runs, with their parsed files."""
        await self._fetch(entries)
        out: dict[str, DesiredUnit] = {}
        for name, entry in entries.items():
            text = self.bodies.get(entry.hash)
            if text is None:
                continue
            try:
                unit = UnitFile.parse(text)
                req = requirements(name, unit)
            except InvalidUnitError as exc:
                log.error("agent: unit %s is invalid: %s", name, exc)
                continue
            out[name] = DesiredUnit(name, entry.hash, entry.desired, req,
                                    parse_dependencies(name, unit), entry.ports)
        for name, why in (await self._refused(machine, out)).items():
            log.warning("agent: not loading %s: %s", name, why)
            del out[name]
        return out

    async def _refused(self, machine: Machine, units: Mapping[str, DesiredUnit]
                       ) -> dict[str, str]:
        """:func:`.reconcile.accept`'s refusals, with the API-set metadata laid over the
        machine's own when a unit lacks metadata (the engine's view of this machine)."""
        refused = accept(machine, units)
        if not any(why.startswith(LACKS_METADATA) for why in refused.values()):
            return refused
        patched = await self.registry.metadata.of(machine.id)
        if not patched:
            return refused
        return accept(merged([machine], {machine.id: patched})[0], units)

    async def _fetch(self, entries: Mapping[str, ScheduleEntry]) -> None:
        """Drop the bodies ``entries`` no longer name; read the missing ones in one batch."""
        wanted = {e.hash for e in entries.values()}
        self.bodies = {sha: text for sha, text in self.bodies.items() if sha in wanted}
        missing = sorted(wanted - self.bodies.keys())
        if missing:
            self.bodies.update(await self.registry.get_bodies_by_hash(missing))
