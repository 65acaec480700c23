"""Per-unit retry backoff: which units' tasks failed, why, and when to try again (pure).

A unit whose task fails is held back for ``first`` seconds, doubled with each
failure in a row up to ``cap`` (1, 2, 4 ... 300 s by default). Held back means
that none of its tasks runs before its retry time, while every other unit's
tasks do. A failure is forgotten when a task of the unit succeeds, when the
unit's schedule entry changes (a new hash or desired state: a fresh start at
``first``), and when the unit leaves the schedule.

The clock is injected (monotonic seconds), so the backoff is tested without
sleeping; ``wall`` (Unix seconds) dates the retry in the state record the agent
publishes (:attr:`UnitFailure.retry_wall`), which clients on other hosts read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from unitctl.model import DesiredState

from .reconcile import DesiredUnit

__all__ = ["Backoff", "UnitFailure"]

#: Seconds a unit waits after its first failure in a row.
FIRST_DELAY = 1.0
#: The longest wait between two attempts (5 minutes).
MAX_DELAY = 300.0


@dataclass(frozen=True, slots=True)
class UnitFailure:
    """The last failure of one unit's task.

    Attributes:
        hash, desired: the schedule entry the failure happened for.
        error: one line for a user, e.g. ``start refused by systemd: ...``.
        attempts: failures in a row.
        retry_at: when its tasks may run again (the backoff's clock).
        retry_wall: the same moment as a Unix time.
    """

    name: str
    hash: str
    desired: DesiredState
    error: str
    attempts: int
    retry_at: float
    retry_wall: float


def entry_key(entry: DesiredUnit | None) -> tuple[str, DesiredState]:
    """What a failure is remembered for: the entry's hash and desired state
    (``("", inactive)`` for a unit not scheduled here)."""
    return ("", DesiredState.INACTIVE) if entry is None else (entry.hash, entry.desired)


class Backoff:
    """The failing units of one machine and their retry times."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, *, first: float = FIRST_DELAY,
                 cap: float = MAX_DELAY) -> None:
        self.clock = clock
        self.wall = wall
        self.first = first
        self.cap = cap
        self._failures: dict[str, UnitFailure] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._failures

    def names(self) -> list[str]:
        """The units failing now, sorted."""
        return sorted(self._failures)

    def get(self, name: str) -> UnitFailure | None:
        """The unit's last failure, or None."""
        return self._failures.get(name)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failures in a row."""
        return float(min(self.cap, self.first * 2 ** min(attempts - 1, 64)))

    def failed(self, name: str, entry: DesiredUnit | None, error: str) -> UnitFailure:
        """Record a failed task of ``name`` (``entry``: its schedule entry, None when it
        is not scheduled here); its retry time moves out."""
        sha, desired = entry_key(entry)
        prev = self._failures.get(name)
        same = prev is not None and (prev.hash, prev.desired) == (sha, desired)
        attempts = prev.attempts + 1 if prev is not None and same else 1
        wait = self.delay(attempts)
        failure = UnitFailure(name, sha, desired, error, attempts, self.clock() + wait,
                              self.wall() + wait)
        self._failures[name] = failure
        return failure

    def succeeded(self, name: str) -> bool:
        """Forget the unit's failure; tell whether there was one."""
        return self._failures.pop(name, None) is not None

    def holds(self, name: str) -> bool:
        """Whether the unit's tasks must wait (it failed and its retry time is ahead)."""
        failure = self._failures.get(name)
        return failure is not None and self.clock() < failure.retry_at

    def forget_changed(self, desired: Mapping[str, DesiredUnit]) -> list[str]:
        """Forget the failures whose schedule entry changed or went; return their names."""
        gone = [name for name, f in self._failures.items()
                if entry_key(desired.get(name)) != (f.hash, f.desired)]
        for name in gone:
            del self._failures[name]
        return sorted(gone)

    def next_retry(self) -> float | None:
        """Seconds until the earliest retry (0 when one is due), None with no failure."""
        if not self._failures:
            return None
        return max(0.0, min(f.retry_at for f in self._failures.values()) - self.clock())
