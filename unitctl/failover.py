"""The failure policy: when a unit that keeps failing on one machine moves (pure).

A unit declares its policy in ``[X-Failover]`` (every key optional)::

    [X-Failover]
    Failures=3        # failures on one machine ...
    Window=5min       # ... within this window make it move
    Backoff=30s       # wait before the 2nd move, doubling for each further move
    BackoffMax=10min  # the longest wait between two moves
    AvoidFor=30min    # the machine it failed on is avoided this long
    Move=yes          # no: never move; the agent's retry backoff goes on

A *failure* is systemd's ``failed`` state (or ``auto-restart``), or the unit's
health check turning unhealthy. The agent of the machine counts them
(:func:`count`) and, at ``Failures`` within ``Window``, writes a
:class:`FailureRecord` that lives ``AvoidFor`` seconds. The engine then plans
the move (:func:`plan_moves`): the unit leaves that machine (unless pinned by
``MachineID=`` or ``Move=no``) through the normal scheduling round and guarded
commit, and the scheduler avoids every machine with a live record, unless no
other machine passes the unit's rules. Each move is kept in the unit's
:class:`MoveRecord` history, which sets the backoff before the next one.
Times are Unix seconds (agents and engine compare them: clocks must agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from unitctl.errors import InvalidUnitError
from unitctl.health import parse_span
from unitctl.record import Frozen, init
from unitctl.unitfile import UnitFile

SECTION = "X-Failover"
KEYS = ("Failures", "Window", "Backoff", "BackoffMax", "AvoidFor", "Move")
#: Moves kept in a unit's history.
HISTORY = 10


class FailurePolicy(Frozen):
    """A unit's failure policy (defaults: 3 failures in 5 min; moves back off 30 s
    doubling up to 10 min; the machine is avoided 30 min)."""

    __slots__ = ("avoid_for", "backoff", "backoff_max", "failures", "move", "window")
    failures: int
    window: float
    backoff: float
    backoff_max: float
    avoid_for: float
    move: bool

    def __init__(self, failures: int = 3, window: float = 300.0, backoff: float = 30.0,
                 backoff_max: float = 600.0, avoid_for: float = 1800.0,
                 move: bool = True) -> None:
        init(self, failures, window, backoff, backoff_max, avoid_for, move)


DEFAULT_POLICY = FailurePolicy()


def _span(unit: UnitFile, key: str, default: float) -> float:
    text = unit.value(SECTION, key)
    return default if text is None else parse_span(text, key, SECTION)


def parse_policy(unit: UnitFile) -> FailurePolicy:
    """The unit's policy (the default without an ``[X-Failover]`` section).

    Raises:
        InvalidUnitError: an unknown key or a bad value, named.
    """
    for option in unit.options:
        if option.section == SECTION and option.name not in KEYS:
            raise InvalidUnitError(f"[{SECTION}] unknown key {option.name}= "
                                   f"(known: {', '.join(KEYS)})")
    d = DEFAULT_POLICY
    failures = unit.value(SECTION, "Failures")
    if failures is not None and (not failures.isdigit() or int(failures) < 1):
        raise InvalidUnitError(f"[{SECTION}] Failures={failures!r} is not a whole number >= 1")
    move = (unit.value(SECTION, "Move") or "yes").lower()
    if move not in ("yes", "no", "true", "false", "1", "0", "on", "off"):
        raise InvalidUnitError(f"[{SECTION}] Move={move!r}: use yes or no")
    return FailurePolicy(int(failures) if failures else d.failures,
                         _span(unit, "Window", d.window), _span(unit, "Backoff", d.backoff),
                         _span(unit, "BackoffMax", d.backoff_max),
                         _span(unit, "AvoidFor", d.avoid_for),
                         move in ("yes", "true", "1", "on"))


def count(times: Iterable[float], now: float, window: float) -> tuple[float, ...]:
    """The failure times still inside the window ending at ``now``, oldest first."""
    return tuple(sorted(t for t in times if now - window <= t <= now))


class FailureRecord(Frozen):
    """A unit failed ``count`` times on ``machine`` between ``first`` and ``last``."""

    __slots__ = ("count", "first", "last", "machine", "unit", "why")
    unit: str
    machine: str
    count: int
    first: float
    last: float
    why: str

    def __init__(self, unit: str, machine: str, count: int, first: float, last: float,
                 why: str = "") -> None:
        init(self, unit, machine, count, first, last, why)

    def describe(self) -> str:
        """``failed 3 times on 2c8e5b1f in 5 min``."""
        span = self.last - self.first
        took = f"{span / 60:.0f} min" if span >= 90 else f"{span:.0f} s"
        return f"{self.why or 'failed'} {self.count} times on {self.machine[:8]} in {took}"


class MoveRecord(Frozen):
    """The engine moved ``unit`` off ``source`` at ``at``, for ``why``."""

    __slots__ = ("at", "source", "why")
    source: str
    at: float
    why: str

    def __init__(self, source: str, at: float, why: str = "") -> None:
        init(self, source, at, why)


class MovePlan(Frozen):
    """What one engine round does about failures.

    Attributes:
        avoid: unit -> machines the scheduler avoids for it (when it can).
        leave: unit -> the machine it must leave in this round.
        why: unit -> the failure that makes it leave (for its history).
        next_due: the earliest time a held-back move becomes due (None: none).
    """

    __slots__ = ("avoid", "leave", "next_due", "why")
    avoid: Mapping[str, frozenset[str]]
    leave: Mapping[str, str]
    why: Mapping[str, str]
    next_due: float | None

    def __init__(self, avoid: Mapping[str, frozenset[str]] | None = None,
                 leave: Mapping[str, str] | None = None, why: Mapping[str, str] | None = None,
                 next_due: float | None = None) -> None:
        init(self, {} if avoid is None else avoid, {} if leave is None else leave,
             {} if why is None else why, next_due)


def move_delay(history: Iterable[MoveRecord], policy: FailurePolicy, now: float) -> float:
    """When the next move may happen: at once for a first move, then ``Backoff``
    after the last one, doubling with each move within ``AvoidFor``."""
    recent = sorted(m.at for m in history if now - m.at < policy.avoid_for)
    if not recent:
        return now
    wait = min(policy.backoff_max, policy.backoff * float(2 ** min(len(recent) - 1, 32)))
    return recent[-1] + wait


def _handled(record: FailureRecord, history: Iterable[MoveRecord]) -> bool:
    return any(m.source == record.machine and m.at >= record.last for m in history)


def plan_moves(placements: Mapping[str, str],
               failures: Mapping[str, Mapping[str, FailureRecord]],
               history: Mapping[str, tuple[MoveRecord, ...]],
               policies: Mapping[str, tuple[FailurePolicy, bool]],
               now: float) -> MovePlan:
    """The round's avoid lists and moves.

    ``policies`` maps a unit to its policy and whether it is pinned
    (``MachineID=``); units without one are left alone.
    """
    avoid: dict[str, frozenset[str]] = {}
    leave: dict[str, str] = {}
    why: dict[str, str] = {}
    due: list[float] = []
    for unit, records in sorted(failures.items()):
        if unit not in policies:
            continue
        policy, pinned = policies[unit]
        live = {m: r for m, r in records.items() if now < r.last + policy.avoid_for}
        where = placements.get(unit)
        record = live.get(where or "")
        if record is not None and policy.move and not pinned and not _handled(
                record, history.get(unit, ())):
            at = move_delay(history.get(unit, ()), policy, now)
            if at <= now:
                leave[unit], why[unit] = record.machine, record.describe()
            else:
                due.append(at)
                live.pop(record.machine)  # stays there until the move is due
        if live:
            avoid[unit] = frozenset(live)
    return MovePlan(avoid, leave, why, min(due) if due else None)


def appended(history: tuple[MoveRecord, ...], move: MoveRecord) -> tuple[MoveRecord, ...]:
    """The history with ``move`` added, at most :data:`HISTORY` moves kept."""
    return (*history, move)[-HISTORY:]
