"""The launcher's lean ``start``/``load`` print and exit as the click commands, on etcd.

``python -m unitctl ARGS`` (the launcher: :mod:`unitctl.cli.leanstart` takes the
common forms without click) against :func:`unitctl.cli.main.main` (always
click), each on its own fresh key prefix of one real etcd with the same unit
files, so both see the same store: stdout, stderr and the exit code are the
same, for the forms the lean path takes (checked: no click loaded) and for
those it leaves to click. No agent runs, so a blocking start times out
(``--block-attempts 1``): the wait's message is compared too.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from unitctl_testing.etcd import EtcdCluster, etcd_cluster

pytestmark = pytest.mark.etcd

ROOT = Path(__file__).resolve().parents[2]
UNIT = "[Unit]\nDescription=web %i\n\n[Service]\nExecStart=/bin/sleep 1d\n"
GLOBAL = ("[Unit]\nDescription=everywhere\n\n[Service]\nExecStart=/bin/true\n\n"
          "[X-Fleet]\nGlobal=true\n")
LAUNCHER = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: sys.stderr.write('CLICK %s\\n' % ('click' in sys.modules)))\n"
            "sys.argv = ['unitctl', *sys.argv[1:]]\n"
            "runpy.run_module('unitctl', run_name='__main__', alter_sys=True)\n")
CLICK = "from unitctl.cli.main import main\nmain()\n"
PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    if shutil.which(os.environ.get("UNITCTL_ETCD_BIN", "etcd")) is None:
        pytest.fail("etcd is not installed: run scripts/install-deps.sh")
    with etcd_cluster(1) as c:
        yield c


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    (tmp_path / "web@.service").write_text(UNIT)
    (tmp_path / "all.service").write_text(GLOBAL)
    (tmp_path / "one.service").write_text(UNIT.replace("%i", "one"))
    return tmp_path


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=str(cwd), check=False,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _both(c: EtcdCluster, work: Path, args: list[str], env: dict[str, str] | None = None,
          before: list[str] | None = None) -> tuple[tuple[int, str, str], bool]:
    """(code, stdout, stderr) of both runs (asserted equal) and whether the lean loaded click."""
    results = []
    probes = []
    for code in (LAUNCHER, CLICK):
        base = ["--endpoint", c.endpoint, "--etcd-key-prefix", f"/ls{next(PREFIXES)}/"]
        if before:
            _run([sys.executable, "-c", CLICK, *base, *before], work, env)
        r = _run([sys.executable, "-c", code, *base, *args], work, env)
        stderr, probe = r.stderr, ""
        if code is LAUNCHER:
            stderr, _, probe = r.stderr.rpartition("CLICK ")
        probes.append(probe)
        results.append((r.returncode, r.stdout, stderr))
    assert results[0] == results[1]
    return results[0], probes[0] == "True\n"


LEAN_FORMS = [
    ["start", "--no-block", "web@1.service", "web@2.service", "all.service"],
    ["load", "--no-block", "one.service"],
    ["start", "one.service", "--no-block", "--replace"],
    ["start", "--block-attempts", "1", "one.service"],
    ["load", "--block-attempts=1", "all.service"],
    ["start", "--no-block", "missing.service"],
    ["start", "--no-block", "bad name"],
]


@pytest.mark.parametrize("args", LEAN_FORMS, ids=" ".join)
def test_the_lean_forms_print_what_click_prints(cluster: EtcdCluster, work: Path,
                                                 args: list[str]) -> None:
    _, clicked = _both(cluster, work, args)
    assert not clicked


def test_a_second_start_of_stored_units_is_alike(cluster: EtcdCluster, work: Path) -> None:
    (code, out, _), clicked = _both(cluster, work, ["start", "--no-block", "web@3.service"],
                                    before=["load", "--no-block", "web@3.service"])
    assert (code, out, clicked) == (0, "Triggered unit web@3.service start\n", False)


@pytest.mark.parametrize("args,env", [
    (["start"], None),
    (["start", "--help"], None),
    (["start", "--block-attempts", "-1", "one.service"], None),
    (["start", "--block-attempts", "x", "one.service"], None),
    (["start", "--no-block", "--", "one.service"], None),
    (["sta", "--no-block", "one.service"], None),
    (["--debug", "start", "--no-block", "one.service"], None),
    (["start", "--no-block", "one.service"], {"UNITCTL_START_NO_BLOCK": "1"}),
])
def test_what_the_lean_path_leaves_to_click_is_clicks(cluster: EtcdCluster, work: Path,
                                                      args: list[str],
                                                      env: dict[str, str] | None) -> None:
    _, clicked = _both(cluster, work, args, env)
    assert clicked


MODULES_PROBE = ("import atexit, runpy, sys\n"
                 "atexit.register(lambda: sys.stderr.write("
                 "'LOADED %s\\n' % sorted(m for m in ('asyncio', 'click', 'concurrent.futures') "
                 "if m in sys.modules)))\n"
                 "sys.argv = ['unitctl', *sys.argv[1:]]\n"
                 "runpy.run_module('unitctl', run_name='__main__', alter_sys=True)\n")


@pytest.mark.parametrize("args", [["start", "--block-attempts", "1", "one.service"],
                                  ["load", "--block-attempts", "1", "web@7.service"]],
                         ids=" ".join)
def test_a_blocking_start_waits_without_asyncio(cluster: EtcdCluster, work: Path,
                                                args: list[str]) -> None:
    """The lean path runs without an event loop: its requests and its wait's watches
    block (unitctl.client.blockwatch), so neither asyncio nor its executor is loaded."""
    base = ["--endpoint", cluster.endpoint, "--etcd-key-prefix", f"/ls{next(PREFIXES)}/"]
    r = _run([sys.executable, "-c", MODULES_PROBE, *base, *args], work, None)
    stderr, _, loaded = r.stderr.rpartition("LOADED ")
    assert loaded == "[]\n", loaded
    assert r.returncode == 6 and "timed out waiting for unit" in stderr, (r.returncode, stderr)
