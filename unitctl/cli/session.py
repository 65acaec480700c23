"""What the verbs of ``unitctl`` share: the :class:`Session`, and the one open/close.

The group's callback fills the session from the global flags; commands take it
with :data:`pass_session`. :meth:`Session.run` is the one place a command's
registry is opened and closed: it runs a coroutine function with a
:class:`~unitctl.client.Client` on a fresh event loop. :meth:`Session.read` is
the same for a read-only verb, without an event loop (asyncio is not even
imported): the CLI's adapter, :class:`~unitctl.registry.gateway.GatewayKV`,
answers inline (:mod:`unitctl.registry.blocking`). Tests inject a registry
(and a fake process runner) through click's ``obj``::

    CliRunner().invoke(cli, [...], obj=Session(registry=Registry(MemoryKV())))
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import click

from unitctl.cli.ssh import Runner, SshConfig, run_process
from unitctl.client.connect import ClientConfig, open_registry
from unitctl.client.facade import Client
from unitctl.machine_id import machine_id_or_empty
from unitctl.registry import blocking
from unitctl.registry.registry import Registry

T = TypeVar("T")


def _out(text: str) -> None:
    click.echo(text)


def _err(text: str) -> None:
    click.echo(text, err=True)


@dataclass
class Session:
    """What the verbs share: configuration, the registry and the process runner.

    Attributes:
        config: how to reach etcd (from the global flags).
        ssh: how to reach machines (from the global flags).
        registry: a registry to use instead of connecting to etcd (tests).
        runner: runs an argv with our stdio and returns its exit code.
        machine_id: returns this host's machine id ("" when it has none).
        attempt_seconds: the length of one --block-attempts attempt.
        debug: print tracebacks.
    """

    config: ClientConfig = field(default_factory=ClientConfig)
    ssh: SshConfig = field(default_factory=SshConfig)
    registry: Registry | None = None
    runner: Runner = run_process
    machine_id: Callable[[], str] = machine_id_or_empty
    attempt_seconds: float = 1.0
    debug: bool = False

    def run(self, fn: Callable[[Client], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``fn`` with a client on a fresh event loop; close what we opened."""
        import asyncio  # only the verbs that write or wait pay for it

        if timeout is None:
            return asyncio.run(self._run(fn))
        return asyncio.run(asyncio.wait_for(self._run(fn), timeout))

    def read(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run a read-only ``fn`` without an event loop (an injected registry, which
        may need one, runs under :meth:`run`)."""
        if self.registry is not None:
            return self.run(fn)
        return blocking.run_blocking(self._run(fn))

    async def _run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        async with self.client() as client:
            return await fn(client)

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        """A client over the injected registry, or over etcd opened (and closed) here."""
        registry = self.registry if self.registry is not None else \
            await open_registry(self.config)
        try:
            yield Client(registry, out=_out, err=_err, attempt_seconds=self.attempt_seconds)
        finally:
            if registry is not self.registry:
                await registry.close()

    def run_argv(self, argv: list[str]) -> int:
        """Run one argv with the session's runner; return its exit code."""
        return int(self.runner(argv))


#: Passes the command's :class:`Session` as its first argument.
pass_session = click.make_pass_decorator(Session)


def session_of(ctx: click.Context) -> Session:
    """The session of a command that also needs its context (for ``ctx.exit``)."""
    sess = ctx.find_object(Session)
    if sess is None:
        raise RuntimeError("unitctl commands run under the unitctl group, which makes a Session")
    return sess
