"""A real API server over a real etcd, with the real Agent and Engine in-process.

:func:`api_cluster` starts N in-process agents (``unitctl_testing.InProcessCluster``)
on the session's etcd under a fresh prefix, serves the API on a free loopback
port and makes one token of each role.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from unitctl.agent.fake_commands import FakeCommands, Script
from unitctl.agent.responder import Responder
from unitctl.api.auth import AuthSettings
from unitctl.api.context import ServerContext
from unitctl.api.server import listening
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.etcd import EtcdKV
from unitctl.registry.kv import KV
from unitctl.registry.registry import Registry
from unitctl.registry.tokens import ROLES
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import InProcessCluster


@dataclass
class Api:
    url: str
    registry: Registry
    sim: InProcessCluster
    tokens: Mapping[str, str]
    http: aiohttp.ClientSession

    def auth(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(self, method: str, path: str, role: str | None = "admin",
                   body: Any = None, raw: bytes | None = None,
                   headers: Mapping[str, str] | None = None
                   ) -> tuple[int, str, Any]:
        """(status, content type, JSON body or text) of one request."""
        hdrs = {**self.auth(role), **(headers or {})}
        kwargs: dict[str, Any] = {"headers": hdrs}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.url + path, **kwargs) as resp:
            text = await resp.text()
            ctype = resp.headers.get("Content-Type", "")
            data: Any = text
            if ctype.startswith("application/json") and text:
                data = await resp.json()
            return resp.status, ctype, data


def kv_factory(etcd: EtcdCluster) -> Any:
    async def make() -> KV:
        return await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=2))
    return make


@contextlib.asynccontextmanager
async def api_cluster(etcd: EtcdCluster, prefix: str, machines: int = 2,
                      metadata: list[dict[str, str]] | None = None,
                      auth: AuthSettings | None = None) -> AsyncIterator[Api]:
    make_kv = kv_factory(etcd)
    sim = InProcessCluster(make_kv, prefix)
    registry = Registry(await make_kv(), prefix)
    await registry.ensure_schema()
    tasks: list[asyncio.Task[None]] = []
    try:
        for i in range(1, machines + 1):
            sm = await sim.add(i, (metadata or [{}] * machines)[i - 1])
            tasks.append(asyncio.create_task(_responder(sm).run()))
        tokens = {role: (await registry.tokens.create(role, f"test-{role}", time.time()))[0]
                  for role in ROLES}
        with tempfile.TemporaryDirectory() as empty:
            context = ServerContext(registry, auth or AuthSettings(), empty_dir=empty,
                                    agent_timeout=5.0)
            async with listening(context, "127.0.0.1", 0) as url, \
                    aiohttp.ClientSession() as http:
                yield Api(url, registry, sim, tokens, http)
    finally:
        for task in tasks:
            task.cancel()
        await sim.close()
        await registry.close()


def _responder(sm: Any) -> Responder:
    """The agent channel's answering half, over fake commands (``status`` prints the
    unit's name, ``journalctl`` two lines): InProcessCluster runs agents without one."""
    commands = FakeCommands({"systemctl status": Script(out=[b"* fake status\n"]),
                             "journalctl": Script(out=[b"line 1\n", b"line 2\n"])})
    return Responder(sm.registry, sm.machine.id, commands, lambda: sm.agent.schedule,
                     lambda: sm.units.present())


async def snapshot(registry: Registry, skip: tuple[str, ...] = ("audit/",)) -> dict[str, bytes]:
    """Every key under the prefix and its value (the audit log left out)."""
    rng = await registry.kv.get_prefix(registry.keys.prefix)
    base = registry.keys.prefix
    return {kv.key: kv.value for kv in rng.kvs
            if not kv.key[len(base):].startswith(skip)}
