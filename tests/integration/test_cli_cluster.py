"""`unitctl` end to end: a real etcd, simulated agents (real Agent and Engine code,
fake systemd) in a background thread, and the CLI in the foreground."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from unitctl.cli.main import cli
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.kv import KV
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import InProcessCluster

pytestmark = pytest.mark.etcd
UNITS = Path(__file__).resolve().parents[2] / "units"


class SimThread:
    """Runs a InProcessCluster on its own event loop in a thread."""

    def __init__(self, endpoint: str, prefix: str, metadata: list[dict[str, str]]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make_kv() -> KV:
            return await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,), timeout=2))
        self.sim = InProcessCluster(make_kv, prefix, ttl=2)
        for i, meta in enumerate(metadata, 1):
            self.call(self.sim.add(i, meta))

    def call(self, coro: Any, timeout: float = 20) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        self.call(self.sim.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def sim(etcd: EtcdCluster, key_prefix: str) -> Iterator[SimThread]:
    s = SimThread(etcd.endpoints[0], key_prefix,
                  [{"region": "eu", "disk": "ssd"}, {"region": "us"}, {"region": "eu"}])
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def unitctl(etcd: EtcdCluster, key_prefix: str) -> Any:
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--endpoint", etcd.endpoint, "--etcd-key-prefix",
                                        key_prefix, "--request-timeout", "2", *args])
    return run


def table(output: str) -> list[list[str]]:
    return [re.split(r"\t+", line.strip()) for line in output.strip().splitlines()]


def test_mongo_and_employees_start_together(sim: SimThread, unitctl: Any) -> None:
    r = unitctl("start", "--block-attempts", "20", str(UNITS / "mongo.service"),
                str(UNITS / "employees.service"))
    assert r.exit_code == 0, r.output
    assert re.search(r"Unit mongo.service launched on [0-9a-f]{8}\.\.\./10\.0\.0\.\d", r.output)
    assert re.search(r"Unit employees.service launched on", r.output)
    r = unitctl("list-units")
    assert r.exit_code == 0, r.output
    rows = table(r.output)
    assert rows[0] == ["UNIT", "MACHINE", "ACTIVE", "SUB"]
    assert [row[0] for row in rows[1:]] == ["employees.service", "mongo.service"]
    assert rows[1][1] == rows[2][1] and rows[1][2:] == ["active", "running"]
    assert re.fullmatch(r"[0-9a-f]{8}\.\.\./10\.0\.0\.\d", rows[1][1])
    assert "\t" in r.output.splitlines()[0]  # fleetctl's tab layout


def test_list_machines_and_unit_files(sim: SimThread, unitctl: Any) -> None:
    r = unitctl("list-machines")
    rows = table(r.output)
    assert rows[0] == ["MACHINE", "IP", "METADATA"]
    assert sorted(row[2] for row in rows[1:]) == ["disk=ssd,region=eu", "region=eu", "region=us"]
    assert unitctl("start", str(UNITS / "mongo.service")).exit_code == 0
    rows = table(unitctl("list-unit-files").output)
    assert rows[0] == ["UNIT", "HASH", "DSTATE", "STATE", "TARGET"]
    assert rows[1][0] == "mongo.service" and len(rows[1][1]) == 7
    assert rows[1][2:4] == ["launched", "launched"]


def test_unschedulable_start_explains_and_fails(sim: SimThread, unitctl: Any,
                                                tmp_path: Path) -> None:
    unit = tmp_path / "mars.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineMetadata=region=mars\n")
    r = unitctl("start", "--block-attempts", "3", str(unit))
    assert r.exit_code == 7, r.output
    assert "region" in r.output and "mars" in r.output
    r = unitctl("explain", "mars.service")
    assert r.exit_code == 0
    assert len([ln for ln in r.output.splitlines() if "mars" in ln]) >= 3  # one per machine


def test_machine_loss_moves_units(sim: SimThread, unitctl: Any) -> None:
    assert unitctl("start", str(UNITS / "mongo.service"),
                   str(UNITS / "employees.service")).exit_code == 0
    before = table(unitctl("list-units", "--full").output)[1][1].split("/")[0]
    sim.call(sim.sim.kill(before))
    for _ in range(100):
        rows = table(unitctl("list-units", "--full").output)[1:]
        if len(rows) == 2 and all(r[1].split("/")[0] != before for r in rows) and \
                rows[0][1] == rows[1][1]:
            break
        sim.call(asyncio.sleep(0.1))
    else:
        pytest.fail(f"units did not move: {rows}")


@pytest.mark.parametrize("args,code,needle", [
    (["start", "bad name!.service"], 2, "bad name!"),
    (["start", "../missing-evil.service"], 3, "missing-evil.service"),
    (["start", "nope.service"], 3, "nope.service"),
    (["stop", "nope.service"], 3, "nope.service"),
])
def test_bad_input_is_one_line_error_and_changes_nothing(sim: SimThread, unitctl: Any,
                                                         args: list[str], code: int,
                                                         needle: str) -> None:
    assert unitctl("start", str(UNITS / "mongo.service")).exit_code == 0
    before = unitctl("list-unit-files", "--full").output
    r = unitctl(*args)
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output and needle in r.output
    assert unitctl("list-unit-files", "--full").output == before


def test_invalid_unit_files_are_refused(sim: SimThread, unitctl: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.service"
    bad.write_text("this is not a unit file\n")
    combo = tmp_path / "combo.service"
    combo.write_text("[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineID=0123abcd\n"
                     "Global=true\n")
    for path, word in ((bad, "line 1"), (combo, "Global")):
        r = unitctl("start", str(path))
        assert r.exit_code == 2 and word in r.output, r.output
    assert table(unitctl("list-unit-files").output)[1:] == []


def test_etcd_unreachable_is_a_clear_error() -> None:
    r = CliRunner().invoke(cli, ["--endpoint", "http://127.0.0.1:9", "--request-timeout", "1",
                                 "list-units"])
    assert r.exit_code == 5
    assert r.output.startswith("Error: cannot reach etcd") and "Traceback" not in r.output
