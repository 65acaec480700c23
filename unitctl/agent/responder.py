"""The responder: this machine's agent answers ``status``, ``journal`` and ``restart``.

It reads ``requests/<machine>/`` (only this machine's) and watches it; each
new request is claimed (:meth:`RequestStore.claim`: answered once, even across
a re-exec) and answered in its own task, under the request's lease:

* the unit name must pass :func:`unitctl.names.validate_name` and be one of
  this machine's units (scheduled here, or a file in its units directory);
  ``restart`` needs the unit scheduled here as launched. Otherwise the answer
  is an ``exit`` with a reason and a message, and nothing runs;
* the argv is :func:`unitctl.channel.argv_of`'s (fixed verbs, no shell); its
  output goes back in chunks as it comes, then the exit code;
* a request whose key goes away (the client exited, was interrupted, or its
  lease ran out) has its command stopped; so has a command past its deadline
  or over :data:`~unitctl.channel.MAX_OUTPUT_BYTES` (``journal -f`` excepted);
* a request key that does not decode, or whose id is not :data:`REQUEST_ID`'s,
  is logged once and skipped; a failing
  answer never stops the loop. At most :data:`MAX_IN_FLIGHT` run at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Mapping

from unitctl import names
from unitctl.channel import (
    MAX_OUTPUT_BYTES,
    REQUEST_ID,
    Reason,
    Reply,
    ReplyKind,
    Request,
    Verb,
    argv_of,
    invalid_parameters,
    stop_argv,
)
from unitctl.errors import InvalidUnitNameError, RegistryError, UnitctlError
from unitctl.loop import checkpoint, raise_if_ended, wake_or_timeout, watch_wakes
from unitctl.model import DesiredState, ScheduleEntry
from unitctl.registry.registry import Registry

from .commands import Commands

log = logging.getLogger("unitctl.agent.responder")

#: Requests answered at once; more get a "busy" answer.
MAX_IN_FLIGHT = 16

#: Seconds between re-reads of the requests when no watch event came (a safety net).
RESYNC = 30.0


class _Truncated(Exception):
    """The output of a bounded answer reached MAX_OUTPUT_BYTES."""


class Responder:
    """Answers this machine's requests; ``schedule`` and ``present`` name its units."""

    def __init__(self, registry: Registry, machine_id: str, commands: Commands,
                 schedule: Callable[[], Mapping[str, ScheduleEntry]],
                 present: Callable[[], Collection[str]]) -> None:
        self.store = registry.requests
        self.machine_id = machine_id
        self.commands = commands
        self.schedule = schedule
        self.present = present
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self._seen: set[str] = set()
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Serve until cancelled; a lost watch is re-read and watched again."""
        try:
            while True:
                checkpoint()
                try:
                    await self._serve()
                except RegistryError as exc:
                    log.warning("responder: requests watch: %s", exc)
                    await asyncio.sleep(0.5)
        finally:
            for task in self.in_flight.values():
                task.cancel()

    async def _serve(self) -> None:
        rev = await self._sync()
        watch = self.store.watch_requests(self.machine_id, rev + 1)
        async with watch_wakes(watch, self._wake) as pumped:
            while True:
                checkpoint()
                await wake_or_timeout(self._wake, RESYNC)
                raise_if_ended(pumped)
                await self._sync()

    async def _sync(self) -> int:
        """Start new requests, stop those whose key went away; return the read revision."""
        pending, _bad, rev = await self.store.pending(self.machine_id)
        for request_id, task in list(self.in_flight.items()):
            if request_id not in pending:
                task.cancel()
        self._seen &= set(pending)
        for request_id, req in pending.items():
            if request_id not in self._seen and REQUEST_ID.fullmatch(request_id):
                self._seen.add(request_id)
                task = asyncio.create_task(self._answer(request_id, req))
                self.in_flight[request_id] = task
                task.add_done_callback(functools.partial(self._done, request_id))
        return rev

    def _done(self, request_id: str, _task: asyncio.Task[None]) -> None:
        self.in_flight.pop(request_id, None)

    async def _answer(self, request_id: str, req: Request) -> None:
        try:
            if not await self.store.claim(request_id, req.lease):
                return  # answered already (by this agent before a re-exec)
            await _Answer(self, request_id, req).run()
        except RegistryError as exc:
            log.info("responder: request %s ended: %s", request_id, exc)
        except Exception:
            log.exception("responder: request %s failed", request_id)

    def refusal(self, req: Request) -> tuple[Reason, str] | None:
        """Why this request is not answered with a command (None: it is)."""
        if len(self.in_flight) > MAX_IN_FLIGHT:
            return Reason.BUSY, f"machine {self.machine_id} is answering too many requests"
        try:
            names.validate_name(req.unit)
        except InvalidUnitNameError as exc:
            return Reason.INVALID, str(exc)
        why = invalid_parameters(req)
        if why is not None:
            return Reason.INVALID, why
        entry = self.schedule().get(req.unit)
        if entry is None and req.unit not in self.present():
            return Reason.NOT_FOUND, (f"unit {req.unit} is not one of the units of machine "
                                      f"{self.machine_id}")
        if req.verb is Verb.RESTART and (entry is None or
                                         entry.desired is not DesiredState.LAUNCHED):
            return Reason.INVALID, (f"unit {req.unit} is not launched on machine "
                                    f"{self.machine_id}: not restarting it")
        return None


async def _discard(_kind: ReplyKind, _data: bytes) -> None:
    return None


class _Answer:
    """One answer: the command's output in order, then its exit."""

    def __init__(self, responder: Responder, request_id: str, req: Request) -> None:
        self.responder = responder
        self.request_id = request_id
        self.req = req
        self.seq = 0
        self.sent = 0

    async def emit(self, reply: Reply) -> None:
        self.seq += 1
        await self.responder.store.answer(self.request_id, self.seq, reply, self.req.lease)

    async def sink(self, kind: ReplyKind, data: bytes) -> None:
        bounded = self.req.deadline is not None
        if bounded and self.sent + len(data) > MAX_OUTPUT_BYTES:
            raise _Truncated()
        self.sent += len(data)
        await self.emit(Reply(kind, data))

    async def _stop_follow(self) -> None:
        try:
            await self.responder.commands.run(stop_argv(self.request_id), _discard)
        except UnitctlError as exc:
            log.warning("responder: cannot stop %s: %s", stop_argv(self.request_id)[-1], exc)

    async def run(self) -> None:
        refused = self.responder.refusal(self.req)
        if refused is not None:
            await self.emit(Reply(ReplyKind.EXIT, code=-1, reason=refused[0], error=refused[1]))
            return
        argv = argv_of(self.req, self.request_id)
        log.info("responder: %s (request %s)", " ".join(argv), self.request_id)
        try:
            code = await asyncio.wait_for(self.responder.commands.run(argv, self.sink),
                                          self.req.deadline)
        except asyncio.CancelledError:
            if self.req.follow:  # the request went away: stop journalctl -f's unit
                await asyncio.shield(self._stop_follow())
            raise
        except TimeoutError:
            await self.emit(Reply(ReplyKind.EXIT, code=-1, reason=Reason.TIMEOUT,
                                  error=f"{argv[0]} ran past {self.req.deadline:g}s: stopped"))
            return
        except _Truncated:
            await self.emit(Reply(ReplyKind.ERR, f"\n[output cut at {MAX_OUTPUT_BYTES} bytes]\n"
                                  .encode()))
            code = 0
        except UnitctlError as exc:
            await self.emit(Reply(ReplyKind.EXIT, code=-1, reason=Reason.FAILED, error=str(exc)))
            return
        await self.emit(Reply(ReplyKind.EXIT, code=code))
