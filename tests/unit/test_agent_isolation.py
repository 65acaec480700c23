"""Failure isolation and backoff of the agent's executor, over the fake UnitManager.

A table: (the units scheduled, what the fake refuses) -> which units run, which
fail with which line, and which calls the fake saw. Then the backoff on a
manual clock: retries at 1, 2, 4 ... s (capped), reset on success and on a new
schedule entry, and no task at all between two retries (the loop cannot spin).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from unitctl.agent.backoff import MAX_DELAY, Backoff
from unitctl.agent.executor import NOT_LOADED, Executor
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.ports import RefusedBySystemd, SystemdState
from unitctl.agent.reconcile import DesiredUnit, compute_tasks
from unitctl.errors import SystemdError
from unitctl.model import DesiredState, Requirements
from unitctl.unitfile import UnitFile

LAUNCHED, LOADED = DesiredState.LAUNCHED, DesiredState.LOADED
REFUSED = RefusedBySystemd(
    "systemd StartUnit: org.freedesktop.systemd1.OnlyByDependency: Operation refused",
    "Operation refused, unit may be requested by dependency only")


def body(name: str, extra: str = "") -> str:
    return f"[Unit]\nDescription={name}{extra}\n\n[Service]\nExecStart=/bin/sleep 1d\n"


BODIES = {UnitFile.parse(body(n, x)).hash(): body(n, x)
          for n in ("a", "b", "c", "dbus") for x in ("", " v2")}


def sha(name: str, extra: str = "") -> str:
    return UnitFile.parse(body(name, extra)).hash()


def unit(name: str, desired: DesiredState = LAUNCHED, extra: str = "") -> DesiredUnit:
    return DesiredUnit(f"{name}.service", sha(name, extra), desired, Requirements())


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sink:
    reports: dict[str, SystemdState] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def report(self, name: str, state: SystemdState) -> None:
        self.reports[name] = state

    def drop(self, name: str) -> None:
        self.dropped.append(name)


@dataclass
class Machine:
    fake: FakeUnitManager
    executor: Executor
    clock: ManualClock
    sink: Sink

    async def reconcile(self, *units: DesiredUnit) -> None:
        desired = {u.name: u for u in units}
        tasks = compute_tasks(desired, self.executor.current())
        await self.executor.run(tasks, desired, BODIES)

    def calls(self, name: str) -> list[str]:
        """The calls that act on ``name`` (reads of its state left out)."""
        return [m for m, n in self.fake.history if n == name and m != "state"]


async def machine() -> Machine:
    fake = FakeUnitManager()
    await fake.start_manager(lambda n, s: None)
    clock, sink = ManualClock(), Sink()
    return Machine(fake, Executor(fake, sink, Backoff(clock, lambda: clock.now + 1e9)), clock,
                   sink)


# ------------------------------------------------------------------ the table

@dataclass(frozen=True)
class Case:
    """Refusals ``(method, unit)`` -> units running, failing units' lines."""

    refuse: tuple[tuple[str, str, Exception], ...]
    running: frozenset[str]
    errors: dict[str, str]
    host_units: tuple[str, ...] = ()


CASES = [
    pytest.param(Case((), frozenset({"a", "b", "c"}), {}), id="nothing refused: all run"),
    pytest.param(Case((("start", "a", REFUSED),), frozenset({"b", "c"}),
                      {"a": "start refused by systemd: Operation refused, unit may be "
                            "requested by dependency only"}),
                 id="start of the first unit refused: the others start"),
    pytest.param(Case((("start", "b", SystemdError("boom")),), frozenset({"a", "c"}),
                      {"b": "start failed: boom"}),
                 id="start of a middle unit fails: the others start"),
    pytest.param(Case((("write", "a", SystemdError("File name too long")),),
                      frozenset({"b", "c"}), {"a": "load failed: File name too long"}),
                 id="write fails: no link, no start of that unit, the others run"),
    pytest.param(Case((("link", "b", REFUSED),), frozenset({"a", "c"}),
                      {"b": "load refused by systemd: Operation refused, unit may be "
                            "requested by dependency only"}),
                 id="link refused: that unit is not started"),
    pytest.param(Case((("start", "a", REFUSED), ("start", "c", REFUSED)), frozenset({"b"}),
                      {"a": "start refused by systemd: Operation refused, unit may be "
                            "requested by dependency only",
                       "c": "start refused by systemd: Operation refused, unit may be "
                            "requested by dependency only"}),
                 id="two refused: the third still starts"),
]


@pytest.mark.parametrize("case", CASES)
def test_a_failing_task_holds_back_only_its_own_unit(case: Case) -> None:
    async def go() -> None:
        m = await machine()
        for method, name, exc in case.refuse:
            m.fake.fail_always(method, f"{name}.service", exc)
        await m.reconcile(unit("a"), unit("b"), unit("c"))
        running = {n.removesuffix(".service") for n, st in m.fake.units.items()
                   if st.active == "active"}
        assert running == case.running
        errors = {n.removesuffix(".service"): m.executor.backoff.get(n).error  # type: ignore[union-attr]
                  for n in m.executor.backoff.names()}
        assert errors == case.errors
        for name in case.errors:
            failed = next(method for method, n, _ in case.refuse if n == name)
            later = m.calls(f"{name}.service")[m.calls(f"{name}.service").index(failed) + 1:]
            assert later == [], f"{name}: tasks after its failed {failed}: {later}"
        # the global order holds across the units that succeed
        order = [method for method, _ in m.fake.history
                 if method in ("write", "reload", "start")]
        assert order == sorted(order, key=["write", "reload", "start"].index)

    asyncio.run(go())


def test_failed_load_reports_not_loaded_with_failure_and_no_systemd_state() -> None:
    async def go() -> None:
        m = await machine()
        m.fake.fail_always("write", "a.service", SystemdError("File name too long"))
        await m.reconcile(unit("a"), unit("b"))
        assert m.sink.reports["a.service"] == NOT_LOADED
        assert "a.service" not in m.fake.present()

    asyncio.run(go())


def test_host_unit_is_refused_never_written_linked_stopped_or_unloaded() -> None:
    async def go() -> None:
        m = await machine()
        m.fake.add_foreign_unit("dbus.service", fragment="/usr/lib/systemd/system/dbus.service")
        await m.reconcile(unit("a"), unit("dbus"))
        assert m.calls("dbus.service") == ["host_unit"]
        failure = m.executor.backoff.get("dbus.service")
        assert failure is not None
        assert failure.error == (
            "load refused: dbus.service is a unit of this host "
            "(/usr/lib/systemd/system/dbus.service): unitctl never shadows, stops or "
            "unloads a host's own unit")
        assert m.fake.units["a.service"].active == "active"
        assert m.sink.reports["dbus.service"] == NOT_LOADED  # not dbus's own running state
        await m.reconcile(unit("a"))  # destroyed: its failure and record go
        assert m.calls("dbus.service") == ["host_unit"]
        assert "dbus.service" not in m.executor.backoff
        assert "dbus.service" in m.sink.dropped
        assert m.fake.units["dbus.service"].active == "active"

    asyncio.run(go())


def test_failed_unload_holds_back_only_that_unit() -> None:
    async def go() -> None:
        m = await machine()
        await m.reconcile(unit("a"), unit("b"))
        m.fake.fail_always("unload", "a.service", SystemdError("stop job failed"))
        await m.reconcile(unit("a", extra=" v2"), unit("b", LOADED), unit("c"))
        assert m.calls("a.service")[-1] == "unload"  # no load of the new version
        assert m.fake.units["b.service"].active == "inactive"
        assert m.fake.units["c.service"].active == "active"
        assert "unload failed: stop job failed" in m.executor.backoff.get("a.service").error  # type: ignore[union-attr]

    asyncio.run(go())


def test_failed_reload_holds_back_the_units_it_loaded_and_is_repeated() -> None:
    async def go() -> None:
        m = await machine()
        await m.reconcile(unit("a", LOADED))
        m.fake.fail_next("reload")
        await m.reconcile(unit("a"), unit("b"))
        assert m.fake.units["a.service"].active == "active", "a was loaded before: it starts"
        assert "start" not in m.calls("b.service")
        m.clock.now += 1
        await m.reconcile(unit("a"), unit("b"))
        assert [c for c, _ in m.fake.history].count("reload") == 3
        assert m.fake.units["b.service"].active == "active"
        assert not m.executor.backoff.names()

    asyncio.run(go())


# ------------------------------------------------------------------ the backoff

def test_backoff_doubles_per_unit_up_to_the_cap_and_never_spins() -> None:
    async def go() -> None:
        m = await machine()
        m.fake.fail_always("start", "a.service", REFUSED)
        retries: list[float] = []
        for _ in range(12):
            await m.reconcile(unit("a"), unit("b"))
            wait = m.executor.backoff.next_retry()
            assert wait is not None
            retries.append(wait)
            m.clock.now += wait / 2  # woken early (another unit's change): nothing to do
            before = len(m.fake.history)
            await m.reconcile(unit("a"), unit("b"))
            assert m.fake.history[before:] == [], "a held-back unit must not be retried"
            m.clock.now += wait / 2
        assert retries == [1, 2, 4, 8, 16, 32, 64, 128, 256, MAX_DELAY, MAX_DELAY, MAX_DELAY]
        assert m.calls("a.service").count("start") == 12
        assert m.fake.units["b.service"].active == "active"

    asyncio.run(go())


def test_backoff_resets_on_success() -> None:
    async def go() -> None:
        m = await machine()
        m.fake.fail_always("start", "a.service", REFUSED)
        for _ in range(3):
            await m.reconcile(unit("a"))
            m.clock.now += m.executor.backoff.next_retry() or 0
        m.fake.fail_always("start", "a.service", None)
        await m.reconcile(unit("a"))
        assert m.fake.units["a.service"].active == "active"
        assert m.executor.backoff.next_retry() is None
        assert m.sink.reports["a.service"].active == "active"  # re-published without error
        m.fake.fail_always("start", "a.service", REFUSED)
        m.executor.forget_all()
        await m.reconcile(unit("a"))
        assert m.executor.backoff.next_retry() == 1.0  # a fresh start

    asyncio.run(go())


def test_backoff_resets_when_the_schedule_entry_changes() -> None:
    async def go() -> None:
        m = await machine()
        m.fake.fail_always("start", "a.service", REFUSED)
        for _ in range(4):
            await m.reconcile(unit("a"))
            m.clock.now += m.executor.backoff.next_retry() or 0
        assert m.executor.backoff.get("a.service").attempts == 4  # type: ignore[union-attr]
        m.clock.now -= 1  # not due yet
        await m.reconcile(unit("a", extra=" v2"))  # a new hash: retried at once
        failure = m.executor.backoff.get("a.service")
        assert failure is not None and failure.attempts == 1 and failure.hash == sha("a", " v2")
        m.clock.now -= 0.5
        await m.reconcile(unit("a", LOADED, extra=" v2"))  # a new desired state
        assert "a.service" not in m.executor.backoff

    asyncio.run(go())


def test_backoff_delays() -> None:
    b = Backoff(ManualClock(), first=1.0, cap=300.0)
    assert [b.delay(n) for n in (1, 2, 3, 9, 10, 1000)] == [1, 2, 4, 256, 300, 300]
    assert b.next_retry() is None


def test_a_retry_falling_due_during_a_run_keeps_its_backoff() -> None:
    """Seen on real systemd: two units' retries 3 ms apart. A run filtered the later
    one out (still held), then settled after its time had come and took it for
    "due with nothing to do", forgetting its failure: its backoff restarted at 1 s."""
    async def go() -> None:
        m = await machine()
        m.fake.fail_always("start", "a.service", REFUSED)
        m.fake.fail_always("start", "c.service", REFUSED)
        await m.reconcile(unit("a"))                      # a: retry at +1 s
        m.clock.now += 0.5
        await m.reconcile(unit("a"), unit("c"))           # c: retry 0.5 s after a's
        m.clock.now += 0.9                                # a due, c held for 0.1 s more
        real_start = m.fake.start

        async def slow_start(name: str, *args: object, **kwargs: object) -> None:
            m.clock.now += 0.2                            # c falls due during a's start
            await real_start(name, *args, **kwargs)  # type: ignore[arg-type]

        m.fake.start = slow_start  # type: ignore[method-assign]
        await m.reconcile(unit("a"), unit("c"))
        failure = m.executor.backoff.get("c.service")
        assert failure is not None and failure.attempts == 1, "c's failure was forgotten"
        m.fake.start = real_start  # type: ignore[method-assign]
        await m.reconcile(unit("a"), unit("c"))           # c's retry: its second attempt
        failure = m.executor.backoff.get("c.service")
        assert failure is not None and failure.attempts == 2

    asyncio.run(go())
