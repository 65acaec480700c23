"""The client facade behind ``unitctl``'s verbs (no click here).

:class:`Client` wraps a :class:`~unitctl.registry.registry.Registry` with what
fleetctl did on the client side, each part in its own module: resolving
arguments (:mod:`~unitctl.client.resolve`), writing intent
(:mod:`~unitctl.client.intent`), reading (:mod:`~unitctl.client.views`) and
waiting (:mod:`~unitctl.client.wait`). It holds what those share for one
command: the registry, where messages go, the length of a wait attempt and
the per-body "is it global" cache.

Vocabulary: *desired* state (``DSTATE``) is what a user asked for; *current*
state (``STATE``) is derived like fleet's ``determineJobState`` (see
:class:`~unitctl.client.views.Snapshot`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence

from unitctl.client import intent, predicates, views
from unitctl.client import wait as waiting
from unitctl.client.resolve import LocalUnit, Resolver, require_records
from unitctl.client.views import Bodies, Predicate, Snapshot, UnitFileInfo
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState
from unitctl.registry import blocking
from unitctl.registry.dynmeta import merged
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _stdout(text: str) -> None:
    print(text, flush=True)


class Client:
    """The operations of ``unitctl``'s verbs over one registry.

    Attributes:
        registry: the store.
        out: prints a line on stdout (progress messages).
        err: prints a line on stderr (warnings, explanations).
        attempt_seconds: the length of one ``--block-attempts`` attempt.
        cwd: the directory relative paths are resolved against (None: the process').
    """

    def __init__(self, registry: Registry, out: Callable[[str], None] = _stdout,
                 err: Callable[[str], None] = _stderr, attempt_seconds: float = 1.0,
                 cwd: str | None = None) -> None:
        self.registry = registry
        self.out = out
        self.err = err
        self.attempt_seconds = attempt_seconds
        self.cwd = cwd
        self.bodies = Bodies(registry)

    # -- resolving and writing ----------------------------------------------
    async def resolve(self, args: Sequence[str], verb: str = "submit") -> list[LocalUnit]:
        """Resolve and validate every argument (see :mod:`unitctl.client.resolve`)."""
        units = await Resolver(self.registry, self.cwd).resolve(args, verb)
        for lu in units:
            for w in lu.warnings:
                self.err(f"WARNING: {lu.name}: {w}")
        return units

    async def submit(self, units: Sequence[LocalUnit], replace: bool,
                     command: str = "submit") -> list[UnitRecord]:
        """Store new units (batched); warn about, or replace, differing ones."""
        return await intent.submit(self.registry, units, replace, command, self.out, self.err)

    async def submitted(self, units: Sequence[LocalUnit],
                        written: Sequence[UnitRecord]) -> list[UnitRecord]:
        """The record of each distinct unit after :meth:`submit`, re-reading only the
        ones another client created meanwhile."""
        known = intent.after_submit(units, written)
        missing = [name for name, rec in known.items() if rec is None]
        found = dict(zip(missing, await require_records(self.registry, missing), strict=True))
        return [known[name] or found[name] for name in known]

    async def records(self, names: Sequence[str]) -> list[UnitRecord]:
        """The stored records of ``names`` (one read each); every one must exist."""
        return await require_records(self.registry, names)

    async def set_state(self, names: Sequence[str], target: DesiredState) -> int:
        """Set the desired state of existing units; return the revision before."""
        return await self.set_states(await self.records(names), target)

    async def set_states(self, records: Sequence[UnitRecord], target: DesiredState) -> int:
        """Set the desired state of units already read; return the revision before."""
        return await intent.set_desired(self.registry, records, target)

    async def destroy(self, names: Sequence[str]) -> list[str]:
        """Delete units (all must exist; checked before any is deleted)."""
        return await intent.destroy(self.registry, await self.records(names))

    async def is_global(self, rec: UnitRecord, unit: UnitFile | None = None) -> bool:
        """Tell whether a stored unit has ``Global=true`` (cached by body hash)."""
        return await self.bodies.is_global(rec, unit)

    async def split_global(self, records: Sequence[UnitRecord],
                           units: Mapping[str, UnitFile] | None = None,
                           ) -> tuple[list[str], list[str]]:
        """Split units into (non-global, global) names, keeping order.

        ``units`` are texts already at hand (resolved arguments), used instead
        of reading a body with the same hash.
        """
        local: list[str] = []
        glob: list[str] = []
        for rec in records:
            unit = (units or {}).get(rec.name)
            (glob if await self.is_global(rec, unit) else local).append(rec.name)
        return local, glob

    # -- reading -------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """Read units, placements, states, explanations and machines."""
        return await views.read_snapshot(self.registry)

    async def list_unit_files(self) -> list[UnitFileInfo]:
        """Every stored unit, sorted by name."""
        return await views.unit_file_rows(self.registry, self.bodies)

    async def list_units(self) -> tuple[list[UnitState], Mapping[str, Machine]]:
        """Every agent's report sorted by (unit, machine id), and the machines."""
        snap = await self.snapshot()
        return views.reported_states(snap), snap.machines

    async def list_machines(self) -> list[Machine]:
        """Live machines sorted by id, with the API-set metadata laid over their own."""
        machines = merged(await self.registry.list_machines(),
                          await self.registry.metadata.all())
        return sorted(machines, key=lambda m: m.id)

    async def machine_by_prefix(self, prefix: str) -> list[Machine]:
        """Live machines whose id starts with ``prefix``."""
        return [m for m in await self.list_machines() if m.id.startswith(prefix.lower())]

    async def cat(self, name: str) -> str:
        """The stored (serialised) text of a unit."""
        return await views.cat(self.registry, name)

    async def restart(self, snap: Snapshot, rec: UnitRecord, attempts: int) -> None:
        """Stop (when it runs or should) then start one non-global unit, waiting for each.

        fleet stops only a launched unit; a unit that should run but does not
        (failed) is stopped too, else setting "launched" again would do nothing.
        """
        name = rec.name
        stopped_failed = False  # the stop ended "failed" (docker stop killed it, say)
        if snap.current(name) is DesiredState.LAUNCHED or rec.desired is DesiredState.LAUNCHED:
            since = await self.set_states([rec], DesiredState.LOADED)
            loaded = self.reached(DesiredState.LOADED, since)

            def stop_done(now: Snapshot, unit: str) -> str | None:
                nonlocal stopped_failed
                message = loaded(now, unit)
                if message is not None:
                    stored = now.placed_state(unit)[1]
                    stopped_failed = stored is not None and stored.state.active == "failed"
                return message

            await self.wait_for([name], stop_done, attempts, what="report state loaded")
        since = await self.set_states([rec], DesiredState.LAUNCHED)
        await self.wait_for([name], self.reached(DesiredState.LAUNCHED, since, stopped_failed),
                            attempts, what="report state launched")

    # -- waiting -------------------------------------------------------------
    # Under an event loop the waiter's watches are asyncio's (unitctl.client.watchopen,
    # imported by the waiter when it first opens them); run without one
    # (unitctl.registry.blocking), blocking sockets (unitctl.client.blockwatch).
    @staticmethod
    def reached(target: DesiredState, since: int = 0, failed_before: bool = False
                ) -> Predicate:
        """See :func:`unitctl.client.predicates.reached`."""
        return predicates.reached(target, since, failed_before)

    @staticmethod
    def gone(snap: Snapshot, name: str) -> str | None:
        """See :func:`unitctl.client.predicates.gone`."""
        return predicates.gone(snap, name)

    async def wait_for(self, names: Sequence[str], predicate: Predicate, attempts: int,
                       what: str = "the requested state") -> None:
        """Wait until ``predicate`` holds for every unit, printing its messages.

        Wakes on watch events of the waited-on keys only; one attempt lasts
        ``attempt_seconds`` and ``attempts == 0`` waits for ever.

        Raises:
            UnschedulableError: attempts ran out and a unit has no machine.
            WaitTimeout: attempts ran out.
        """
        waiter = waiting.Waiter(self.registry, list(dict.fromkeys(names)), predicate, self.out,
                                self.err, self.attempt_seconds, watching=self._watching())
        await waiting.wait_for(waiter, attempts, what)

    def _watching(self) -> waiting.Watching | None:
        """Blocking watches when run without an event loop (and the store has them);
        None: the waiter's default, asyncio's."""
        if not (blocking.active() and self.registry.watches_blocking):
            return None
        from unitctl.client.blockwatch import BlockingWatching

        return BlockingWatching()
