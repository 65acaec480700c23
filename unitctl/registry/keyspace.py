"""The keyspace decoder: a stored key and value back to what they mean (pure).

:mod:`unitctl.registry.keys` builds keys and :mod:`unitctl.registry.codec`
turns model objects into bytes and back; this module is the one place that
reads a key (which entity, which unit, which machine) and decodes its value
into the model object of that entity. The Registry, the engine's mirror and
the client all decode through it, so the layout is parsed in one place.

Contract: :meth:`Keyspace.parse` returns None for a key that is not under the
prefix or not part of the layout (callers skip it); a known key with a
malformed value raises ``RegistryError`` naming the key (as the codec does).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from unitctl.errors import RegistryError
from unitctl.model import Machine, ScheduleEntry, UnitRecord, UnitState
from unitctl.record import Frozen, init
from unitctl.registry import codec
from unitctl.registry.keys import Keys
from unitctl.registry.kv import Event, EventKind, KeyValue

if TYPE_CHECKING:  # the agent channel's module is imported where its keys are decoded
    from unitctl.channel import Reply, Request


class Entity(enum.Enum):
    """What a key stores; the value is the key's first path component."""

    VERSION = "version"
    LEADER = "leader"
    UNIT = "units"
    BODY = "bodies"
    BODYREF = "bodyrefs"
    PLACEMENT = "placements"
    SCHEDULED = "schedule"
    EXPLANATION = "explain"
    MACHINE = "machines"
    STATE = "states"
    REQUEST = "requests"
    REPLY = "replies"
    OWNER = "owners"
    TEMPLATE_OWNER = "template-owners"
    BUNDLE_REVISION = "bundles"
    BUNDLE_BODY = "bundlebodies"
    METADATA = "metadata"
    TEMPLATE = "templates"
    TEMPLATE_STATUS = "template-status"
    DATA = "data"
    ROLLOUT = "rollouts"
    ROLLOUT_BODY = "rolloutbodies"


class KeyRef(Frozen):
    """What one key names.

    ``name`` is the unit for unit-scoped entities, the body's sha for
    ``BODY`` and the machine id for ``MACHINE``; ``machine`` is the machine of
    ``SCHEDULED``, ``STATE`` and ``MACHINE``; ``body`` the sha of ``BODYREF``.
    For ``METADATA`` (API-set machine metadata) ``name`` is the metadata key and
    ``machine`` the machine; its value is the metadata value (a string).
    For ``REQUEST`` ``name`` is the request id and ``machine`` the machine asked;
    for ``REPLY`` ``name`` is the request id and ``seq`` the reply's number;
    ``TEMPLATE`` names the template, ``TEMPLATE_STATUS`` the template and the
    machine, ``DATA`` the data path (``/hosts/zk1``). Their values stay text.
    """

    __slots__ = ("body", "entity", "machine", "name", "seq")
    entity: Entity
    name: str
    machine: str
    body: str
    seq: int

    def __init__(self, entity: Entity, name: str = "", machine: str = "", body: str = "",
                 seq: int = -1) -> None:
        init(self, entity, name, machine, body, seq)


#: What a value decodes to: the entity's model object, a plain string
#: (placements, bodies, leader, version, body refs), or None (a deleted key).
Value: TypeAlias = ("UnitRecord | ScheduleEntry | Machine | UnitState | Request | Reply"
                    " | dict[str, str] | str | None")


class Record(Frozen):
    """One decoded key: what it names, its decoded value, its raw bytes and mod revision."""

    __slots__ = ("data", "key", "mod_rev", "ref", "value")
    key: str
    ref: KeyRef
    value: Value
    data: bytes
    mod_rev: int

    def __init__(self, key: str, ref: KeyRef, value: Value, data: bytes, mod_rev: int) -> None:
        init(self, key, ref, value, data, mod_rev)


def _named(entity: Entity) -> Callable[[str], KeyRef]:
    return lambda tail: KeyRef(entity, tail)


def _scheduled(tail: str) -> KeyRef:
    machine, _, name = tail.partition("/")
    return KeyRef(Entity.SCHEDULED, name, machine)


def _state(tail: str) -> KeyRef:
    name, _, machine = tail.rpartition("/")
    return KeyRef(Entity.STATE, name, machine)


def _bodyref(tail: str) -> KeyRef:
    sha, _, name = tail.partition("/")
    return KeyRef(Entity.BODYREF, name, body=sha)


def _machine(tail: str) -> KeyRef:
    return KeyRef(Entity.MACHINE, tail, tail)


def _metadata(tail: str) -> KeyRef | None:
    machine, _, key = tail.partition("/")
    if not machine or not key or "/" in key:
        return None
    return KeyRef(Entity.METADATA, key, machine)


def _request(tail: str) -> KeyRef | None:
    machine, _, request_id = tail.partition("/")
    if not machine or not request_id or "/" in request_id:
        return None
    return KeyRef(Entity.REQUEST, request_id, machine)


def _reply(tail: str) -> KeyRef | None:
    request_id, _, seq = tail.partition("/")
    if not request_id or not seq.isdigit():
        return None
    return KeyRef(Entity.REPLY, request_id, seq=int(seq))


def _bundle_revision(tail: str) -> KeyRef | None:
    bundle, _, number = tail.partition("/")
    if not bundle or not number.isdigit():
        return None
    return KeyRef(Entity.BUNDLE_REVISION, bundle, seq=int(number))


def _bundle_body(tail: str) -> KeyRef | None:
    bundle, _, sha = tail.partition("/")
    if not bundle or not sha or "/" in sha:
        return None
    return KeyRef(Entity.BUNDLE_BODY, bundle, body=sha)


def _template_status(tail: str) -> KeyRef | None:
    name, _, machine = tail.partition("/")
    if not name or not machine or "/" in machine:
        return None
    return KeyRef(Entity.TEMPLATE_STATUS, name, machine)


def _data(tail: str) -> KeyRef:
    """A data key's ``name`` is its path as templates read it (``/hosts/zk1``)."""
    return KeyRef(Entity.DATA, "/" + tail.strip("/"))


def _rollout_body(tail: str) -> KeyRef | None:
    name, _, sha = tail.partition("/")
    if not name or not sha or "/" in sha:
        return None
    return KeyRef(Entity.ROLLOUT_BODY, name, body=sha)


#: first path component -> how the rest of the key reads
_TAIL_PARSERS: dict[str, Callable[[str], KeyRef | None]] = {
    Entity.UNIT.value: _named(Entity.UNIT), Entity.BODY.value: _named(Entity.BODY),
    Entity.PLACEMENT.value: _named(Entity.PLACEMENT),
    Entity.EXPLANATION.value: _named(Entity.EXPLANATION),
    Entity.SCHEDULED.value: _scheduled, Entity.STATE.value: _state,
    Entity.BODYREF.value: _bodyref, Entity.MACHINE.value: _machine,
    Entity.REQUEST.value: _request, Entity.REPLY.value: _reply,
    Entity.OWNER.value: _named(Entity.OWNER),
    Entity.TEMPLATE_OWNER.value: _named(Entity.TEMPLATE_OWNER),
    Entity.BUNDLE_REVISION.value: _bundle_revision, Entity.BUNDLE_BODY.value: _bundle_body,
    Entity.METADATA.value: _metadata,
    Entity.TEMPLATE.value: _named(Entity.TEMPLATE),
    Entity.TEMPLATE_STATUS.value: _template_status, Entity.DATA.value: _data,
    Entity.ROLLOUT.value: _named(Entity.ROLLOUT), Entity.ROLLOUT_BODY.value: _rollout_body,
}


def decode_value(ref: KeyRef, key: str, data: bytes) -> Value:
    """Decode the bytes stored at ``key`` (which ``ref`` names)."""
    entity = ref.entity
    if entity is Entity.UNIT:
        return codec.decode_unit(key, ref.name, data)
    if entity is Entity.SCHEDULED:
        return codec.decode_entry(key, ref.name, data)
    if entity is Entity.MACHINE:
        return codec.decode_machine(key, data)
    if entity is Entity.STATE:
        return codec.decode_state(key, ref.name, ref.machine, data)
    if entity is Entity.EXPLANATION:
        return codec.decode_explanation(key, data)
    if entity in (Entity.REQUEST, Entity.REPLY):
        from unitctl import channel  # only the agent channel's keys need it (start-up cost)

        if entity is Entity.REQUEST:
            return channel.decode_request(key, data)
        return channel.decode_reply(key, data)
    return data.decode()


class Keyspace(Frozen):
    """Parses and decodes the keys under one prefix."""

    __slots__ = ("keys",)
    keys: Keys

    def __init__(self, keys: Keys) -> None:
        init(self, keys)

    def parse(self, key: str) -> KeyRef | None:
        """What ``key`` names, or None when it is not part of the layout."""
        prefix = self.keys.prefix
        if not key.startswith(prefix):
            return None
        head, sep, tail = key[len(prefix):].partition("/")
        if not sep:
            singles = {"version": Entity.VERSION, "leader": Entity.LEADER}
            return KeyRef(singles[head]) if head in singles else None
        parser = _TAIL_PARSERS.get(head)
        return parser(tail) if parser is not None and tail else None

    def ref(self, key: str, entity: Entity) -> KeyRef:
        """What ``key`` names; RegistryError unless it is a key of ``entity``."""
        ref = self.parse(key)
        if ref is None or ref.entity is not entity:
            raise RegistryError(f"unexpected key {key} (not under {entity.value}/)")
        return ref

    def decode(self, kv: KeyValue) -> Record | None:
        """The stored key decoded, or None when it is not part of the layout."""
        ref = self.parse(kv.key)
        if ref is None:
            return None
        return Record(kv.key, ref, decode_value(ref, kv.key, kv.value), kv.value, kv.mod_rev)

    def decode_event(self, ev: Event) -> Record | None:
        """A watch event decoded (value None for a delete), or None for a foreign key."""
        ref = self.parse(ev.key)
        if ref is None:
            return None
        if ev.kind is EventKind.DELETE:
            return Record(ev.key, ref, None, b"", ev.mod_rev)
        return Record(ev.key, ref, decode_value(ref, ev.key, ev.value), ev.value, ev.mod_rev)

    # -- typed decoders, for a key whose entity the caller knows ----------
    def unit(self, kv: KeyValue) -> UnitRecord:
        return codec.decode_unit(kv.key, self.ref(kv.key, Entity.UNIT).name, kv.value)

    def entry(self, kv: KeyValue) -> tuple[str, ScheduleEntry]:
        """(machine, entry) of a ``schedule/<machine>/<unit>`` key."""
        ref = self.ref(kv.key, Entity.SCHEDULED)
        return ref.machine, codec.decode_entry(kv.key, ref.name, kv.value)

    def machine(self, kv: KeyValue) -> Machine:
        self.ref(kv.key, Entity.MACHINE)
        return codec.decode_machine(kv.key, kv.value)

    def state(self, kv: KeyValue) -> UnitState:
        ref = self.ref(kv.key, Entity.STATE)
        return codec.decode_state(kv.key, ref.name, ref.machine, kv.value)

    def explanation(self, kv: KeyValue) -> tuple[str, dict[str, str]]:
        """(unit, reasons) of an ``explain/<unit>`` key."""
        ref = self.ref(kv.key, Entity.EXPLANATION)
        return ref.name, codec.decode_explanation(kv.key, kv.value)

    def placement(self, kv: KeyValue) -> tuple[str, str]:
        """(unit, machine id) of a ``placements/<unit>`` key."""
        return self.ref(kv.key, Entity.PLACEMENT).name, kv.value.decode()

    def request(self, kv: KeyValue) -> tuple[str, Request]:
        """(request id, request) of a ``requests/<machine>/<id>`` key."""
        from unitctl import channel  # see decode_value

        return self.ref(kv.key, Entity.REQUEST).name, channel.decode_request(kv.key, kv.value)

    def reply(self, kv: KeyValue) -> tuple[int, Reply]:
        """(sequence number, reply) of a ``replies/<id>/<seq>`` key."""
        from unitctl import channel  # see decode_value

        return self.ref(kv.key, Entity.REPLY).seq, channel.decode_reply(kv.key, kv.value)

    def body(self, kv: KeyValue) -> tuple[str, str]:
        """(sha, unit text) of a ``bodies/<sha>`` key."""
        return self.ref(kv.key, Entity.BODY).name, kv.value.decode()
