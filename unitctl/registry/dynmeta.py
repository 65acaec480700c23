"""Machine metadata set through the API: ``metadata/<machine>/<key>``, merged over the agent's.

fleet's ``PATCH /fleet/v1/machines`` adds, replaces or removes one metadata
key of one machine; fleet kept those keys without a TTL and merged them over
the metadata the machine's agent registered. This store does the same: the
keys outlive the agent's session (an agent restart keeps them), a ``remove``
deletes only what the API set (the agent's configured metadata stays), and
:func:`merged` lays the stored values over a machine's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from unitctl.errors import UsageError
from unitctl.model import Machine
from unitctl.record import replace
from unitctl.registry.keys import Keys
from unitctl.registry.kv import KV

#: fleet's metadata key syntax (``/<machine>/metadata/<key>``).
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
MACHINE_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
MAX_VALUE = 1024


def check(machine: str, key: str, value: str | None = None) -> None:
    """Raise UsageError naming the problem with a machine id, key or value."""
    if not MACHINE_PATTERN.fullmatch(machine):
        raise UsageError(f"bad machine id {machine!r}")
    if not KEY_PATTERN.fullmatch(key):
        raise UsageError(f"bad metadata key {key!r}: use letters, digits, '_', '.', '-'")
    if value is not None and (len(value) > MAX_VALUE or not value.isprintable()):
        raise UsageError(f"bad metadata value for {key}: at most {MAX_VALUE} printable "
                         "characters")


def merged(machines: Iterable[Machine],
           overrides: Mapping[str, Mapping[str, str]]) -> list[Machine]:
    """Each machine with the API-set metadata laid over its own."""
    return [replace(m, metadata={**m.metadata, **overrides[m.id]})
            if m.id in overrides else m for m in machines]


class MetadataStore:
    """The API-set metadata under ``metadata/``."""

    def __init__(self, kv: KV, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    async def set(self, machine: str, key: str, value: str) -> None:
        check(machine, key, value)
        await self.kv.put(self.keys.metadata_value(machine, key), value.encode())

    async def delete(self, machine: str, key: str) -> None:
        check(machine, key)
        await self.kv.delete(self.keys.metadata_value(machine, key))

    async def of(self, machine: str) -> dict[str, str]:
        """key -> value of what the API set on ``machine`` (one range read of its own
        keys; a value that is not text, or a key fleet's syntax refuses, is skipped)."""
        base = self.keys.machine_metadata(machine)
        out: dict[str, str] = {}
        for kv in (await self.kv.get_prefix(base)).kvs:
            key = kv.key[len(base):]
            try:
                value = kv.value.decode()
            except UnicodeDecodeError:
                continue
            if KEY_PATTERN.fullmatch(key):
                out[key] = value
        return out

    async def all(self) -> dict[str, dict[str, str]]:
        """machine -> key -> value of everything the API set."""
        base = self.keys.metadata()
        out: dict[str, dict[str, str]] = {}
        for kv in (await self.kv.get_prefix(base)).kvs:
            machine, _, key = kv.key[len(base):].partition("/")
            try:
                out.setdefault(machine, {})[key] = kv.value.decode()
            except UnicodeDecodeError:
                continue
        return out
