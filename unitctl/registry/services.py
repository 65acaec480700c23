"""Service records: where each active unit answers, for ``resolve`` and the agents' DNS.

* ``services/<service>/<machine>``: one record per running instance, written by
  the agent of ``<machine>`` **under its lease** (a lost machine's records
  vanish with the lease) and deleted by it as soon as the unit stops, or, when
  it has a health check, as soon as it is not healthy. The value is JSON
  ``{"unit": "testdb.service", "address": "10.0.0.2", "ports": {"PORT": 31000}}``.

``<service>`` is the unit name without ``.service`` (``testdb``, ``web@1``);
only ``.service`` units have records. A value that does not decode is skipped
and reported once (:mod:`.poison`); it never stops a reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from unitctl.errors import UsageError
from unitctl.registry import poison
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import KV, MAX_TXN_OPS, Delete, KeyValue, Op, Put

SUFFIX = ".service"


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One running instance of a service: its unit, machine, address and host ports."""

    unit: str
    machine: str
    address: str
    ports: Mapping[str, int] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return service_name(self.unit)

    def encode(self) -> bytes:
        return json.dumps({"unit": self.unit, "address": self.address,
                           "ports": dict(sorted(self.ports.items()))},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, machine: str, data: bytes) -> ServiceRecord:
        raw = json.loads(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("unit"), str) \
                or not isinstance(raw.get("address"), str):
            raise ValueError("not a service record")
        ports = raw.get("ports", {})
        if not isinstance(ports, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and 0 < v < 65536
                for k, v in ports.items()):
            raise ValueError("bad ports in a service record")
        return cls(raw["unit"], machine, raw["address"], dict(ports))


@dataclass(frozen=True, slots=True)
class ServiceChanges:
    """One machine's service record changes: the services it withdraws and the
    records it (re)writes."""

    withdrawn: tuple[str, ...]
    published: tuple[ServiceRecord, ...]


def service_name(unit: str) -> str:
    """``testdb.service`` → ``testdb``; other unit types have no service name ("")."""
    return unit[:-len(SUFFIX)] if unit.endswith(SUFFIX) else ""


def query_matches(query: str, service: str) -> bool:
    """Whether ``query`` (``web``, ``web.service``, ``web@1``) names ``service``: a
    template's name matches each of its instances (``web`` → ``web@1``, ``web@2``)."""
    q = query[:-len(SUFFIX)] if query.endswith(SUFFIX) else query
    q = q.rstrip("@")
    return service == q or ("@" not in q and service.startswith(q + "@"))


class ServiceStore:
    """``services/``: published by the agents, read by ``resolve`` and the DNS mirrors."""

    def __init__(self, kv: KV, keyspace: Keyspace) -> None:
        self.kv = kv
        self.prefix = f"{keyspace.keys.prefix}services/"

    def key(self, service: str, machine: str) -> str:
        if not service or "/" in service:
            raise UsageError(f"bad service name {service!r}")
        return f"{self.prefix}{service}/{machine}"

    async def publish(self, record: ServiceRecord, lease: int) -> None:
        await self.kv.put(self.key(record.service, record.machine), record.encode(), lease)

    async def withdraw(self, service: str, machine: str) -> None:
        await self.kv.delete(self.key(service, machine))

    async def write_changes(self, machine: str, withdrawn: Iterable[str],
                            published: Iterable[ServiceRecord], lease: int) -> None:
        """Withdraw ``machine``'s records of ``withdrawn`` and write ``published``
        (under ``lease``), many per transaction: one agent's burst of changes in
        one round trip, not one per unit."""
        ops = self.change_ops(machine, withdrawn, published, lease)
        for i in range(0, len(ops), MAX_TXN_OPS):
            await self.kv.txn([], ops[i:i + MAX_TXN_OPS])

    def change_ops(self, machine: str, withdrawn: Iterable[str],
                   published: Iterable[ServiceRecord], lease: int) -> list[Op]:
        """The writes of :meth:`write_changes` (for a transaction that also carries
        other writes of the machine: :meth:`Registry.publish_states`)."""
        ops: list[Op] = [Delete(self.key(s, machine)) for s in withdrawn]
        return ops + [Put(self.key(r.service, r.machine), r.encode(), lease)
                      for r in published]

    async def all(self) -> list[ServiceRecord]:
        return self.records((await self.kv.get_prefix(self.prefix)).kvs)

    async def lookup(self, query: str) -> list[ServiceRecord]:
        """The records of the service ``query`` names (:func:`query_matches`)."""
        return [r for r in await self.all() if query_matches(query, r.service)]

    def records(self, kvs: Mapping[str, KeyValue] | Iterable[KeyValue]) -> list[ServiceRecord]:
        """The stored records among ``kvs`` that decode, sorted by service then machine."""
        values = kvs.values() if isinstance(kvs, Mapping) else kvs
        found = poison.decode_each(values, self._decode)[0]
        return sorted(found, key=lambda r: (r.service, r.machine))

    def _decode(self, kv: KeyValue) -> ServiceRecord:
        service, _, machine = kv.key[len(self.prefix):].partition("/")
        record = ServiceRecord.decode(machine, kv.value)
        if record.service != service or not machine:
            raise ValueError(f"record of {record.unit} stored under {service}/{machine}")
        return record
