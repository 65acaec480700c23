"""Transactions stay under etcd's request limit: op count and key + value bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from unitctl.engine.commit import pack
from unitctl.model import DesiredState, UnitRecord
from unitctl.registry.kv import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Compare,
    Group,
    Op,
    Put,
    mod_is,
    request_bytes,
)
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile


class SizedKV(MemoryKV):
    """Records each transaction's (ops, bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        self.sizes.append((len(compares) + len(success), request_bytes(compares, success)))
        return await super().txn(compares, success, failure)


def test_pack_splits_by_bytes_and_by_ops() -> None:
    big: list[Group] = [([mod_is(f"/p/{i}", 0)], [Put(f"/k/{i}", b"x" * 400_000)])
                        for i in range(10)]
    batches = pack(big)
    assert len(batches) == 4
    assert all(request_bytes([c for g in b for c in g[0]], [o for g in b for o in g[1]])
               <= MAX_TXN_BYTES for b in batches)
    small: list[Group] = [([], [Put(f"/k/{i}", b"")]) for i in range(300)]
    assert [len(b) for b in pack(small)] == [MAX_TXN_OPS, MAX_TXN_OPS, 60]


def test_create_units_splits_big_bodies_under_the_request_limit() -> None:
    async def go() -> None:
        kv = SizedKV()
        reg = Registry(kv)
        units = []
        for i in range(30):
            uf = UnitFile.parse(f"[Unit]\nDescription={i:03d}{'x' * 60_000}\n[Service]\n"
                                "ExecStart=/bin/true\n")
            units.append((UnitRecord(f"u{i}.service", uf.hash(), DesiredState.INACTIVE),
                          uf.serialize()))
        units.append(units[0])  # a name twice: the second is refused
        one = UnitFile.parse("[Service]\nExecStart=/bin/true\n")
        units += [(UnitRecord(f"s{i}.service", one.hash(), DesiredState.INACTIVE),
                   one.serialize()) for i in range(100)]  # one shared body
        created = await reg.create_units(units)
        assert created == [True] * 30 + [False] + [True] * 100
        assert len(kv.sizes) > 2
        assert all(n <= MAX_TXN_OPS and b <= MAX_TXN_BYTES for n, b in kv.sizes)
        assert len(await reg.list_units()) == 130
    asyncio.run(go())
