"""``unitctl rollout`` end to end on a real etcd, with the real Agent and Engine code
(fake systemd) in a background thread: the engine leader drives the rollout
record; a new leader carries on; undo; bad requests are refused before
anything is written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.integration.test_cli_cluster import SimThread
from unitctl.cli.main import cli
from unitctl.unitfile import UnitFile
from unitctl_testing.etcd import EtcdCluster

pytestmark = pytest.mark.etcd
INSTANCES = [f"web@{i}.service" for i in range(1, 5)]


def _body(version: str) -> str:
    return f"[Unit]\nDescription=web {version}\n[Service]\nExecStart=/bin/sleep {version}\n"


@pytest.fixture
def sim(etcd: EtcdCluster, key_prefix: str) -> Iterator[SimThread]:
    s = SimThread(etcd.endpoints[0], key_prefix, [{}, {}, {}])
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


def _template(tmp: Path, version: str) -> str:
    (tmp / version).mkdir(exist_ok=True)
    path = tmp / version / "web@.service"
    path.write_text(_body(version))
    return str(path)


def _hashes(unitctl: Any) -> dict[str, tuple[str, str]]:
    r = unitctl("list-units", "--json", "--full", "--fields", "unit,active,hash")
    assert r.exit_code == 0, r.output
    return {u["unit"]: (u["active"], u["hash"]) for u in json.loads(r.output)}


def _status(unitctl: Any) -> dict[str, Any]:
    r = unitctl("rollout", "status", "--json", "web@.service")
    assert r.exit_code == 0, r.output
    return dict(json.loads(r.output)[0])


def _wait(cond: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        time.sleep(0.1)


def _started(tmp: Path, unitctl: Any) -> str:
    v1 = _template(tmp, "1")
    r = unitctl("start", *[str(Path(v1).parent / i) for i in INSTANCES])
    assert r.exit_code == 0, r.output
    return UnitFile.parse(_body("1")).hash()


def test_rollout_replaces_every_instance_then_undo_reverts(sim: SimThread, unitctl: Any,
                                                           tmp_path: Path) -> None:
    old = _started(tmp_path, unitctl)
    new = UnitFile.parse(_body("2")).hash()
    r = unitctl("rollout", _template(tmp_path, "2"), "--max-unavailable", "2")
    assert r.exit_code == 0, r.output
    assert "rollout web@.service: done" in r.output
    assert all(f"{i} active on {new[:7]}" in r.output for i in INSTANCES), r.output
    assert _hashes(unitctl) == {i: ("active", new) for i in INSTANCES}
    table = unitctl("rollout", "status", "web@.service")
    assert "done" in table.output and "4/4" in table.output and "INSTANCE" in table.output
    r = unitctl("rollout", "undo", "web@.service")
    assert r.exit_code == 0, r.output
    assert "rollout web@.service: reverted" in r.output
    assert _hashes(unitctl) == {i: ("active", old) for i in INSTANCES}
    # the previous body was kept by the rollout although no unit used it meanwhile
    assert UnitFile.parse(unitctl("cat", "web@1.service").output).hash() == old


def test_a_paused_rollout_resumes_on_a_new_leader(sim: SimThread, unitctl: Any,
                                                  tmp_path: Path) -> None:
    _started(tmp_path, unitctl)
    new = UnitFile.parse(_body("3")).hash()
    r = unitctl("rollout", _template(tmp_path, "3"), "--canary", "1")
    assert r.exit_code == 0, r.output
    assert "paused" in r.output and "canary done" in r.output
    assert sum(h == new for _, h in _hashes(unitctl).values()) == 1
    leader = sim.sim.leader()
    assert leader is not None
    sim.call(sim.sim.kill(leader))
    _wait(lambda: sim.sim.leader() not in (None, leader), what="a new leader")
    r = unitctl("rollout", "resume", "web@.service")
    assert r.exit_code == 0, r.output
    assert "rollout web@.service: done" in r.output
    _wait(lambda: _hashes(unitctl) == {i: ("active", new) for i in INSTANCES}, what="all new")
    assert _status(unitctl)["phase"] == "done"


def test_bad_requests_are_refused_before_anything_is_written(sim: SimThread, unitctl: Any,
                                                             tmp_path: Path) -> None:
    r = unitctl("rollout", _template(tmp_path, "4"))
    assert r.exit_code == 3 and "no instance of web@.service" in r.output, r.output
    _started(tmp_path, unitctl)
    r = unitctl("stop", "web@4.service")
    assert r.exit_code == 0, r.output
    r = unitctl("rollout", "--body", _template(tmp_path, "4"), "web@3.service", "web@4.service")
    assert r.exit_code == 2 and "web@4.service is loaded, not launched" in r.output, r.output
    bad = tmp_path / "bad@.service"
    bad.write_text("[Service]\nExecStart=/bin/true\n[X-Health]\nInterval=soon\n")
    r = unitctl("rollout", str(bad))
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    r = unitctl("rollout", "--no-block", "--canary", "1", _template(tmp_path, "4"),
                "--body", _template(tmp_path, "4"))
    assert r.exit_code == 2, r.output  # web@4 is not launched: nothing stored
    r = unitctl("rollout", "status")
    assert r.exit_code == 0 and "web@" not in r.output, r.output
