"""Streamed answers: a verb's messages and a remote command's output, as NDJSON lines.

A verb that writes and may wait (start, stop ...), and ``status`` and
``journal``, answer ``200`` with ``Content-Type: application/x-ndjson``, one
JSON object per line, as the work goes on:

- ``{"out": "..."}`` / ``{"err": "..."}``: a message line for stdout / stderr
  (the CLI's own messages, from the client layer);
- ``{"stdout": "..."}`` / ``{"stderr": "..."}``: raw output of the remote
  command (systemctl status, journalctl), as it comes;
- last, ``{"exit": N}`` with the CLI's exit code, and ``"error"`` when it failed.

Everything that can be checked before the work starts (names, bodies, that the
units exist) is checked first: bad input gets a 4xx JSON error and nothing is
written. The handlers: ``GET /unitctl/v1/units/{name}/status`` and ``.../journal``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from unitctl import names as unames
from unitctl.api.context import client_for, ctx
from unitctl.api.errors import ApiError
from unitctl.api.jsonbody import bounded_int, query_bool
from unitctl.api.routes import READ, Route
from unitctl.channel import JOURNAL_MODES, MAX_LINES, ReplyKind, Verb
from unitctl.client.agents import AgentChannel
from unitctl.client.facade import Client
from unitctl.errors import NotFoundError, report, status_exit_code

Job = Callable[[Client], Coroutine[Any, Any, int]]


class Lines:
    """The queue of NDJSON objects a job produces; what the client's out/err feed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def out(self, text: str) -> None:
        self.queue.put_nowait({"out": text})

    def err(self, text: str) -> None:
        self.queue.put_nowait({"err": text})

    def sink(self, kind: ReplyKind, data: bytes) -> None:
        key = "stderr" if kind is ReplyKind.ERR else "stdout"
        self.queue.put_nowait({key: data.decode("utf-8", errors="replace")})


async def _write(response: web.StreamResponse, obj: dict[str, Any]) -> None:
    await response.write(json.dumps(obj).encode() + b"\n")


async def stream(request: web.Request, lines: Lines, client: Client, job: Job
                 ) -> web.StreamResponse:
    """Run ``job`` and stream its lines, then its exit code (see the module docstring)."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    task = asyncio.create_task(job(client))
    try:
        while not task.done() or not lines.queue.empty():
            if lines.queue.empty():
                getter = asyncio.ensure_future(lines.queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                await _write(response, getter.result())
                continue
            await _write(response, lines.queue.get_nowait())
        await _write(response, _ending(task))
    finally:
        task.cancel()
    await response.write_eof()
    return response


def _ending(task: asyncio.Task[int]) -> dict[str, Any]:
    exc = task.exception()
    if exc is None:
        return {"exit": task.result()}
    message, code = report(exc)
    return {"exit": code, "error": message}


async def _placed_machine(client: Client, name: str) -> tuple[bool, list[str]]:
    """(is global, the machines to ask): every reporting one of a global unit, else its own."""
    snap = await client.snapshot()
    rec = snap.units.get(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} does not exist.")
    if await client.is_global(rec):
        return True, sorted(snap.states.get(name, {}))
    machine, stored = snap.placed_state(name)
    return False, [] if machine is None or stored is None else [machine]


def _unit(request: web.Request) -> str:
    name = unames.mangle(request.match_info["name"])
    unames.validate_name(name)
    return name


async def status(request: web.Request) -> web.StreamResponse:
    name = _unit(request)
    lines = Lines()
    client = client_for(request, lines.out, lines.err)
    _, machines = await _placed_machine(client, name)
    if not machines:
        raise ApiError(409, f"Unit {name} does not appear to be loaded.")
    timeout = ctx(request).agent_timeout

    async def job(c: Client) -> int:
        async with AgentChannel(c.registry, timeout) as channel:
            for i, machine in enumerate(machines):
                if i:
                    lines.out("")
                answer = await channel.ask(machine, Verb.STATUS, name, lines.sink)
                code = status_exit_code(answer.check().code)
                if code:
                    return code
        return 0

    return await stream(request, lines, client, job)


async def journal(request: web.Request) -> web.StreamResponse:
    name = _unit(request)
    lines_wanted = bounded_int(request.query.get("lines", "10"), "lines", 0, MAX_LINES)
    follow = query_bool(request, "follow")
    output = request.query.get("output", "short")
    if output not in JOURNAL_MODES:
        raise ApiError(400, f"unknown output mode {output!r}: use one of "
                            f"{', '.join(sorted(JOURNAL_MODES))}")
    lines = Lines()
    client = client_for(request, lines.out, lines.err)
    is_global, machines = await _placed_machine(client, name)
    if is_global:
        raise ApiError(400, f"Unable to get journal for global unit {name}. "
                            "Check on a machine-by-machine basis.")
    if not machines:
        raise ApiError(409, f"Unit {name} does not appear to be loaded.")
    timeout = ctx(request).agent_timeout

    async def job(c: Client) -> int:
        async with AgentChannel(c.registry, timeout) as channel:
            answer = await channel.ask(machines[0], Verb.JOURNAL, name, lines.sink,
                                       lines=lines_wanted, follow=follow, output=output)
        return answer.check().code

    return await stream(request, lines, client, job)


ROUTES = (
    Route("GET", "/unitctl/v1/units/{name}/status", READ, status),
    Route("GET", "/unitctl/v1/units/{name}/journal", READ, journal),
)
