"""The keyspace decoder: every key of the layout parses back to what built it."""

from __future__ import annotations

import pytest

from unitctl.errors import RegistryError
from unitctl.model import DesiredState, Machine, ScheduleEntry, UnitRecord, UnitState
from unitctl.registry import codec
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Entity, KeyRef, Keyspace
from unitctl.registry.kv import Event, EventKind, KeyValue

K = Keys("/p/")
SPACE = Keyspace(K)


@pytest.mark.parametrize(("key", "ref"), [
    (K.version, KeyRef(Entity.VERSION)),
    (K.leader, KeyRef(Entity.LEADER)),
    (K.unit("a.service"), KeyRef(Entity.UNIT, "a.service")),
    (K.body("abc"), KeyRef(Entity.BODY, "abc")),
    (K.bodyref("abc", "a.service"), KeyRef(Entity.BODYREF, "a.service", body="abc")),
    (K.placement("a.service"), KeyRef(Entity.PLACEMENT, "a.service")),
    (K.scheduled("m1", "a.service"), KeyRef(Entity.SCHEDULED, "a.service", "m1")),
    (K.explanation("a.service"), KeyRef(Entity.EXPLANATION, "a.service")),
    (K.machine("m1"), KeyRef(Entity.MACHINE, "m1", "m1")),
    (K.state("a.service", "m1"), KeyRef(Entity.STATE, "a.service", "m1")),
    (K.metadata_value("m1", "role"), KeyRef(Entity.METADATA, "role", "m1")),
])
def test_every_key_parses_back(key: str, ref: KeyRef) -> None:
    assert SPACE.parse(key) == ref


@pytest.mark.parametrize("key", ["/other/units/a.service", "/p/nothing/x", "/p/units/",
                                 "/p/stray", "/p/units", "/p/metadata/m1",
                                 "/p/metadata/m1/", "/p/metadata/m1/a/b"])
def test_foreign_keys_parse_to_none(key: str) -> None:
    assert SPACE.parse(key) is None


def kv(key: str, value: bytes, mod_rev: int = 7) -> KeyValue:
    return KeyValue(key, value, 1, mod_rev, 1)


def test_values_decode_to_their_entity() -> None:
    rec = UnitRecord("a.service", "h", DesiredState.LAUNCHED)
    entry = ScheduleEntry("a.service", "h", DesiredState.LOADED)
    machine = Machine("m1", "10.0.0.1", {"r": "eu"}, "1")
    state = UnitState("a.service", "m1", "loaded", "active", "running", "h")
    cases = [(K.unit("a.service"), codec.encode_unit(rec), rec),
             (K.scheduled("m1", "a.service"), codec.encode_entry(entry), entry),
             (K.machine("m1"), codec.encode_machine(machine), machine),
             (K.state("a.service", "m1"), codec.encode_state(state), state),
             (K.explanation("a.service"), codec.encode_explanation({"m1": "no"}), {"m1": "no"}),
             (K.placement("a.service"), b"m1", "m1")]
    for key, data, value in cases:
        got = SPACE.decode(kv(key, data))
        assert got is not None and (got.value, got.data, got.mod_rev) == (value, data, 7)
    assert SPACE.unit(kv(K.unit("a.service"), codec.encode_unit(rec))) == rec
    assert SPACE.entry(kv(K.scheduled("m1", "a.service"), codec.encode_entry(entry))) == (
        "m1", entry)
    assert SPACE.state(kv(K.state("a.service", "m1"), codec.encode_state(state))) == state


def test_events_decode_and_a_delete_has_no_value() -> None:
    put = SPACE.decode_event(Event(EventKind.PUT, K.placement("a.service"), b"m1", 9))
    gone = SPACE.decode_event(Event(EventKind.DELETE, K.placement("a.service"), b"", 10))
    assert put is not None and put.value == "m1" and put.mod_rev == 9
    assert gone is not None and gone.value is None and gone.ref.name == "a.service"
    assert SPACE.decode_event(Event(EventKind.PUT, "/elsewhere", b"", 1)) is None


def test_typed_decoder_refuses_a_key_of_another_entity() -> None:
    with pytest.raises(RegistryError, match="unexpected key"):
        SPACE.unit(kv(K.placement("a.service"), b"m1"))
    with pytest.raises(RegistryError, match="corrupt value"):
        SPACE.unit(kv(K.unit("a.service"), b"not json"))
