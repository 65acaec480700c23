"""Polls systemd on every machine, from the host, over each machine's D-Bus socket.

One asyncio loop in a thread polls all machines at once every ``period`` seconds:
per unit one ``Properties.GetAll`` of ``org.freedesktop.systemd1.Unit`` on the
machine's system bus (``/proc/<leader>/root/run/dbus/system_bus_socket``), no
process started per poll. Each answer feeds the :class:`~.timeline.UnitTrack` of
(machine boot, unit). A machine whose systemd changed (booted again) gets a new
boot generation; ``machine_killed`` closes its runs with the kill's time window.
``stats`` tells, per machine, the polls made and the longest gap between two
successful polls while it ran, so the report can state the real resolution.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from unitctl.systemd.api import PROPERTIES_IFACE, UNIT_IFACE, unit_object_path
from unitctl.systemd.bus import SystemdBus
from unitctl_testing.chaos.timeline import Interval, Sample, UnitTrack
from unitctl_testing.cluster import Cluster


def _value(props: dict[str, Any], key: str, default: Any) -> Any:
    v = props.get(key)
    return default if v is None else v.value


def sample_of(props: dict[str, Any], t_sent: float, t_recv: float) -> Sample:
    inv = _value(props, "InvocationID", b"")
    return Sample(t_sent=t_sent, t_recv=t_recv, load=str(_value(props, "LoadState", "")),
                  active=str(_value(props, "ActiveState", "")),
                  invocation=bytes(inv).hex(),
                  left_inactive=int(_value(props, "InactiveExitTimestampMonotonic", 0)) / 1e6,
                  entered_inactive=int(_value(props, "InactiveEnterTimestampMonotonic", 0)) / 1e6)


@dataclass
class MachineStats:
    polls: int = 0
    failures: int = 0
    max_gap: float = 0.0
    last_ok: float = 0.0
    boots: int = 0


@dataclass
class _Conn:
    leader_pid: int
    bus: SystemdBus
    gen: int


@dataclass
class SystemdMonitor:
    """Background poller of ``units`` on every machine of ``cluster``."""

    cluster: Cluster
    units: Sequence[str]
    period: float = 0.2
    tracks: dict[tuple[str, int, str], UnitTrack] = field(default_factory=dict)
    stats: dict[str, MachineStats] = field(default_factory=dict)
    _gens: dict[str, int] = field(default_factory=dict)
    _pids: dict[str, int] = field(default_factory=dict)
    _conns: dict[str, _Conn] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _rounds: int = 0
    _round_done: threading.Condition = field(default_factory=threading.Condition)

    # ------------------------------------------------------------ control
    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()),
                                        name="chaos-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def machine_killed(self, name: str, lo: float, hi: float) -> None:
        with self._lock:
            gen = self._gens.get(name, 0)
            for (m, g, _), track in self.tracks.items():
                if m == name and g == gen:
                    track.killed(lo, hi)

    # ------------------------------------------------------------ reading
    def intervals(self) -> list[Interval]:
        with self._lock:
            return [run for t in self.tracks.values() for run in t.runs]

    def running(self) -> list[Interval]:
        """Runs open right now (by the latest polls)."""
        with self._lock:
            return [t.current for t in self.tracks.values() if t.current is not None]

    def wait_fresh(self, timeout: float = 5.0) -> bool:
        """Wait until a whole poll round that began after this call has ended.

        A snapshot read after this sees every change made before the call (a
        command that just returned), not the previous round's view.
        """
        with self._round_done:
            target = self._rounds + 2
            return self._round_done.wait_for(lambda: self._rounds >= target, timeout)

    def where(self, unit: str) -> set[str]:
        return {r.machine for r in self.running() if r.unit == unit}

    # ------------------------------------------------------------ polling
    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        # a killed machine's bus ends with EOFError in dbus-fast's reader: expected
        loop.set_exception_handler(lambda lp, ctx: None if isinstance(
            ctx.get("exception"), EOFError) else lp.default_exception_handler(ctx))
        while not self._stop.is_set():
            t0 = time.monotonic()
            names = list(self.cluster.names)
            await asyncio.gather(*(self._poll_machine(n) for n in names))
            with self._round_done:
                self._rounds += 1
                self._round_done.notify_all()
            await asyncio.sleep(max(0.0, self.period - (time.monotonic() - t0)))
        for conn in self._conns.values():
            await conn.bus.close()

    async def _connect(self, name: str) -> _Conn | None:
        m = self.cluster.machine(name)
        if not m.running() or not m.leader_pid:
            return None
        conn = self._conns.get(name)
        if conn is not None and conn.leader_pid == m.leader_pid and conn.bus.usable:
            return conn
        if conn is not None:
            await conn.bus.close()
            self._conns.pop(name, None)
        address = f"unix:path=/proc/{m.leader_pid}/root/run/dbus/system_bus_socket"
        bus = SystemdBus(address, 2.0, on_signal=lambda *_: None, on_lost=lambda _: None)
        await bus.connect()
        with self._lock:
            if self._pids.get(name) != m.leader_pid:
                self._pids[name] = m.leader_pid
                self._gens[name] = self._gens.get(name, -1) + 1
            gen = self._gens[name]
        self.stats.setdefault(name, MachineStats()).boots = gen + 1
        self._conns[name] = _Conn(m.leader_pid, bus, gen)
        return self._conns[name]

    async def _get_all(self, bus: SystemdBus, unit: str) -> dict[str, Any]:
        body = await bus.call("GetAll", "s", [UNIT_IFACE], path=unit_object_path(unit),
                              interface=PROPERTIES_IFACE)
        props: dict[str, Any] = body[0]
        return props

    async def _poll_machine(self, name: str) -> None:
        st = self.stats.setdefault(name, MachineStats())
        try:
            conn = await self._connect(name)
            if conn is None:
                st.last_ok = 0.0
                return
            t_sent = time.monotonic()
            replies = await asyncio.wait_for(
                asyncio.gather(*(self._get_all(conn.bus, u) for u in self.units)), 2.0)
            t_recv = time.monotonic()
        except Exception:
            st.failures += 1
            with contextlib.suppress(Exception):
                old = self._conns.pop(name)
                await old.bus.close()
            return
        with self._lock:
            for unit, props in zip(self.units, replies, strict=True):
                key = (name, conn.gen, unit)
                track = self.tracks.setdefault(key, UnitTrack(unit, name, conn.gen))
                track.observe(sample_of(props, t_sent, t_recv))
        if st.last_ok:
            st.max_gap = max(st.max_gap, t_recv - st.last_ok)
        st.polls += 1
        st.last_ok = t_recv
