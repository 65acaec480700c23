"""The in-memory :class:`~unitctl.agent.commands.Commands`: scripted answers, recorded argvs.

Each argv's answer is found by its first word and verb (``systemctl status``,
``systemctl restart``, ``journalctl``): the output pieces and the exit code.
With ``follow`` set, ``journalctl ... -f`` writes its pieces and then blocks
until cancelled (or until :meth:`FakeCommands.emit` adds a piece), like
``journalctl -f``. ``cancelled`` counts the runs that were stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from unitctl.agent.commands import Sink
from unitctl.channel import ReplyKind


@dataclass
class Script:
    """What one kind of command writes and returns."""

    out: list[bytes] = field(default_factory=list)
    err: list[bytes] = field(default_factory=list)
    code: int = 0


def command_of(argv: Sequence[str]) -> str:
    """``systemctl status``, ``systemctl restart``, ``systemctl stop`` or ``journalctl``
    (also when run by ``systemd-run ... --``)."""
    if argv[0] == "systemd-run":
        argv = argv[list(argv).index("--") + 1:]
    return argv[0] if argv[0] == "journalctl" else " ".join(argv[:2])


class FakeCommands:
    def __init__(self, scripts: dict[str, Script] | None = None) -> None:
        self.scripts = scripts or {}
        self.calls: list[list[str]] = []
        self.cancelled = 0
        self.running = 0
        self._more: asyncio.Queue[bytes] = asyncio.Queue()

    def emit(self, data: bytes) -> None:
        """One more piece for every following ``journalctl -f``."""
        self._more.put_nowait(data)

    async def run(self, argv: Sequence[str], sink: Sink) -> int:
        self.calls.append(list(argv))
        script = self.scripts.get(command_of(argv), Script())
        self.running += 1
        try:
            for piece in script.out:
                await sink(ReplyKind.OUT, piece)
            for piece in script.err:
                await sink(ReplyKind.ERR, piece)
            while "-f" in argv:  # journalctl -f
                await sink(ReplyKind.OUT, await self._more.get())
            return script.code
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
