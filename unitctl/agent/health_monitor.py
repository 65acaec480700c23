"""The health monitor: one probe loop per active unit that has a check.

Contract:

* :meth:`HealthMonitor.on_state` is fed systemd's signals: a unit with a check
  that becomes ``active`` (or ``reloading``) gets a probe loop and is
  ``starting``; a unit that leaves those states loses its loop and its health;
* the loop follows :func:`unitctl.health.next_probe_at` and
  :func:`unitctl.health.observe` (the pure schedule and state machine); each
  change of health calls ``on_change(name)`` (the publisher reports it), and
  each failure of the unit (:func:`unitctl.health.is_failure`: turning
  unhealthy, then every ``Retries`` failed probes more) calls
  ``on_unhealthy(name, why)``;
* :meth:`configure` sets the checks of the units scheduled here; a unit whose
  check changed starts over;
* a probe never raises (the :class:`~.probes.Prober` contract); the loops end
  with :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from unitctl.health import Health, HealthCheck, Progress, begin, is_failure, next_probe_at, observe

from .probes import Prober

log = logging.getLogger("unitctl.agent")

#: systemd ActiveStates in which a unit is probed.
PROBED_STATES = frozenset({"active", "reloading"})


class HealthMonitor:
    """Probe loops of this machine's units."""

    def __init__(self, prober: Prober, clock: Callable[[], float],
                 on_change: Callable[[str], None],
                 on_unhealthy: Callable[[str, str], None]) -> None:
        self.prober = prober
        self.clock = clock
        self.on_change = on_change
        self.on_unhealthy = on_unhealthy
        self.checks: dict[str, HealthCheck] = {}
        self.progress: dict[str, Progress] = {}
        self.active: dict[str, bool] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}

    def health(self, name: str) -> str:
        """``starting``/``healthy``/``unhealthy`` while probed, else ""."""
        progress = self.progress.get(name)
        return progress.status.value if progress is not None else Health.NONE.value

    def configure(self, checks: Mapping[str, HealthCheck]) -> None:
        """The checks of the units scheduled here (a changed check starts over)."""
        for name in list(self._loops):
            if checks.get(name) != self.checks.get(name):
                self._stop(name)
        self.checks = dict(checks)
        for name, active in self.active.items():
            if active and name in self.checks and name not in self._loops:
                self._start(name)

    def on_state(self, name: str, active: str) -> None:
        """systemd's ActiveState of ``name`` changed (or was read)."""
        running = active in PROBED_STATES
        self.active[name] = running
        if not running:
            self._stop(name)
        elif name in self.checks and name not in self._loops:
            self._start(name)

    def forget(self, name: str) -> None:
        """The unit is gone from this machine."""
        self._stop(name)
        self.active.pop(name, None)

    async def close(self) -> None:
        loops = list(self._loops.values())
        self._loops.clear()
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start(self, name: str) -> None:
        self.progress[name] = begin(self.clock())
        self._loops[name] = asyncio.get_running_loop().create_task(
            self._loop(name, self.checks[name]), name=f"health {name}")
        self.on_change(name)

    def _stop(self, name: str) -> None:
        task = self._loops.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self.progress.pop(name, None) is not None:
            self.on_change(name)

    async def _loop(self, name: str, check: HealthCheck) -> None:
        while True:
            progress = self.progress[name]
            await asyncio.sleep(max(0.0, next_probe_at(progress, check) - self.clock()))
            started = self.clock()
            why = await self.prober.probe(name, check)
            if self._loops.get(name) is not asyncio.current_task():
                return  # stopped while the probe ran
            new = observe(progress, check, why is None, started)
            self.progress[name] = new
            if new.status is not progress.status:
                log.info("agent: %s is %s%s", name, new.status.value,
                         f": {why}" if why else "")
                self.on_change(name)
            if is_failure(progress, new, check):
                self.on_unhealthy(name, why or "unhealthy")
