"""The state publisher: this machine's unit states, reported to the registry in order.

Contract:

* :meth:`StatePublisher.report` and :meth:`StatePublisher.drop` only queue (they
  are called from systemd's signal callback and from the executor, never block);
* :meth:`StatePublisher.run` writes the queue in one transaction per burst,
  under the machine's lease, so the states vanish with the machine; within a
  burst the latest state of a unit wins (coalescing); a lone settled report
  (one unit, not activating/deactivating/reloading, after a quiet spell: a
  started unit's ``active``) is written at once, anything else waits
  :data:`GATHER` for the rest of its burst (:func:`gathers`);
* a removal goes through the same queue (``None``), so a late report can never
  overwrite the removal of an unloaded unit's state; a unit whose file is gone
  by the time its batch is written is removed, whatever was queued;
* a failed write keeps the batch (newer reports win) and retries after 0.5 s;
  a report that comes while a write succeeds is written right after it (it
  used to wait those 0.5 s too: a start's ``active`` that came during the
  write of its ``inactive`` reached etcd half a second late);
* a unit with a failed task (``failures``) is reported with its error and retry
  time, even when it has no file here (a load that failed);
* a unit held back by dependency order is reported with why it waits
  (``waiting``, :mod:`.dependency_watch`);
* a unit with a health check is reported with its health (``health``,
  :mod:`.unit_health`), and again on every change of it;
* with ``services``, each write also carries the service record changes due
  at that moment (:class:`~.services.ServicePublisher`), in the same
  transaction: a started unit's ``active`` and its record land together.

It satisfies :class:`~unitctl.agent.executor.StateSink`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from unitctl.errors import RegistryError
from unitctl.loop import checkpoint
from unitctl.model import UnitState
from unitctl.registry.registry import Registry

from .backoff import UnitFailure
from .ports import SystemdState, UnitManager
from .services import ServicePublisher

log = logging.getLogger("unitctl.agent")

#: Seconds a burst of reports gathers before its transaction.
GATHER = 0.005
#: ActiveStates that are about to change again (the next report follows soon).
TRANSITIONAL = frozenset({"activating", "deactivating", "reloading"})


def gathers(pending: Mapping[str, UnitState | None], quiet: float) -> bool:
    """Whether ``pending`` waits :data:`GATHER` for more reports before its write.

    ``quiet``: seconds since the last write ended when the first of them came.
    One settled state (or one removal) after a quiet spell goes at once; a
    report that follows a write closely (a burst under way), several reports,
    or a transitional state wait.
    """
    if quiet < GATHER or len(pending) != 1:
        return True
    state = next(iter(pending.values()))
    return state is not None and state.active in TRANSITIONAL


class StatePublisher:
    """Coalescing, ordered reports of one machine's unit states."""

    def __init__(self, registry: Registry, units: UnitManager, machine_id: str,
                 lease: Callable[[], int],
                 failures: Callable[[str], UnitFailure | None] = lambda _name: None,
                 waiting: Callable[[str], str] = lambda _name: "",
                 health: Callable[[str], str] = lambda _name: "",
                 services: ServicePublisher | None = None) -> None:
        self.registry = registry
        #: whose record changes ride along in each state write (one transaction)
        self.services = services
        #: a batch is being written
        self.writing = False
        self.health = health
        self.failures = failures
        self.waiting = waiting
        self.units = units
        self.machine_id = machine_id
        #: The current lease (0 = unregistered: nothing is queued).
        self.lease = lease
        self._wake = asyncio.Event()
        self._pending: dict[str, UnitState | None] = {}

    def report(self, name: str, state: SystemdState) -> None:
        """Queue ``name``'s new state (ignored for a unit without a file, or unregistered)."""
        failure = self.failures(name)
        sha = self.units.present().get(name) or (failure.hash if failure else None)
        if sha is None or not self.lease():
            return
        error, retry = (failure.error, failure.retry_wall) if failure else ("", 0.0)
        self._pending[name] = UnitState(name, self.machine_id, state.load, state.active,
                                        state.sub, sha, error, retry, self.waiting(name),
                                        self.health(name))
        self._wake.set()

    def drop(self, name: str) -> None:
        """Queue the removal of ``name``'s state."""
        self._pending[name] = None
        self._wake.set()

    async def report_all(self) -> None:
        """Queue the state of every unit present (after a registration)."""
        for name in self.units.present():
            self.report(name, await self.units.state(name))

    async def _retry_wait(self) -> None:
        """After a failed write: wait before the next try (only then)."""
        await asyncio.sleep(0.5)

    async def _gather(self) -> None:
        """Let a burst of signals gather into one transaction."""
        await asyncio.sleep(GATHER)

    async def run(self) -> None:
        """Write queued states forever, one transaction per burst."""
        loop = asyncio.get_running_loop()
        while True:
            checkpoint()
            ended = loop.time()
            await self._wake.wait()
            if gathers(self._pending, loop.time() - ended):
                await self._gather()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            present = self.units.present()
            batch = {n: (st if n in present or (st and st.error) else None)
                     for n, st in batch.items()}
            try:
                self.writing = True
                await self._write(batch)
            except RegistryError as exc:
                log.warning("agent: cannot report %d unit states: %s", len(batch), exc)
                self._pending = {**batch, **self._pending}
                await self._retry_wait()
                self._wake.set()
            finally:
                self.writing = False
                if self.services is not None:
                    self.services.poke()  # what this write did not carry

    @property
    def busy(self) -> bool:
        """Reports are queued or being written (a state write is coming or under way)."""
        return self.writing or bool(self._pending)

    async def _write(self, batch: dict[str, UnitState | None]) -> None:
        """One burst's states, with the service record changes due now (if any)."""
        if self.services is None:
            await self.registry.publish_states(self.machine_id, batch, self.lease())
            return
        async with self.services.lock:
            changes = self.services.changes()
            await self.registry.publish_states(self.machine_id, batch, self.lease(), changes)
            if changes is not None:
                self.services.written(changes)
