"""This machine's part of health checks and the failure policy.

Contract:

* :meth:`UnitHealth.configure` reads ``[X-Health]`` and ``[X-Failover]`` of the
  units scheduled here (parsed once per body); a section that does not parse
  is logged and the unit runs without a check / with the default policy;
* :meth:`UnitHealth.on_state` is fed every systemd signal: it drives the
  :class:`~.health_monitor.HealthMonitor` and counts *failures*, each entry
  into ActiveState ``failed`` or SubState ``auto-restart``;
* an unhealthy unit is a failure too; with ``OnFailure=restart`` (the default)
  it is stopped and started again, in a task of its own;
* ``Failures`` failures within ``Window`` write a
  :class:`~unitctl.failover.FailureRecord` to ``failures/<unit>/<machine>``
  (lease TTL ``AvoidFor``) and the count starts over; the engine moves the
  unit (:mod:`unitctl.failover`); a failed write is retried every second;
* :meth:`health` is what the publisher reports for a unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from unitctl.errors import InvalidUnitError, RegistryError, UnitctlError
from unitctl.failover import DEFAULT_POLICY, FailurePolicy, FailureRecord, count, parse_policy
from unitctl.health import HealthCheck, parse_check
from unitctl.registry.failures import FailureStore
from unitctl.unitfile import UnitFile

from .health_monitor import HealthMonitor
from .ports import SystemdState, UnitManager
from .probes import Prober

log = logging.getLogger("unitctl.agent")

Parsed = tuple[HealthCheck | None, FailurePolicy]


def parse_sections(name: str, text: str) -> Parsed:
    """A unit's check and policy; a bad section is logged and left out."""
    try:
        unit = UnitFile.parse(text)
    except InvalidUnitError:
        return None, DEFAULT_POLICY
    check: HealthCheck | None = None
    policy = DEFAULT_POLICY
    try:
        check = parse_check(unit, name)
    except InvalidUnitError as exc:
        log.error("agent: %s: no health check: %s", name, exc)
    try:
        policy = parse_policy(unit)
    except InvalidUnitError as exc:
        log.error("agent: %s: default failure policy: %s", name, exc)
    return check, policy


class UnitHealth:
    """Health checks and failure counts of one machine's units."""

    def __init__(self, store: FailureStore, units: UnitManager, machine_id: str,
                 prober: Prober, report: Callable[[str, SystemdState], None],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.units = units
        self.machine_id = machine_id
        self.report = report
        self.wall = wall
        self.monitor = HealthMonitor(prober, clock, self._changed, self._unhealthy)
        self.policies: dict[str, FailurePolicy] = {}
        self.times: dict[str, tuple[float, ...]] = {}
        self.last: dict[str, SystemdState] = {}
        self._parsed: dict[tuple[str, str], Parsed] = {}
        self._pending: list[tuple[FailureRecord, float]] = []
        self._wake = asyncio.Event()
        self._restarts: set[asyncio.Task[None]] = set()

    def health(self, name: str) -> str:
        return self.monitor.health(name)

    def configure(self, bodies: Mapping[str, tuple[str, str]]) -> None:
        """``bodies``: unit -> (hash, text) of every unit scheduled here."""
        self._parsed = {(n, sha): self._parsed.get((n, sha)) or parse_sections(n, text)
                        for n, (sha, text) in bodies.items()}
        parsed = {n: self._parsed[(n, sha)] for n, (sha, _) in bodies.items()}
        self.policies = {n: p for n, (_, p) in parsed.items()}
        self.monitor.configure({n: c for n, (c, _) in parsed.items() if c is not None})
        for name in [n for n in self.times if n not in bodies]:
            del self.times[name]

    def on_state(self, name: str, state: SystemdState) -> None:
        """systemd's signal for ``name``."""
        prev = self.last.get(name)
        self.last[name] = state
        if state.load == "not-found":
            self.monitor.forget(name)
            return
        self.monitor.on_state(name, state.active)
        failing = state.active == "failed" or state.sub == "auto-restart"
        was = prev is not None and (prev.active == "failed" or prev.sub == "auto-restart")
        if failing and not was:
            self.failed(name, "failed")

    def seed(self, name: str, state: SystemdState) -> None:
        """A state read rather than signalled (an adopted unit): no failure is counted."""
        if name not in self.last:
            self.last[name] = state
            self.monitor.on_state(name, state.active)

    def failed(self, name: str, why: str) -> None:
        """Count one failure of ``name``; at the policy's limit, record it."""
        policy = self.policies.get(name)
        if policy is None:
            return
        now = self.wall()
        times = count((*self.times.get(name, ()), now), now, policy.window)
        if len(times) < policy.failures:
            self.times[name] = times
            return
        self.times[name] = ()
        log.warning("agent: %s %s %d times in %.0fs: recording the failure for the engine",
                    name, why, len(times), now - times[0])
        self._pending.append((FailureRecord(name, self.machine_id, len(times), times[0], now,
                                            why), policy.avoid_for))
        self._wake.set()

    async def run(self) -> None:
        """Write the failure records, retrying a failed write every second."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                record, ttl = self._pending[0]
                try:
                    await self.store.record_failure(record, ttl)
                except RegistryError as exc:
                    log.warning("agent: cannot record the failure of %s: %s", record.unit, exc)
                    await asyncio.sleep(1.0)
                    continue
                self._pending.pop(0)

    async def close(self) -> None:
        await self.monitor.close()
        for task in list(self._restarts):
            task.cancel()

    def _changed(self, name: str) -> None:
        state = self.last.get(name)
        if state is not None:
            self.report(name, state)

    def _unhealthy(self, name: str, why: str) -> None:
        self.failed(name, "unhealthy")
        check = self.monitor.checks.get(name)
        if check is not None and check.on_failure == "restart":
            task = asyncio.get_running_loop().create_task(self._restart(name, why))
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)

    async def _restart(self, name: str, why: str) -> None:
        log.warning("agent: restarting unhealthy %s (%s)", name, why)
        with contextlib.suppress(UnitctlError):
            await self.units.stop(name)
            await self.units.start(name)
