"""The connection to systemd's D-Bus API: the only module that imports dbus-fast.

:class:`SystemdBus` connects (default: the system bus), then, on
``subscribe()``, adds the signal matches of
:data:`~unitctl.systemd.api.MATCH_RULES` and calls ``Subscribe()``. It hands
every signal to one handler as ``(path, interface, member, body)`` -- plain
values, with dbus-fast's ``Variant`` left in the bodies. The handler runs
inside the bus reader; an exception it raises is logged, so one odd signal
never breaks the reader.

:meth:`SystemdBus.call` sends one method call and returns its reply body.
Every dbus-fast failure (error replies, timeouts, a lost connection) is raised
as :class:`unitctl.errors.SystemdError` carrying the D-Bus error name and text
(:class:`BusCallError` for an error reply). Once the connection is lost every
call raises :class:`unitctl.errors.BusLost` and ``on_lost`` is told once; the
owner is expected to ``close()`` and build a new manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

from unitctl.agent.ports import RefusedBySystemd
from unitctl.errors import BusLost, SystemdError
from unitctl.systemd.api import (
    MANAGER_IFACE,
    MANAGER_PATH,
    MATCH_RULES,
    PROPERTIES_IFACE,
    SYSTEMD,
    UNIT_IFACE,
)

__all__ = ["BusCallError", "SignalHandler", "SystemdBus"]

log = logging.getLogger(__name__)

#: Called with (object path, interface, member, body) of every signal received.
SignalHandler = Callable[[str, str, str, list[Any]], None]


class BusCallError(RefusedBySystemd):
    """A D-Bus error reply; ``dbus_name`` is e.g. ``org.freedesktop.systemd1.NoSuchUnit``."""

    def __init__(self, member: str, dbus_name: str, text: str) -> None:
        super().__init__(f"systemd {member}: {dbus_name}: {text}", text or dbus_name)
        self.dbus_name = dbus_name


class SystemdBus:
    """One D-Bus connection to systemd's Manager, reconnectable after ``close()``.

    Args:
        address: a D-Bus address (``unix:path=...``); default: the system bus.
        call_timeout: seconds to wait for the reply to one call.
        on_signal: gets every signal (see the module docs).
        on_lost: told once when the connection goes away without ``close()``.
    """

    def __init__(self, address: str | None, call_timeout: float, on_signal: SignalHandler,
                 on_lost: Callable[[BusLost], None]) -> None:
        self._address = address
        self._call_timeout = call_timeout
        self._on_signal = on_signal
        self._on_lost = on_lost
        self._bus: MessageBus | None = None
        self._lost: BusLost | None = None
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None
        #: D-Bus method calls sent so far.
        self.calls = 0

    @property
    def is_open(self) -> bool:
        """``connect()`` done and no ``close()`` since (the connection may be lost)."""
        return self._bus is not None

    @property
    def usable(self) -> bool:
        """Connected (``connect()`` done, no ``close()`` since) and not lost."""
        return self._bus is not None and self._lost is None

    async def connect(self) -> None:
        """Open the connection and start handing signals to ``on_signal``."""
        if self._bus is not None:
            raise SystemdError("the systemd manager is already started")
        self._closing = False
        self._lost = None
        where = self._address or "the system bus"
        try:
            bus = MessageBus(bus_address=self._address, bus_type=BusType.SYSTEM)
            await asyncio.wait_for(bus.connect(), self._call_timeout)
        except Exception as exc:
            raise SystemdError(f"cannot connect to {where}: {_describe(exc)}") from exc
        self._bus = bus
        bus.add_message_handler(self._on_message)
        self._watcher = asyncio.get_running_loop().create_task(self._watch_disconnect(bus))

    async def subscribe(self) -> None:
        """Add the signal matches and ``Subscribe()`` to systemd's signals."""
        for rule in MATCH_RULES:
            await self.call("AddMatch", "s", [rule], destination="org.freedesktop.DBus",
                            path="/org/freedesktop/DBus", interface="org.freedesktop.DBus")
        await self.call("Subscribe")

    async def close(self) -> None:
        """Disconnect, then wait (5 s at most) for the disconnect watcher to end."""
        self._closing = True
        bus, self._bus = self._bus, None
        watcher, self._watcher = self._watcher, None
        if bus is not None:
            bus.remove_message_handler(self._on_message)
            bus.disconnect()
        if watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher, 5)

    async def _watch_disconnect(self, bus: MessageBus) -> None:
        err: BaseException | None = None
        try:
            await asyncio.shield(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        except Exception as exc:
            err = exc
        if self._closing or self._bus is not bus:
            return
        self._lost = BusLost(
            f"lost the connection to systemd's bus: {_describe(err) if err else 'closed'}")
        log.error("%s", self._lost)
        self._on_lost(self._lost)

    def _on_message(self, msg: Message) -> None:
        """Bus reader hook: every incoming message passes here first."""
        if msg.message_type != MessageType.SIGNAL:
            return None
        try:
            self._on_signal(msg.path or "", msg.interface or "", msg.member or "", msg.body)
        except Exception:  # never let one odd signal break the reader
            log.exception("cannot handle signal %s %s", msg.member, msg.path)
        return None

    async def call(self, member: str, signature: str = "", body: Iterable[Any] = (), *,
                   destination: str = SYSTEMD, path: str = MANAGER_PATH,
                   interface: str = MANAGER_IFACE, timeout: float | None = None) -> list[Any]:
        """One method call; its reply body, or SystemdError."""
        if self._lost is not None:
            raise self._lost
        bus = self._bus
        if bus is None or not bus.connected:
            raise SystemdError(f"systemd {member}: not connected (start_manager() first)")
        msg = Message(destination=destination, path=path, interface=interface, member=member,
                      signature=signature, body=list(body))
        wait = self._call_timeout if timeout is None else timeout
        self.calls += 1
        try:
            reply = await asyncio.wait_for(bus.call(msg), wait)
        except TimeoutError as exc:
            raise SystemdError(f"systemd {member}: no reply within {wait:g}s") from exc
        except DBusError as exc:
            raise BusCallError(member, exc.type, exc.text) from exc
        except Exception as exc:
            if self._lost is not None:
                raise self._lost from exc
            raise SystemdError(f"systemd {member}: bus failure: {_describe(exc)}") from exc
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise BusCallError(member, reply.error_name or "unknown", text)
        return list(reply.body)


    async def unit_property(self, path: str, name: str) -> Any:
        """One property of the unit at object ``path`` (``Properties.Get``), unwrapped."""
        body = await self.call("Get", "ss", [UNIT_IFACE, name], path=path,
                               interface=PROPERTIES_IFACE)
        return getattr(body[0], "value", body[0]) if body else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
