"""Asking machines' agents: the client half of the agent channel (:mod:`unitctl.channel`).

:class:`AgentChannel` is used as an async context: it grants the client's
request lease (:data:`~unitctl.channel.REQUEST_TTL` seconds), keeps it alive
while the command runs and revokes it on the way out, so every request and
reply of the command goes at once; a client that dies leaves them behind for
at most the TTL, and the agents stop what they ran for it (``journal -f``).

:meth:`AgentChannel.ask` sends one request to one machine and hands the
output to a sink as it comes. The machine's agent must take the request within
``answer_timeout`` seconds, and a verb that ends by itself must end within its
deadline plus ``answer_timeout``; otherwise ``RemoteCommandError`` names the
machine. An agent's refusal comes back in the :class:`Answer`
(:meth:`Answer.check` raises it).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

from unitctl.channel import ANSWER_TIMEOUT, REQUEST_TTL, Reason, Reply, ReplyKind, Request, Verb
from unitctl.errors import (
    NotFoundError,
    RegistryError,
    RemoteCommandError,
    UnitctlError,
    one_line,
    report,
)
from unitctl.registry.registry import Registry

#: Receives (OUT or ERR, bytes) of the remote command as they come.
OutputSink = Callable[[ReplyKind, bytes], None]



@dataclass(frozen=True, slots=True)
class Answer:
    """How a request ended on ``machine``: the command's exit code, or a refusal."""

    machine: str
    code: int
    reason: Reason = Reason.NONE
    error: str = ""

    def check(self) -> Answer:
        """Raise the agent's refusal (NotFoundError for a unit it does not have)."""
        if self.reason is Reason.NOT_FOUND:
            raise NotFoundError(self.error)
        if self.reason is not Reason.NONE:
            raise RemoteCommandError(f"machine {self.machine}: {self.error}")
        return self


class AgentChannel:
    """Requests to agents under one lease of this client."""

    def __init__(self, registry: Registry, answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self.registry = registry
        self.answer_timeout = answer_timeout
        self.lease = 0
        self._keepalive: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AgentChannel:
        self.lease = await self.registry.leases.grant(REQUEST_TTL)
        self._keepalive = asyncio.create_task(self._keep())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, RegistryError):
                await self._keepalive
        with contextlib.suppress(RegistryError):
            await self.registry.leases.revoke(self.lease)

    async def _keep(self) -> None:
        """Refresh the lease every third of its TTL; end (an error) when it is lost."""
        while True:
            await asyncio.sleep(REQUEST_TTL / 3)
            if await self.registry.leases.refresh(self.lease) <= 0:
                raise RemoteCommandError("the request lease expired (etcd unreachable?)")

    async def restart_each(self, machines: Mapping[str, bool], unit: str) -> list[str | None]:
        """Restart ``unit`` through the agent of each machine (id -> registered), at
        once; per machine, in order: why it failed, or None when it restarted."""
        return list(await asyncio.gather(
            *(self._restart_on(m, up, unit) for m, up in machines.items())))

    async def _restart_on(self, machine: str, registered: bool, unit: str) -> str | None:
        if not registered:
            return f"machine {machine} is not registered (is its agent down?)"
        said: list[bytes] = []
        try:
            answer = await self.ask(machine, Verb.RESTART, unit,
                                    lambda _kind, data: said.append(data))
            answer.check()
        except UnitctlError as exc:
            return report(exc)[0].removeprefix(f"machine {machine}: ")
        if answer.code:
            text = one_line(b"".join(said).decode(errors="replace"))
            return f"{text} (exit {answer.code})" if text else f"exit {answer.code}"
        return None

    async def ask(self, machine: str, verb: Verb, unit: str, sink: OutputSink,
                  lines: int = 10, follow: bool = False, output: str = "short") -> Answer:
        """Run ``verb`` on ``unit`` through ``machine``'s agent; output goes to ``sink``."""
        req = Request(verb, unit, self.lease, lines, follow, output)
        request_id = secrets.token_hex(12)
        store = self.registry.requests
        after = await store.send(machine, request_id, req)
        replies = store.replies(request_id, after)
        try:
            return await _Collector(self, machine, req, sink).collect(replies)
        finally:
            await replies.aclose()
            with contextlib.suppress(RegistryError):
                await store.withdraw(machine, request_id)

    def lost(self) -> BaseException | None:
        """Why the lease keepalive ended (None while it runs)."""
        task = self._keepalive
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception() or RemoteCommandError("the request lease keepalive ended")


class _Collector:
    """Reads one request's replies until its ``exit``, within the deadlines."""

    def __init__(self, channel: AgentChannel, machine: str, req: Request,
                 sink: OutputSink) -> None:
        self.channel = channel
        self.machine = machine
        self.req = req
        self.sink = sink
        self.loop = asyncio.get_running_loop()
        self.deadline: float | None = self.loop.time() + channel.answer_timeout
        self.acked = False

    async def collect(self, replies: AsyncGenerator[list[tuple[str, int, Reply]], None]) -> Answer:
        while True:
            batch = await self._next(replies)
            for _key, _seq, reply in batch:
                answer = self._apply(reply)
                if answer is not None:
                    return answer
            if self.req.follow:
                await self.channel.registry.requests.consumed(key for key, _, _ in batch)

    async def _next(self, replies: AsyncGenerator[list[tuple[str, int, Reply]], None]
                    ) -> list[tuple[str, int, Reply]]:
        """The next batch, checking the lease and the deadline every few seconds."""
        pending = asyncio.ensure_future(anext(replies))
        try:
            while True:
                left = None if self.deadline is None else self.deadline - self.loop.time()
                if left is not None and left <= 0:
                    raise self._timeout()
                done, _ = await asyncio.wait({pending}, timeout=min(left or 3.0, 3.0))
                if done:
                    return pending.result()
                lost = self.channel.lost()
                if lost is not None:
                    raise lost
        except StopAsyncIteration as exc:
            raise RegistryError("the watch of the replies ended") from exc
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration,
                                         RegistryError):
                    await pending

    def _timeout(self) -> RemoteCommandError:
        if not self.acked:
            return RemoteCommandError(
                f"machine {self.machine}: its agent did not answer within "
                f"{self.channel.answer_timeout:g}s (is unitctl-agent running there?)")
        return RemoteCommandError(f"machine {self.machine}: {self.req.verb.value} of "
                                  f"{self.req.unit} did not finish in time")

    def _apply(self, reply: Reply) -> Answer | None:
        if reply.kind is ReplyKind.ACK:
            self.acked = True
            wait = self.req.deadline
            self.deadline = None if wait is None else \
                self.loop.time() + wait + self.channel.answer_timeout
        elif reply.kind is ReplyKind.EXIT:
            return Answer(self.machine, reply.code, reply.reason, reply.error)
        else:
            self.sink(reply.kind, reply.data)
        return None
