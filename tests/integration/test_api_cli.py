"""The CLI through the API (``--endpoint`` the server's URL, ``--token``): a user with an
API token and no etcd credentials lists, starts, stops and asks status, on real etcd
with real in-process agents."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable

import pytest

from tests.integration.apiharness import Api, api_cluster, snapshot
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def unitctl(api: Api, role: str, *args: str, cwd: str = ROOT) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITCTL_")}
    env["UNITCTL_TOKEN"] = api.tokens[role]
    env["PYTHONPATH"] = ROOT
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "unitctl", "--endpoint", api.url + "/", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def run(etcd: EtcdCluster, prefix: str, body: Callable[[Api], Awaitable[None]]) -> None:
    async def go() -> None:
        async with api_cluster(etcd, prefix, 2) as api:
            await body(api)
    asyncio.run(asyncio.wait_for(go(), 90))


def test_cli_through_the_api(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        code, out, _ = await unitctl(api, "read", "list-machines", "--full")
        assert code == 0
        assert all(mid in out for mid in api.sim.machines)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "web.service"), "w") as f:
                f.write("[Service]\nExecStart=/bin/sleep infinity\n")
            code, _, err = await unitctl(api, "operate", "start", "web.service", cwd=d)
            assert code == 2 and "needs the admin role" in err  # a new unit's text
            assert await api.registry.get_unit("web.service") is None
            code, out, err = await unitctl(api, "admin", "start", "web.service",
                                           "--block-attempts", "20", cwd=d)
            assert code == 0, err
        assert "web.service" in " ".join(next(iter([api.sim.running()])))
        code, out, _ = await unitctl(api, "read", "list-units")
        assert code == 0 and "web.service" in out and "active" in out
        code, out, err = await unitctl(api, "read", "status", "web.service")
        assert code == 0 and "* fake status" in out, (out, err)
        code, out, err = await unitctl(api, "read", "journal", "web.service")
        assert code == 0 and out == "line 1\nline 2\n", (out, err)
        code, _, err = await unitctl(api, "read", "stop", "web.service")
        assert code == 2 and "needs the operate role" in err
        code, _, err = await unitctl(api, "operate", "stop", "web.service")
        assert code == 0 and "Successfully stopped units [web.service]." in err
        await eventually(lambda: "web.service" not in api.sim.running())
        code, out, _ = await unitctl(api, "read", "list-unit-files")
        assert code == 0 and "loaded" in out
        code, _, err = await unitctl(api, "read", "status", "nosuch.service")
        assert code == 3 and "does not exist" in err
        before = await snapshot(api.registry)
        code, _, err = await unitctl(api, "operate", "stop", "nosuch.service")
        assert code == 3 and "Unit nosuch.service not found" in err
        assert await snapshot(api.registry) == before
    run(etcd, key_prefix, body)


def test_token_commands_on_etcd(etcd: EtcdCluster, key_prefix: str) -> None:
    import subprocess

    base = [sys.executable, "-m", "unitctl", "--endpoint", etcd.endpoints[0],
            "--etcd-key-prefix", key_prefix, "token"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=30, check=False)
    made = cli("create", "--role", "operate", "--name", "ci")
    assert made.returncode == 0 and made.stdout.startswith("uct_"), made.stderr
    listed = cli("list")
    assert listed.returncode == 0 and "operate" in listed.stdout and "ci" in listed.stdout
    token_id = listed.stdout.splitlines()[1].split()[0]
    assert made.stdout.strip() not in listed.stdout  # the token itself is never shown again
    bad = cli("create", "--role", "root")
    assert bad.returncode == 2 and "root" in bad.stderr
    assert cli("revoke", token_id).returncode == 0
    assert "operate" not in cli("list").stdout
    gone = cli("revoke", token_id)
    assert gone.returncode == 3 and f"no token with id {token_id}" in gone.stderr
