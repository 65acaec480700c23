"""The agent runtime: the I/O shell around :mod:`unitctl.agent.reconcile`.

Tasks running side by side (one ``asyncio.TaskGroup``):

* **session** — register the machine under a lease and keep it alive
  (every ttl/4); after an expiry (refresh returns TTL <= 0) register again;
* **schedule** — read this machine's schedule, reconcile, then watch only
  ``schedule/<machine>/`` and reconcile on each change;
* **engine** — campaign for leadership with the machine's lease (optional);
* **fence** — when etcd has been silent for half the TTL, consult peers and
  stop local units if this machine is the one cut off (:mod:`.fencing`);
* **peer server** — answer peers' "do you reach etcd?".

States are published from the unit manager's change callback (D-Bus signals),
under the machine's lease, so they vanish with the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from unitctl.aio import checkpoint
from unitctl.errors import (
    BusLost,
    ConflictError,
    InvalidUnitError,
    RegistryError,
    UnitctlError,
)
from unitctl.model import Machine, ScheduleEntry, UnitState
from unitctl.registry.codec import decode_machine
from unitctl.registry.kv import EventKind
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl.xfleet import requirements

from .fencing import FENCE_AFTER, PeerServer, Verdict, ask_peers, decide
from .ports import SystemdState, UnitManager
from .reconcile import CurrentUnit, DesiredUnit, accept, compute_tasks
from .tasks import Task, TaskType

log = logging.getLogger("unitctl.agent")

ACTIVE_STATES = ("active", "activating", "reloading", "deactivating")


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Timing and feature switches (from :class:`unitctl.config.AgentConfig`)."""

    ttl: int = 10
    peer_port: int = 7947
    peer_host: str = "0.0.0.0"
    engine: bool = True
    engine_resync: float = 60.0
    resync: float = 60.0
    #: Where the lease id is kept, so a restarted agent adopts its own live
    #: lease instead of waiting for it to expire ("" = do not keep it).
    lease_file: str = ""


class Agent:
    """One machine's agent."""

    def __init__(self, registry: Registry, units: UnitManager, machine: Machine,
                 options: AgentOptions | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 notify: Callable[[str], None] | None = None) -> None:
        self.registry = registry
        self.units = units
        self.machine = machine
        self.opts = options or AgentOptions()
        self.clock = clock
        self.notify = notify or (lambda _msg: None)
        self.lease = 0
        self.last_contact = clock()
        self.schedule: dict[str, ScheduleEntry] = {}
        self.bodies: dict[str, str] = {}
        self.started: set[tuple[str, str]] = set()
        self.fenced = False
        self.peers: dict[str, str] = {}
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._publish = asyncio.Event()
        self._pending: dict[str, UnitState | None] = {}
        self._engine_task: asyncio.Task[None] | None = None
        self.engine: object | None = None
        self.leave_on_stop = True
        self._stop: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------
    async def run(self, stop: asyncio.Event, leave: bool = True) -> None:
        """Run until ``stop`` is set, then leave gracefully (units unloaded).

        With ``leave`` False (read when ``stop`` fires, so it may be flipped
        after the call: the re-exec on SIGHUP) units keep running and the lease
        stays, for the next agent process to adopt.
        """
        self.leave_on_stop = leave
        self._stop = stop
        await self.units.start_manager(self._on_state)
        await self._adopt()
        peer = PeerServer(self.machine.id, self.etcd_age)
        if self.opts.peer_port:
            with contextlib.suppress(OSError):
                await peer.start(self.opts.peer_host, self.opts.peer_port)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._session()), tg.create_task(self._schedule_loop()),
                         tg.create_task(self._fence_loop()), tg.create_task(self._peer_watch()),
                         tg.create_task(self._publisher())]
                await stop.wait()
                for t in tasks:
                    t.cancel()
                if self._engine_task:
                    self._engine_task.cancel()
        finally:
            await peer.close()
        if self.leave_on_stop:
            await self.leave()
        else:
            await self.units.close()
            log.info("agent: stopping without leaving: units keep running")

    async def _adopt(self) -> None:
        """After a restart: units already active are ours and stay running."""
        for name, sha in self.units.present().items():
            st = await self.units.state(name)
            if st.active in ACTIVE_STATES:
                self.started.add((name, sha))
                log.info("agent: adopted running unit %s", name)

    async def leave(self) -> None:
        """Graceful exit: unload every unit, drop states, revoke the lease."""
        for name in sorted(self.units.present()):
            with contextlib.suppress(UnitctlError):
                await self.units.unload(name)
        with contextlib.suppress(UnitctlError):
            await self.units.reload()
        if self.lease:
            with contextlib.suppress(UnitctlError):
                await self.registry.leases.revoke(self.lease)
        if self.opts.lease_file:
            with contextlib.suppress(OSError):
                os.remove(self.opts.lease_file)
        await self.units.close()
        log.info("agent: left the cluster")

    @property
    def keepalive(self) -> float:
        """Seconds between keepalives: an etcd outage shorter than ttl - keepalive
        can never expire the lease."""
        return max(0.2, self.opts.ttl / 8)

    def etcd_age(self) -> float:
        return self.clock() - self.last_contact

    def _contact(self) -> None:
        self.last_contact = self.clock()
        if self.fenced:
            log.warning("agent: etcd reachable again; lifting the fence")
            self.fenced = False
            self.started.clear()
            self._wake.set()

    # -- session -------------------------------------------------------------
    async def _session(self) -> None:
        while True:
            checkpoint()
            try:
                if not self.lease:
                    await self._register()
                ttl = await self.registry.leases.refresh(self.lease)
                if ttl <= 0:
                    log.warning("agent: lease %x expired; registering again", self.lease)
                    self.lease = 0
                    continue
                self._contact()
            except ConflictError as exc:
                log.error("agent: %s", exc)
                self.notify(f"STATUS={exc}")
            except RegistryError as exc:
                log.warning("agent: keepalive failed: %s", exc)
            await asyncio.sleep(self.keepalive)

    async def _register(self) -> None:
        lease = await self._previous_lease() or await self.registry.leases.grant(self.opts.ttl)
        await self.registry.register_machine(self.machine, lease)
        self.lease = lease
        self._save_lease(lease)
        self._contact()
        log.info("agent: registered machine %s (lease %x, ttl %ds)", self.machine.id, lease,
                 self.opts.ttl)
        await self._publish_all()
        self._restart_engine()
        self._wake.set()

    async def _previous_lease(self) -> int:
        """The lease a previous agent process on this machine left alive, or 0."""
        if not self.opts.lease_file:
            return 0
        try:
            with open(self.opts.lease_file, encoding="ascii") as f:
                lease = int(f.read().strip(), 16)
        except (OSError, ValueError):
            return 0
        return lease if await self.registry.leases.refresh(lease) > 0 else 0

    def _save_lease(self, lease: int) -> None:
        if not self.opts.lease_file:
            return
        tmp = f"{self.opts.lease_file}.tmp"
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(self.opts.lease_file), exist_ok=True)
            with open(tmp, "w", encoding="ascii") as f:
                f.write(f"{lease:x}\n")
            os.replace(tmp, self.opts.lease_file)

    def _restart_engine(self) -> None:
        if not self.opts.engine:
            return
        from unitctl.engine.engine import Engine

        if self._engine_task:
            self._engine_task.cancel()
        engine = Engine(self.registry, self.machine.id, resync=self.opts.engine_resync,
                        grace=float(self.opts.ttl))
        self.engine = engine
        self._engine_task = asyncio.get_running_loop().create_task(engine.run(self.lease))

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
        rev = await self._refresh_schedule()
        watcher = asyncio.create_task(self._watch_into_wake(rev + 1))
        try:
            while True:
                checkpoint()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.opts.resync)
                self._wake.clear()
                if watcher.done():
                    watcher.result()
                await self._refresh_schedule()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, RegistryError):
                await watcher

    async def _watch_into_wake(self, rev: int) -> None:
        async for _ in self.registry.watch_schedule(self.machine.id, rev):
            self._wake.set()

    async def _refresh_schedule(self) -> int:
        entries, rev = await self.registry.get_schedule(self.machine.id)
        self._contact()
        self.schedule = entries
        await self.reconcile()
        if self.lease:
            self.ready.set()
        return rev

    async def reconcile(self) -> list[Task]:
        """Bring local units in line with the schedule; return the tasks done."""
        if self.fenced:
            return []
        desired = await self._desired()
        present = self.units.present()
        current = {n: CurrentUnit(n, h, (n, h) in self.started) for n, h in present.items()}
        tasks = compute_tasks(desired, current)
        await self._execute(tasks, desired)
        return tasks

    async def _desired(self) -> dict[str, DesiredUnit]:
        out: dict[str, DesiredUnit] = {}
        for name, entry in self.schedule.items():
            text = await self._body(entry.hash)
            if text is None:
                continue
            try:
                req = requirements(name, UnitFile.parse(text))
            except InvalidUnitError as exc:
                log.error("agent: unit %s is invalid: %s", name, exc)
                continue
            out[name] = DesiredUnit(name, entry.hash, entry.desired, req)
        for name, why in accept(self.machine, out).items():
            log.warning("agent: not loading %s: %s", name, why)
            del out[name]
        return out

    async def _body(self, sha: str) -> str | None:
        if sha not in self.bodies:
            text = await self.registry.get_body(sha)
            if text is None:
                return None
            self.bodies[sha] = text
        return self.bodies[sha]

    async def _execute(self, tasks: list[Task], desired: dict[str, DesiredUnit]) -> None:
        for task in tasks:
            try:
                await self._do(task, desired)
                log.info("agent: %s %s: %s", task.type.value, task.name or "-", task.reason)
            except UnitctlError as exc:
                log.error("agent: %s %s failed: %s", task.type.value, task.name, exc)
                if isinstance(exc, BusLost):
                    self._restart_in_place("systemd's bus connection was lost")
                asyncio.get_running_loop().call_later(1.0, self._wake.set)
                return

    def _restart_in_place(self, why: str) -> None:
        """Stop without leaving (units keep running); the daemon re-executes."""
        log.error("agent: %s: restarting in place; units keep running", why)
        self.leave_on_stop = False
        if self._stop is not None:
            self._stop.set()

    async def _do(self, task: Task, desired: dict[str, DesiredUnit]) -> None:
        name = task.name
        if task.type is TaskType.UNLOAD:
            self._forget(name)
            await self.units.unload(name)
            await self._drop_state(name)
        elif task.type is TaskType.LOAD:
            text = self.bodies[desired[name].hash]
            await self.units.write(name, text)
            await self.units.link(name, UnitFile.parse(text).has_section("Install"))
        elif task.type is TaskType.RELOAD:
            await self.units.reload()
            await self._report_loaded(desired)
        elif task.type is TaskType.STOP:
            self._forget(name)
            await self.units.stop(name)
        else:
            await self.units.start(name)
            self.started.add((name, desired[name].hash))

    def _forget(self, name: str) -> None:
        self.started = {s for s in self.started if s[0] != name}

    async def _report_loaded(self, desired: dict[str, DesiredUnit]) -> None:
        for name in desired:
            self._on_state(name, await self.units.state(name))

    # -- state publishing -----------------------------------------------------
    def _on_state(self, name: str, state: SystemdState) -> None:
        sha = self.units.present().get(name)
        if sha is None or not self.lease:
            return
        self._pending[name] = UnitState(name, self.machine.id, state.load, state.active,
                                        state.sub, sha)
        self._publish.set()

    async def _publisher(self) -> None:
        """Publish state changes in order, coalescing bursts (latest state wins).

        Deletions go through the same queue (``None``), so a late report can
        never overwrite the removal of an unloaded unit's state.
        """
        while True:
            checkpoint()
            await self._publish.wait()
            await asyncio.sleep(0.005)  # let a burst of signals gather into one txn
            self._publish.clear()
            batch, self._pending = self._pending, {}
            present = self.units.present()
            batch = {n: (st if n in present else None) for n, st in batch.items()}
            try:
                await self.registry.publish_states(self.machine.id, batch, self.lease)
            except RegistryError as exc:
                log.warning("agent: cannot report %d unit states: %s", len(batch), exc)
                self._pending = {**batch, **self._pending}
            if self._pending:
                await asyncio.sleep(0.5)
                self._publish.set()

    async def _publish_all(self) -> None:
        for name in self.units.present():
            self._on_state(name, await self.units.state(name))

    async def _drop_state(self, name: str) -> None:
        self._pending[name] = None
        self._publish.set()

    # -- fencing -------------------------------------------------------------
    async def _peer_watch(self) -> None:
        """Keep the list of peers (membership changes only; no polling).

        Watch events are applied one by one: re-listing every machine on each
        change would cost N machines x N agents reads per membership change.
        """
        base = self.registry.keys.machines()
        while True:
            checkpoint()
            try:
                machines = await self.registry.list_machines()
                self.peers = {m.id: m.public_ip for m in machines
                              if m.id != self.machine.id and m.public_ip}
                rev = await self.registry.revision()
                async for events in self.registry.watch(base, rev + 1):
                    for ev in events:
                        mid = self.registry.keys.tail(ev.key, base)
                        if ev.kind is EventKind.DELETE or mid == self.machine.id:
                            self.peers.pop(mid, None)
                            continue
                        m = decode_machine(ev.key, ev.value)
                        if m.public_ip:
                            self.peers[m.id] = m.public_ip
            except (RegistryError, ValueError):
                await asyncio.sleep(0.5)

    async def _fence_loop(self) -> None:
        step = max(0.05, self.opts.ttl / 20)
        last_hold = ""
        while True:
            checkpoint()
            await asyncio.sleep(step)
            if self.fenced or self.etcd_age() < FENCE_AFTER * self.opts.ttl:
                last_hold = ""
                continue
            addrs = [(ip, self.opts.peer_port) for ip in self.peers.values()]
            reports = await ask_peers(addrs, timeout=min(0.5, self.opts.ttl / 10))
            verdict, why = decide(self.etcd_age(), self.opts.ttl, self.keepalive, len(addrs),
                                  reports)
            if verdict is Verdict.FENCE and not await self._reaches_etcd():
                await self.fence(why)
            elif verdict is Verdict.HOLD and why != last_hold:
                log.warning("agent: etcd silent for %.1fs: %s", self.etcd_age(), why)
            last_hold = why if verdict is Verdict.HOLD else ""

    async def _reaches_etcd(self) -> bool:
        """One last quick look before fencing: etcd may have just come back."""
        try:
            await asyncio.wait_for(self.registry.revision(), 0.3)
        except (TimeoutError, RegistryError):
            return False
        self._contact()
        return True

    async def fence(self, why: str) -> None:
        """Stop every local unit now (files stay; the schedule decides later)."""
        self.fenced = True
        log.warning("agent: FENCING after %.1fs without etcd: %s", self.etcd_age(), why)
        self.notify(f"STATUS=fenced: {why}")
        for name in sorted(self.units.present()):
            with contextlib.suppress(UnitctlError):
                await self.units.stop(name)
        self.started.clear()

