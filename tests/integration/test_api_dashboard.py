"""The dashboard's server side on a real etcd with in-process agents: its files (from
the package, with a strict CSP), and the scale verb (roles, bad input, what it writes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.integration.apiharness import Api, api_cluster, snapshot
from unitctl.api import dashboard
from unitctl.api.context import ServerContext
from unitctl.api.server import listening
from unitctl.model import DesiredState
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
TEMPLATE = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep infinity"}]


def run(etcd: EtcdCluster, prefix: str, body: Callable[[Api], Awaitable[None]]) -> None:
    async def go() -> None:
        async with api_cluster(etcd, prefix, 2) as api:
            await body(api)
    asyncio.run(asyncio.wait_for(go(), 60))


async def _desired(api: Api) -> dict[str, DesiredState]:
    return {u.name: u.desired for u in (await api.registry.read_units()).units.values()}


def test_dashboard_files_need_no_token_and_carry_a_strict_csp(
        etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        async with api.http.get(api.url + "/", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/dashboard/"
        for path, ctype in (("/dashboard/", "text/html"), ("/dashboard/app.js", "text/javascript"),
                            ("/dashboard/app.css", "text/css")):
            async with api.http.get(api.url + path) as resp:
                assert resp.status == 200 and resp.content_type == ctype
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
                assert "Set-Cookie" not in resp.headers
        for bad in ("/dashboard/openapi.json", "/dashboard/..%2Fapp.py", "/dashboard/x.js"):
            async with api.http.get(api.url + bad) as resp:
                assert resp.status == 404
        text = dashboard.asset("app.js").decode()
        assert "http://" not in text and "https://" not in text  # nothing from the network
    run(etcd, key_prefix, body)


def test_scale_starts_and_stops_numbered_instances(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        status, _, _ = await api.call("PUT", "/fleet/v1/units/web@.service",
                                      body={"desiredState": "inactive", "options": TEMPLATE})
        assert status == 201
        status, _, got = await api.call("POST", "/unitctl/v1/scale", "operate",
                                        body={"template": "web@.service", "instances": 3})
        assert status == 200 and got["started"] == [f"web@{i}.service" for i in (1, 2, 3)]
        await eventually(lambda: all(f"web@{i}.service" in api.sim.running() for i in (1, 2, 3)))
        status, _, got = await api.call("POST", "/unitctl/v1/scale", "operate",
                                        body={"template": "web@.service", "instances": 1})
        assert status == 200 and got == {"template": "web@.service", "instances": 1,
                                         "started": [], "stopped": ["web@2.service",
                                                                    "web@3.service"]}
        desired = await _desired(api)
        assert desired["web@1.service"] is DesiredState.LAUNCHED
        assert desired["web@3.service"] is DesiredState.INACTIVE
        await eventually(lambda: "web@3.service" not in api.sim.running())
    run(etcd, key_prefix, body)


def test_scale_refuses_read_tokens_and_bad_input_changing_nothing(
        etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        await api.call("PUT", "/fleet/v1/units/web@.service",
                       body={"desiredState": "inactive", "options": TEMPLATE})
        before = await snapshot(api.registry)
        cases = [("read", {"template": "web@.service", "instances": 1}, 403),
                 (None, {"template": "web@.service", "instances": 1}, 401),
                 ("operate", {"template": "web.service", "instances": 1}, 400),
                 ("operate", {"template": "web@.service", "instances": -1}, 400),
                 ("operate", {"template": "web@.service", "instances": 1, "x": 1}, 400),
                 ("operate", {"template": "nope@.service", "instances": 1}, 404)]
        for role, ask, want in cases:
            status, _, data = await api.call("POST", "/unitctl/v1/scale", role, body=ask)
            assert status == want, (role, ask, data)
            assert data["error"]["message"]
        assert await snapshot(api.registry) == before
    run(etcd, key_prefix, body)


def test_listening_serves_the_dashboard(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        context = ServerContext(api.registry)
        async with listening(context, "127.0.0.1", 0) as url, \
                aiohttp.ClientSession() as http, http.get(url + "/dashboard/") as resp:
            assert resp.status == 200 and "app.js" in await resp.text()
    run(etcd, key_prefix, body)
