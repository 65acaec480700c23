"""How the registry's bulk writes pack units into transactions (pure): under
etcd's op limit (``--max-txn-ops``: compares and ops counted each on their own)
and its request size (:data:`~unitctl.registry.kv.MAX_TXN_BYTES`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from unitctl.model import UnitRecord
from unitctl.registry.kv import MAX_TXN_BYTES, MAX_TXN_OPS, Compare, Op, request_bytes

__all__ = ["cas_chunks", "destroy_chunks"]


def cas_chunks(names: list[str], cas: Callable[[str], tuple[Compare, Op]],
               ) -> Iterator[list[str]]:
    """Consecutive names whose compare-and-swap pairs fit one transaction
    (at most :data:`MAX_TXN_OPS` compares and as many ops: etcd bounds each
    list on its own; :data:`MAX_TXN_BYTES` bytes)."""
    chunk: list[str] = []
    size = 0
    for name in names:
        cmp, op = cas(name)
        b = request_bytes([cmp], [op])
        if chunk and (len(chunk) + 1 > MAX_TXN_OPS or size + b > MAX_TXN_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(name)
        size += b
    if chunk:
        yield chunk


def destroy_chunks(groups: list[tuple[str, UnitRecord]],
                   ) -> Iterator[list[tuple[str, UnitRecord]]]:
    """Consecutive units whose deletes (the unit key and its body reference, one
    compare) fit one transaction: at most :data:`MAX_TXN_OPS` ops."""
    chunk: list[tuple[str, UnitRecord]] = []
    ops = 0
    for name, rec in groups:
        mine = 2 if rec.hash else 1
        if chunk and ops + mine > MAX_TXN_OPS:
            yield chunk
            chunk, ops = [], 0
        chunk.append((name, rec))
        ops += mine
    if chunk:
        yield chunk
