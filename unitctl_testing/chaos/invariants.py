"""The soak's three promises, checked on systemd's records (pure).

* ``never_twice``: no unit active on two machines at one moment. Two runs overlap
  surely when each began before the other surely ended (``start`` = left inactive,
  ``sure_end`` = entered inactive, or the last poll that saw it running when the
  record vanished). When only the poll window leaves room for an overlap it is
  listed as *unresolved*, with the window, not counted as a violation.
* ``conflicts``: the Conflicts pair is never active on one machine at one moment.
* ``down_too_long``: in a period where a placeable unit is wanted running (see
  :meth:`~.load.LoadGenerator.launched_periods`), every stretch with no run
  anywhere ends within ``TTL + 2 s`` of the later of its beginning and the end of
  the last fault that began before it ended.
* ``stopped_by_outage``: every run that was active when an etcd fault with an
  outage shorter than the TTL began is still running ``TTL + 2 s`` after it ended
  (same machine, same start, same InvocationID). A run of the snapshot that
  surely ended before the fault began was stopped by something else (a command).

Also per fault: the units it took down and the worst time to recover, counted
from the fault's end and from its start.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from unitctl_testing.chaos.injector import ETCD_KINDS, Fault
from unitctl_testing.chaos.timeline import Interval

MARGIN = 2.0

@dataclass(frozen=True)
class Gap:
    unit: str
    start: float
    end: float
    from_command: bool  # began when the unit was (re)launched: a start, not a loss
    open_at_end: bool

def _faults_near(faults: Sequence[Fault], lo: float, hi: float, ttl: float,
                 t0: float) -> list[dict[str, Any]]:
    return [{"kind": f.kind, "target": f.target, "start": round(f.start - t0, 3),
             "end": round(f.end - t0, 3)}
            for f in faults if f.start <= hi and f.end + ttl + MARGIN >= lo]

def overlaps(runs: Sequence[Interval], same_machine: bool
             ) -> list[tuple[Interval, Interval, bool]]:
    """Pairs of overlapping runs (``sure`` flag); on other machines unless ``same_machine``."""
    out = []
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if ((a.machine, a.gen) == (b.machine, b.gen)) != same_machine:
                continue
            if b.start < a.sure_end() and a.start < b.sure_end():
                out.append((a, b, True))
            elif b.start < a.maybe_end() and a.start < b.maybe_end():
                out.append((a, b, False))
    return out

def _pair_json(a: Interval, b: Interval, faults: Sequence[Fault], ttl: float, t0: float,
               invariant: str) -> dict[str, Any]:
    lo, hi = max(a.start, b.start), min(a.maybe_end(), b.maybe_end())
    hi = lo if math.isinf(hi) else hi
    return {"invariant": invariant, "unit": a.unit if a.unit == b.unit else f"{a.unit}+{b.unit}",
            "machines": [a.machine, b.machine],
            "overlap": [round(lo - t0, 3), round(hi - t0, 3)],
            "runs": [a.to_json(t0), b.to_json(t0)], "faults": _faults_near(faults, lo, hi, ttl, t0)}

def never_twice(runs: Sequence[Interval], faults: Sequence[Fault], ttl: float, t0: float
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_unit: dict[str, list[Interval]] = defaultdict(list)
    for r in runs:
        by_unit[r.unit].append(r)
    sure: list[dict[str, Any]] = []
    unresolved: list[dict[str, Any]] = []
    for unit_runs in by_unit.values():
        for a, b, certain in overlaps(sorted(unit_runs, key=lambda r: r.start), False):
            (sure if certain else unresolved).append(
                _pair_json(a, b, faults, ttl, t0, "never_twice"))
    return sure, unresolved

def conflicts(runs: Sequence[Interval], pair: tuple[str, str], faults: Sequence[Fault],
              ttl: float, t0: float) -> list[dict[str, Any]]:
    both = sorted((r for r in runs if r.unit in pair), key=lambda r: r.start)
    return [_pair_json(a, b, faults, ttl, t0, "conflicts") for a, b, certain
            in overlaps(both, True) if certain and a.unit != b.unit]

def gaps(unit: str, runs: Sequence[Interval], periods: Sequence[tuple[float, float]],
         t_end: float) -> list[Gap]:
    """Stretches of the launched ``periods`` in which ``unit`` ran nowhere."""
    mine = sorted((r for r in runs if r.unit == unit), key=lambda r: r.start)
    out = []
    for p0, p1 in periods:
        cursor = p0
        for r in mine:
            if cursor >= p1:
                break
            if r.sure_end() <= cursor:
                continue
            if r.start > cursor:
                out.append(Gap(unit, cursor, min(r.start, p1), cursor == p0, False))
            cursor = max(cursor, r.sure_end())
        if cursor < p1:
            out.append(Gap(unit, cursor, p1, cursor == p0, p1 >= t_end))
    return [g for g in out if g.end > g.start]

def reference(g: Gap, faults: Sequence[Fault]) -> float:
    """The moment the promise counts from: the gap's start or a later fault end."""
    return max([g.start, *(f.end for f in faults if f.start <= g.end)])

def down_too_long(all_gaps: Sequence[Gap], faults: Sequence[Fault], ttl: float, t0: float
                  ) -> list[dict[str, Any]]:
    out = []
    for g in all_gaps:
        ref = reference(g, faults)
        if g.end - ref > ttl + MARGIN:
            out.append({"invariant": "down_too_long", "unit": g.unit,
                        "down": [round(g.start - t0, 3), round(g.end - t0, 3)],
                        "counted_from": round(ref - t0, 3), "still_down_at_end": g.open_at_end,
                        "down_for": round(g.end - ref, 3), "limit": ttl + MARGIN,
                        "after_command": g.from_command,
                        "faults": _faults_near(faults, g.start, g.end, ttl, t0)})
    return out

def stopped_by_outage(runs: Sequence[Interval], faults: Sequence[Fault], ttl: float, t0: float,
                      launched: Mapping[str, Sequence[tuple[float, float]]]
                      ) -> list[dict[str, Any]]:
    """Runs an etcd fault stopped (only units wanted running from its start to the check)."""
    index = {(r.machine, r.gen, r.unit, r.start): r for r in runs}
    out = []
    for f in faults:
        if f.kind not in ETCD_KINDS or f.outage >= ttl:
            continue
        check_at = f.end + ttl + MARGIN
        for key in f.snapshot:
            run = index.get(key)
            wanted = any(p0 <= f.start and check_at <= p1 for p0, p1 in launched.get(key[2], ()))
            ended_before = run is not None and run.maybe_end() < f.start
            if run is not None and wanted and not ended_before and run.sure_end() <= check_at:
                out.append({"invariant": "stopped_by_outage", "unit": run.unit,
                            "machines": [run.machine], "run": run.to_json(t0),
                            "faults": [f.to_json(t0)]})
    return out


def attributed(f: Fault, all_gaps: Sequence[Gap], ttl: float) -> list[Gap]:
    """Gaps a fault caused: began in its window, or spanned its start."""
    lo, hi = f.start - 0.5, f.end + ttl + MARGIN
    return [g for g in all_gaps
            if (lo <= g.start <= hi and not g.from_command) or g.start < f.start < g.end]

def recovery(faults: Sequence[Fault], all_gaps: Sequence[Gap], ttl: float,
             t0: float) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per fault and per kind: units taken down, worst recovery from end and from start."""
    per_fault = []
    worst: dict[str, dict[str, Any]] = {}
    for f in faults:
        hit = attributed(f, all_gaps, ttl)
        from_end = max((max(0.0, g.end - f.end) for g in hit), default=0.0)
        from_start = max((g.end - f.start for g in hit), default=0.0)
        row = {**f.to_json(t0), "units_down": sorted({g.unit for g in hit}),
               "recover_after_end": round(from_end, 3),
               "recover_after_start": round(from_start, 3)}
        per_fault.append(row)
        w = worst.setdefault(f.kind, {"count": 0, "units_down": 0, "recover_after_end": 0.0,
                                      "recover_after_start": 0.0, "max_outage": 0.0})
        w["count"] += 1
        w["units_down"] = max(w["units_down"], len(row["units_down"]))
        w["recover_after_end"] = max(w["recover_after_end"], row["recover_after_end"])
        w["recover_after_start"] = max(w["recover_after_start"], row["recover_after_start"])
        w["max_outage"] = max(w["max_outage"], round(f.outage, 3))
    return per_fault, worst

def command_latency(all_gaps: Sequence[Gap], faults: Sequence[Fault], ttl: float
                    ) -> float:
    """Worst time from a start/restart command to running, away from any fault."""
    quiet = [g for g in all_gaps if g.from_command and not any(
        f.start - ttl - MARGIN <= g.end and g.start <= f.end + ttl + MARGIN for f in faults)]
    return round(max((g.end - g.start for g in quiet), default=0.0), 3)
