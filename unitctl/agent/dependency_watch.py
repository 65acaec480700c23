"""The agent's view of the units its units depend on, kept live without polling.

Contract:

* local dependencies (scheduled here) are seen through systemd: every state
  signal goes through :meth:`DependencyWatch.on_state`, which wakes the agent's
  loop only for a unit named in the last :attr:`Gated.wake_on` (a gate it may open);
* a dependency scheduled elsewhere is followed by two watches of its own keys,
  ``units/<dep>`` (its desired state) and ``states/<dep>/`` (where it runs):
  a change wakes only the agents whose units name it; a watch that ends wakes
  the loop too, and the dependency is read again and watched anew;
* the waiting reasons of the last :meth:`DependencyWatch.gate` are what the
  publisher shows with each unit's state (:meth:`waiting`).

The decision itself is :func:`unitctl.agent.ordering.gate` (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from unitctl.dependencies import Dependency, UnitDeps, find_cycle, ordered_before
from unitctl.errors import RegistryError
from unitctl.loop import checkpoint, raise_if_ended, watch_wakes
from unitctl.registry.registry import Registry

from .ordering import Gated, gate, local_dependencies, remote_dependency
from .ports import SystemdState
from .reconcile import DesiredUnit
from .tasks import Task

log = logging.getLogger("unitctl.agent")


class DependencyWatch:
    """Dependency states for one machine's agent; wakes its loop when a gate may open."""

    def __init__(self, registry: Registry, machine_id: str, wake: asyncio.Event) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.wake = wake
        #: ActiveState of each local unit, from systemd's signals.
        self.active: dict[str, str] = {}
        self._deps_of: dict[str, UnitDeps] = {}
        self._remote: dict[str, Dependency | None] = {}
        self._seen: set[str] = set()
        self._follow: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, str] = {}
        self._wake_on: frozenset[str] = frozenset()

    def on_state(self, name: str, state: SystemdState) -> None:
        """systemd reported ``name`` in ``state``: remember it; wake a waiting gate."""
        self.active[name] = state.active
        if name in self._wake_on:
            self.wake.set()

    def waiting(self, name: str) -> str:
        """Why ``name`` waits ("" when it does not)."""
        return self._waiting.get(name, "")

    def ignore_requirements(self, name: str) -> bool:
        """Whether ``name`` requires a cluster unit scheduled on another machine."""
        deps = self._deps_of.get(name)
        return deps is not None and any(
            (dep := self._remote.get(r)) is not None and not dep.local for r in deps.requires)

    def gate(self, tasks: list[Task], desired: Mapping[str, DesiredUnit],
             present: Mapping[str, str], started: frozenset[str]) -> tuple[Gated, list[str]]:
        """Filter ``tasks`` by dependency order; also return the units whose waiting
        reason changed (to publish again)."""
        self._deps_of = {n: d for n, d in self._deps_of.items() if n in present}
        self._deps_of.update((n, u.deps) for n, u in desired.items())
        self._follow_only(self._remote_names(desired))
        known: dict[str, Dependency] = {n: d for n, d in self._remote.items() if d is not None}
        # followed but not read yet: wait for the first read (it wakes the loop)
        known.update((n, Dependency(n, True, False)) for n in self._follow
                     if n not in self._seen)
        active = {n: self.active.get(n, "inactive") for n in present}
        known.update(local_dependencies(self.machine_id, desired, active))
        deps_of = self._deps_of
        cycle = find_cycle(ordered_before(deps_of))
        if cycle is not None:
            log.error("agent: dependency cycle %s: order ignored", " -> ".join(cycle))
            deps_of = {}
        gated = gate(tasks, desired, deps_of, known, active, started)
        changed = sorted(n for n in set(gated.waiting) | set(self._waiting)
                         if gated.waiting.get(n) != self._waiting.get(n))
        self._waiting, self._wake_on = gated.waiting, gated.wake_on
        if len(gated.tasks) > len(tasks) or changed:
            self.wake.set()  # stops for lost requirements: decide again once they ran
        for name in changed:
            log.info("agent: %s: %s", name, gated.waiting.get(name) or "no longer waiting")
        return gated, changed

    def _remote_names(self, desired: Mapping[str, DesiredUnit]) -> set[str]:
        return {d for u in desired.values() for d in u.deps.named()} - set(desired)

    def _follow_only(self, names: set[str]) -> None:
        """Start following new dependencies; stop following those no unit names."""
        for name in set(self._follow) - names:
            self._follow.pop(name).cancel()
            self._remote.pop(name, None)
            self._seen.discard(name)
        for name in sorted(names - set(self._follow)):
            self._remote.setdefault(name, None)
            self._follow[name] = asyncio.create_task(self._keep(name))

    async def close(self) -> None:
        """Stop every watch."""
        tasks = list(self._follow.values())
        self._follow.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, RegistryError):
                await task

    async def _keep(self, name: str) -> None:
        """Read and watch one dependency for as long as it is followed."""
        while True:
            checkpoint()
            try:
                await self._watch(name)
            except RegistryError as exc:
                log.warning("agent: watch of dependency %s: %s", name, exc)
                self.wake.set()
                await asyncio.sleep(0.5)

    async def _watch(self, name: str) -> None:
        changed = asyncio.Event()
        rev = await self._read(name)
        units = self.registry.watch_unit(name, rev + 1)
        states = self.registry.watch_states_of(name, rev + 1)
        async with watch_wakes(units, changed) as w1, watch_wakes(states, changed) as w2:
            while True:
                checkpoint()
                await changed.wait()
                changed.clear()
                raise_if_ended(w1)
                raise_if_ended(w2)
                await self._read(name)

    async def _read(self, name: str) -> int:
        states, rev = await self.registry.states_of(name)
        record = await self.registry.get_unit(name)
        dep = remote_dependency(self.machine_id, record, states)
        if dep != self._remote.get(name) or name not in self._seen:
            self._remote[name] = dep
            self._seen.add(name)
            self.wake.set()
        return rev


#: What the agent gives the publisher: name -> waiting reason.
WaitingOf = Callable[[str], str]
