"""The CLI as a user runs it: whole processes, against their floors in the same run.

* ``--help`` against ``python -c pass`` (the interpreter's own start-up);
* ``list-units`` and ``list-unit-files`` with 100 units (100 reported states)
  against ``etcdctl get --prefix`` over the same keys (the Go floor); each unit
  has a body of its own, as a user's units have (instances of one template
  share one body, which hid ``list-unit-files``' body reads until 2026-12-04);
* ``submit``, ``start --no-block`` and ``destroy --no-block`` of 10,000 template
  instances through the real CLI (one process each, all names on the command line);
* where the start-up of ``--help`` and the list verbs goes: import time per
  group and the dataclasses created (:mod:`bench.cli_imports`).

Commands are run in turn (A, floor, A, floor ...) so drift hits both; each
figure is p50 / p99 / max of wall-clock seconds; ratios are of the medians.
The package is copied into a temporary directory and its bytecode compiled
there first, as an installed package has it (the development tree may run
with PYTHONDONTWRITEBYTECODE and no ``__pycache__``).

Usage: ``python -m bench.cli [--runs 30] [--bulk 10000] [--bulk-rounds 3] [--import-runs 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli_imports import breakdown
from bench.e2e_etcd import put_floor
from bench.installed import installed_python
from unitctl_testing.etcd import etcd_cluster

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "[Unit]\nDescription=bench %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"
MID = "b" * 32


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return {"p50_ms": round(statistics.median(s) * 1000, 1), "p99_ms": round(p99 * 1000, 1),
            "max_ms": round(s[-1] * 1000, 1), "runs": len(s)}


def _timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{argv[:6]} exited {r.returncode}: {r.stderr.decode()[:300]}")
    return took


def _paired(a: list[str], floor: list[str], runs: int, env: dict[str, str],
            cwd: str) -> dict[str, Any]:
    ta, tb = [], []
    _timed(a, env, cwd)  # warm-up
    _timed(floor, env, cwd)
    for _ in range(runs):
        ta.append(_timed(a, env, cwd))
        tb.append(_timed(floor, env, cwd))
    sa, sb = _stats(ta), _stats(tb)
    return {"command": " ".join(a), "floor_command": " ".join(floor), "unitctl": sa,
            "floor": sb, "ratio_p50": round(sa["p50_ms"] / sb["p50_ms"], 2)}


async def _states(endpoint: str, prefix: str, names: list[str]) -> None:
    from unitctl.model import Machine, UnitState
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    reg = Registry(await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,))), prefix)
    lease = await reg.kv.grant_lease(600)
    await reg.register_machine(Machine(MID, "10.0.0.1"), lease)
    await reg.publish_states(MID, {n: UnitState(n, MID, "loaded", "active", "running", "h")
                                   for n in names}, lease)
    await reg.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.cli")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--bulk", type=int, default=10000)
    p.add_argument("--bulk-rounds", type=int, default=3)
    p.add_argument("--import-runs", type=int, default=5)
    args = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="unitctl-bench-cli-")
    Path(work, "svc@.service").write_text(TEMPLATE)
    site = os.path.join(work, "site")
    shutil.copytree(REPO / "unitctl", os.path.join(site, "unitctl"))
    py = [installed_python(work)]  # as `pip install .` leaves it (bench/installed.py)
    env = {**os.environ, "PYTHONPATH": site}
    subprocess.run([sys.executable, "-m", "compileall", "-q", site], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        return _measure(args, work, py, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # a plain temp dir: no mounts


def _measure(args: argparse.Namespace, work: str, py: list[str],
             env: dict[str, str]) -> dict[str, Any]:
    with etcd_cluster(1) as etcd:
        ep = etcd.endpoint
        cli = [*py, "-m", "unitctl", "--endpoint", ep]
        names = [f"web-{i}.service" for i in range(1, 101)]
        for i, name in enumerate(names, 1):
            Path(work, name).write_text(TEMPLATE.replace("%i", str(i)))
        subprocess.run([*cli, "submit", *names], env=env, cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        asyncio.run(_states(ep, "/unitctl/", names))
        etcdctl = ["etcdctl", "--endpoints", ep, "get", "--prefix", "/unitctl/"]
        out: dict[str, Any] = {
            "interpreter": "a venv as `pip install .` leaves it (bench/installed.py)",
            "help": _paired([*cli, "--help"], [*py, "-c", "pass"], args.runs, env, work),
            "python_c_pass_dev_venv": _paired([sys.executable, "-c", "pass"],
                                              [*py, "-c", "pass"], args.runs, env, work),
            "list_units": _paired([*cli, "list-units"], etcdctl, args.runs, env, work),
            "list_unit_files": _paired([*cli, "list-unit-files"], etcdctl, args.runs, env,
                                       work),
        }
        out["imports"] = {
            key: breakdown(py[0], ["--endpoint", ep, *verb], env, work, args.import_runs)
            for key, verb in (("help", ["--help"]), ("list_units", ["list-units"]),
                              ("list_unit_files", ["list-unit-files"]))}
        out["bulk"] = _bulk(cli, ep, env, work, args.bulk, args.bulk_rounds)
    return out


def _bulk(cli: list[str], ep: str, env: dict[str, str], cwd: str, count: int,
          rounds: int) -> dict[str, Any]:
    names = [f"svc@{i}.service" for i in range(1, count + 1)]
    submit, start, both, destroy = [], [], [], []
    for r in range(rounds):
        pre = ["--etcd-key-prefix", f"/bulk{r}/"]
        a = _timed([*cli, *pre, "submit", *names], env, cwd)
        b = _timed([*cli, *pre, "start", "--no-block", *names], env, cwd)
        submit.append(a)
        start.append(b)
        both.append(a + b)
        if _stored(ep, f"/bulk{r}/units/") != count:
            raise RuntimeError(f"round {r}: not every one of {count} units stored")
        destroy.append(_timed([*cli, *pre, "destroy", "--no-block", *names], env, cwd))
        if _stored(ep, f"/bulk{r}/units/") or _stored(ep, f"/bulk{r}/bodies/"):
            raise RuntimeError(f"round {r}: destroy left units or bodies behind")
    floor = [asyncio.run(put_floor(ep, count, keys_per_unit=2))["seconds"]
             for _ in range(rounds)]
    together, floor_stats = _stats(both), _stats(floor)
    out: dict[str, Any] = {
           "units": count, "command": f"unitctl submit / start --no-block / destroy "
                                      f"--no-block svc@{{1..{count}}}",
           "submit": _stats(submit), "start_no_block": _stats(start),
           "together": together, "goal_s": 10, "destroy_no_block": _stats(destroy),
           "floor_command": "the same 2 writes per unit (the record, then its desired "
                            "state) put by one running client in transactions of "
                            "MAX_TXN_OPS, one after another (bench.e2e_etcd.put_floor)",
           "floor": floor_stats,
           "ratio_p50": round(together["p50_ms"] / floor_stats["p50_ms"], 2)}
    return out


def _stored(ep: str, prefix: str) -> int:
    """How many keys etcd holds under ``prefix``."""
    got = subprocess.run(["etcdctl", "--endpoints", ep, "get", "--prefix", "--keys-only",
                          prefix], capture_output=True, text=True, check=True)
    return sum(1 for ln in got.stdout.splitlines() if ln.strip())


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
