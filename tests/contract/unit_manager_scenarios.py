"""Contract scenarios for :class:`unitctl.agent.ports.UnitManager` (plain asserts).

One scenario = ``async def scenario_x(mgr, probe, rec) -> dict``: ``mgr`` is
the manager under test (already started with ``rec.on_change``), ``probe``
looks at the world around it (files, systemd) without going through ``mgr``,
and ``rec`` records every ``on_change`` call. The returned dict holds
measurements (e.g. signal latency) for the report.

The same code runs against :class:`~unitctl.agent.fake.FakeUnitManager`
(in pytest, :class:`FakeProbe`) and against
:class:`~unitctl.systemd.SystemdUnitManager` *inside* a real systemd machine
(:class:`MachineProbe`, system bus, the default ``/run/unitctl/units``)::

    cd /opt/unitctl/src && python -m tests.contract.unit_manager_scenarios <scenario>

which prints one JSON line with the measurements and exits 0, or raises. This
module must not import pytest: the machines' venv only has runtime deps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from unitctl.agent.ports import RefusedBySystemd, SystemdState, UnitManager
from unitctl.errors import InvalidUnitNameError, SystemdError, UnitctlError
from unitctl.unitfile import UnitFile

#: The bound on "a change is reported within 100 ms".
MAX_LATENCY = 0.100
WAIT = 10.0  # generous upper bound for waiting on a report (slow CI)

NOT_FOUND = SystemdState("not-found", "inactive", "dead")
LOADED = SystemdState("loaded", "inactive", "dead")
RUNNING = SystemdState("loaded", "active", "running")
FAILED = SystemdState("loaded", "failed", "failed")

SIMPLE = """\
[Unit]
Description=unitctl contract test {name}

[Service]
ExecStart=/bin/sleep infinity
"""
REFUSING = """\
[Unit]
Description=unitctl contract test {name} (refuses a manual start)
RefuseManualStart=yes

[Service]
ExecStart=/bin/sleep infinity
"""
#: systemd refuses to load a service with no ExecStart= (LoadState=bad-setting).
BAD_SETTING = """\
[Unit]
Description=unitctl contract test {name} (bad setting)

[Service]
Type=simple
"""
INSTALLABLE = SIMPLE + """
[Install]
WantedBy=multi-user.target
"""
CRASHING = """\
[Unit]
Description=unitctl contract test {name} (crashes)

[Service]
ExecStart=/bin/false
"""


# --------------------------------------------------------------------------- helpers

@dataclass
class Report:
    at: float  # time.monotonic() when on_change ran
    name: str
    state: SystemdState
    calls: int  # the manager's D-Bus calls so far (0 for the fake)


@dataclass
class Recorder:
    """Collects ``on_change`` calls; lets a scenario await one."""

    mgr: Any = None
    reports: list[Report] = field(default_factory=list)
    _waiters: list[tuple[str, SystemdState, asyncio.Future[Report]]] = field(default_factory=list)

    def calls(self) -> int:
        return int(getattr(self.mgr, "dbus_calls", 0))

    def on_change(self, name: str, state: SystemdState) -> None:
        report = Report(time.monotonic(), name, state, self.calls())
        self.reports.append(report)
        for waiter in list(self._waiters):
            if waiter[0] == name and waiter[1] == state and not waiter[2].done():
                waiter[2].set_result(report)

    def of(self, name: str) -> list[SystemdState]:
        return [r.state for r in self.reports if r.name == name]

    async def wait(self, name: str, state: SystemdState, since: int = 0,
                   timeout: float = WAIT) -> Report:
        """The first report ``(name, state)`` at index >= ``since`` (waits for it)."""
        for r in self.reports[since:]:
            if r.name == name and r.state == state:
                return r
        fut: asyncio.Future[Report] = asyncio.get_running_loop().create_future()
        waiter = (name, state, fut)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AssertionError(f"no report {name} -> {state} within {timeout}s; "
                                 f"got {self.of(name)}") from None
        finally:
            self._waiters.remove(waiter)


class Probe(Protocol):
    """Looks at the effects of a manager without going through it."""

    units_dir: str
    #: Reports systemd's own timestamps (latency can be measured against them).
    real: bool

    def file_text(self, name: str) -> str | None: ...
    def file_inode(self, name: str) -> int | None: ...
    def file_mode(self, name: str) -> int | None: ...
    def dir_listing(self) -> list[str]: ...
    def runtime_link(self, name: str) -> bool: ...
    def wants_link(self, target: str, name: str) -> bool: ...
    def state_change_time(self, name: str) -> float | None: ...
    def outside_snapshot(self) -> set[str]: ...
    def add_foreign_unit(self, name: str, text: str) -> None: ...
    def foreign_unit_intact(self, name: str) -> bool: ...
    def remove_foreign_unit(self, name: str) -> None: ...
    def external_stop(self, name: str) -> None: ...
    def crash(self, name: str) -> None: ...
    def vendor_unit(self) -> str: ...


async def raises(exc: type[BaseException] | tuple[type[BaseException], ...],
                 aw: Awaitable[Any], what: str) -> BaseException:
    try:
        await aw
    except exc as e:
        return e
    raise AssertionError(f"{what}: did not raise {exc}")


async def load_and_start(mgr: UnitManager, rec: Recorder, name: str, text: str,
                         enable: bool = False) -> Report:
    await mgr.write(name, text)
    await mgr.link(name, enable)
    await mgr.reload()
    since = len(rec.reports)
    await mgr.start(name)
    return await rec.wait(name, RUNNING, since)


async def cleanup(mgr: UnitManager, *names: str) -> None:
    for name in names:
        try:
            await mgr.unload(name)
        except UnitctlError as e:
            print(f"cleanup: unload {name}: {e}", file=sys.stderr)
    try:
        await mgr.reload()
    except UnitctlError as e:
        print(f"cleanup: reload: {e}", file=sys.stderr)


def latency(probe: Probe, report: Report, fallback_start: float, name: str) -> float:
    """Seconds from systemd's state change (or the call, for the fake) to the report."""
    changed = probe.state_change_time(name) if probe.real else None
    return report.at - (changed if changed is not None else fallback_start)


def assert_from_signal(report: Report, calls_before: int) -> None:
    """The report needed no D-Bus call after ``calls_before``: it came from a signal."""
    assert report.calls == calls_before, (
        f"{report.name}: {report.calls - calls_before} D-Bus call(s) between the operation "
        "and the report: it was not delivered by a signal")


# --------------------------------------------------------------------------- scenarios

async def scenario_start(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """write + link + reload + start -> loaded/active/running, reported by a signal."""
    name = "uc-start.service"
    text = SIMPLE.format(name=name)
    try:
        await mgr.write(name, text)
        assert name in mgr.present()
        assert await mgr.state(name) == NOT_FOUND, "not linked/reloaded yet"
        await mgr.link(name, False)
        assert probe.runtime_link(name), "LinkUnitFiles(runtime) made no link"
        assert not probe.wants_link("multi-user.target", name)
        await mgr.reload()
        assert await mgr.state(name) == LOADED
        since = len(rec.reports)
        t0 = time.monotonic()
        await mgr.start(name)
        calls_after_start = rec.calls()
        report = await rec.wait(name, RUNNING, since)
        assert_from_signal(report, calls_after_start)
        lat = latency(probe, report, t0, name)
        assert lat <= MAX_LATENCY, f"reported {lat * 1000:.1f} ms after the change"
        assert await mgr.state(name) == RUNNING
        # no duplicate reports: each one differs from the previous one
        states = rec.of(name)
        assert all(a != b for a, b in itertools.pairwise(states)), states
        return {"latency_ms": round(lat * 1000, 2)}
    finally:
        await cleanup(mgr, name)


async def scenario_stop(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """stop -> inactive/dead; a stop from outside is reported too (signals only)."""
    name = "uc-stop.service"
    try:
        await load_and_start(mgr, rec, name, SIMPLE.format(name=name))
        since = len(rec.reports)
        t0 = time.monotonic()
        await mgr.stop(name)
        calls = rec.calls()
        report = await rec.wait(name, LOADED, since)
        assert_from_signal(report, calls)
        lat_stop = latency(probe, report, t0, name)
        assert lat_stop <= MAX_LATENCY, f"stop reported after {lat_stop * 1000:.1f} ms"
        assert await mgr.state(name) == LOADED
        # a change nobody asked the manager for: only a signal can tell it
        since = len(rec.reports)
        await mgr.start(name)
        await rec.wait(name, RUNNING, since)
        since, calls, t0 = len(rec.reports), rec.calls(), time.monotonic()
        probe.external_stop(name)
        report = await rec.wait(name, LOADED, since)
        assert_from_signal(report, calls)
        lat_ext = latency(probe, report, t0, name)
        assert lat_ext <= MAX_LATENCY, f"external stop reported after {lat_ext * 1000:.1f} ms"
        return {"latency_ms": round(lat_stop * 1000, 2),
                "external_latency_ms": round(lat_ext * 1000, 2)}
    finally:
        await cleanup(mgr, name)


async def scenario_unload(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """unload: stopped, file and runtime link gone; after reload systemd forgot it."""
    name = "uc-unload.service"
    try:
        await load_and_start(mgr, rec, name, SIMPLE.format(name=name))
        await mgr.unload(name)
        assert name not in mgr.present()
        assert probe.file_text(name) is None, "file left in the directory"
        assert not probe.runtime_link(name), "runtime link left behind"
        assert (await mgr.state(name)).active == "inactive", "unload did not stop it"
        reported = len(rec.reports)
        await mgr.reload()
        assert await mgr.state(name) == NOT_FOUND
        await asyncio.sleep(0.2)
        assert not [r for r in rec.reports[reported:] if r.name == name], \
            "reported a unit that is no longer in the directory"
        await mgr.unload(name)  # again: nothing of ours left, no error
        return {}
    finally:
        await cleanup(mgr, name)


async def scenario_enable(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """[Install] WantedBy=multi-user.target + link(enable=True) -> enabled-runtime."""
    name = "uc-enable.service"
    try:
        await mgr.write(name, INSTALLABLE.format(name=name))
        await mgr.link(name, True)
        assert probe.runtime_link(name)
        assert probe.wants_link("multi-user.target", name), \
            "no /run/systemd/system/multi-user.target.wants/ link"
        await mgr.reload()
        assert await mgr.state(name) == LOADED
        await mgr.unload(name)
        assert not probe.wants_link("multi-user.target", name), "enable link left behind"
        assert not probe.runtime_link(name)
        return {}
    finally:
        await cleanup(mgr, name)


async def scenario_crash(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """ExecStart=/bin/false -> failed/failed, reported by a signal; unload resets it."""
    name = "uc-crash.service"
    try:
        await mgr.write(name, CRASHING.format(name=name))
        await mgr.link(name, False)
        await mgr.reload()
        since, t0 = len(rec.reports), time.monotonic()
        await mgr.start(name)
        probe.crash(name)  # the real unit exits by itself
        calls = rec.calls()
        report = await rec.wait(name, FAILED, since)
        assert_from_signal(report, calls)
        lat = latency(probe, report, t0, name)
        assert lat <= MAX_LATENCY, f"failure reported after {lat * 1000:.1f} ms"
        assert await mgr.state(name) == FAILED
        await mgr.unload(name)
        await mgr.reload()
        assert await mgr.state(name) == NOT_FOUND, "reset-failed/unload left it known"
        return {"latency_ms": round(lat * 1000, 2)}
    finally:
        await cleanup(mgr, name)


async def scenario_rewrite(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """A second version replaces the file atomically; present()'s hash follows it."""
    name = "uc-rewrite.service"
    v1 = SIMPLE.format(name=name)
    v2 = v1.replace("sleep infinity", "sleep 1000")
    try:
        await mgr.write(name, v1)
        h1 = mgr.present()[name]
        assert h1 == UnitFile.parse(v1).hash(), "present() is not the normalised sha1"
        inode1 = probe.file_inode(name)
        await mgr.write(name, v2)
        h2 = mgr.present()[name]
        assert h2 != h1 and h2 == UnitFile.parse(v2).hash()
        assert probe.file_text(name) == v2
        assert probe.file_mode(name) in (None, 0o644), oct(probe.file_mode(name) or 0)
        if inode1 is not None:
            assert probe.file_inode(name) != inode1, "rewritten in place, not replaced"
        listing = probe.dir_listing()
        assert name in listing and not [n for n in listing if n.startswith(".")], \
            f"temp files left: {listing}"
        # same meaning, other layout: same hash
        await mgr.write(name, "# a comment\n" + v2.replace("\n\n", "\n") + "\n")
        assert mgr.present()[name] == h2, "hash depends on the layout"
        await mgr.unload(name)  # written, never linked: unload still removes it
        assert name not in mgr.present() and probe.file_text(name) is None
        return {}
    finally:
        await cleanup(mgr, name)


BAD_NAMES = ("../uc-evil.service", "../../etc/systemd/system/uc-evil.service",
             "sub/uc-evil.service", "/run/uc-evil.service", "..service", ".service",
             "uc-evil", "uc-evil.txt", "")


async def scenario_bad_names(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """Names with ``/`` or ``..`` (or no unit type) are refused; nothing is written."""
    before = probe.outside_snapshot()
    listing = probe.dir_listing()
    for bad in BAD_NAMES:
        await raises(InvalidUnitNameError, mgr.write(bad, SIMPLE.format(name="x")),
                     f"write({bad!r})")
        for what, aw in (("link", mgr.link(bad, True)), ("unload", mgr.unload(bad)),
                         ("start", mgr.start(bad)), ("stop", mgr.stop(bad)),
                         ("state", mgr.state(bad))):
            await raises(InvalidUnitNameError, aw, f"{what}({bad!r})")
    assert probe.outside_snapshot() == before, "something was written outside the dir"
    assert probe.dir_listing() == listing
    assert not any(n.startswith("uc-evil") for n in mgr.present())
    return {"names": len(BAD_NAMES)}


async def scenario_foreign(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """A unit whose file is outside the dir is never touched (unload, start, stop)."""
    name = "uc-foreign.service"
    probe.add_foreign_unit(name, SIMPLE.format(name=name))
    try:
        assert probe.foreign_unit_intact(name)
        assert name not in mgr.present()
        await mgr.unload(name)  # not ours: a no-op
        await raises(SystemdError, mgr.stop(name), "stop(foreign)")
        await raises(SystemdError, mgr.start(name), "start(foreign)")
        await mgr.reload()
        assert probe.foreign_unit_intact(name), "a foreign unit was touched"
        probe.external_stop(name)
        await asyncio.sleep(0.3)
        assert not rec.of(name), f"reported a foreign unit: {rec.of(name)}"
        return {}
    finally:
        probe.remove_foreign_unit(name)


async def scenario_close(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """After close() every systemd call fails with SystemdError (units keep running)."""
    name = "uc-close.service"
    try:
        await load_and_start(mgr, rec, name, SIMPLE.format(name=name))
        await mgr.close()
        await raises(SystemdError, mgr.state(name), "state() after close()")
        await raises(SystemdError, mgr.start(name), "start() after close()")
        assert name in mgr.present()
        return {}
    finally:
        # a fresh connection to clean up
        await mgr.start_manager(rec.on_change)
        assert await mgr.state(name) == RUNNING, "close() stopped the unit"
        await cleanup(mgr, name)


async def scenario_host_units(mgr: UnitManager, probe: Probe, rec: Recorder) -> dict[str, Any]:
    """host_unit names the host's units (admin and vendor), None for a free name or ours."""
    admin, ours = "uc-hostunit.service", "uc-ours.service"
    vendor = probe.vendor_unit()
    probe.add_foreign_unit(admin, SIMPLE.format(name=admin))
    try:
        fragment = await mgr.host_unit(admin)
        assert fragment == f"/etc/systemd/system/{admin}", fragment
        vendor_fragment = await mgr.host_unit(vendor)
        assert vendor_fragment and vendor_fragment.endswith(f"/{vendor}"), vendor_fragment
        assert not vendor_fragment.startswith(probe.units_dir)
        assert await mgr.host_unit("uc-free-name.service") is None
        await load_and_start(mgr, rec, ours, SIMPLE.format(name=ours))
        assert await mgr.host_unit(ours) is None, "our own linked unit is not the host's"
        assert probe.foreign_unit_intact(admin), "asking touched the host's unit"
        await raises(InvalidUnitNameError, mgr.host_unit("a/b.service"), "host_unit(a/b)")
        return {}
    finally:
        probe.remove_foreign_unit(admin)
        await cleanup(mgr, ours)


async def scenario_refused_start(mgr: UnitManager, probe: Probe,
                                 rec: Recorder) -> dict[str, Any]:
    """StartUnit refused (RefuseManualStart=yes; on systemd also a bad setting) raises
    RefusedBySystemd with systemd's text; the unit does not run."""
    cases = [("uc-refuse.service", REFUSING, "refuse manual start")]
    if probe.real:  # the fake does not model systemd's load-time checks
        cases.append(("uc-badsetting.service", BAD_SETTING, "bad unit file setting"))
    try:
        for name, text, _words in cases:
            await mgr.write(name, text.format(name=name))
            await mgr.link(name, False)
        await mgr.reload()
        for name, _, words in cases:
            err = await raises(RefusedBySystemd, mgr.start(name), f"start({name})")
            assert words in getattr(err, "text", ""), f"{name}: {err}"
            assert (await mgr.state(name)).active != "active"
        return {}
    finally:
        await cleanup(mgr, *(name for name, _, _ in cases))


READ_ROUNDS = 8


async def scenario_read_after_signal(mgr: UnitManager, probe: Probe,
                                     rec: Recorder) -> dict[str, Any]:
    """state() is never older than a state ``on_change`` handed over before it returned.

    A start and a read go out together while the loop is busy: systemd answers
    the read (inactive) before it runs the start job, and the job's signal
    (active) reaches the reader in the same pass as that reply. Returning the
    reply let the agent publish it over the signalled state for good (the
    signal is never repeated), and ``unitctl start`` waited for ever.
    """
    name = "uc-read.service"
    raced = 0

    async def read() -> tuple[SystemdState, int]:
        got = await mgr.state(name)
        return got, len(rec.reports)  # the reports handed over before it returned

    try:
        await mgr.write(name, SIMPLE.format(name=name))
        await mgr.link(name, False)
        await mgr.reload()
        for i in range(READ_ROUNDS):
            since = len(rec.reports)
            start = asyncio.ensure_future(mgr.start(name))
            reading = asyncio.ensure_future(read())
            for _ in range(5):
                await asyncio.sleep(0)  # both calls are sent
            time.sleep(0.2)  # the loop is busy: replies and signals queue up on the socket
            await start
            got, upto = await reading
            seen = [r.state for r in rec.reports[since:upto] if r.name == name]
            if seen:
                raced += 1
                assert got == seen[-1], f"round {i}: state() = {got} after on_change {seen}"
            await rec.wait(name, RUNNING, since)
            since = len(rec.reports)
            await mgr.stop(name)
            await rec.wait(name, LOADED, since)
        if probe.real:
            assert raced, "no signal came with a read's reply: the scenario tested nothing"
        return {"raced": raced}
    finally:
        await cleanup(mgr, name)


#: The longest name systemd takes: 255 characters (UNIT_NAME_MAX counts the NUL).
LONGEST_NAME = "uc-" + "x" * (255 - len("uc-.service")) + ".service"


async def scenario_longest_name(mgr: UnitManager, probe: Probe,
                                rec: Recorder) -> dict[str, Any]:
    """A 255-character name is written, linked, started and unloaded; 256 is refused."""
    name = LONGEST_NAME
    assert len(name) == 255
    try:
        await load_and_start(mgr, rec, name, SIMPLE.format(name="longest"))
        assert await mgr.state(name) == RUNNING
        assert name in mgr.present()
        await mgr.unload(name)
        await mgr.reload()
        assert name not in mgr.present()
        await raises(InvalidUnitNameError, mgr.write("y" + name, SIMPLE.format(name="y")),
                     "write(256 characters)")
        return {"length": len(name)}
    finally:
        await cleanup(mgr, name)


Scenario = Callable[[Any, Any, Recorder], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {
    "start": scenario_start,
    "stop": scenario_stop,
    "unload": scenario_unload,
    "enable": scenario_enable,
    "crash": scenario_crash,
    "rewrite": scenario_rewrite,
    "bad_names": scenario_bad_names,
    "foreign": scenario_foreign,
    "close": scenario_close,
    "host_units": scenario_host_units,
    "refused_start": scenario_refused_start,
    "longest_name": scenario_longest_name,
    "read_after_signal": scenario_read_after_signal,
}


async def run_scenario(name: str, mgr: Any, probe: Probe) -> dict[str, Any]:
    """Start ``mgr``, run one scenario, close ``mgr``; its measurements."""
    rec = Recorder(mgr)
    await mgr.start_manager(rec.on_change)
    try:
        return await SCENARIOS[name](mgr, probe, rec)
    finally:
        await mgr.close()


# --------------------------------------------------------------------------- probes

class FakeProbe:
    """Looks into a :class:`~unitctl.agent.fake.FakeUnitManager`'s dicts."""

    real = False

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.units_dir = fake.units_dir

    def file_text(self, name: str) -> str | None:
        text: str | None = self.fake.files.get(name)
        return text

    def file_inode(self, name: str) -> int | None:
        return None

    def file_mode(self, name: str) -> int | None:
        return None

    def dir_listing(self) -> list[str]:
        return sorted(self.fake.files)

    def runtime_link(self, name: str) -> bool:
        return name in self.fake.linked

    def wants_link(self, target: str, name: str) -> bool:
        return name in self.fake.enabled

    def state_change_time(self, name: str) -> float | None:
        return None

    def outside_snapshot(self) -> set[str]:
        return {n for n in self.fake.files if "/" in n or ".." in n}

    def add_foreign_unit(self, name: str, text: str) -> None:
        self.fake.add_foreign_unit(name, RUNNING)

    def foreign_unit_intact(self, name: str) -> bool:
        return bool(self.fake.units.get(name) == RUNNING and name not in self.fake.files)

    def remove_foreign_unit(self, name: str) -> None:
        self.fake.foreign.discard(name)
        self.fake.units.pop(name, None)

    def external_stop(self, name: str) -> None:
        self.fake.set_state(name, LOADED)

    def crash(self, name: str) -> None:
        self.fake.crash(name)

    def vendor_unit(self) -> str:
        self.fake.add_foreign_unit("dbus.service",
                                   fragment="/usr/lib/systemd/system/dbus.service")
        return "dbus.service"


class MachineProbe:
    """Looks at the real machine: the filesystem and ``systemctl``."""

    real = True
    runtime_dir = "/run/systemd/system"
    foreign_dir = "/etc/systemd/system"

    def __init__(self, units_dir: str) -> None:
        self.units_dir = units_dir

    def _path(self, name: str) -> str:
        return os.path.join(self.units_dir, name)

    def file_text(self, name: str) -> str | None:
        try:
            with open(self._path(name), encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def file_inode(self, name: str) -> int | None:
        return os.stat(self._path(name)).st_ino

    def file_mode(self, name: str) -> int | None:
        return os.stat(self._path(name)).st_mode & 0o7777

    def dir_listing(self) -> list[str]:
        try:
            return sorted(os.listdir(self.units_dir))
        except FileNotFoundError:
            return []

    def runtime_link(self, name: str) -> bool:
        return os.path.lexists(os.path.join(self.runtime_dir, name))

    def wants_link(self, target: str, name: str) -> bool:
        return os.path.lexists(os.path.join(self.runtime_dir, f"{target}.wants", name))

    def systemctl(self, *args: str, check: bool = True) -> str:
        p = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if check and p.returncode != 0:
            raise AssertionError(f"systemctl {' '.join(args)}: {p.returncode} {p.stderr}")
        return p.stdout.strip()

    def state_change_time(self, name: str) -> float | None:
        out = self.systemctl("show", "-p", "StateChangeTimestampMonotonic", "--value", name)
        return int(out) / 1e6 if out.isdigit() and int(out) else None

    def outside_snapshot(self) -> set[str]:
        """The directory's parent in full, and every path a bad name could reach."""
        parent = os.path.dirname(self.units_dir.rstrip("/"))
        seen = {os.path.join(parent, n) for n in os.listdir(parent)}
        for top in ("/", "/run", "/etc", "/etc/systemd/system", self.runtime_dir, "/tmp",
                    os.getcwd()):
            seen.update(os.path.join(top, n) for n in os.listdir(top) if "uc-evil" in n)
        return seen

    def add_foreign_unit(self, name: str, text: str) -> None:
        with open(os.path.join(self.foreign_dir, name), "w", encoding="utf-8") as f:
            f.write(text)
        self.systemctl("daemon-reload")
        self.systemctl("start", name)

    def foreign_unit_intact(self, name: str) -> bool:
        return (os.path.isfile(os.path.join(self.foreign_dir, name))
                and self.systemctl("is-active", name, check=False) == "active")

    def remove_foreign_unit(self, name: str) -> None:
        self.systemctl("stop", name, check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.foreign_dir, name))
        self.systemctl("daemon-reload")
        self.systemctl("reset-failed", name, check=False)

    def external_stop(self, name: str) -> None:
        self.systemctl("stop", name)

    def crash(self, name: str) -> None:
        """Nothing to do: the unit's ExecStart=/bin/false fails on its own."""

    def vendor_unit(self) -> str:
        return "dbus.service"  # shipped by the distribution, under /usr/lib or /lib


# --------------------------------------------------------------------------- CLI

def main(argv: list[str]) -> int:
    """Run one scenario against the real systemd of this machine."""
    if len(argv) != 2 or argv[1] not in SCENARIOS:
        print(f"usage: {argv[0]} {{{','.join(SCENARIOS)}}}", file=sys.stderr)
        return 2
    from unitctl.systemd.manager import SystemdUnitManager

    mgr = SystemdUnitManager()
    probe = MachineProbe(mgr.units_dir)
    result = asyncio.run(run_scenario(argv[1], mgr, probe))
    print(json.dumps({"scenario": argv[1], **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
