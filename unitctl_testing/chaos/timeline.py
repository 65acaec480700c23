"""Active intervals of units per machine, rebuilt from systemd's own timestamps (pure).

A poll of one unit on one machine gives its ``ActiveState``, ``InvocationID`` and
``InactiveExitTimestampMonotonic`` (left inactive: the run began) /
``InactiveEnterTimestampMonotonic`` (inactive or failed again: every process gone).
One run of a unit is the interval between the two, so a short run that began and
ended between two polls is still seen, with systemd's exact times. All machines
share the host's CLOCK_MONOTONIC (no time namespace), so intervals of different
machines compare directly, and with the host's ``time.monotonic()``.

An end is *exact* when systemd recorded it. It is a *window* ``[end_lo, end_hi]``
when the record is gone (the unit was unloaded and collected between two polls:
it ran at least until the last poll that saw it running and at most until the
poll that saw it gone), or when the machine was killed (the kill's window). A
run that started and was collected between two polls is not seen at all; the
poll period bounds that blind spot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: ActiveState values in which no process of the unit runs.
DOWN_STATES = frozenset({"inactive", "failed"})


@dataclass(frozen=True, slots=True)
class Sample:
    """One unit as one poll saw it (times in host monotonic seconds; 0 = never)."""

    t_sent: float
    t_recv: float
    load: str
    active: str
    invocation: str
    left_inactive: float
    entered_inactive: float


@dataclass(slots=True)
class Interval:
    """One run of ``unit`` on ``machine`` (boot ``gen``); open while ``end_hi`` is None."""

    unit: str
    machine: str
    gen: int
    start: float
    invocation: str = ""
    last_seen: float = 0.0
    end_lo: float | None = None
    end_hi: float | None = None
    end_how: str = ""

    @property
    def open(self) -> bool:
        return self.end_hi is None

    def close(self, lo: float, hi: float, how: str) -> None:
        self.end_lo, self.end_hi, self.end_how = lo, max(lo, hi), how

    def sure_end(self) -> float:
        """The latest moment it surely ran until (inf while open)."""
        return math.inf if self.end_lo is None else self.end_lo

    def maybe_end(self) -> float:
        """The latest moment it may have run until (inf while open)."""
        return math.inf if self.end_hi is None else self.end_hi

    def to_json(self, t0: float) -> dict[str, object]:
        def rel(x: float | None) -> float | None:
            return None if x is None else round(x - t0, 3)
        return {"unit": self.unit, "machine": self.machine, "boot": self.gen,
                "invocation": self.invocation, "start": rel(self.start),
                "end_lo": rel(self.end_lo), "end_hi": rel(self.end_hi), "end": self.end_how}


@dataclass
class UnitTrack:
    """The runs of one unit on one machine boot."""

    unit: str
    machine: str
    gen: int
    current: Interval | None = None
    runs: list[Interval] = field(default_factory=list)
    _starts: set[float] = field(default_factory=set)

    def _new(self, start: float, invocation: str, seen: float) -> Interval:
        run = Interval(self.unit, self.machine, self.gen, start, invocation, seen)
        self.runs.append(run)
        self._starts.add(start)
        return run

    def _close_current(self, s: Sample) -> None:
        cur = self.current
        if cur is None:
            return
        self.current = None
        same_run_ended = s.left_inactive == cur.start <= s.entered_inactive
        if same_run_ended or cur.start < s.entered_inactive <= s.left_inactive:
            cur.close(s.entered_inactive, s.entered_inactive, "systemd")
        elif s.left_inactive > cur.start:  # a newer run began: this one ended before it
            cur.close(cur.last_seen, s.left_inactive, "before next run")
        else:  # the record is gone (unloaded and collected)
            cur.close(cur.last_seen, s.t_recv, "record gone")

    def observe(self, s: Sample) -> None:
        running = s.active not in DOWN_STATES and s.left_inactive > 0
        same = self.current is not None and self.current.start == s.left_inactive
        if self.current is not None and not (running and same):
            self._close_current(s)
        if running:
            if self.current is None:
                self.current = (self._find(s.left_inactive)
                                or self._new(s.left_inactive, s.invocation, s.t_sent))
            self.current.last_seen = s.t_sent
        elif (s.left_inactive > 0 and s.entered_inactive >= s.left_inactive
              and s.left_inactive not in self._starts):
            run = self._new(s.left_inactive, s.invocation, s.t_sent)
            run.close(s.entered_inactive, s.entered_inactive, "systemd")

    def _find(self, start: float) -> Interval | None:
        if start not in self._starts:
            return None
        for run in self.runs:
            if run.start == start and run.open:
                return run
        return None

    def killed(self, lo: float, hi: float) -> None:
        """The machine was hard-killed in ``[lo, hi]``: every process died then."""
        if self.current is not None:
            self.current.close(lo, hi, "machine killed")
            self.current = None
