"""The fence's PeerBook: raw machine keys, decoded only when the peers are read."""

from __future__ import annotations

from unittest import mock

from unitctl.agent import fence
from unitctl.agent.fence import PeerBook
from unitctl.model import Machine
from unitctl.registry import codec
from unitctl.registry.kv import KeyValue

BASE = "/p/machines/"
ME, A, B = "0" * 32, "a" * 32, "b" * 32


def _kv(mid: str, ip: str, rev: int = 1) -> KeyValue:
    return KeyValue(BASE + mid, codec.encode_machine(Machine(mid, ip, {}, "t")), rev, rev, 1)


def test_events_are_stored_undecoded_and_read_decoded() -> None:
    book = PeerBook(ME, BASE)
    book.reset([])
    for kv in (_kv(ME, "10.0.0.1"), _kv(A, "10.0.0.2")):
        book.put(kv.key, kv.value, kv.mod_rev)
    assert book.ips() == {A: "10.0.0.2"}
    with mock.patch.object(fence, "decode_machine", wraps=codec.decode_machine) as decode:
        for rev in range(2, 50):  # a burst of re-registrations of B
            kv = _kv(B, f"10.0.1.{rev}", rev)
            book.put(kv.key, kv.value, kv.mod_rev)
        assert decode.call_count == 0
        assert book.ips() == {A: "10.0.0.2", B: "10.0.1.49"}  # this machine excluded
        assert decode.call_count == 1  # each changed key once
        book.ips()
        assert decode.call_count == 1
    book.drop(BASE + A)
    assert book.ips() == {B: "10.0.1.49"}


def test_a_key_that_does_not_decode_is_no_peer() -> None:
    book = PeerBook(ME, BASE)
    kv = _kv(A, "10.0.0.2")
    book.put(kv.key, kv.value, kv.mod_rev)
    book.put(BASE + B, b"{not json", 7)
    assert book.ips() == {A: "10.0.0.2"}
    book.put(BASE + A, b"\xff", 8)  # a peer whose key turns bad is dropped
    assert book.ips() == {}
