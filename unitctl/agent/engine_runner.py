"""The engine's place in an agent: one engine run per lease of this machine.

The agent does not know what an engine is: the composition root
(:mod:`unitctl.daemon`) hands it an :data:`EngineFactory`. On every
registration (a new lease) :meth:`EngineRunner.restart` cancels the engine run
of the previous lease and starts a fresh engine that campaigns with the new one
(:class:`unitctl.engine.engine.Engine` satisfies :class:`LeaderEngine`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class LeaderEngine(Protocol):
    """An engine that campaigns for leadership with a lease and leads while it holds."""

    #: True while this engine is the cluster's leader.
    leading: bool

    async def run(self, lease: int) -> None:
        """Campaign with ``lease``, lead while elected; runs until cancelled."""
        ...


#: Builds a new engine (called once per lease).
EngineFactory = Callable[[], LeaderEngine]


class EngineRunner:
    """Runs at most one engine, for the machine's current lease (none without a factory)."""

    def __init__(self, factory: EngineFactory | None) -> None:
        self.factory = factory
        #: The engine of the current lease, or None.
        self.engine: LeaderEngine | None = None
        #: Its run.
        self.task: asyncio.Task[None] | None = None

    def restart(self, lease: int) -> None:
        """Stop the engine of the old lease; start a new one campaigning with ``lease``."""
        if self.factory is None:
            return
        self.stop()
        self.engine = self.factory()
        self.task = asyncio.get_running_loop().create_task(self.engine.run(lease))

    def stop(self) -> None:
        """Cancel the engine's run (it resigns as it ends)."""
        if self.task is not None:
            self.task.cancel()
