"""Config templates in etcd: resources, per-machine render statuses, and the data they read.

* ``templates/<name>``: a resource (:mod:`unitctl.templating.resource`), client-owned;
* ``template-status/<name>/<machine>``: the machine's last render
  (:class:`unitctl.templating.plan.Status`), written by its agent under the
  machine's lease, so it vanishes with the machine;
* ``data/<path>``: user data the templates read, raw text (``unitctl data set``
  or ``etcdctl put <prefix>data/...``).

The agent renders from a mirror it keeps of these roots (and of ``states/``
and ``machines/`` for ``units()``): :meth:`read_root` then
:meth:`watch_root` from the read revision + 1. A value that does not decode
is skipped and reported once (:mod:`.poison`); it never stops an agent.
The hook for the discovery work's service records is :data:`ROOTS`: a new
root there (``services/``) and a decoder in :meth:`snapshot` are all it takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from unitctl.errors import UsageError
from unitctl.registry import poison
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import KV, Delete, Event, KeyValue, Put, mod_is
from unitctl.templating import resource as res_codec
from unitctl.templating.functions import Snapshot, UnitPlace
from unitctl.templating.plan import Status
from unitctl.templating.resource import TemplateResource

#: The roots an agent mirrors for its templates (``units`` ones only when a
#: template reads ``units()``); discovery's ``services/`` goes here.
ROOTS = ("templates", "data", "states", "machines")
MAX_DATA_VALUE = 512 * 1024


class TemplateStore:
    """Template resources, statuses and data over the KV port."""

    def __init__(self, kv: KV, keyspace: Keyspace) -> None:
        self.kv = kv
        self.keyspace = keyspace
        self.keys = keyspace.keys

    # -- resources -------------------------------------------------------------
    async def submit(self, res: TemplateResource) -> str:
        """Store ``res``: "created", "updated" or "unchanged" (compare-and-swap)."""
        key, data = self.keys.template(res.name), res_codec.encode(res)
        cur = await self.kv.get(key)
        if cur is not None and cur.value == data:
            return "unchanged"
        if not await self.kv.txn([mod_is(key, cur.mod_rev if cur else 0)], [Put(key, data)]):
            raise UsageError(f"template {res.name} changed meanwhile; submit again")
        return "created" if cur is None else "updated"

    async def destroy(self, name: str) -> bool:
        """Delete a resource and its statuses (rendered files stay where they are)."""
        if not res_codec.NAME.fullmatch(name):
            raise UsageError(f"bad template name {name!r}")
        gone = await self.kv.delete(self.keys.template(name))
        await self.kv.txn([], [Delete(self.keys.template_statuses(name), prefix=True)])
        return gone > 0

    async def all(self) -> list[TemplateResource]:
        rng = await self.kv.get_prefix(self.keys.templates())
        return list(self.resources(rng.kvs).values())

    def resources(self, kvs: Mapping[str, KeyValue] | tuple[KeyValue, ...],
                  ) -> dict[str, TemplateResource]:
        """The resources among stored ``kvs`` that decode, by name."""
        values = kvs.values() if isinstance(kvs, Mapping) else kvs
        return {r.name: r for r in poison.decode_each(values, _decode_resource)[0]}

    # -- statuses ------------------------------------------------------------
    async def put_status(self, name: str, machine: str, status: Status, lease: int) -> None:
        await self.kv.put(self.keys.template_status(name, machine), status.encode(), lease)

    async def delete_status(self, name: str, machine: str) -> None:
        await self.kv.delete(self.keys.template_status(name, machine))

    async def statuses(self) -> dict[str, dict[str, Status]]:
        """template → machine → its last status (undecodable ones skipped)."""
        base = self.keys.template_statuses()
        out: dict[str, dict[str, Status]] = {}
        for kv in (await self.kv.get_prefix(base)).kvs:
            name, _, machine = kv.key[len(base):].partition("/")
            try:
                out.setdefault(name, {})[machine] = Status.decode(kv.value)
            except (ValueError, TypeError) as exc:
                poison.invalid(kv.key, kv.mod_rev, exc)
        return out

    # -- data ----------------------------------------------------------------
    def data_key(self, path: str) -> str:
        if not res_codec.DATA_KEY.fullmatch(path) or path == "/":
            raise UsageError(f"bad data key {path!r}: a path like /hosts/zk1")
        return self.keys.data(path)

    async def set_data(self, path: str, value: str) -> None:
        if len(value.encode()) > MAX_DATA_VALUE:
            raise UsageError(f"data value over {MAX_DATA_VALUE} bytes")
        await self.kv.put(self.data_key(path), value.encode())

    async def get_data(self, path: str) -> str | None:
        kv = await self.kv.get(self.data_key(path))
        return None if kv is None else kv.value.decode(errors="replace")

    async def list_data(self, path: str = "/") -> dict[str, str]:
        """Every data key under ``path`` (relative paths) and its value."""
        base = self.keys.data() if path.strip("/") == "" else self.data_key(path) + "/"
        rng = await self.kv.get_prefix(base)
        return self.data_values(rng.kvs)

    async def delete_data(self, path: str, prefix: bool = False) -> int:
        key = self.data_key(path)
        return await self.kv.delete(key + "/" if prefix else key, prefix=prefix)

    def data_values(self, kvs: Mapping[str, KeyValue] | tuple[KeyValue, ...]) -> dict[str, str]:
        """Stored data keys → {relative path: text}; a value that is not UTF-8 is skipped."""
        base = self.keys.data()
        out: dict[str, str] = {}
        for kv in kvs.values() if isinstance(kvs, Mapping) else kvs:
            try:
                out["/" + kv.key[len(base):].strip("/")] = kv.value.decode()
            except UnicodeDecodeError as exc:
                poison.invalid(kv.key, kv.mod_rev, exc)
        return out

    # -- the agent's mirror ---------------------------------------------------
    def root(self, which: str) -> str:
        """The prefix of one of :data:`ROOTS`."""
        return {"templates": self.keys.templates(), "data": self.keys.data(),
                "states": self.keys.states(), "machines": self.keys.machines()}[which]

    async def read_root(self, prefix: str) -> tuple[dict[str, KeyValue], int]:
        rng = await self.kv.get_prefix(prefix)
        return {kv.key: kv for kv in rng.kvs}, rng.revision

    def watch_root(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        return self.kv.watch_prefix(prefix, start_rev)

    def places(self, states: Mapping[str, KeyValue],
               machines: Mapping[str, KeyValue]) -> tuple[UnitPlace, ...]:
        """Where units run, from mirrored ``states/`` and ``machines/`` keys."""
        ips = {m.id: m.public_ip for m in
               poison.decode_each(machines.values(), self.keyspace.machine)[0]}
        found = poison.decode_each(states.values(), self.keyspace.state)[0]
        return tuple(sorted((UnitPlace(s.name, s.machine_id, ips.get(s.machine_id, ""),
                                       s.active, s.sub) for s in found),
                            key=lambda p: (p.unit, p.machine)))

    def snapshot(self, data: Mapping[str, KeyValue], places: tuple[UnitPlace, ...],
                 revision: int) -> Snapshot:
        return Snapshot(self.data_values(data), places, revision)


def _decode_resource(kv: KeyValue) -> TemplateResource:
    try:
        return res_codec.decode(kv.value)
    except UsageError as exc:
        raise ValueError(str(exc)) from exc


def history_lost(exc: BaseException) -> bool:
    """Whether a watch ended because etcd compacted the revision asked for (then the
    caller reads the root again instead of resuming): the registry adapters say
    "lost history" (gRPC) or "compacted" (the JSON gateway)."""
    text = str(exc).lower()
    return "lost history" in text or "compact" in text
