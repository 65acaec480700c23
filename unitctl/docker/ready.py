"""When a container counts as ready, and the READY=1 that says so.

:class:`ReadyWatch` follows the container's events from a moment before
docker-run starts it (:meth:`~unitctl.docker.runtime.ContainerRuntime.events`
with ``since``: nothing between that moment and the subscription is lost), and
sends ``READY=1`` through the :class:`~unitctl.docker.notify.Notifier` once
``inspect`` says the container is ready
(:attr:`~unitctl.docker.runtime.ContainerState.ready`): running, and healthy
when it has a health check (the image's HEALTHCHECK or ``--health-cmd``). It
looks once when it starts (a container that already runs) and again at each
``start`` or ``healthy`` event: no sleep-polling. An ``unhealthy`` status
becomes the unit's ``STATUS=`` and READY waits on; a container that dies
before it is ready ends the watch without READY (docker-run then exits with
the container's code and systemd records the failed start).
"""

from __future__ import annotations

import sys
import threading
import types

from unitctl.docker.notify import Notifier
from unitctl.docker.runtime import ContainerRuntime, EventStream
from unitctl.errors import ContainerError

__all__ = ["ReadyWatch"]

_LOOK_AGAIN = frozenset({"start", "healthy"})
_ENDED = frozenset({"die", "destroy"})


class ReadyWatch:
    """Send READY=1 once container ``name`` is ready; a context manager around its start.

    Open it (``with``) before starting the container; leaving it stops the
    watch. ``ready`` is set once READY=1 was sent.
    """

    def __init__(
        self, runtime: ContainerRuntime, name: str, notifier: Notifier, since: float
    ) -> None:
        """Subscribe to the events of ``name`` from ``since`` (a ``time.time()``) on."""
        self.runtime, self.name, self.notifier = runtime, name, notifier
        self.ready = threading.Event()
        self._events: EventStream = runtime.events(name, since)
        self._thread = threading.Thread(target=self._watch, name="ready-watch", daemon=True)

    def __enter__(self) -> ReadyWatch:
        """Start watching."""
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        """Stop watching (the event stream is closed, the thread joined)."""
        self._events.close()
        self._thread.join()

    def _look(self) -> bool:
        """Inspect; send READY=1 and return True when the container is ready."""
        state = self.runtime.inspect(self.name)
        if state is None or not state.ready:
            return False
        how = "healthy" if state.has_healthcheck else "running"
        print(f"docker-run: container {self.name} is {how}: READY", file=sys.stderr, flush=True)
        self.notifier.notify(f"READY=1\nSTATUS=container {how}")
        self.ready.set()
        return True

    def _watch(self) -> None:
        """The thread: look now, then at each event that may make the container ready."""
        try:
            if self._look():
                return
            for event in self._events:
                if event in _LOOK_AGAIN and self._look():
                    return
                if event == "unhealthy":
                    self.notifier.notify("STATUS=container unhealthy, waiting for healthy")
                if event in _ENDED:
                    return
        except ContainerError as exc:
            print(f"docker-run: cannot follow {self.name}: {exc}", file=sys.stderr, flush=True)
