"""A client that leaves the event stream ends its handler cleanly (it used to raise
``RuntimeError: aclose(): asynchronous generator is already running``, logged by
aiohttp as an error for every browser tab closed)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.integration.apiharness import api_cluster
from unitctl_testing.etcd import EtcdCluster

pytestmark = pytest.mark.etcd


def test_leaving_the_event_stream_logs_no_error(etcd: EtcdCluster, key_prefix: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with api_cluster(etcd, key_prefix, 1) as api:
            for _ in range(3):
                async with api.http.get(api.url + "/unitctl/v1/events",
                                        headers=api.auth("read")) as resp:
                    assert resp.status == 200
                    assert (await resp.content.readline()).startswith(b": unitctl events")
                await asyncio.sleep(0.3)  # the server notices and cancels the handler
    with caplog.at_level(logging.ERROR):
        asyncio.run(asyncio.wait_for(go(), 60))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and not _grpc_poller(r)]
    assert not errors, [r.getMessage() + str(r.exc_info) for r in errors]


def _grpc_poller(record: logging.LogRecord) -> bool:
    """grpcio's process-wide completion-queue poller calling into an event loop an
    earlier test closed (grpc aio across several ``asyncio.run``; seen in CI): not
    the event stream's handler, which is what this test is about."""
    exc = record.exc_info[1] if record.exc_info else None
    return ("PollerCompletionQueue" in record.getMessage() and isinstance(exc, RuntimeError)
            and "Event loop is closed" in str(exc))
