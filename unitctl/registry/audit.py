"""The API's audit log in etcd: one key per write, kept for a bounded time.

Every write through the API server is recorded at ``audit/<time-ns>-<rand>``
as JSON ``{"time", "who", "role", "method", "path", "status"}`` (the server
also logs the same line on stderr, so the journal has it when the server
runs as a systemd unit). Retention is bounded by etcd itself: each entry is
put under a lease of :data:`RETENTION` seconds, so etcd deletes it then,
without a cleaner to run or to forget. One lease serves the entries of
:data:`LEASE_SPAN` seconds (a new one is granted after that), so the log
costs one lease per hour, not one per write; an entry lives between
``RETENTION`` and ``RETENTION + LEASE_SPAN`` seconds.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from unitctl.registry.keys import Keys
from unitctl.registry.kv import KV

#: How long an audit entry is kept, in seconds (7 days, plus up to one lease span).
RETENTION = 7 * 24 * 3600
#: How long one lease collects entries before a new one is granted.
LEASE_SPAN = 3600


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One write: when, by whom (token id or certificate name), what, and the answer."""

    time: float
    who: str
    role: str
    method: str
    path: str
    status: int

    def line(self) -> str:
        """The log line of the entry."""
        return (f"audit: {self.who} ({self.role}) {self.method} {self.path} "
                f"-> {self.status}")


class AuditLog:
    """Appends entries under ``audit/`` and reads the most recent ones."""

    def __init__(self, kv: KV, keys: Keys, retention: int = RETENTION) -> None:
        self.kv = kv
        self.keys = keys
        self.retention = retention
        self._lease = 0
        self._lease_since = 0.0

    async def _current_lease(self, now: float) -> int:
        if not self._lease or now - self._lease_since >= LEASE_SPAN:
            self._lease = await self.kv.grant_lease(self.retention + LEASE_SPAN)
            self._lease_since = now
        return self._lease

    async def append(self, entry: AuditEntry) -> str:
        """Store one entry; return its key."""
        key = self.keys.audit_entry(f"{int(entry.time * 1e9):020d}-{secrets.token_hex(4)}")
        value = json.dumps({"time": entry.time, "who": entry.who, "role": entry.role,
                            "method": entry.method, "path": entry.path,
                            "status": entry.status}, sort_keys=True).encode()
        await self.kv.put(key, value, await self._current_lease(entry.time))
        return key

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        """The last ``limit`` entries, oldest first (malformed ones are left out)."""
        rng = await self.kv.get_prefix(self.keys.audit())
        entries = []
        for kv in rng.kvs[-limit:] if limit > 0 else ():
            try:
                obj = json.loads(kv.value)
                entries.append(AuditEntry(float(obj["time"]), str(obj["who"]),
                                          str(obj["role"]), str(obj["method"]),
                                          str(obj["path"]), int(obj["status"])))
            except (ValueError, KeyError, TypeError):
                continue
        return entries
