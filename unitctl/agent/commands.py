"""The responder's port to the commands it runs, and its adapter over child processes.

:class:`Commands` runs one argv (built by :func:`unitctl.channel.argv_of`,
never a shell) and hands its stdout and stderr to a sink, in pieces of at most
:data:`unitctl.channel.CHUNK_BYTES`, as they come. :class:`ProcessCommands` is
the real one; :class:`unitctl.agent.fake_commands.FakeCommands` the fake.

Contract: ``run`` returns the command's exit code; when it is cancelled, or
the sink raises, the process gets SIGTERM (SIGKILL :data:`KILL_AFTER` seconds
later) and is reaped in the background while ``run`` re-raises;
a command that cannot be started raises ``SystemdError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from unitctl.channel import CHUNK_BYTES, ReplyKind
from unitctl.errors import SystemdError

#: Receives (OUT or ERR, bytes) as the command writes them.
Sink = Callable[[ReplyKind, bytes], Awaitable[None]]


class Commands(Protocol):
    async def run(self, argv: Sequence[str], sink: Sink) -> int:
        """Run ``argv`` to its end; return its exit code."""
        ...


class ProcessCommands:
    """:class:`Commands` over child processes (stdin /dev/null, no shell)."""

    async def run(self, argv: Sequence[str], sink: Sink) -> int:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise SystemdError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        try:
            assert proc.stdout is not None and proc.stderr is not None
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pipe(proc.stdout, ReplyKind.OUT, sink))
                tg.create_task(_pipe(proc.stderr, ReplyKind.ERR, sink))
            return await proc.wait()
        finally:
            if proc.returncode is None:
                _stop(proc)


#: Processes being stopped (SIGTERM, then SIGKILL), reaped in the background: a
#: child whose pipes a grandchild still holds must not hold up the caller.
_STOPPING: set[asyncio.Task[None]] = set()

#: Seconds between SIGTERM and SIGKILL.
KILL_AFTER = 2.0


def _stop(proc: asyncio.subprocess.Process) -> None:
    task = asyncio.get_running_loop().create_task(_terminate(proc))
    _STOPPING.add(task)
    task.add_done_callback(_STOPPING.discard)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), KILL_AFTER)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _pipe(stream: asyncio.StreamReader, kind: ReplyKind, sink: Sink) -> None:
    while chunk := await stream.read(CHUNK_BYTES):
        await sink(kind, chunk)
