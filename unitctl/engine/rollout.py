"""The rollout driver: the engine leader steps every rollout in progress (I/O shell).

While an engine leads, :func:`driving` runs one :class:`RolloutDriver` beside
its rounds. A pass reads ``rollouts/``; for each rollout in progress it reads
its instances (unit, placement, placed state), asks the pure planner
(:func:`unitctl.rollout.advance`) for the next step, and stores it with the
batch's body writes in one transaction guarded by the leader's term
(:meth:`~unitctl.registry.rollouts.RolloutStore.step`). The body writes are
plain unit replacements: the engine's own rounds then reschedule the new hash
and the agents unload and load it, as for ``submit --replace``.

Between passes the driver waits on watches: ``rollouts/`` always, and
``states/`` while a rollout is in progress (a batch coming up or failing is a
state change), or until the batch in flight runs out of time. Nothing polls;
a watch that ends wakes the loop, which reads everything again. The record
lives in etcd, so a new leader's driver carries on (or reverts) from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from unitctl.errors import ConflictError, RegistryError
from unitctl.loop import checkpoint, raise_if_ended, wake_or_timeout, watch_wakes
from unitctl.registry.leader import Leadership
from unitctl.registry.registry import Registry
from unitctl.registry.rollouts import StoredRollout
from unitctl.rollout import ACTIVE, Rollout, Step, advance

log = logging.getLogger("unitctl.engine")


class RolloutDriver:
    """Steps the rollouts in progress while ``lead`` is the current term."""

    def __init__(self, registry: Registry, lead: Leadership, *,
                 wall: Callable[[], float] = time.time, resync: float = 60.0) -> None:
        self.registry = registry
        self.lead = lead
        self.wall = wall
        self.resync = resync

    async def run(self) -> None:
        """Pass after pass until cancelled or the term is over."""
        while True:
            checkpoint()
            try:
                await self.one_pass()
            except ConflictError as exc:
                log.warning("engine: rollouts: %s; the driver stops with the term", exc)
                return
            except RegistryError as exc:
                log.warning("engine: rollouts: %s; again in 1s", exc)
                await asyncio.sleep(1)

    async def one_pass(self, wait: bool = True) -> None:
        """Step every rollout in progress, then (``wait``) wait for a change or a deadline."""
        store = self.registry.rollouts
        stored, rev = await store.read_all()
        due: list[float] = []
        for s in stored:
            if s.rollout.phase in ACTIVE:
                when = await self.step(s)
                if when is not None:
                    due.append(when)
        if wait:
            busy = any(s.rollout.phase in ACTIVE for s in stored)
            timeout = min([self.resync, *(d - self.wall() for d in due)])
            await self._wait(rev, busy, max(0.05, timeout))

    async def step(self, stored: StoredRollout) -> float | None:
        """One step of one rollout; when to look again at the latest (None: on a change)."""
        r = stored.rollout
        instances = await self.registry.rollouts.instances(r.order)
        now = self.wall()
        step = advance(r, {n: inst.observed() for n, inst in instances.items()}, now)
        if step.rollout == r and not step.writes:
            return r.due
        new = replace(step.rollout, updated=now)
        writes = {n: (instances[n], sha) for n, sha in step.writes.items()}
        if not await self.registry.rollouts.step(self.lead, stored, new, writes):
            return now  # a unit or the record changed under us: read again at once
        _log(r, step)
        return new.due

    async def _wait(self, rev: int, busy: bool, timeout: float) -> None:
        keys = self.registry.keys
        prefixes = [keys.rollouts(), keys.states()] if busy else [keys.rollouts()]
        wake = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            watches = [await stack.enter_async_context(
                watch_wakes(self.registry.watch(p, rev + 1), wake)) for p in prefixes]
            await wake_or_timeout(wake, timeout)
            for w in watches:
                raise_if_ended(w)


def _log(before: Rollout, step: Step) -> None:
    r = step.rollout
    if step.writes:
        log.info("engine: rollout %s (%s): %s to %s", r.name, r.phase.value,
                 ", ".join(sorted(step.writes)),
                 ", ".join(sorted({sha[:7] for sha in step.writes.values()})))
    if r.phase is not before.phase:
        log.info("engine: rollout %s: %s -> %s%s", r.name, before.phase.value, r.phase.value,
                 f": {r.reason}" if r.reason else "")


@contextlib.asynccontextmanager
async def driving(registry: Registry, lead: Leadership,
                  wall: Callable[[], float] = time.time) -> AsyncIterator[RolloutDriver]:
    """Run a :class:`RolloutDriver` for ``lead`` while the block runs (the engine's term)."""
    driver = RolloutDriver(registry, lead, wall=wall)
    task = asyncio.create_task(driver.run(), name="rollouts")
    try:
        yield driver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
