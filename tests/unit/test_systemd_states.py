"""The pure :class:`~unitctl.systemd.states.StateTracker`, fed recorded D-Bus signals.

``data/systemd252_signals.json`` holds the signals a real systemd 252 sent
(recorded with dbus-fast in an nspawn machine, see its ``about``); they are
decoded back into what dbus-fast delivers (``Variant`` values) and replayed
into the tracker. The in-flight fetch rules are checked with small
hand-made bodies of the same shape.
"""

from __future__ import annotations

import ast
import json
import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dbus_fast import Variant

from unitctl.agent.ports import SystemdState
from unitctl.systemd.api import unit_object_path
from unitctl.systemd.states import FetchedRow, StateTracker, Update

DATA = pathlib.Path(__file__).parent / "data" / "systemd252_signals.json"
PKG = pathlib.Path(__file__).resolve().parents[2] / "unitctl"

OK, BAD = "rec-ok.service", "rec-bad.service"
PROPS = "org.freedesktop.DBus.Properties"
UNIT_IFACE = "org.freedesktop.systemd1.Unit"
MANAGER = ("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


@dataclass(frozen=True)
class Signal:
    path: str
    interface: str
    member: str
    body: list[Any]


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "v" in value:
            return Variant(value["v"][0], _decode(value["v"][1]))
        if "b" in value:
            return bytes.fromhex(value["b"])
        return {k: _decode(v) for k, v in value["d"]}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def recorded() -> list[Signal]:
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    return [Signal(m["path"], m["interface"], m["member"], _decode(m["body"]))
            for m in doc["signals"]]


def about(name: str, signals: Iterable[Signal]) -> Iterator[Signal]:
    """The recorded signals of one unit (its object path, or naming it in the body)."""
    path = unit_object_path(name)
    for s in signals:
        if s.path == path or (s.body and s.body[0] == name) or \
                (s.member == "JobRemoved" and s.body[2] == name):
            yield s


class Replay:
    """Feeds signals and answers every fetch at once, as the manager would."""

    def __init__(self, *owned: str, answer: dict[str, tuple[str, str, str]] | None = None):
        self.tracker = StateTracker()
        self.tracker.own(owned)
        self.answer = answer or {}
        self.reports: list[tuple[str, SystemdState]] = []
        self.jobs: list[tuple[str, str]] = []
        self.fetched: list[list[str]] = []

    def feed(self, signals: Iterable[Signal]) -> None:
        for s in signals:
            self.apply(self.tracker.signal(s.path, s.interface, s.member, s.body))

    def apply(self, update: Update) -> None:
        if update.finished_job:
            self.jobs.append(update.finished_job)
        self.reports.extend(update.changed)
        if update.fetch:
            todo = self.tracker.request_fetch(update.fetch)
            if todo:
                self.fetched.append(todo)
                mark = self.tracker.fetch_started(todo)
                rows: list[FetchedRow] = [(n, *self.answer[n]) for n in todo if n in self.answer]
                self.apply(self.tracker.fetch_done(todo, mark, rows))


def st(load: str, active: str, sub: str) -> SystemdState:
    return SystemdState(load, active, sub)


def props(name: str, interface: str = UNIT_IFACE, **values: str) -> Signal:
    changed = {k: Variant("s", v) for k, v in values.items()}
    return Signal(unit_object_path(name), PROPS, "PropertiesChanged", [interface, changed, []])


def manager(member: str, *body: Any) -> Signal:
    return Signal(*MANAGER, member, list(body))


# ------------------------------------------------------------ recorded signals

def test_recording_is_what_dbus_fast_delivers() -> None:
    signals = recorded()
    unit = next(s for s in signals if s.member == "PropertiesChanged"
                and s.body[0] == UNIT_IFACE)
    assert isinstance(unit.body[1]["ActiveState"], Variant)
    assert "LoadState" not in unit.body[1], "systemd 252 does not signal LoadState"
    assert {s.member for s in signals} >= {"PropertiesChanged", "JobRemoved", "JobNew",
                                           "UnitNew", "UnitRemoved", "Reloading"}


def test_start_then_stop_of_a_unit_as_systemd_signals_it() -> None:
    replay = Replay(OK, answer={OK: ("loaded", "inactive", "dead")})
    replay.feed(s for s in about(OK, recorded()) if s.member != "Reloading")
    assert replay.fetched == [[OK]], "one fetch, for the unknown LoadState"
    assert replay.reports == [
        (OK, st("loaded", "inactive", "dead")),
        (OK, st("loaded", "active", "running")),
        (OK, st("loaded", "deactivating", "stop-sigterm")),
        (OK, st("loaded", "inactive", "dead")),
    ]
    assert replay.jobs == [("/org/freedesktop/systemd1/job/72", "done"),
                           ("/org/freedesktop/systemd1/job/170", "done")]


def test_a_failing_unit_is_reported_failed_then_reset() -> None:
    replay = Replay(BAD, answer={BAD: ("loaded", "inactive", "dead")})
    replay.feed(s for s in about(BAD, recorded()) if s.member != "Reloading")
    assert [state for _, state in replay.reports] == [
        st("loaded", "inactive", "dead"), st("loaded", "active", "running"),
        st("loaded", "failed", "failed"), st("loaded", "inactive", "dead")]
    assert replay.jobs == [("/org/freedesktop/systemd1/job/121", "done")]


def test_units_not_owned_and_other_interfaces_are_ignored() -> None:
    replay = Replay(OK, answer={OK: ("loaded", "inactive", "dead")})
    signals = recorded()
    replay.feed(s for s in signals if s.path == unit_object_path(BAD))
    replay.feed(s for s in signals if s.member == "PropertiesChanged"
                and s.body[0] == "org.freedesktop.systemd1.Service")
    assert replay.reports == [] and replay.fetched == []


def test_reloading_drops_load_states_and_refetches_every_owned_unit() -> None:
    replay = Replay(OK, BAD, answer={OK: ("loaded", "active", "running"),
                                     BAD: ("loaded", "inactive", "dead")})
    reloading = [s for s in recorded() if s.member == "Reloading"][:2]
    assert [s.body for s in reloading] == [[True], [False]]
    replay.feed(reloading)
    assert replay.fetched == [[BAD, OK]], "sorted, in one call"
    assert sorted(replay.reports) == [(BAD, st("loaded", "inactive", "dead")),
                                      (OK, st("loaded", "active", "running"))]
    replay.feed(reloading[:1])  # reloading: LoadState unknown again
    replay.feed([props(OK, ActiveState="active", SubState="running")])
    assert replay.fetched[-1] == [OK]


def test_unit_new_forgets_the_load_state_of_a_rewritten_file_only() -> None:
    replay = Replay(OK, BAD, answer={OK: ("loaded", "inactive", "dead"),
                                     BAD: ("loaded", "inactive", "dead")})
    replay.feed([props(OK, ActiveState="inactive", SubState="dead"),
                 props(BAD, ActiveState="inactive", SubState="dead")])
    assert len(replay.fetched) == 2
    replay.tracker.wrote(OK)
    unit_new = [s for s in recorded() if s.member in ("UnitNew", "UnitRemoved")]
    replay.feed(unit_new)
    replay.feed([props(OK, ActiveState="active", SubState="running"),
                 props(BAD, ActiveState="active", SubState="running")])
    assert replay.fetched[2:] == [[OK]], "only the rewritten unit is fetched again"
    assert replay.reports[-1] == (BAD, st("loaded", "active", "running"))


# ------------------------------------------------------------ fetch rules

def test_a_signal_during_a_fetch_wins_over_the_fetched_state() -> None:
    tracker = StateTracker()
    tracker.own([OK])
    first = props(OK, ActiveState="activating", SubState="start")
    update = tracker.signal(first.path, first.interface, first.member, first.body)
    assert update.fetch == [OK] and update.changed == []
    todo = tracker.request_fetch(update.fetch)
    mark = tracker.fetch_started(todo)
    later = props(OK, ActiveState="active", SubState="running")
    update = tracker.signal(later.path, later.interface, later.member, later.body)
    assert update == Update(), "no second fetch while one is in flight"
    done = tracker.fetch_done(todo, mark, [(OK, "loaded", "activating", "start")])
    assert done.changed == [(OK, st("loaded", "active", "running"))]
    assert done.fetch == []


def test_a_read_never_returns_a_state_older_than_one_signalled_meanwhile() -> None:
    """The seed pair's hang (issue 12): the agent read employees' state right after
    StartUnit; systemd answered inactive before it ran the job, and the job's signal
    (active) was reported while the reply waited for its caller, which then
    published the reply over it; the signal never came again."""
    replay = Replay(OK, answer={OK: ("loaded", "inactive", "dead")})
    replay.feed([manager("Reloading", False)])
    assert replay.reports == [(OK, st("loaded", "inactive", "dead"))]
    tracker = replay.tracker
    mark = tracker.read_started(OK)
    replay.feed([props(OK, ActiveState="active", SubState="running")])
    assert replay.reports[-1] == (OK, st("loaded", "active", "running"))
    got = tracker.read_done(OK, mark, st("loaded", "inactive", "dead"))
    assert got == st("loaded", "active", "running"), "the read returned the older reply"
    # nothing learned meanwhile: the reply is the newest
    mark = tracker.read_started(OK)
    assert tracker.read_done(OK, mark, st("loaded", "failed", "failed")) == \
        st("loaded", "failed", "failed")
    # a unit the tracker knows nothing of: the reply
    mark = tracker.read_started(BAD)
    assert tracker.read_done(BAD, mark, st("not-found", "inactive", "dead")) == \
        st("not-found", "inactive", "dead")


def test_a_read_sees_a_state_the_tracker_fetched_meanwhile() -> None:
    tracker = StateTracker()
    tracker.own([OK])
    mark = tracker.read_started(OK)
    todo = tracker.request_fetch([OK])
    done = tracker.fetch_done(todo, tracker.fetch_started(todo),
                              [(OK, "loaded", "active", "running")])
    assert done.changed == [(OK, st("loaded", "active", "running"))]
    assert tracker.read_done(OK, mark, st("loaded", "inactive", "dead")) == \
        st("loaded", "active", "running")


def test_a_unit_asked_for_during_its_fetch_is_fetched_again() -> None:
    tracker = StateTracker()
    tracker.own([OK, BAD])
    assert tracker.request_fetch([OK]) == [OK]
    mark = tracker.fetch_started([OK])
    assert tracker.request_fetch([OK, BAD]) == [BAD]
    load_only = props(OK, LoadState="masked")
    update = tracker.signal(load_only.path, load_only.interface, load_only.member,
                            load_only.body)
    assert update.fetch == [OK], "a LoadState change is fetched even while busy"
    assert tracker.request_fetch(update.fetch) == []
    done = tracker.fetch_done([OK], mark, [(OK, "loaded", "inactive", "dead")])
    assert done.fetch == [OK]
    assert tracker.request_fetch(done.fetch) == [OK]


def test_a_failed_or_abandoned_fetch_frees_the_unit() -> None:
    tracker = StateTracker()
    tracker.own([OK])
    todo = tracker.request_fetch([OK])
    assert tracker.fetch_done(todo, tracker.fetch_started(todo), []) == Update()
    assert tracker.request_fetch([OK]) == [OK]
    tracker.fetch_abandoned([OK])
    assert tracker.request_fetch([OK]) == [OK]


def test_forgotten_units_and_odd_signals_report_nothing() -> None:
    replay = Replay(OK, answer={OK: ("loaded", "active", "running")})
    replay.feed([props(OK, ActiveState="active", SubState="running")])
    assert replay.reports == [(OK, st("loaded", "active", "running"))]
    replay.tracker.forget(OK)
    odd = [props(OK, ActiveState="failed", SubState="failed"),
           Signal("/org/freedesktop/systemd1/unit/bad_zz", PROPS, "PropertiesChanged",
                  [UNIT_IFACE, {"ActiveState": Variant("s", "active")}, []]),
           Signal(unit_object_path(OK), PROPS, "PropertiesChanged", [UNIT_IFACE]),
           manager("JobRemoved", 7, "/org/freedesktop/systemd1/job/7"),
           manager("Reloading", False)]
    replay.feed(odd)
    assert replay.reports == [(OK, st("loaded", "active", "running"))]
    assert replay.fetched == [[OK]] and replay.jobs == []


# ------------------------------------------------------------ purity

@pytest.mark.parametrize("module", ["systemd/states.py", "systemd/api.py"])
def test_tracker_modules_are_pure(module: str) -> None:
    tree = ast.parse((PKG / module).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    allowed = {"__future__", "collections.abc", "dataclasses", "typing",
               "unitctl.agent.ports", "unitctl.systemd.api"}
    assert imported <= allowed, imported - allowed


def _signal(tracker: StateTracker, s: Signal) -> Update:
    return tracker.signal(s.path, s.interface, s.member, s.body)


def test_a_read_teaches_the_load_state_so_the_start_is_reported_without_a_fetch() -> None:
    """The agent reads a unit's state right after linking its file (the read loads
    it); the start's first signal (``active``) is then reported at once, not after
    one more ListUnitsByNames for a LoadState that read already answered."""
    tracker = StateTracker()
    tracker.wrote(OK)
    mark = tracker.read_started(OK)
    _signal(tracker, manager("UnitNew", OK, unit_object_path(OK)))  # the read loads it
    assert tracker.read_done(OK, mark, st("loaded", "inactive", "dead")) == \
        st("loaded", "inactive", "dead")
    update = _signal(tracker, props(OK, ActiveState="active", SubState="running"))
    assert update == Update(changed=[(OK, st("loaded", "active", "running"))])


def test_a_read_does_not_teach_a_load_state_that_went_stale_while_in_flight() -> None:
    """A daemon-reload (or the file's removal) while the read was in flight: the
    reply's LoadState may be the old one, so the first signal fetches it."""
    for stale in (manager("Reloading", True), None):
        tracker = StateTracker()
        tracker.wrote(OK)
        mark = tracker.read_started(OK)
        if stale is None:
            tracker.forget(OK)
            tracker.wrote(OK)
        else:
            _signal(tracker, stale)
        tracker.read_done(OK, mark, st("loaded", "inactive", "dead"))
        update = _signal(tracker, props(OK, ActiveState="active", SubState="running"))
        assert update == Update(fetch=[OK])
    # a unit systemd did not find teaches nothing either
    tracker = StateTracker()
    tracker.wrote(OK)
    tracker.read_done(OK, tracker.read_started(OK), st("not-found", "inactive", "dead"))
    assert _signal(tracker, props(OK, ActiveState="active", SubState="running")) == \
        Update(fetch=[OK])


def test_a_stopped_unit_with_a_job_queued_is_not_reported_until_the_job_moves_it() -> None:
    """StartUnit queues a job: systemd signals the unit still ``inactive`` (its Job
    set), then ``active``, then the job's end. The ``inactive`` of the moment the
    job was queued is not reported (it was a state write, and a wake of the
    waiting client, for nothing); a job that ends with the unit stopped (canceled,
    failed) brings one more signal with Job cleared, which is reported."""
    def job(n: int) -> Variant:
        return Variant("(uo)", [n, f"/org/freedesktop/systemd1/job/{n}" if n else "/"])

    def unit(active: str, sub: str, n: int) -> Signal:
        changed = {"ActiveState": Variant("s", active), "SubState": Variant("s", sub),
                   "Job": job(n)}
        return Signal(unit_object_path(OK), PROPS, "PropertiesChanged",
                      [UNIT_IFACE, changed, []])

    replay = Replay(OK, answer={OK: ("loaded", "inactive", "dead")})
    tracker = replay.tracker
    tracker.wrote(OK)  # a new unit: the agent's read after the link loads it
    tracker.read_done(OK, tracker.read_started(OK), st("loaded", "inactive", "dead"))
    replay.feed([unit("inactive", "dead", 72)])
    assert replay.reports == [] and replay.fetched == []
    replay.feed([unit("active", "running", 72), unit("active", "running", 0)])
    assert replay.reports == [(OK, st("loaded", "active", "running"))]
    # a stop: deactivating is reported, the queued-job inactive is not until Job clears
    replay.reports.clear()
    replay.feed([unit("deactivating", "stop-sigterm", 73), unit("inactive", "dead", 73)])
    assert replay.reports == [(OK, st("loaded", "deactivating", "stop-sigterm"))]
    replay.feed([unit("inactive", "dead", 0)])
    assert replay.reports[-1] == (OK, st("loaded", "inactive", "dead"))
    # a start that is canceled: the state it left is reported once Job clears
    replay.reports.clear()
    replay.feed([unit("inactive", "dead", 74), unit("inactive", "dead", 0)])
    assert replay.reports == []  # inactive again: the same state as last reported
