"""The SSE stream: a change is an event, and a client that reconnects with
Last-Event-ID gets what it missed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.integration.apiharness import Api, api_cluster
from unitctl_testing.etcd import EtcdCluster

pytestmark = pytest.mark.etcd
OPTIONS = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep infinity"}]


async def next_event(resp: aiohttp.ClientResponse, kind: str) -> tuple[int, dict[str, Any]]:
    event_id, name = 0, ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == kind:
            return event_id, json.loads(line[6:])
    raise AssertionError("the stream ended")


def test_events_stream_and_resume(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        url = api.url + "/unitctl/v1/events"
        async with api.http.get(url, headers=api.auth("read")) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            await api.call("PUT", "/fleet/v1/units/e.service", body={"options": OPTIONS})
            first, data = await asyncio.wait_for(next_event(resp, "unit"), 10)
            assert data["name"] == "e.service" and data["kind"] == "put"
            assert data["value"]["desired"] == "inactive"
        # missed while disconnected: the desired state change
        await api.call("PUT", "/fleet/v1/units/e.service", body={"desiredState": "launched"})
        headers = {**api.auth("read"), "Last-Event-ID": str(first)}
        async with api.http.get(url, headers=headers) as resp:
            _, data = await asyncio.wait_for(next_event(resp, "unit"), 10)
            assert data["value"]["desired"] == "launched"
        async with api.http.get(url) as resp:
            assert resp.status == 401
    async def go() -> None:
        async with api_cluster(etcd, key_prefix, 1) as api:
            await body(api)
    asyncio.run(asyncio.wait_for(go(), 60))
