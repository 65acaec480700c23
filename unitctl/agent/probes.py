"""Health probes: the port (:class:`Prober`), the real one and a fake.

A probe runs one :class:`~unitctl.health.HealthCheck` once and returns None when
it passed, or one line saying why it failed. It never raises for the checked
service's faults, and it never takes longer than the check's ``Timeout``:

* HTTP: ``GET <path>`` over a plain asyncio stream (HTTP/1.0, ``Connection:
  close``); a 2xx or 3xx status line passes;
* TCP: a connection that opens passes;
* command: the argv runs without a shell, as the unit's ``User=`` when it has
  one, stdin from /dev/null, its output discarded; exit status 0 passes; on a
  timeout it is killed and reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from unitctl.health import HealthCheck

#: The longest status line read from an HTTP reply.
MAX_STATUS_LINE = 4096


class Prober(Protocol):
    """Runs one probe."""

    async def probe(self, unit: str, check: HealthCheck) -> str | None:
        """None when the probe passed, else why it failed."""


class RealProber:
    """Probes over the network and child processes."""

    async def probe(self, unit: str, check: HealthCheck) -> str | None:
        try:
            return await asyncio.wait_for(self._probe(check), check.timeout)
        except TimeoutError:
            return f"{check.kind} probe timed out after {check.timeout:g}s"
        except OSError as exc:
            return f"{check.kind} probe: {exc.strerror or exc}"
        except KeyError:
            return f"command probe: no user {check.user!r} on this machine"

    async def _probe(self, check: HealthCheck) -> str | None:
        if check.kind == "cmd":
            return await run_command(check)
        reader, writer = await asyncio.open_connection(check.host, check.port)
        try:
            if check.kind == "tcp":
                return None
            return await http_get(reader, writer, check)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   check: HealthCheck) -> str | None:
    """Send ``GET path``; pass on a 2xx/3xx status line."""
    host = f"[{check.host}]" if ":" in check.host else check.host
    writer.write(f"GET {check.path} HTTP/1.0\r\nHost: {host}:{check.port}\r\n"
                 "User-Agent: unitctl-health\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    line = await reader.readline()
    if len(line) > MAX_STATUS_LINE:
        return "http probe: status line too long"
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return "http probe: no HTTP status line in the reply"
    if 200 <= int(parts[1]) < 400:
        return None
    return f"http probe: status {parts[1]}"


async def run_command(check: HealthCheck) -> str | None:
    """Run the argv (no shell), as ``check.user`` if set; pass on exit status 0."""
    proc = await asyncio.create_subprocess_exec(
        *check.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, user=check.user or None, start_new_session=True)
    try:
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return None if code == 0 else f"command exited with status {code}"


class FakeProber:
    """Answers from a table: unit -> None (passes) or why it fails; default passes."""

    def __init__(self) -> None:
        self.results: dict[str, str | None] = {}
        self.calls: list[str] = []

    async def probe(self, unit: str, check: HealthCheck) -> str | None:
        self.calls.append(unit)
        return self.results.get(unit)
