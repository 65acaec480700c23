"""The agent skips systemd's daemon-reload for names systemd has never loaded (issue 12).

systemd 252 loads a unit file it has not loaded yet (or only found missing) on
the next ``StartUnit``/``LoadUnit`` of its name, drop-ins included, so the
agent starts a new unit without a daemon-reload; it keeps the reload when a
file systemd already loaded changes or goes. Whether PID 1 reloaded is read
from its own record: the journal of PID 1 ("Reloading." is logged on every
daemon-reload) after a cursor taken before the command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import active_state, service, unitctl, units_json, wait, write_unit
from unitctl_testing.cluster import Cluster

MACHINE = "m2"
DROPIN = "[Service]\nEnvironment=FROM_DROPIN=yes\n"


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    names = [u["unit"] for u in units_json(cluster)]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=20, what="units destroyed")


def _cursor(c: Cluster) -> str:
    out = c.exec(MACHINE, "journalctl", "-n", "0", "--show-cursor", "-q").stdout
    return out.strip().rsplit("-- cursor: ", 1)[-1]


def _reloads_since(c: Cluster, cursor: str) -> int:
    """daemon-reloads PID 1 logged after ``cursor``."""
    out = c.exec(MACHINE, "journalctl", "_PID=1", f"--after-cursor={cursor}", "-o", "cat",
                 "-q").stdout
    return sum(1 for line in out.splitlines() if line.startswith("Reloading"))


def _show(c: Cluster, unit: str, prop: str) -> str:
    return c.exec(MACHINE, "systemctl", "show", "-p", prop, "--value", unit).stdout.strip()


def _pinned(c: Cluster, cmd: str = "/bin/sleep infinity", extra: str = "") -> str:
    return service(cmd, xfleet=f"MachineID={c.machine_id(MACHINE)}", extra=extra)


def test_new_unit_with_a_dropin_starts_without_a_reload(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    cluster.exec(MACHINE, "mkdir", "-p", "/etc/systemd/system/fresh.service.d")
    cluster.exec(MACHINE, "tee", "/etc/systemd/system/fresh.service.d/10-env.conf",
                 input=DROPIN)
    try:
        cursor = _cursor(cluster)
        unitctl(cluster, "start", write_unit(tmp_path, "fresh.service", _pinned(cluster)))
        assert active_state(cluster, MACHINE, "fresh.service") == "active"
        assert "FROM_DROPIN=yes" in _show(cluster, "fresh.service", "Environment")
        assert _reloads_since(cluster, cursor) == 0
        # the file goes: systemd must forget it, so that reload stays
        cursor = _cursor(cluster)
        unitctl(cluster, "destroy", "fresh.service")
        wait(lambda: _reloads_since(cluster, cursor) >= 1, what="a reload after the unload")
        # the same name again, new text: systemd collected it, no reload needed
        cursor = _cursor(cluster)
        unitctl(cluster, "start", write_unit(tmp_path, "fresh.service",
                                             _pinned(cluster, "/bin/sleep 1003")))
        assert "1003" in _show(cluster, "fresh.service", "ExecStart")
        assert "FROM_DROPIN=yes" in _show(cluster, "fresh.service", "Environment")
        assert _reloads_since(cluster, cursor) == 0
    finally:
        cluster.exec(MACHINE, "rm", "-r", "/etc/systemd/system/fresh.service.d")


def test_name_systemd_found_missing_starts_without_a_reload(cluster: Cluster,
                                                            tmp_path: Path) -> None:
    # holder's Before= pins late.service in systemd as a not-found unit
    unitctl(cluster, "start", write_unit(tmp_path, "holder.service",
                                         _pinned(cluster, extra="Before=late.service")))
    assert _show(cluster, "late.service", "LoadState") == "not-found"
    cursor = _cursor(cluster)
    unitctl(cluster, "start", write_unit(tmp_path, "late.service", _pinned(cluster)))
    assert active_state(cluster, MACHINE, "late.service") == "active"
    assert _reloads_since(cluster, cursor) == 0


def test_changed_file_of_a_loaded_unit_still_reloads(cluster: Cluster, tmp_path: Path) -> None:
    path = write_unit(tmp_path, "changed.service", _pinned(cluster, "/bin/sleep 1001"))
    unitctl(cluster, "start", path)
    write_unit(tmp_path, "changed.service", _pinned(cluster, "/bin/sleep 1002"))
    cursor = _cursor(cluster)
    unitctl(cluster, "start", "--replace", path)
    wait(lambda: "1002" in _show(cluster, "changed.service", "ExecStart"),
         what="the new text loaded")
    assert _reloads_since(cluster, cursor) >= 1
