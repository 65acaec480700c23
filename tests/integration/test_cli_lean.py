"""The launcher's lean list verbs print what the click commands print, on a real etcd.

``python -m unitctl ARGS`` (the launcher: ``list-units`` and ``list-unit-files``
without click where :mod:`unitctl.cli.leanlist` takes the arguments) against
:func:`unitctl.cli.main.main` (always click) with the same arguments and
environment: stdout, stderr and the exit code are the same, for the forms the
lean path takes (checked: it loads no click) and for those it leaves to click.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from unitctl.model import Machine, UnitState
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.registry import Registry
from unitctl_testing.etcd import EtcdCluster, etcd_cluster

pytestmark = pytest.mark.etcd

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/lean/"
MID = "c" * 32
OTHER = "d" * 32
UNIT = "[Unit]\nDescription=web %i\n\n[Service]\nExecStart=/bin/sleep 1d\n"
GLOBAL = ("[Unit]\nDescription=everywhere\n\n[Service]\nExecStart=/bin/true\n\n"
          "[X-Fleet]\nGlobal=true\n")

#: The launcher, with a probe: on exit it says whether click was loaded.
LAUNCHER = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: sys.stderr.write('CLICK %s\\n' % ('click' in sys.modules)))\n"
            "sys.argv = ['unitctl', *sys.argv[1:]]\n"
            "runpy.run_module('unitctl', run_name='__main__', alter_sys=True)\n")
CLICK = "from unitctl.cli.main import main\nmain()\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    if shutil.which(os.environ.get("UNITCTL_ETCD_BIN", "etcd")) is None:
        pytest.fail("etcd is not installed: run scripts/install-deps.sh")
    work = tmp_path_factory.mktemp("lean")
    (work / "web@.service").write_text(UNIT)
    (work / "all.service").write_text(GLOBAL)
    with etcd_cluster(1) as c:
        names = [f"web@{i}.service" for i in range(1, 13)]
        _run([sys.executable, "-m", "unitctl", "--endpoint", c.endpoint, "--etcd-key-prefix",
              PREFIX, "start", "--no-block", *names, "all.service"], cwd=str(work))
        asyncio.run(_report(c.endpoint, names))
        yield c


def _run(argv: list[str], cwd: str = str(ROOT),
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert r.returncode == 0 or argv[-1] != "all.service", r.stderr
    return r


async def _report(endpoint: str, names: list[str]) -> None:
    """Two machines (one with metadata) report states, one failing, one waiting, one
    with a health check; one unit key does not decode."""
    reg = Registry(await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,))), PREFIX)
    lease = await reg.kv.grant_lease(600)
    await reg.register_machine(Machine(MID, "10.0.0.1", {"region": "eu"}), lease)
    await reg.register_machine(Machine(OTHER, "10.0.0.2"), lease)
    states: dict[str, UnitState | None] = {
        n: UnitState(n, MID, "loaded", "active", "running", "abcdef0123") for n in names}
    states[names[0]] = UnitState(names[0], MID, "loaded", "failed", "failed", "abcdef0123",
                                 error="start refused by systemd: boom", retry_at=1.0)
    states[names[1]] = UnitState(names[1], MID, "loaded", "inactive", "dead", "abcdef0123",
                                 waiting="waits for db.service")
    states[names[2]] = UnitState(names[2], MID, "loaded", "active", "running", "abcdef0123",
                                 health="healthy")
    await reg.publish_states(MID, states, lease)
    await reg.publish_states(OTHER, {"all.service": UnitState(
        "all.service", OTHER, "loaded", "active", "exited", "0123456789")}, lease)
    await reg.kv.put(reg.keys.unit("broken.service"), b"{not json")
    await reg.close()


def _both(c: EtcdCluster, args: list[str], env: dict[str, str] | None = None,
          endpoint: str | None = None) -> tuple[subprocess.CompletedProcess[str], bool]:
    """(the click command's run, whether the launcher loaded click), after checking that
    the launcher's run printed the same and exited the same."""
    base = ["--endpoint", endpoint or c.endpoint, "--etcd-key-prefix", PREFIX]
    lean = _run([sys.executable, "-c", LAUNCHER, *base, *args], env=env)
    full = _run([sys.executable, "-c", CLICK, *base, *args], env=env)
    stderr, _, probe = lean.stderr.rpartition("CLICK ")
    assert (lean.stdout, stderr, lean.returncode) == (full.stdout, full.stderr,
                                                      full.returncode), args
    return full, probe.strip() == "True"


LEAN_FORMS = [
    ["list-units"], ["list-units", "--full"], ["list-units", "-l", "--no-legend"],
    ["list-units", "--json"], ["list-units", "--fields", "unit,hash,load,error,retry_at"],
    ["list-units", "--fields=unit,waiting,health,machine", "--json", "--full"],
    ["list-unit-files"], ["list-unit-files", "--full"],
    ["list-unit-files", "--fields=unit,global,desc,tmachine,reason,state", "--no-legend"],
    ["list-unit-files", "--json"],
    ["--request-timeout", "5", "list-units"], ["--request-timeout=5", "list-unit-files"],
    ["--tunnel", "jump:22", "--ssh-username", "me", "list-units"],
]


@pytest.mark.parametrize("args", LEAN_FORMS, ids=" ".join)
def test_the_lean_forms_print_what_click_prints(cluster: EtcdCluster, args: list[str]) -> None:
    full, loaded_click = _both(cluster, args)
    assert full.returncode == 0 and full.stdout, full.stderr
    assert not loaded_click, args


def test_the_fixture_shows_every_column_and_warning(cluster: EtcdCluster) -> None:
    # so the comparisons above cover the extra columns, the legend and the warnings
    full, _ = _both(cluster, ["list-units"])
    header = full.stdout.splitlines()[0].split()
    assert header == ["UNIT", "MACHINE", "ACTIVE", "SUB", "ERROR", "WAITING", "HEALTH"]
    assert "WARNING: unit broken.service is invalid" in full.stderr
    files, _ = _both(cluster, ["list-unit-files", "--fields", "unit,target,tmachine"])
    assert "global" in files.stdout and "tmachine field is deprecated" in files.stderr
    rows = json.loads(_both(cluster, ["list-unit-files", "--json"])[0].stdout)
    assert len(rows) == 13


def test_the_environment_sets_the_flags_as_click_reads_them(cluster: EtcdCluster) -> None:
    env = {"UNITCTL_ENDPOINT": cluster.endpoint, "UNITCTL_REQUEST_TIMEOUT": "4",
           "UNITCTL_USERNAME": "", "UNITCTL_DEBUG": "", "UNITCTL_ETCD_BIN": "etcd",
           "UNITCTL_LIST_UNIT_FILES_JSON": "1"}  # not this verb's: no option of list-units
    lean = _run([sys.executable, "-c", LAUNCHER, "--etcd-key-prefix", PREFIX, "list-units"],
                env=env)
    full = _run([sys.executable, "-c", CLICK, "--etcd-key-prefix", PREFIX, "list-units"],
                env=env)
    assert lean.stdout == full.stdout and "web@1.service" in full.stdout
    assert lean.stderr.endswith("CLICK False\n")


@pytest.mark.parametrize("args,env", [
    (["list-units", "--fields", "bogus"], None),
    (["list-unit-files", "--fields", ""], None),
    (["list-units", "extra"], None),
    (["list-units", "-l", "--frobnicate"], None),
    (["list-unit-files", "-l"], None),
    (["--request-timeout", "soon", "list-units"], None),
    (["--debug", "list-units"], None),
    (["list-unit"], None),
    (["list-units", "--fields"], None),
    (["list-units"], {"UNITCTL_LIST_UNITS_FIELDS": "unit,sub"}),
    (["list-units"], {"UNITCTL_DEBUG": "1"}),
    (["list-units"], {"UNITCTL_HELP": "1"}),
    (["list-unit-files"], {"UNITCTL_LIST_UNIT_FILES_JSON": "1"}),
    (["--driver", "API", "list-units"], None),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_what_the_lean_path_leaves_to_click_is_clicks(cluster: EtcdCluster, args: list[str],
                                                      env: dict[str, str] | None) -> None:
    _full, loaded_click = _both(cluster, args, env)
    assert loaded_click, args


def test_errors_are_the_groups(cluster: EtcdCluster) -> None:
    full, loaded_click = _both(cluster, ["list-units"], endpoint="http://127.0.0.1:1")
    assert full.returncode != 0 and full.stderr.startswith("Error: cannot reach etcd at ")
    assert not loaded_click
    full, _ = _both(cluster, ["list-unit-files", "--json"], endpoint="http://127.0.0.1:1")
    assert full.returncode != 0


def test_a_reader_that_went_away_is_handled_alike(cluster: EtcdCluster) -> None:
    base = ["--endpoint", cluster.endpoint, "--etcd-key-prefix", PREFIX, "list-unit-files"]
    results = []
    for code in (LAUNCHER, CLICK):
        read, write = os.pipe()
        os.close(read)
        try:
            r = subprocess.run([sys.executable, "-c", code, *base], stdout=write,
                               stderr=subprocess.PIPE, text=True, cwd=str(ROOT), check=False,
                               timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
        finally:
            os.close(write)
        results.append((r.returncode, r.stderr.rpartition("CLICK ")[0] or r.stderr))
    assert results[0] == results[1] and results[0][0] != 0
