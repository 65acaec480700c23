"""The agent: one machine's parts, composed, and its schedule → reconcile loop.

Tasks running side by side (one ``asyncio.TaskGroup``):

* **session** (:mod:`.session`) — register the machine under a lease and keep
  it alive; after an expiry register again;
* **schedule** (here) — read this machine's schedule, reconcile, then watch
  only ``schedule/<machine>/`` and reconcile on each change, applying the
  watch's own events (:mod:`.schedule_view`: no read per change; a full read
  every ``resync`` seconds); the decision is :func:`.reconcile.compute_tasks`, run
  by the :mod:`.executor`; a unit whose task failed is retried on its own,
  with exponential backoff (:mod:`.backoff`), while the rest carry on; tasks
  wait for dependency order (:mod:`.ordering`), woken by systemd's signals
  and by the watches of remote dependencies (:mod:`.dependency_watch`);
* **publisher** (:mod:`.publisher`) — report unit states, under the lease, so
  they vanish with the machine;
* **health** (:mod:`.unit_health`) — probe the units that have a health check,
  count failures, record a unit that keeps failing here for the engine;
* **fence** and **peers** (:mod:`.fence`) — when etcd has been silent for half
  the TTL, consult peers and stop local units if this machine is the one cut
  off; keep the list of peers; a peer server answers "do you reach etcd?";
* **engine** (:mod:`.engine_runner`) — campaign for leadership with the
  machine's lease, when the composition root gave an engine;
* **responder** (:mod:`.responder`) — answer ``status``, ``journal`` and
  ``restart`` requests to this machine, when the composition root gave it a
  :class:`~.commands.Commands` to run them with;
* **services** (:mod:`.services`) — this machine's service records, under the lease;
* **templates** (:mod:`.templates`) — render config templates from etcd, when
  ``template_dirs`` is set and the composition root gave a :class:`~.template_host.TemplateHost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from unitctl.errors import BusLost, RegistryError, UnitctlError
from unitctl.loop import checkpoint, raise_if_ended, wake_or_timeout, watch_wakes
from unitctl.model import Machine, ScheduleEntry
from unitctl.registry.failures import failure_store
from unitctl.registry.registry import Registry
from unitctl.registry.services import ServiceRecord

from .backoff import Backoff
from .commands import Commands
from .dependency_watch import DependencyWatch
from .engine_runner import EngineFactory, EngineRunner, LeaderEngine
from .executor import ACTIVE_STATES, Executor
from .fence import Fence, PeerServer
from .options import AgentOptions
from .ports import SystemdState, UnitManager
from .probes import Prober, RealProber
from .publisher import StatePublisher
from .reconcile import compute_tasks
from .responder import Responder
from .schedule_view import ScheduleView
from .services import ServicePublisher, wanted_records
from .session import Session
from .stopping import stop_all
from .tasks import Task
from .unit_health import UnitHealth

if TYPE_CHECKING:  # imported by the first agent with template_dirs (not an idle default one)
    from .template_host import TemplateHost
    from .templates import TemplateRunner

__all__ = ["ACTIVE_STATES", "Agent", "AgentOptions"]

log = logging.getLogger("unitctl.agent")


class Agent:
    """One machine's agent.

    ``engine`` builds the engine this machine runs for each of its leases
    (None: no engine). :func:`unitctl.daemon.engine_factory` builds the real one:
    the agent never builds an engine itself.
    """

    def __init__(self, registry: Registry, units: UnitManager, machine: Machine,
                 options: AgentOptions | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 notify: Callable[[str], None] | None = None,
                 engine: EngineFactory | None = None,
                 commands: Commands | None = None, prober: Prober | None = None,
                 template_host: TemplateHost | None = None) -> None:
        self.registry = registry
        self.units = units
        self.machine = machine
        self.opts = options or AgentOptions()
        self.clock = clock
        self.notify = notify or (lambda _msg: None)
        self.schedule: dict[str, ScheduleEntry] = {}
        self.view = ScheduleView(registry, machine.id, lambda: self.session.contact())
        #: the last state systemd reported for each unit (read by /metrics at scrape time)
        self.unit_states: dict[str, SystemdState] = {}
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self.leave_on_stop = True
        self._stop: asyncio.Event | None = None
        self.session = Session(registry, machine, self.opts.ttl, self.opts.lease_file, clock,
                               self.notify, self._registered, self._contacted)
        self.backoff = Backoff(clock)
        self._retry: asyncio.TimerHandle | None = None
        self.dependencies = DependencyWatch(registry, machine.id, self._wake)
        self.services = ServicePublisher(registry.services, machine, lambda: self.session.lease,
                                         self._wanted_records, lambda: self.publisher.busy)
        self.publisher = StatePublisher(registry, units, machine.id, lambda: self.session.lease,
                                        self.backoff.get, self.dependencies.waiting,
                                        lambda name: self.health.health(name), self.services)
        self.health = UnitHealth(failure_store(registry), units,
                                 machine.id, prober or RealProber(), self._health_report)
        self.executor = Executor(units, self.publisher, self.backoff)
        self.executor.ignore_requirements = self.dependencies.ignore_requirements
        self.fencer = Fence(registry, units, self.executor, self.session, self.opts.peer_port,
                            self.notify)
        self.engines = EngineRunner(engine)
        self.responder, self.templates = self._optional_parts(commands, template_host)

    def _optional_parts(self, commands: Commands | None, template_host: TemplateHost | None
                        ) -> tuple[Responder | None, TemplateRunner | None]:
        """The agent channel's responder (with ``commands``) and the config-template
        runner (with a host and ``template_dirs``)."""
        responder = None if commands is None else Responder(
            self.registry, self.machine.id, commands, lambda: self.schedule,
            lambda: self.units.present())
        if template_host is None or not self.opts.template_dirs:
            return responder, None
        from .templates import TemplateRunner  # ~0.3 MiB the agents without templates skip

        return responder, TemplateRunner(self.registry, self.machine, self.opts.template_dirs,
                                         template_host, lambda: self.session.lease,
                                         lambda: self.schedule.keys())

    # -- views of the parts (the names tests and the harness read) -----------
    @property
    def bodies(self) -> dict[str, str]:
        return self.view.bodies

    @property
    def lease(self) -> int:
        return self.session.lease

    @property
    def last_contact(self) -> float:
        return self.session.last_contact

    @property
    def keepalive(self) -> float:
        return self.session.keepalive

    def etcd_age(self) -> float:
        return self.session.etcd_age()

    @property
    def started(self) -> set[tuple[str, str]]:
        return self.executor.started

    @property
    def fenced(self) -> bool:
        return self.fencer.fenced

    @property
    def peers(self) -> dict[str, str]:
        return self.fencer.peers

    @property
    def engine(self) -> LeaderEngine | None:
        return self.engines.engine

    @property
    def _engine_task(self) -> asyncio.Task[None] | None:
        return self.engines.task

    # -- lifecycle -------------------------------------------------------
    async def run(self, stop: asyncio.Event, leave: bool = True) -> None:
        """Run until ``stop`` is set, then leave gracefully (:meth:`leave`).

        With ``leave`` False (read when ``stop`` fires, so it may be flipped
        after the call: the re-exec on SIGHUP) units keep running and the lease
        stays, for the next agent process to adopt.
        """
        self.leave_on_stop = leave
        self._stop = stop
        await self.units.start_manager(self._on_state)
        await self.executor.adopt()
        async with self._peer_server():  # peers still hear us while we stop
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(job) for job in (
                    self.session.run(), self._schedule_loop(), self.fencer.run(),
                    self.fencer.watch_peers(), self.publisher.run(), self.health.run(),
                    self.services.run(),
                    *([self.responder.run()] if self.responder else []),
                    *([self.templates.run()] if self.templates else []))]
                await stop.wait()
                for t in tasks:
                    t.cancel()
                self.engines.stop()
                await self.dependencies.close()
                await self.health.close()
            if self.leave_on_stop:
                await self.leave()
            else:
                await self.units.close()
                log.info("agent: stopping without leaving: units keep running")

    def _on_state(self, name: str, state: SystemdState) -> None:
        """systemd's signal: a gate may open; the state is published."""
        self.dependencies.on_state(name, state)
        self.health.on_state(name, state)
        self.publisher.report(name, state)
        self.unit_states[name] = state
        self.services.poke()

    def _wanted_records(self) -> dict[str, ServiceRecord]:
        return wanted_records(self.machine, self.schedule, self.health.last, self.health.health)

    def _health_report(self, name: str, state: SystemdState) -> None:
        """A health check changed: the state (with its health) and the service record."""
        self.publisher.report(name, state)
        self.services.poke()

    @contextlib.asynccontextmanager
    async def _peer_server(self) -> AsyncIterator[None]:
        """Answer peers' "do you reach etcd?" while the agent runs (if a port is set).

        A port that cannot be bound is an ERROR (and STATUS=), retried in the
        background; the agent runs on (failing would leave its units unfenced).
        """
        peer = PeerServer(self.machine.id, self.etcd_age, lambda: self.session.peer_secret)
        binding = None
        if self.opts.peer_port:
            binding = asyncio.create_task(
                peer.keep_bound(self.opts.peer_host, self.opts.peer_port, self.notify))
        try:
            yield
        finally:
            if binding is not None:
                binding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await binding
            await peer.close()

    async def leave(self) -> None:
        """Graceful exit: stop every unit in parallel within ``stop_budget``, then
        revoke the lease, but only once systemd reports every unit down.

        The lease is kept alive while the units stop. If the budget runs out
        first, the stop jobs stay queued in systemd (the units are not in the
        agent's cgroup), and the agent exits *without* revoking: the lease
        expires ``ttl`` after the last keepalive, so the engine moves the units
        only then (docs/fencing.md, "Graceful stop").
        """
        budget = self.opts.stop_budget
        keepalive = asyncio.create_task(self.session.hold())
        try:
            running = await stop_all(self.units, budget, asyncio.get_running_loop().time)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        if running:
            log.error("agent: stop budget of %gs ran out with %d unit(s) still stopping "
                      "(%s): not revoking the lease; it expires within %ds and their stop "
                      "jobs go on in systemd", budget, len(running), ", ".join(running),
                      self.session.ttl)
            self.notify(f"STATUS=left without revoking: {len(running)} unit(s) still stopping")
            await self.units.close()
            return
        with contextlib.suppress(UnitctlError):
            await self.units.reload()
        log.info("agent: every unit stopped; revoking the lease")
        await self.session.end()
        await self.units.close()
        log.info("agent: left the cluster")

    async def fence(self, why: str) -> None:
        """Stop every local unit now (files stay; the schedule decides later)."""
        await self.fencer.fence(why)

    async def _registered(self, lease: int) -> None:
        await self.publisher.report_all()
        self.services.poke()
        self.engines.restart(lease)
        self._wake.set()
        if self.templates is not None:
            self.templates.poke()

    def _contacted(self) -> None:
        if self.fencer.lift():
            self.executor.forget_all()
            self._wake.set()

    def _restart_in_place(self, why: str) -> None:
        """Stop without leaving (units keep running); the daemon re-executes."""
        log.error("agent: %s: restarting in place; units keep running", why)
        self.leave_on_stop = False
        if self._stop is not None:
            self._stop.set()

    # -- schedule ------------------------------------------------------------
    async def _schedule_loop(self) -> None:
        while True:
            checkpoint()
            try:
                await self._watch_schedule()
            except RegistryError as exc:
                log.warning("agent: schedule watch: %s", exc)
                await asyncio.sleep(0.5)

    async def _watch_schedule(self) -> None:
        """Read the schedule, then follow it from the watch's events alone (a full
        read again only on the resync timer, or when the watch ends)."""
        rev = await self.view.read()
        await self._schedule_changed()
        async with watch_wakes(self.view.follow(rev + 1), self._wake) as pumped:
            while True:
                checkpoint()
                woken = await wake_or_timeout(self._wake, self.opts.resync)
                raise_if_ended(pumped)
                if not woken:
                    await self.view.read()
                await self._schedule_changed()

    async def _schedule_changed(self) -> None:
        """Reconcile with the entries now held (read, or kept from the watch's events)."""
        entries = self.view.entries
        self.schedule = entries
        self.services.poke()
        if self.templates is not None:
            self.templates.schedule_changed(entries)
        await self.reconcile()
        if self.session.lease:
            self.ready.set()

    async def reconcile(self) -> list[Task]:
        """Bring local units in line with the schedule; return the tasks it decided
        (those of units held back by their backoff wait for their retry)."""
        if self.fencer.fenced:
            return []
        desired = await self.view.desired(self.machine, self.schedule)
        self.health.configure({n: (d.hash, self.bodies[d.hash]) for n, d in desired.items()})
        tasks = compute_tasks(desired, self.executor.current())
        started = frozenset(name for name, _ in self.executor.started)
        await self._seed_states()
        gated, changed = self.dependencies.gate(tasks, desired, self.units.present(), started)
        failure = await self.executor.run(gated.tasks, desired, self.bodies)
        if isinstance(failure, BusLost):
            self._restart_in_place("systemd's bus connection was lost")
            return tasks
        for name in changed:
            if name in self.units.present():
                self.publisher.report(name, await self.units.state(name))
        self._wake_for_retry()
        return tasks

    async def _seed_states(self) -> None:
        """Read the state of local units systemd has not signalled yet (adopted ones)."""
        for name in self.units.present():
            if name not in self.dependencies.active:
                with contextlib.suppress(UnitctlError):
                    state = await self.units.state(name)
                    self.dependencies.active[name] = state.active
                    self.health.seed(name, state)

    def _wake_for_retry(self) -> None:
        """One timer: wake the loop when the earliest held-back unit is due."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        delay = self.backoff.next_retry()
        if delay is not None:
            self._retry = asyncio.get_running_loop().call_later(delay, self._wake.set)
