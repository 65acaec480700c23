"""The engine's rounds as metrics: :class:`RoundObserver` is the engine's ``on_round``.

A round that ran records its duration, the units placed and the units no
machine may take (``Plan.placements`` / ``Plan.unplaceable``). A round that held
back (machines went missing too recently) starts a failover clock; the round
that then unschedules units from a machine that went away counts them as
failovers and observes the time since that first held round: how long the
units of a lost machine waited to move, grace periods included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from unitctl.metrics.catalog import (
    ENGINE_HELD_ROUNDS,
    ENGINE_ROUND_SECONDS,
    FAILOVER_SECONDS,
    FAILOVERS,
    PLACEMENTS,
    UNPLACEABLE,
)
from unitctl.scheduler.plan import Action, PlacementReason, Plan

_GONE_HEAD, _, _GONE_TAIL = str(PlacementReason.MACHINE_GONE).partition("{machine}")


class Round(Protocol):
    """What the observer reads of :class:`unitctl.engine.engine.RoundResult`."""

    @property
    def plan(self) -> Plan | None: ...

    @property
    def seconds(self) -> float: ...


def moved_off_lost_machines(plan: Plan) -> int:
    """How many of ``plan``'s decisions take a unit off a machine that went away."""
    return sum(1 for d in plan.decisions if d.action is Action.UNSCHEDULE
               and d.reason.startswith(_GONE_HEAD) and d.reason.endswith(_GONE_TAIL))


class RoundObserver:
    """Records each round (see the module docstring); one per engine."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.held_since: float | None = None

    def __call__(self, result: Round) -> None:
        now = self.clock()
        plan = result.plan
        if plan is None:
            ENGINE_HELD_ROUNDS.inc()
            if self.held_since is None:
                self.held_since = now
            return
        ENGINE_ROUND_SECONDS.observe(result.seconds)
        PLACEMENTS.set(len(plan.placements))
        UNPLACEABLE.set(len(plan.unplaceable))
        moved = moved_off_lost_machines(plan)
        if moved:
            FAILOVERS.inc(moved)
            started = self.held_since if self.held_since is not None else now - result.seconds
            FAILOVER_SECONDS.observe(now - started)
        self.held_since = None
