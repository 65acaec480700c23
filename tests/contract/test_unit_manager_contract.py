"""One contract suite for :class:`~unitctl.agent.ports.UnitManager`: fake and real.

Every scenario of :mod:`tests.contract.unit_manager_scenarios` runs twice:

* ``fake``: against :class:`~unitctl.agent.fake.FakeUnitManager`, in-process;
* ``systemd``: against :class:`~unitctl.systemd.SystemdUnitManager` *inside* a
  real systemd 252 machine booted with the shared harness
  (:class:`unitctl_testing.cluster.Cluster`, one machine, no agent). The scenario
  runs as ``python -m tests.contract.unit_manager_scenarios <name>`` with the
  machine's venv and the read-only repo at ``/opt/unitctl/src``.

Why inside rather than from the host through ``bus_address``: the manager then
runs exactly as in production -- default system bus, default
``/run/unitctl/units`` -- and the paths it hands to systemd (``LinkUnitFiles``)
are the paths it writes. From the host the unit directory would be
``/proc/<leader>/root/run/...`` for Python but ``/run/...`` for systemd, so the
adapter would need a path translation that production never uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract import unit_manager_scenarios as sc
from tests.real import require_nspawn, require_tool
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.ports import SystemdState
from unitctl.errors import SystemdError

SRC = "/opt/unitctl/src"
PYTHON = "/opt/unitctl/venv/bin/python"
CLUSTER_KWARGS: dict[str, Any] = {"n_machines": 1, "start_agent": False}


@pytest.fixture(scope="module")
def machine() -> Iterator[Any]:
    """One booted systemd machine (m1), no agent."""
    require_nspawn()
    from unitctl_testing.cluster import Cluster

    with Cluster(**CLUSTER_KWARGS, **_free_network()) as cluster:
        assert cluster.system_state("m1") in ("running", "degraded")
        yield cluster


def _free_network() -> dict[str, Any]:
    """Own tag, bridge and subnet, unused right now: other clusters may run on this host."""
    used = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                          check=False).stdout
    for i in range(40):
        tag, bridge, subnet = f"um{i}", f"br-unitctl-um{i}", f"10.231.{150 + i}"
        if f" {subnet}." not in used and not os.path.exists(f"/sys/class/net/{bridge}"):
            return {"tag": tag, "bridge": bridge, "subnet": subnet}
    raise RuntimeError("no free subnet in 10.231.150-189 for the test machine")


def run_fake(scenario: str) -> dict[str, Any]:
    fake = FakeUnitManager()
    return asyncio.run(sc.run_scenario(scenario, fake, sc.FakeProbe(fake)))


def run_in_machine(cluster: Any, scenario: str) -> dict[str, Any]:
    p = cluster.exec("m1", "env", "-C", SRC, f"PYTHONPATH={SRC}", "PYTHONDONTWRITEBYTECODE=1",
                     PYTHON, "-m", "tests.contract.unit_manager_scenarios", scenario,
                     check=False, timeout=120)
    assert p.returncode == 0, f"scenario {scenario} failed in the machine:\n{p.stdout}{p.stderr}"
    result: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("scenario", list(sc.SCENARIOS))
@pytest.mark.parametrize("impl", ["fake", pytest.param("systemd", marks=pytest.mark.cluster)])
def test_unit_manager_contract(impl: str, scenario: str, request: pytest.FixtureRequest) -> None:
    if impl == "fake":
        result = run_fake(scenario)
    else:
        result = run_in_machine(request.getfixturevalue("machine"), scenario)
    for key, value in result.items():
        if key.endswith("latency_ms"):
            print(f"{impl}/{scenario}: {key}={value}")  # shown with -s / -rP
            request.node.user_properties.append((key, value))


# ------------------------------------------------------------ the fake's own hooks

def test_fake_fail_next_and_enable_failure_removes_file() -> None:
    async def go() -> None:
        fake = FakeUnitManager()
        reports: list[tuple[str, SystemdState]] = []
        await fake.start_manager(lambda n, s: reports.append((n, s)))
        fake.fail_next("write")
        with pytest.raises(SystemdError):
            await fake.write("a.service", sc.SIMPLE)
        assert "a.service" not in fake.present()
        await fake.write("a.service", sc.INSTALLABLE)
        fake.fail_next("enable")
        with pytest.raises(SystemdError):
            await fake.link("a.service", True)
        assert "a.service" not in fake.present(), "a failed enable must remove the file"
        assert not fake.linked and not fake.enabled
        await fake.write("a.service", sc.SIMPLE)
        await fake.link("a.service", False)
        await fake.reload()
        await fake.start("a.service")
        fake.fail_next("unload", times=2)
        for _ in range(2):
            with pytest.raises(SystemdError):
                await fake.unload("a.service")
        assert "a.service" in fake.present(), "a failed unload leaves the file"
        fake.crash("a.service")
        assert reports[-1] == ("a.service", sc.FAILED)
        await fake.unload("a.service")
        assert fake.units["a.service"] == sc.LOADED
        assert [m for m, _ in fake.history].count("unload") == 3

    asyncio.run(go())


def test_fake_is_cheap_without_history() -> None:
    async def go() -> None:
        fake = FakeUnitManager(keep_history=False)
        await fake.start_manager(lambda n, s: None)
        for i in range(200):
            await fake.write(f"u{i}.service", sc.SIMPLE)
            await fake.link(f"u{i}.service", False)
        await fake.reload()
        assert len(fake.present()) == 200 and not fake.history

    asyncio.run(go())


# ------------------------------------------------------------ the adapter on a private bus
# Host-side checks of SystemdUnitManager's bus handling that a healthy systemd
# cannot provoke: error replies, path escaping, duplicate/foreign signals, a
# lost connection. A private dbus-daemon carries a stand-in for systemd's
# Manager written with dbus-fast's low-level API (test code only).

def test_bus_label_escaping_round_trips() -> None:
    from unitctl.systemd.api import bus_label_escape, bus_label_unescape, unit_object_path

    assert unit_object_path("web-1@a.b.service") == \
        "/org/freedesktop/systemd1/unit/web_2d1_40a_2eb_2eservice"
    assert bus_label_escape("") == "_" and bus_label_unescape("_") == ""
    for name in ("a.service", "x\\x2dy@1:2.socket", "_under_.timer", "ü.service"):
        assert bus_label_unescape(bus_label_escape(name)) == name
    assert bus_label_unescape("bad_zz") is None and bus_label_unescape("a-b") is None


@pytest.fixture
def private_bus(tmp_path: Any) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A private dbus-daemon: (address, process)."""
    require_tool("dbus-daemon", "dbus-daemon is not installed (the dbus package)")
    address = f"unix:path={tmp_path}/bus"
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile",
                             f"--address={address}", "--print-address=1"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # printed once it listens
    try:
        yield address, proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


class StandInSystemd:
    """Owns org.freedesktop.systemd1 on a private bus; answers a few Manager calls."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[str, str, str]] = {}
        self.bus: Any = None

    async def connect(self, address: str) -> None:
        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        from unitctl.systemd.api import unit_object_path

        def handle(msg: Any) -> Any:
            if msg.message_type != MessageType.METHOD_CALL or \
                    msg.interface != "org.freedesktop.systemd1.Manager":
                return None
            if msg.member == "Subscribe":
                return Message.new_method_return(msg)
            if msg.member == "ListUnitsByNames":
                rows = [(n, "", *self.states.get(n, ("not-found", "inactive", "dead")), "",
                         unit_object_path(n), 0, "", "/") for n in msg.body[0]]
                return Message.new_method_return(msg, "a(ssssssouso)", [rows])
            return Message.new_error(msg, "org.freedesktop.systemd1.NoSuchUnit",
                                     f"Unit {msg.body[0] if msg.body else '?'} not found.")

        self.bus = await MessageBus(bus_address=address).connect()
        self.bus.add_message_handler(handle)
        await self.bus.request_name("org.freedesktop.systemd1")

    async def change(self, name: str, load: str, active: str, sub: str) -> None:
        from dbus_fast import Message, Variant

        from unitctl.systemd.api import unit_object_path

        self.states[name] = (load, active, sub)
        await self.bus.send(Message.new_signal(
            unit_object_path(name), "org.freedesktop.DBus.Properties", "PropertiesChanged",
            "sa{sv}as", ["org.freedesktop.systemd1.Unit",
                         {"ActiveState": Variant("s", active), "SubState": Variant("s", sub)},
                         []]))


def test_adapter_signals_errors_and_lost_bus(
        private_bus: tuple[str, subprocess.Popen[str]], tmp_path: Any) -> None:
    from unitctl.systemd.manager import SystemdUnitManager

    address, daemon = private_bus

    async def go() -> None:
        systemd = StandInSystemd()
        await systemd.connect(address)
        mgr = SystemdUnitManager(str(tmp_path / "units"), bus_address=address,
                                 call_timeout=5)
        reports: list[tuple[str, SystemdState]] = []
        got = asyncio.Event()

        def on_change(name: str, state: SystemdState) -> None:
            reports.append((name, state))
            got.set()

        await mgr.start_manager(on_change)
        ours = "web-1@a.service"
        await mgr.write(ours, sc.SIMPLE)
        assert oct(os.stat(tmp_path / "units" / ours).st_mode & 0o777) == "0o644"
        await systemd.change("foreign.service", "loaded", "active", "running")
        await systemd.change(ours, "loaded", "active", "running")
        await asyncio.wait_for(got.wait(), 5)
        await systemd.change(ours, "loaded", "active", "running")  # no change: no report
        got.clear()
        await systemd.change(ours, "loaded", "failed", "failed")
        await asyncio.wait_for(got.wait(), 5)
        assert reports == [(ours, sc.RUNNING), (ours, sc.FAILED)], reports

        with pytest.raises(SystemdError, match=r"org\.freedesktop\.systemd1\.NoSuchUnit"):
            await mgr.start(ours)
        with pytest.raises(SystemdError, match="not a unit of"):
            await mgr.start("foreign.service")

        systemd.bus.disconnect()
        daemon.kill()  # the bus goes away under the manager
        daemon.wait()
        # Let the reader see EOF first: a call racing the death of the socket
        # makes dbus-fast log "Future exception was never retrieved" (its
        # internal write future), whose traceback formatting trips CPython
        # 3.11.7's AST recursion-depth bug later in the session.
        await asyncio.sleep(0.3)
        with pytest.raises(SystemdError, match="lost the connection"):
            await mgr.state(ours)
        with pytest.raises(SystemdError, match="lost the connection"):
            await mgr.reload()
        await mgr.close()

    asyncio.run(go())


def test_adapter_connect_failure_is_systemd_error(tmp_path: Any) -> None:
    from unitctl.systemd.manager import SystemdUnitManager

    async def go() -> None:
        mgr = SystemdUnitManager(str(tmp_path), bus_address=f"unix:path={tmp_path}/nobus")
        with pytest.raises(SystemdError, match="cannot connect"):
            await mgr.start_manager(lambda n, s: None)
        with pytest.raises(SystemdError):
            await mgr.state("a.service")

    asyncio.run(go())
