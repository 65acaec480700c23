"""One failing unit never blocks its machine (issue 10, defect 2 and deliver 3 and 9).

One real systemd machine, so every unit lands on it. Units that systemd
refuses (``RefuseManualStart=yes``, and a service with no ``ExecStart=``, a
bad setting) are sorted before good units and started together with them: the
good ones run, the bad ones show their failure in ``list-units`` and
``explain``, and their retries back off (the agent's journal: the "start ...
failed" lines, their announced waits and their timestamps). A unit named like
a host unit (``dbus.service``) is refused at load and never linked; ``destroy``
leaves the host's dbus alone (its InvocationID is unchanged).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import active_state, service, unitctl, units_json, wait, write_unit
from unitctl_testing.cluster import Cluster

CLUSTER_KWARGS = {"n_machines": 1}
AGENT = "unitctl-agent.service"
REFUSE = "a-refuse.service"
BAD = "a-bad.service"
GOOD = ("b-good.service", "c-good.service")

#: An agent journal line of a failed start: its time, the unit and the announced wait.
_FAILED = re.compile(r"^(\d+\.\d+) .*agent: start (\S+) failed: .*; retry in (\d+) s$")


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    r = unitctl(cluster, "list-unit-files", "--json", "--full")
    names = [u["unit"] for u in json.loads(r.stdout)]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=30, what="units destroyed")


def _failed_starts(c: Cluster, unit: str) -> list[tuple[float, int]]:
    """(time, announced wait) of each "start <unit> failed" line in the agent's journal."""
    out = c.exec("m1", "journalctl", "-u", AGENT, "-o", "short-unix", "--no-pager").stdout
    found = []
    for line in out.splitlines():
        m = _FAILED.match(line.strip())
        if m and m.group(2) == unit:
            found.append((float(m.group(1)), int(m.group(3))))
    return found


def _row(c: Cluster, unit: str) -> dict[str, str] | None:
    r = unitctl(c, "list-units", "--json", "--full", "--fields",
                "unit,machine,active,sub,error,retry_at")
    rows = [u for u in json.loads(r.stdout) if u["unit"] == unit]
    return rows[0] if rows else None


def test_refused_units_do_not_block_the_good_ones_and_back_off(
        cluster: Cluster, tmp_path: Path) -> None:
    paths = [write_unit(tmp_path, REFUSE, service(extra="RefuseManualStart=yes")),
             write_unit(tmp_path, BAD, "[Unit]\nDescription=no ExecStart\n[Service]\n"
                                       "Type=simple\n"),
             *(write_unit(tmp_path, g, service()) for g in GOOD)]
    unitctl(cluster, "start", "--no-block", *paths)
    wait(lambda: all(active_state(cluster, "m1", g) == "active" for g in GOOD),
         timeout=30, what="the good units run next to the refused ones")

    def failing(unit: str, words: str) -> bool:
        row = _row(cluster, unit)
        return bool(row and row["error"] and words in row["error"])

    wait(lambda: failing(REFUSE, "start refused by systemd: Operation refused"), timeout=15,
         what="the refusal shows in list-units")
    wait(lambda: failing(BAD, "start refused by systemd:"), timeout=15,
         what="the bad setting shows in list-units")
    assert "bad unit file setting" in (_row(cluster, BAD) or {}).get("error", "")
    assert active_state(cluster, "m1", REFUSE) != "active"

    table = unitctl(cluster, "list-units").stdout
    assert table.splitlines()[0].split() == ["UNIT", "MACHINE", "ACTIVE", "SUB", "ERROR"]
    line = next(ln for ln in table.splitlines() if ln.startswith(REFUSE))
    assert re.search(r"start refused by systemd: Operation refused.*; retry (in \d+ s|due)",
                     line), line
    explained = unitctl(cluster, "explain", REFUSE).stdout
    assert re.search(r"Failing on \S+: start refused by systemd: Operation refused, unit "
                     r"a-refuse\.service may be requested by dependency only.*; retry",
                     explained), explained

    # the retries back off: waits 1, 2, 4, 8 s announced, and kept (no early retry)
    wait(lambda: len(_failed_starts(cluster, REFUSE)) >= 5, timeout=40,
         what="five failed starts of the refused unit")
    starts = _failed_starts(cluster, REFUSE)
    assert [w for _, w in starts[:5]] == [1, 2, 4, 8, 16], starts
    for (t0, announced), (t1, _) in itertools.pairwise(starts):
        assert t1 - t0 >= announced - 0.25, f"retried after {t1 - t0:.2f}s, not {announced}s"
    assert [w for _, w in _failed_starts(cluster, BAD)][:4] == [1, 2, 4, 8]


def test_a_host_unit_is_refused_never_shadowed_and_destroy_leaves_it(
        cluster: Cluster, tmp_path: Path) -> None:
    def dbus_invocation() -> str:
        return cluster.exec("m1", "systemctl", "show", "-p", "InvocationID", "--value",
                            "dbus.service").stdout.strip()

    before = dbus_invocation()
    assert before and active_state(cluster, "m1", "dbus.service") == "active"
    unitctl(cluster, "start", "--no-block", write_unit(tmp_path, "dbus.service", service()),
            write_unit(tmp_path, "b-good.service", service()))
    wait(lambda: active_state(cluster, "m1", "b-good.service") == "active", timeout=30,
         what="the good unit runs")

    # the good unit started in the same pass that met dbus.service: nothing was linked
    for path in ("/run/systemd/system/dbus.service", "/run/unitctl/units/dbus.service"):
        assert cluster.exec("m1", "test", "-e", path, check=False).returncode != 0, path
    fragment = cluster.exec("m1", "systemctl", "show", "-p", "FragmentPath", "--value",
                            "dbus.service").stdout.strip()
    assert not fragment.startswith(("/run/unitctl", "/run/systemd/system")), fragment

    def refused() -> bool:
        row = _row(cluster, "dbus.service")
        return bool(row and "load refused: dbus.service is a unit of this host" in
                    (row["error"] or ""))

    wait(refused, timeout=15, what="the refusal of dbus.service shows in list-units")
    explained = unitctl(cluster, "explain", "dbus.service").stdout
    assert "Failing on" in explained and "never shadows, stops or unloads" in explained

    unitctl(cluster, "destroy", "dbus.service", "b-good.service")
    wait(lambda: not units_json(cluster), timeout=30, what="the records are gone")
    assert active_state(cluster, "m1", "dbus.service") == "active"
    assert dbus_invocation() == before, "the host's dbus was restarted or stopped"
    log = cluster.exec("m1", "journalctl", "-u", AGENT, "--no-pager").stdout
    assert "unload dbus.service" not in log and "stop dbus.service" not in log
