"""The engine: one leader at a time places units (the I/O shell around the pure core).

Leadership is the registry's ``leader`` key, put under the leader agent's
machine lease: when that agent dies its lease expires (after at most the TTL)
and the key goes with it, and a campaigning agent takes over at once (each
follower watches the key, nothing polls).

While leading, the engine reconciles once, then again on every change under
``units/`` and ``machines/`` (watch events: a lone change at once, a burst
gathered, :func:`gathering`), and every ``resync`` seconds as a safety net.
A round reads the registry, runs the pure scheduler, and commits the difference
in transactions conditioned on what it read.

Outage guards (fleet stopped units when etcd blinked, issues 1289 and 1690):

* a machine must stay gone for ``loss_grace`` seconds (default 0.5 s) before
  its units move: an agent whose lease lapsed during a short etcd stall
  re-registers well within that time;
* when more than half of the machines that hold units vanish together, that is
  the mark of an etcd outage (leases lapsing together), not of deaths: the
  engine waits up to ``grace`` seconds (the agent TTL) for them to come back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from unitctl.agent.fencing import LOSS_GRACE
from unitctl.engine.bodies import ParsedBodies
from unitctl.engine.commit import pack, plan_groups
from unitctl.engine.fastround import FastPath, partial_view, restricted
from unitctl.engine.gather import GATHER_MAX, gather_left, gathering
from unitctl.engine.mirror import Mirror, read_view
from unitctl.engine.planned import build_snapshot, failure_moves, mass_loss, planned_schedule
from unitctl.engine.rollout import driving
from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.errors import ConflictError, RegistryError
from unitctl.failover import DEFAULT_POLICY, FailurePolicy, MovePlan, MoveRecord, appended
from unitctl.loop import checkpoint, raise_if_ended, wake_or_timeout, watch_wakes
from unitctl.model import Requirements, UnitRecord
from unitctl.registry.failures import failure_store
from unitctl.registry.kv import Put
from unitctl.registry.leader import Leadership
from unitctl.registry.registry import Registry
from unitctl.scheduler import Plan
from unitctl.scheduler.incremental import schedule_keeping
from unitctl.scheduler.plan import LEFT_BEHIND_MARK

log = logging.getLogger("unitctl.engine")


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What one reconcile round did (``plan`` is None when the round held back)."""

    revision: int
    plan: Plan | None
    batches: int
    seconds: float
    #: the round placed only what changed (:mod:`.fastround`)
    incremental: bool = False


class Engine:
    """Campaigns for leadership and, while leader, keeps the schedule right."""

    def __init__(self, registry: Registry, machine_id: str, *, resync: float = 60.0,
                 debounce: float = 0.01, grace: float = 10.0, loss_grace: float = LOSS_GRACE,
                 clock: Callable[[], float] = time.monotonic,
                 on_round: Callable[[RoundResult], None] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.resync = resync
        self.debounce = debounce
        self.grace = grace
        self.loss_grace = loss_grace
        self._missing_since: dict[str, float] = {}
        #: the last commit's seconds, and how long its own writes took to reach the mirror
        self._last_phases = (0.0, 0.0)
        self._mass_since: float | None = None
        self.clock = clock
        self.on_round = on_round
        self._reqs: dict[tuple[str, str], Requirements | str] = {}
        self._policies: dict[tuple[str, str], FailurePolicy] = {}
        self.wall = wall
        #: when a move held back by the failure policy's backoff is due (wall clock)
        self.due: float | None = None
        self.leading = False
        #: the mirror missed some of this engine's own writes: read afresh
        self._stale = False
        #: the standing schedule kept between rounds (the incremental round)
        self._fast = FastPath()
        self._last_txns = 0

    async def run(self, lease: int) -> None:
        """Campaign with ``lease`` until cancelled."""
        while True:
            checkpoint()
            try:
                lead = await self.registry.campaign(self.machine_id, lease)
                if lead is None:
                    await self._follow()
                    continue
                log.info("engine: leader (machine %s)", self.machine_id)
                async with driving(self.registry, lead, self.wall):  # rolling updates
                    await self._lead(lead)
            except ConflictError:
                log.warning("engine: leadership lost")
            except RegistryError as exc:
                log.warning("engine: %s; campaigning again in 1s", exc)
                await asyncio.sleep(1)
            finally:
                self.leading = False

    async def _follow(self) -> None:
        """Wait until the leader key goes away (or a resync period passes).

        Raises RegistryUnavailable at once when the watch of the key ends.
        """
        rev = await self.registry.revision()
        if await self.registry.leader() is None:
            return
        changed = asyncio.Event()
        leader_key = self.registry.watch(self.registry.keys.leader, rev + 1)
        async with watch_wakes(leader_key, changed) as watch:
            await wake_or_timeout(changed, self.resync)
            raise_if_ended(watch)

    async def _lead(self, lead: Leadership) -> None:
        """Reconcile while leading; rebuild the mirror every resync period."""
        self.leading = True
        while True:
            checkpoint()
            mirror = Mirror(self.registry)
            await mirror.start()
            try:
                await self._rounds(lead, mirror)
            finally:
                await mirror.close()

    async def _rounds(self, lead: Leadership, mirror: Mirror) -> None:
        """Rounds on mirror triggers until the resync period is over."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.resync
        result = await self.reconcile(lead, mirror)
        while loop.time() < until and not self._stale:
            checkpoint()
            wait = 0.1 if result.plan is None else until - loop.time()
            if self.due is not None:
                wait = min(wait, max(0.05, self.due - self.wall()))
            ended, during = loop.time(), mirror.trigger.is_set()  # changed while it ran
            await wake_or_timeout(mirror.trigger, wait)
            quiet = 0.0 if during else loop.time() - ended
            await self._gather(gathering(quiet, self.debounce, result.seconds,
                                         result.batches > 0), lambda: mirror.changed_at)
            mirror.trigger.clear()
            mirror.check()
            result = await self.reconcile(lead, mirror)
        self._stale = False

    async def _gather(self, seconds: float,
                      changed_at: Callable[[], float] = lambda: math.inf) -> None:
        """Let the changes of a burst gather before a round (``seconds`` 0: none).

        It waits ``seconds``, or up to :data:`GATHER_MAX` while changes keep
        coming in during the wait (a bulk ``start`` streaming its transactions:
        the stream goes into one round, and every machine gets one batch, not one
        per round), and it ends as soon as no change has come for
        :data:`GATHER_QUIET` (``changed_at``: the loop time of the last one). A
        lone change, or one that came before the wait began, waits no longer
        than before (:func:`gather_left`)."""
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (left := gather_left(loop.time(), started + seconds, changed_at(), started,
                                   started + max(seconds, GATHER_MAX))) > 0:
            await asyncio.sleep(left)

    async def reconcile(self, lead: Leadership, mirror: Mirror | None = None) -> RoundResult:
        """One round: read (from ``mirror`` when given), schedule, commit; incremental
        when only new units changed since the last round (:mod:`.fastround`).

        Raises ConflictError if no longer leader.
        """
        t0 = time.perf_counter()
        if mirror is not None:
            records = self._fast.records(mirror, mirror.take_changes())
            if records is not None and self.due is None:
                fast = await self._fast_round(lead, mirror, records, t0)
                if fast is not None:
                    return fast
        self._fast.drop()
        view = mirror.view() if mirror else await read_view(self.registry)
        if self._holding(view):
            held = RoundResult(view.revision, None, 0, time.perf_counter() - t0)
            if self.on_round:
                self.on_round(held)
            return held
        reqs = await self._requirements(view)
        good = {n: r for n, r in reqs.items() if isinstance(r, Requirements)}
        bad = {n: r for n, r in reqs.items() if isinstance(r, str)}
        moves = failure_moves(view, good, self._unit_policies(view), self.wall())
        self.due = moves.next_due
        plan, standing = schedule_keeping(build_snapshot(view, good, moves))
        counted = frozenset(n for n, r in good.items() if r.needs.any)
        planned = planned_schedule(view, plan, bad, counted)
        expected, settled = await self._commit(lead, mirror, view, plan, planned)
        if moves.leave:
            await self._record_moves(view, plan, moves, expected)
        if self._missing_since or self._mass_since is not None or moves.next_due is not None:
            settled = False
        self._fast.keep(standing if settled else None, mirror, expected)
        return self._finish(view.revision, plan, t0)

    async def _fast_round(self, lead: Leadership, mirror: Mirror,
                          records: dict[str, UnitRecord], t0: float) -> RoundResult | None:
        """The incremental round over ``records`` (None: run a full round)."""
        reqs = await self._requirements_of(records)
        inc = self._fast.place(records, reqs)
        if inc is None:
            return None
        view = partial_view(mirror, inc.affected)
        counted = frozenset(n for n in inc.affected
                            if isinstance(r := self._reqs.get((n, view.units[n].hash)),
                                          Requirements) and r.needs.any)
        planned = planned_schedule(view, restricted(inc.plan, inc.affected), {}, counted)
        expected, settled = await self._commit(lead, mirror, view, inc.plan, planned)
        self._fast.keep(self._fast.standing if settled else None, mirror, expected)
        return self._finish(mirror.revision, inc.plan, t0, incremental=True)

    async def _commit(self, lead: Leadership, mirror: Mirror | None, view: EngineView,
                      plan: Plan, planned: PlannedSchedule
                      ) -> tuple[dict[str, bytes | None], bool]:
        """Commit ``planned`` against ``view``: the values written, and whether the next
        round may be incremental (not after a skipped group, a recheck, a stale mirror)."""
        batches = pack(plan_groups(self.registry.keys, view, planned))
        t0 = time.perf_counter()
        done = await self.registry.commit(batches, lead)
        t1 = time.perf_counter()
        self._last_txns = done.txns
        expected = {op.key: op.value if isinstance(op, Put) else None for op in done.ops}
        # the next round must see our own writes, or it would redo them; a round over
        # a view without our last placements could give their room and ports away
        # again, so then the next round reads everything afresh
        settled = True
        if mirror and done.ops and not await mirror.settle(expected, timeout=2.0):
            log.warning("engine: own writes not seen within 2s; re-reading the registry")
            self._stale = True
            settled = False
        self._last_phases = (t1 - t0, time.perf_counter() - t1)
        if mirror and (done.skipped or plan.recheck):
            mirror.trigger.set()  # a unit changed under us, or ports were freed: look again
            settled = False
        return expected, settled

    def _finish(self, revision: int, plan: Plan, t0: float,
                incremental: bool = False) -> RoundResult:
        result = RoundResult(revision, plan, self._last_txns, time.perf_counter() - t0,
                             incremental)
        self._log(result)
        if self.on_round:
            self.on_round(result)
        return result

    def _holding(self, view: EngineView) -> bool:
        """True when this round must wait: machines went missing too recently."""
        now = self.clock()
        missing = {m for m in view.placements.values() if m not in view.machines}
        self._missing_since = {m: self._missing_since.get(m, now) for m in missing}
        gone, used = mass_loss(view)
        if gone > 1 and gone * 2 > used:
            self._mass_since = self._mass_since if self._mass_since is not None else now
            if now - self._mass_since < self.grace:
                log.warning("engine: %d of %d machines vanished together: an etcd outage, "
                            "not deaths; waiting up to %.0fs for them", gone, used, self.grace)
                return True
        else:
            self._mass_since = None
        return any(now - t < self.loss_grace for t in self._missing_since.values())

    def _log(self, r: RoundResult) -> None:
        for d in r.plan.decisions if r.plan else ():
            # a move that leaves data behind is a WARNING: an operator must see it
            level = logging.WARNING if LEFT_BEHIND_MARK in d.reason else logging.INFO
            log.log(level, "engine: %s %s on %s: %s", d.action.value, d.unit, d.machine[:8],
                    d.reason)
        if r.batches:
            commit, seen = self._last_phases
            log.debug("engine: round at rev %d: %d txns in %.3fs (%s; commit %.3fs, own "
                      "writes seen %.3fs after it)", r.revision, r.batches, r.seconds,
                      "incremental" if r.incremental else "full", commit, seen)

    async def _requirements(self, view: EngineView) -> dict[str, Requirements | str]:
        """Parse each unit's [X-Fleet] requirements, cached by (name, body hash)."""
        missing = [(n, u.hash) for n, u in view.units.items() if (n, u.hash) not in self._reqs]
        if missing:
            await self._load_requirements(missing)
        live = {(n, u.hash) for n, u in view.units.items()}
        for key in [k for k in self._reqs if k not in live]:
            del self._reqs[key]
        return {n: self._reqs[(n, u.hash)] for n, u in view.units.items()}

    async def _requirements_of(self, records: Mapping[str, UnitRecord]
                               ) -> dict[str, Requirements | str]:
        """Parse the requirements of ``records`` only (cached like :meth:`_requirements`)."""
        missing = [(n, r.hash) for n, r in records.items() if (n, r.hash) not in self._reqs]
        if missing:
            await self._load_requirements(missing)
        return {n: self._reqs[(n, r.hash)] for n, r in records.items()}

    async def _load_requirements(self, missing: list[tuple[str, str]]) -> None:
        """Read only the bodies needed, a bounded batch at a time (never all in one reply)."""
        parsed = ParsedBodies(await self.registry.get_bodies_by_hash(sha for _, sha in missing))
        for name, sha in missing:
            self._reqs[(name, sha)] = parsed.requirements(name, sha)
            self._policies[(name, sha)] = parsed.policy(sha)

    def _unit_policies(self, view: EngineView) -> dict[str, FailurePolicy]:
        """Each unit's failure policy (read with its requirements)."""
        for key in [k for k in self._policies if k not in self._reqs]:
            del self._policies[key]
        return {n: self._policies.get((n, u.hash), DEFAULT_POLICY) for n, u in view.units.items()}

    async def _record_moves(self, view: EngineView, plan: Plan, moves: MovePlan,
                            written: dict[str, bytes | None]) -> None:
        """Append each move this round committed to its unit's history (moves/<unit>)."""
        store = failure_store(self.registry)
        policies = self._unit_policies(view)
        for unit, source in sorted(moves.leave.items()):
            target = plan.placements.get(unit)
            if target in (None, source) or written.get(
                    self.registry.keys.placement(unit)) != target.encode():
                continue  # it stayed (no other machine passes its rules) or did not land
            log.warning("engine: moving %s off %s to %s: %s", unit, source[:8], target[:8],
                        moves.why[unit])
            history = appended(view.moves.get(unit, ()),
                               MoveRecord(source, self.wall(), moves.why[unit]))
            try:
                await store.record_moves(unit, history, policies[unit].avoid_for)
            except RegistryError as exc:
                log.warning("engine: cannot record the move of %s: %s", unit, exc)
