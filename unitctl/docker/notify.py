"""docker-run's messages to systemd: the :class:`Notifier` port and its sd_notify adapter.

Under ``Type=notify`` systemd waits for ``READY=1`` before the unit is active
and reads ``STOPPING=1``, ``STATUS=`` and ``EXTEND_TIMEOUT_USEC=`` from the
service's main process (docker-run; the default ``NotifyAccess=main``).
:class:`SdNotifier` sends them with :mod:`sdnotify` over ``$NOTIFY_SOCKET``
and does nothing when that is not set (a unit of another type, or a shell);
:class:`RecordingNotifier` keeps them in a list, for tests.

:func:`extending_start_timeout` covers a slow step (the image pull): while it
runs, systemd's start timeout is pushed :data:`EXTEND_USEC` ahead every
:data:`EXTEND_EVERY` seconds, so the step's time does not count against
``TimeoutStartSec=``; a docker-run that dies meanwhile still times out
``EXTEND_USEC`` later.
"""

from __future__ import annotations

import contextlib
import threading
import typing as t
from collections.abc import Iterator

__all__ = ["EXTEND_EVERY", "EXTEND_USEC", "Notifier", "RecordingNotifier", "SdNotifier",
           "extending_start_timeout"]

#: How far each extension pushes the start timeout, in microseconds (30 s).
EXTEND_USEC = 30_000_000

#: Seconds between two extensions (a third of EXTEND_USEC: two may be lost).
EXTEND_EVERY = 10.0


class Notifier(t.Protocol):
    """Where docker-run's sd_notify messages go."""

    def notify(self, message: str) -> None:
        """Send one message (``READY=1``, ``STOPPING=1``...); never raises."""


class SdNotifier:
    """The :class:`Notifier` of ``$NOTIFY_SOCKET`` (a no-op when it is not set)."""

    def __init__(self) -> None:
        """Connect to ``$NOTIFY_SOCKET`` if set (sdnotify ignores a missing one)."""
        import sdnotify  # only docker-run's process needs it

        self._notifier = sdnotify.SystemdNotifier()
        self._lock = threading.Lock()

    def notify(self, message: str) -> None:
        """See :meth:`Notifier.notify`; thread-safe."""
        with self._lock:
            self._notifier.notify(message)


class RecordingNotifier:
    """A :class:`Notifier` keeping the messages, in order (tests)."""

    def __init__(self) -> None:
        """No messages yet."""
        self.messages: list[str] = []

    def notify(self, message: str) -> None:
        """Record ``message``."""
        self.messages.append(message)


@contextlib.contextmanager
def extending_start_timeout(notifier: Notifier, status: str) -> Iterator[None]:
    """While the block runs, keep systemd's start timeout ahead (see the module doc).

    ``status`` becomes the unit's ``STATUS=`` (systemctl status shows it).
    """
    done = threading.Event()

    def extend() -> None:
        while True:
            notifier.notify(f"STATUS={status}\nEXTEND_TIMEOUT_USEC={EXTEND_USEC}")
            if done.wait(EXTEND_EVERY):
                return

    thread = threading.Thread(target=extend, name="extend-start-timeout", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
