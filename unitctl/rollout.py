"""Rolling updates: the rollout record and the batch planner (pure).

A *rollout* replaces the body of a set of launched units (the instances of a
template, or units named one by one) with a *target* body, one batch at a
time. :func:`advance` is the whole policy: given the record and what the
registry shows of each instance (:class:`Observed`), it returns the next
record and the body writes to make (instance -> hash). It reads no clock
(``now`` is passed) and does no I/O; the engine's driver
(:mod:`unitctl.engine.rollout`) stores the record and the writes in one
guarded transaction, so a new leader carries on from exactly the last step.

Contract:

* an instance is *available* when systemd reports it active and its health
  check (if it has one) is not starting or unhealthy; a batch in flight
  counts as unavailable until every member is *up*: on the wanted body (the
  unit's hash, and the hash its machine runs), active, and healthy when that
  body has a check;
* a new batch is taken only when the previous one is up, and it never makes
  more than ``max_unavailable`` instances unavailable: instances that are
  down anyway are taken first (they cost nothing), available ones only while
  the down count stays within the budget;
* ``canary`` N: the first N instances are replaced, then the rollout pauses
  (unless ``confirmed``) until :func:`resume`; ``pause_each`` pauses after
  every batch;
* a batch member that fails (systemd's failed state, or unhealthy) on the
  wanted body, a batch that is not up within ``deadline`` seconds, or an
  instance changed outside the rollout, starts the *revert*: every replaced
  instance (the failed batch first) goes back to its previous body, in
  batches under the same budget. :func:`undo` starts it by hand, also after
  the rollout is done. A revert batch that fails ends the rollout ``failed``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

#: At most this many instances are written in one step (one etcd transaction).
MAX_BATCH = 25
#: How long a batch may take to be active and healthy, by default (seconds).
DEFAULT_DEADLINE = 300.0


class Phase(enum.Enum):
    """Where a rollout is."""

    ROLLING = "rolling"
    PAUSED = "paused"
    REVERTING = "reverting"
    DONE = "done"
    REVERTED = "reverted"
    FAILED = "failed"


#: The phases the engine still drives.
ACTIVE = frozenset({Phase.ROLLING, Phase.PAUSED, Phase.REVERTING})


@dataclass(frozen=True, slots=True)
class Rollout:
    """One rollout as stored in ``rollouts/<name>``.

    Attributes:
        name: the rollout's name (the template, or the first unit named).
        target: the body hash rolled out.
        previous: instance -> its body hash before the rollout, in rollout order.
        checked: body hash -> whether that body has a health check.
        batch: the instances written last, not yet up.
        since: when ``batch`` was written (wall clock, seconds).
        replaced: instances up on the target (in a revert: the ones to revert).
        reverted: instances back up on their previous body.
        reason: why the rollout paused, waits, reverted or failed.
    """

    name: str
    target: str
    previous: Mapping[str, str]
    checked: Mapping[str, bool] = field(default_factory=dict)
    max_unavailable: int = 1
    canary: int = 0
    pause_each: bool = False
    confirmed: bool = False
    deadline: float = DEFAULT_DEADLINE
    phase: Phase = Phase.ROLLING
    batch: tuple[str, ...] = ()
    since: float = 0.0
    replaced: tuple[str, ...] = ()
    reverted: tuple[str, ...] = ()
    reason: str = ""
    created: float = 0.0
    updated: float = 0.0

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(self.previous)

    def wanted(self, instance: str) -> str:
        """The body ``instance`` is being moved to in the current phase."""
        return self.previous[instance] if self.phase is Phase.REVERTING else self.target

    def left(self, instance: str) -> str:
        """The body ``instance`` is being moved away from in the current phase."""
        return self.target if self.phase is Phase.REVERTING else self.previous[instance]

    @property
    def due(self) -> float | None:
        """When the batch in flight runs out of time (None: nothing in flight)."""
        return self.since + self.deadline if self.batch and self.phase in ACTIVE else None


@dataclass(frozen=True, slots=True)
class Observed:
    """What the registry shows of one instance.

    Attributes:
        unit_hash: its body hash in ``units/`` ("" when the unit is gone).
        running_hash: the hash its placed machine's agent reports ("" when none).
        active: systemd's ActiveState there ("" when not reported).
        health: its health there ("" without a check).
    """

    unit_hash: str = ""
    running_hash: str = ""
    active: str = ""
    health: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """What :func:`advance` decided: the next record and the writes (instance -> hash)."""

    rollout: Rollout
    writes: Mapping[str, str] = field(default_factory=dict)


def available(obs: Observed) -> bool:
    """True when the instance serves: active, and not starting or unhealthy."""
    return obs.active == "active" and obs.health not in ("starting", "unhealthy")


def up_on(obs: Observed, sha: str, checked: bool) -> bool:
    """True when the instance runs body ``sha``, active (and healthy if ``checked``)."""
    if obs.unit_hash != sha or obs.running_hash != sha or not available(obs):
        return False
    return obs.health == "healthy" or not checked


def failure_on(obs: Observed, sha: str) -> str:
    """Why the instance failed on body ``sha`` ("" when it did not)."""
    if obs.running_hash != sha:
        return ""
    if obs.active == "failed":
        return "failed"
    return "unhealthy" if obs.health == "unhealthy" else ""


def unavailable(rollout: Rollout, observed: Mapping[str, Observed]) -> set[str]:
    """The instances down now, the batch in flight counted as down."""
    down = {i for i in rollout.order if not available(observed.get(i, Observed()))}
    return down | set(rollout.batch)


def advance(rollout: Rollout, observed: Mapping[str, Observed], now: float,
            limit: int = MAX_BATCH) -> Step:
    """The next step of ``rollout`` (see the module docstring)."""
    r = rollout
    if r.phase not in ACTIVE:
        return Step(r)
    if r.batch:
        why = _batch_failure(r, observed, now)
        if why:
            if r.phase is Phase.REVERTING:
                return Step(replace(r, phase=Phase.FAILED, batch=(), reason=f"revert: {why}"))
            return advance(begin_revert(r, why), observed, now, limit)
        if not all(_up(r, observed, i) for i in r.batch):
            return Step(r)
        r = _batch_done(r)
        if _pauses(r):
            return Step(replace(r, phase=Phase.PAUSED, reason=_pause_reason(r)))
    if r.phase is Phase.PAUSED:
        return Step(r)
    return _next_batch(r, observed, now, limit)


def _up(r: Rollout, observed: Mapping[str, Observed], instance: str) -> bool:
    sha = r.wanted(instance)
    return up_on(observed.get(instance, Observed()), sha, r.checked.get(sha, False))


def _batch_failure(r: Rollout, observed: Mapping[str, Observed], now: float) -> str:
    """Why the batch in flight failed ("" while it may still come up)."""
    for i in r.batch:
        obs = observed.get(i, Observed())
        if obs.unit_hash != r.wanted(i):
            return f"{i} was changed outside the rollout"
        if why := failure_on(obs, r.wanted(i)):
            return f"{i} {why} on body {r.wanted(i)[:7]}"
    if now - r.since > r.deadline:
        late = [i for i in r.batch if not _up(r, observed, i)]
        what = "active and healthy" if any(r.checked.get(r.wanted(i)) for i in late) \
            else "active"
        return f"{', '.join(late)} not {what} within {r.deadline:g}s"
    return ""


def _batch_done(r: Rollout) -> Rollout:
    if r.phase is Phase.REVERTING:  # the reason stays: why it reverts
        return replace(r, batch=(), reverted=r.reverted + r.batch)
    return replace(r, batch=(), replaced=r.replaced + r.batch, reason="")


def _pauses(r: Rollout) -> bool:
    if r.phase is not Phase.ROLLING or len(r.replaced) >= len(r.previous):
        return False
    return r.pause_each or (r.canary > 0 and not r.confirmed and len(r.replaced) >= r.canary)


def _pause_reason(r: Rollout) -> str:
    what = "canary" if r.canary and not r.confirmed else "batch"
    return f"{what} done ({len(r.replaced)} of {len(r.previous)} on the new body); " \
           f"resume to go on"


def _pending(r: Rollout) -> list[str]:
    if r.phase is Phase.REVERTING:
        return [i for i in r.replaced if i not in r.reverted]
    return [i for i in r.order if i not in r.replaced]


def _next_batch(r: Rollout, observed: Mapping[str, Observed], now: float,
                limit: int) -> Step:
    """Take the next batch, finish, or wait for instances down outside the rollout."""
    pending = _pending(r)
    if r.phase is Phase.ROLLING:
        changed = [i for i in pending if observed.get(i, Observed()).unit_hash
                   not in (r.previous[i], r.target)]
        if changed:
            return advance(begin_revert(r, f"{changed[0]} was changed outside the rollout"),
                           observed, now, limit)
    else:  # a reverted instance changed (or destroyed) meanwhile is left alone
        left = tuple(i for i in pending if observed.get(i, Observed()).unit_hash != r.target)
        r = replace(r, reverted=r.reverted + left)
        pending = [i for i in pending if i not in left]
    if not pending:
        done = Phase.REVERTED if r.phase is Phase.REVERTING else Phase.DONE
        return Step(replace(r, phase=done, batch=()))
    batch = pick(r, pending, observed, limit)
    reverting = r.phase is Phase.REVERTING
    if not batch:
        if reverting:
            return Step(r)
        down = sorted(unavailable(r, observed))
        return Step(replace(r, reason=f"waiting: {', '.join(down)} down"))
    writes = {i: r.wanted(i) for i in batch
              if observed.get(i, Observed()).unit_hash != r.wanted(i)}
    return Step(replace(r, batch=tuple(batch), since=now,
                        reason=r.reason if reverting else ""), writes)


def pick(r: Rollout, pending: list[str], observed: Mapping[str, Observed],
         limit: int = MAX_BATCH) -> list[str]:
    """The next batch from ``pending`` (see the module docstring for the budget)."""
    size = max(1, min(r.max_unavailable, limit))
    if r.phase is Phase.ROLLING and r.canary > 0 and not r.confirmed:
        size = min(size, max(1, r.canary - len(r.replaced)))
    down = unavailable(r, observed)
    budget = r.max_unavailable - len(down)
    batch = [i for i in pending if i in down][:size]
    for i in pending:
        if len(batch) >= size or budget <= 0:
            break
        if i not in down:
            batch.append(i)
            budget -= 1
    return batch


def begin_revert(r: Rollout, reason: str) -> Rollout:
    """``r`` turned back: every replaced instance (the batch first) to its previous body."""
    first = tuple(i for i in r.batch if i not in r.replaced)
    return replace(r, phase=Phase.REVERTING, batch=(), replaced=first + r.replaced,
                   reverted=(), reason=reason)


def undo(r: Rollout, reason: str = "undone by request") -> Rollout:
    """Revert a rollout in progress or done; ValueError when there is nothing to undo."""
    if r.phase not in (Phase.ROLLING, Phase.PAUSED, Phase.DONE):
        raise ValueError(f"rollout {r.name} is {r.phase.value}: nothing to undo")
    return begin_revert(r, reason)


def resume(r: Rollout) -> Rollout:
    """A paused rollout confirmed; ValueError unless it is paused."""
    if r.phase is not Phase.PAUSED:
        raise ValueError(f"rollout {r.name} is {r.phase.value}, not paused")
    return replace(r, phase=Phase.ROLLING, confirmed=True, reason="")
