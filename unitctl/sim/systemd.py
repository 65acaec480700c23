"""systemd as the simulator models it: a :class:`~unitctl.agent.ports.UnitManager`
that never waits, so the agent's real :class:`~unitctl.agent.executor.Executor`
runs on it synchronously (:func:`run_now`).

A machine's systemd is two sets: the unit files present (name -> hash) and the
units running. The simulator has no unit texts: the body of hash ``h`` is a
two-line unit whose Description is ``h`` (:data:`BODIES`), and writing it
records ``h`` as the file's hash.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from unitctl.agent.ports import StateCallback, SystemdState

T = TypeVar("T")

_HEAD = "[Unit]\nDescription="
_RUNNING = SystemdState("loaded", "active", "running")
_LOADED = SystemdState("loaded", "inactive", "dead")
_NOT_FOUND = SystemdState("not-found", "inactive", "dead")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (no event loop, no clock); return its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a simulated coroutine suspended: the model must never wait")


class SimBodies(Mapping[str, str]):
    """hash -> unit text, for every hash (the text only carries the hash)."""

    def __getitem__(self, sha: str) -> str:
        return f"{_HEAD}{sha}\n"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


#: The one body store of every simulated agent.
BODIES = SimBodies()


class SimSystemd:
    """One machine's systemd: the files present and the units running."""

    def __init__(self) -> None:
        #: The unit directory: name -> hash.
        self.files: dict[str, str] = {}
        #: Units active.
        self.running: set[str] = set()

    def wipe(self) -> None:
        """A reboot: /run is empty, nothing runs."""
        self.files.clear()
        self.running.clear()

    async def start_manager(self, on_change: StateCallback) -> None:
        pass

    async def close(self) -> None:
        pass

    def present(self) -> Mapping[str, str]:
        return self.files

    async def write(self, name: str, text: str) -> None:
        self.files[name] = text.removeprefix(_HEAD).rstrip("\n")

    async def link(self, name: str, enable: bool) -> None:
        pass

    async def host_unit(self, name: str) -> str | None:
        return None  # the modelled host has no units of its own

    async def unload(self, name: str) -> None:
        self.files.pop(name, None)
        self.running.discard(name)

    async def reload(self) -> None:
        pass

    async def start(self, name: str, ignore_requirements: bool = False) -> None:
        self.running.add(name)

    async def stop(self, name: str) -> None:
        self.running.discard(name)

    async def state(self, name: str) -> SystemdState:
        if name in self.running:
            return _RUNNING
        return _LOADED if name in self.files else _NOT_FOUND
