"""The soak's checker on made-up records: it sees what it must see (pure, fast)."""

from __future__ import annotations

from unitctl_testing.chaos import invariants as inv
from unitctl_testing.chaos.injector import Fault
from unitctl_testing.chaos.timeline import Interval, Sample, UnitTrack

TTL = 3.0


def _sample(t: float, active: str, left: float, entered: float, inv_id: str = "a") -> Sample:
    return Sample(t, t + 0.01, "loaded", active, inv_id, left, entered)


def _run(machine: str, start: float, end: float | None, unit: str = "u.service") -> Interval:
    r = Interval(unit, machine, 0, start, "x", start)
    if end is not None:
        r.close(end, end, "systemd")
    return r


def test_a_run_between_two_polls_is_seen_with_systemds_times() -> None:
    track = UnitTrack("u.service", "m1", 0)
    track.observe(_sample(1.0, "inactive", 0, 0))
    track.observe(_sample(2.0, "inactive", 1.2, 1.5))
    assert [(r.start, r.end_lo, r.end_hi) for r in track.runs] == [(1.2, 1.5, 1.5)]


def test_a_vanished_record_ends_in_the_poll_window() -> None:
    track = UnitTrack("u.service", "m1", 0)
    track.observe(_sample(1.0, "active", 0.5, 0))
    track.observe(Sample(1.2, 1.25, "not-found", "inactive", "", 0, 0))
    (run,) = track.runs
    assert (run.end_lo, run.end_hi, run.end_how) == (1.0, 1.25, "record gone")


def test_a_restart_closes_the_old_run_at_its_inactive_enter() -> None:
    track = UnitTrack("u.service", "m1", 0)
    track.observe(_sample(1.0, "active", 0.5, 0))
    track.observe(_sample(2.0, "active", 1.6, 1.55, "b"))
    assert [(r.start, r.end_lo) for r in track.runs] == [(0.5, 1.55), (1.6, None)]


def test_an_overlap_on_two_machines_is_a_violation() -> None:
    sure, unresolved = inv.never_twice([_run("m1", 0, 5.0), _run("m2", 4.9, None)], [], TTL, 0)
    assert len(sure) == 1 and not unresolved
    assert sure[0]["machines"] == ["m1", "m2"]


def test_start_after_inactive_enter_is_no_overlap_and_a_window_is_unresolved() -> None:
    a, b = _run("m1", 0, 5.0), _run("m2", 5.01, None)
    assert inv.never_twice([a, b], [], TTL, 0) == ([], [])
    a.close(4.8, 5.2, "record gone")
    sure, unresolved = inv.never_twice([a, b], [], TTL, 0)
    assert not sure and len(unresolved) == 1


def test_down_longer_than_ttl_plus_2_after_the_fault_end_is_a_violation() -> None:
    runs = [_run("m1", 0, 10.0), _run("m2", 17.5, None)]
    fault = Fault("partition", "m1", 8.0, 11.0)
    gaps = inv.gaps("u.service", runs, [(0, 30)], 30)
    assert [(g.start, g.end) for g in gaps] == [(10.0, 17.5)]
    (v,) = inv.down_too_long(gaps, [fault], TTL, 0)
    assert v["counted_from"] == 11.0 and v["down_for"] == 6.5
    ok = inv.gaps("u.service", [_run("m1", 0, 10.0), _run("m2", 15.5, None)], [(0, 30)], 30)
    assert inv.down_too_long(ok, [fault], TTL, 0) == []


def test_a_run_stopped_by_a_short_etcd_outage_is_a_violation() -> None:
    run = _run("m1", 1.0, 6.0)
    fault = Fault("etcd_restart", "all", 5.0, 5.5, outage=0.5,
                  snapshot=[("m1", 0, "u.service", 1.0)])
    wanted = {"u.service": [(0.0, 30.0)]}
    (v,) = inv.stopped_by_outage([run], [fault], TTL, 0, wanted)
    assert v["unit"] == "u.service"
    # a stop command before the outage began: not the outage's doing
    assert inv.stopped_by_outage([run], [fault], TTL, 0, {"u.service": [(0.0, 4.9)]}) == []
    run.end_lo = run.end_hi = None
    assert inv.stopped_by_outage([run], [fault], TTL, 0, wanted) == []


def test_a_run_that_ended_before_the_outage_began_is_not_its_doing() -> None:
    # seen in CI: a restart returned just as the snapshot was read from the poll before
    run = _run("m1", 1.0, 4.8)
    run.end_hi = 4.95
    fault = Fault("etcd_member", "e1", 5.0, 10.0, outage=0.0,
                  snapshot=[("m1", 0, "u.service", 1.0)])
    wanted = {"u.service": [(0.0, 30.0)]}
    assert inv.stopped_by_outage([run], [fault], TTL, 0, wanted) == []
    run.end_hi = 5.2  # the end may fall after the start: counted
    assert len(inv.stopped_by_outage([run], [fault], TTL, 0, wanted)) == 1
