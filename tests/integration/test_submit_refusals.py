"""Submit refuses, on a real etcd, what a machine could never run: names systemd
refuses (256 characters, a type systemd no longer has) and a ``Global=`` that is
not a boolean (fleet read ``Global=maybe`` silently as false). Nothing is stored."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl_testing.etcd import EtcdCluster, etcd_cluster

pytestmark = pytest.mark.etcd

BODY = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/sleep 1000\n"


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    if shutil.which(os.environ.get("UNITCTL_ETCD_BIN", "etcd")) is None:
        pytest.fail("etcd is not installed: run scripts/install-deps.sh")
    with etcd_cluster(1) as c:
        yield c


def run(etcd: EtcdCluster, prefix: str, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--endpoint", etcd.endpoint, "--etcd-key-prefix", prefix,
                                   *args], obj=Session())
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize(("name", "body", "words"), [
    pytest.param("t@" + "y" * (256 - len("t@.service")) + ".service", BODY,
                 "longer than 255 characters (256)", id="256-characters"),
    pytest.param("old.snapshot", BODY, "systemd no longer has the unit type 'snapshot'",
                 id="snapshot"),
    pytest.param("g.service", BODY + "\n[X-Fleet]\nGlobal=maybe\n",
                 "Global 'maybe' is not a boolean", id="global-maybe"),
])
def test_submit_refuses_and_stores_nothing(etcd: EtcdCluster, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, name: str,
                                           body: str, words: str) -> None:
    prefix = f"/refuse-{uuid.uuid4().hex[:10]}/"
    monkeypatch.chdir(tmp_path)
    # an instance is submitted from its template's file (a 256-character file name
    # could not even be created here)
    (tmp_path / ("t@.service" if name.startswith("t@") else name)).write_text(body)
    code, _, err = run(etcd, prefix, "submit", name)
    assert code == 2 and words in err, err
    assert run(etcd, prefix, "list-unit-files", "--no-legend")[:2] == (0, "")


def test_submit_takes_the_longest_name_and_global_booleans(
        etcd: EtcdCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"/take-{uuid.uuid4().hex[:10]}/"
    longest = "t@" + "y" * (255 - len("t@.service")) + ".service"
    (tmp_path / "t@.service").write_text(BODY)
    (tmp_path / "g.service").write_text(BODY + "\n[X-Fleet]\nGlobal=yes\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(etcd, prefix, "submit", longest, "g.service")
    assert code == 0, err
    code, out, _ = run(etcd, prefix, "list-unit-files", "--fields", "unit,global", "--no-legend")
    assert out.split() == ["g.service", "true", longest, "false"]


def _replaces(pattern: str) -> str:
    return BODY + f"\n[X-Fleet]\nReplaces={pattern}\n"


def test_circular_replaces_is_refused_and_nothing_is_stored(
        etcd: EtcdCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 item 3: fleet stored and ran both units of a circular Replaces."""
    prefix = f"/cycle-{uuid.uuid4().hex[:10]}/"
    (tmp_path / "a.service").write_text(_replaces("b.service"))
    (tmp_path / "b.service").write_text(_replaces("a.*"))
    monkeypatch.chdir(tmp_path)
    code, _, err = run(etcd, prefix, "submit", "a.service", "b.service")
    assert code == 2, err
    assert ("circular Replaces: a.service -> b.service -> a.service (a.service has "
            "Replaces=b.service, b.service has Replaces=a.*)") in err
    assert run(etcd, prefix, "list-unit-files", "--no-legend")[:2] == (0, "")


def test_a_later_submit_closing_a_replace_cycle_is_refused(
        etcd: EtcdCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"/cycle-{uuid.uuid4().hex[:10]}/"
    (tmp_path / "b.service").write_text(_replaces("c.service"))
    (tmp_path / "c.service").write_text(_replaces("web@*.service"))
    (tmp_path / "web@.service").write_text(_replaces("b.service"))
    monkeypatch.chdir(tmp_path)
    assert run(etcd, prefix, "submit", "b.service", "c.service", "web@.service")[0] == 0
    # the template never runs; its instance would close b -> c -> web@1 -> b
    code, _, err = run(etcd, prefix, "start", "--no-block", "web@1.service")
    assert code == 2 and "circular Replaces: web@1.service -> b.service -> c.service -> " \
        "web@1.service" in err, err
    code, out, _ = run(etcd, prefix, "list-unit-files", "--fields", "unit", "--no-legend")
    assert out.split() == ["b.service", "c.service", "web@.service"]
