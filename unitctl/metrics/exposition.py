"""``GET /metrics`` over HTTP, served on the agent's own event loop.

:func:`serving` listens on the agent's ``metrics_address``
(:func:`unitctl.config.parse_address`)
while its block runs and answers every ``GET /metrics`` (or ``/``) with
:func:`unitctl.metrics.textformat.render` of the registry: the Prometheus text
format. Any other path is 404, any other method 405. A request has
:data:`READ_TIMEOUT` seconds and :data:`MAX_HEADER` bytes to arrive. Serving
from the loop (not a thread of its own) means a scrape reads the
agent's state between its steps, never while one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from unitctl.metrics.instruments import Registry
from unitctl.metrics.textformat import CONTENT_TYPE, render

log = logging.getLogger("unitctl.metrics")
READ_TIMEOUT = 5.0
MAX_HEADER = 16384


def _response(status: str, body: bytes, ctype: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


def answer(request_line: bytes, registry: Registry) -> bytes:
    """The whole HTTP response to one request line."""
    parts = request_line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _response("400 Bad Request", b"bad request line\n")
    method, target = parts[0], parts[1].partition("?")[0]
    if target not in ("/metrics", "/"):
        return _response("404 Not Found", b"only /metrics is served here\n")
    if method not in ("GET", "HEAD"):
        return _response("405 Method Not Allowed", b"use GET\n")
    body = render(registry.collect())
    whole = _response("200 OK", body, CONTENT_TYPE)
    return whole[:len(whole) - len(body)] if method == "HEAD" else whole


async def _handle(registry: Registry, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        writer.write(answer(head.split(b"\r\n", 1)[0], registry))
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(address: tuple[str, int], registry: Registry
                  ) -> AsyncIterator[int]:
    """Serve ``registry`` on ``address`` while the block runs; yield the bound port."""
    server = await asyncio.start_server(
        lambda r, w: _handle(registry, r, w), address[0], address[1], limit=MAX_HEADER)
    port = int(server.sockets[0].getsockname()[1])
    log.info("metrics on http://%s:%d/metrics", address[0], port)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()
