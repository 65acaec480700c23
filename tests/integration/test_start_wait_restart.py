"""A blocking ``unitctl start`` rides out an etcd outage while it waits.

The real CLI (the launcher's lean path, ``python -m unitctl``) starts a unit
that no machine can run yet and waits. etcd is killed, stays down for
:data:`OUTAGE` seconds and starts again while it waits; then an agent (fake
systemd, with the engine) joins and the unit becomes active. The command must
say on stderr that etcd is unreachable and then that it answers again, print
that the unit launched and exit 0: not end on "etcd unreachable" (it did: the
start was stored before the outage), and not hang. fleetctl, too, waits
through errors until its attempts run out.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.registry import Registry
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import InProcessCluster, eventually

pytestmark = pytest.mark.etcd
ROOT = Path(__file__).resolve().parents[2]
#: Seconds etcd is down: longer than the waiter's retry, so it sees the outage.
OUTAGE = 3.0
UNIT = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1d\n"


def _start(etcd: EtcdCluster, prefix: str, work: Path) -> subprocess.Popen[str]:
    (work / "web.service").write_text(UNIT)
    argv = [sys.executable, "-m", "unitctl", "--endpoint", etcd.endpoint,
            "--etcd-key-prefix", prefix, "start", "--block-attempts", "40", "web.service"]
    return subprocess.Popen(argv, cwd=str(work), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


async def _stored(etcd: EtcdCluster, prefix: str) -> bool:
    kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=1))
    try:
        got = await kv.get_prefix(Registry(kv, prefix).keys.units())
        return bool(got.kvs)
    finally:
        await kv.close()


async def _run_agent(etcd: EtcdCluster, prefix: str, done: asyncio.Event) -> None:
    async def make_kv() -> EtcdKV:
        return await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=2))
    cluster = InProcessCluster(make_kv, prefix, ttl=4)
    try:
        await cluster.add(1)
        await done.wait()
    finally:
        await cluster.close()


def test_a_blocking_start_waits_across_an_etcd_restart(own_etcd: EtcdCluster, key_prefix: str,
                                                      tmp_path: Path) -> None:
    proc = _start(own_etcd, key_prefix, tmp_path)

    async def go() -> None:
        await eventually(lambda: _stored(own_etcd, key_prefix), timeout=30, step=0.1)
        await asyncio.sleep(0.5)  # the CLI is in its wait now (no machine yet)
        assert proc.poll() is None, proc.communicate()
        own_etcd.members[0].kill()
        await asyncio.sleep(OUTAGE)
        own_etcd.members[0].start(own_etcd.initial_cluster, state="existing",
                                  token=own_etcd.token)
        await asyncio.to_thread(own_etcd.wait_healthy)
        await asyncio.sleep(1.0)
        assert proc.poll() is None, proc.communicate()  # still waiting, no error
        done = asyncio.Event()
        agent = asyncio.create_task(_run_agent(own_etcd, key_prefix, done))
        try:
            t0 = time.monotonic()
            while proc.poll() is None and time.monotonic() - t0 < 30:
                await asyncio.sleep(0.1)
        finally:
            done.set()
            await asyncio.wait_for(agent, 20)

    try:
        asyncio.run(go())
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (out, err)
    said = err.splitlines()
    assert len(said) == 2 and said[0].startswith("etcd unreachable: "), err
    assert said[0].endswith("; still waiting (what was written is stored)"), err
    assert said[1] == "etcd answers again; still waiting", err
    assert out.splitlines()[-1].startswith("Unit web.service launched on 00000001"), out


def test_a_blocking_start_of_many_units_sees_each_launch(own_etcd: EtcdCluster, key_prefix: str,
                                                        tmp_path: Path) -> None:
    """Six units: more than the waiter watches one by one (the prefix watches, and a
    re-read of what changed on each wake), through the lean path's blocking watches."""
    (tmp_path / "w@.service").write_text(UNIT)
    names = [f"w@{i}.service" for i in range(1, 7)]

    async def go() -> subprocess.CompletedProcess[str]:
        done = asyncio.Event()
        agent = asyncio.create_task(_run_agent(own_etcd, key_prefix, done))
        try:
            argv = [sys.executable, "-m", "unitctl", "--endpoint", own_etcd.endpoint,
                    "--etcd-key-prefix", key_prefix, "start", "--block-attempts", "30", *names]
            return await asyncio.to_thread(
                subprocess.run, argv, cwd=str(tmp_path), capture_output=True, text=True,
                timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        finally:
            done.set()
            await asyncio.wait_for(agent, 20)

    r = asyncio.run(go())
    assert (r.returncode, r.stderr) == (0, ""), (r.stdout, r.stderr)
    launched = sorted(line.split()[1] for line in r.stdout.splitlines() if " launched on " in line)
    assert launched == sorted(names), r.stdout
