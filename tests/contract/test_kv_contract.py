"""One contract suite for the KV port, run on MemoryKV and on a real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import KVFactory
from unitctl.errors import RegistryError, RegistryUnavailable
from unitctl.registry.blocking import run_blocking
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.kv import (
    KV,
    MAX_TXN_OPS,
    Compare,
    CompareField,
    Delete,
    Put,
    Txn,
    mod_is,
    prefix_empty,
    value_is,
)
from unitctl_testing.etcd import EtcdCluster


def run(make: KVFactory, body: Callable[[KV], Awaitable[None]]) -> None:
    async def go() -> None:
        kv = await make()
        try:
            await body(kv)
        finally:
            await kv.close()
    asyncio.run(go())


def test_put_get_and_revisions(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        k = key_prefix + "a"
        assert await kv.get(k) is None
        r1 = await kv.put(k, b"1")
        got = await kv.get(k)
        assert got is not None and got.value == b"1"
        assert got.create_rev == got.mod_rev == r1 and got.version == 1
        r2 = await kv.put(k, b"2")
        got2 = await kv.get(k)
        assert got2 is not None and got2.mod_rev == r2 > r1 and got2.create_rev == r1
        assert got2.version == 2
    run(make_kv, body)


def test_get_many_in_order_with_absent_keys(make_kv: KVFactory, key_prefix: str) -> None:
    """get_many: each key in the order asked, None where absent, as get() sees it."""
    async def body(kv: KV) -> None:
        assert await kv.get_many([]) == []
        await kv.put(key_prefix + "a", b"1")
        await kv.put(key_prefix + "c", b"3" * 70_000)  # a body-sized value
        await kv.put(key_prefix + "a", b"2")
        keys = [key_prefix + k for k in ("c", "b", "a", "c")]
        got = await kv.get_many(keys)
        assert [None if g is None else g.value for g in got] == [b"3" * 70_000, None, b"2",
                                                                 b"3" * 70_000]
        assert got == [await kv.get(k) for k in keys]  # revisions and versions too
        many = [f"{key_prefix}m{i:03d}" for i in range(MAX_TXN_OPS)]
        for k in many[::2]:
            await kv.put(k, k.encode())
        found = await kv.get_many(many)
        assert [g is not None and g.value == k.encode() for g, k in zip(found, many, strict=True)] \
            == [i % 2 == 0 for i in range(MAX_TXN_OPS)]
    run(make_kv, body)


def test_get_many_of_large_values_over_a_client_receive_limit(make_kv: KVFactory,
                                                              key_prefix: str) -> None:
    """24 values of 1 MiB (24 MiB, over the gRPC client's 16 MiB receive limit): the
    adapter splits the read, every value comes back whole."""
    async def body(kv: KV) -> None:
        keys = [f"{key_prefix}big{i:02d}" for i in range(24)]
        for i, k in enumerate(keys):
            await kv.put(k, bytes([65 + i]) * (1024 * 1024))
        got = await kv.get_many(keys)
        assert [g.value if g else None for g in got] == \
            [bytes([65 + i]) * (1024 * 1024) for i in range(24)]
        await kv.delete(key_prefix, prefix=True)
    run(make_kv, body)


def test_get_prefix_sorted_with_revision(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        for k in ("b", "a", "c/d"):
            await kv.put(key_prefix + k, k.encode())
        await kv.put(key_prefix.rstrip("/") + "x", b"outside")
        rng = await kv.get_prefix(key_prefix)
        assert [x.key for x in rng.kvs] == [key_prefix + k for k in ("a", "b", "c/d")]
        assert rng.revision >= max(x.mod_rev for x in rng.kvs)
        assert await kv.revision() >= rng.revision
    run(make_kv, body)


def test_delete_and_delete_prefix(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        await kv.put(key_prefix + "p/1", b"")
        await kv.put(key_prefix + "p/2", b"")
        await kv.put(key_prefix + "q", b"")
        assert await kv.delete(key_prefix + "q") == 1
        assert await kv.delete(key_prefix + "q") == 0
        assert await kv.delete(key_prefix + "p/", prefix=True) == 2
        assert (await kv.get_prefix(key_prefix)).kvs == ()
    run(make_kv, body)


def test_txn_compare_and_swap(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        k = key_prefix + "cas"
        assert await kv.txn([mod_is(k, 0)], [Put(k, b"first")])
        assert not await kv.txn([mod_is(k, 0)], [Put(k, b"second")], [Put(k + "f", b"x")])
        got = await kv.get(k)
        assert got is not None and got.value == b"first"
        assert await kv.get(k + "f") is not None  # failure branch applied
        assert await kv.txn([value_is(k, b"first")], [Put(k, b"third")])
        assert not await kv.txn([value_is(k + "missing", b"")], [Put(k, b"no")])
        assert await kv.txn([Compare(k, CompareField.VERSION, ">", 1)], [Delete(k)])
        assert await kv.get(k) is None
    run(make_kv, body)


def test_txn_prefix_compare(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        refs = key_prefix + "refs/"
        assert await kv.txn([prefix_empty(refs)], [Put(key_prefix + "gc1", b"")])
        await kv.put(refs + "x", b"")
        assert not await kv.txn([prefix_empty(refs)], [Put(key_prefix + "gc2", b"")])
        assert await kv.get(key_prefix + "gc2") is None
        rev = await kv.get(refs + "x")
        assert rev is not None
        assert await kv.txn([Compare(refs, CompareField.MOD, "<", rev.mod_rev + 1, prefix=True)],
                            [Put(key_prefix + "gc3", b"")])
    run(make_kv, body)


def test_lease_expiry_deletes_keys(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        lease = await kv.grant_lease(1)
        await kv.put(key_prefix + "leased", b"x", lease)
        assert await kv.refresh_lease(lease) >= 1
        for _ in range(60):
            await asyncio.sleep(0.1)
            if await kv.get(key_prefix + "leased") is None:
                break
        assert await kv.get(key_prefix + "leased") is None
        assert await kv.refresh_lease(lease) <= 0  # aetcd returns TTL <= 0, no raise
    run(make_kv, body)


def test_revoke_lease(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        lease = await kv.grant_lease(30)
        await kv.put(key_prefix + "r", b"x", lease)
        got = await kv.get(key_prefix + "r")
        assert got is not None and got.lease == lease
        await kv.revoke_lease(lease)
        assert await kv.get(key_prefix + "r") is None
        await kv.revoke_lease(lease)  # idempotent
    run(make_kv, body)


def test_watch_prefix_from_revision(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        w = key_prefix + "w/"
        r0 = await kv.put(w + "before", b"0")
        seen: list[tuple[str, str]] = []

        async def watch() -> None:
            async for batch in kv.watch_prefix(w, r0):
                seen.extend((e.kind.value, e.key.removeprefix(w)) for e in batch)
                if len(seen) >= 3:
                    return
        task = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        await kv.put(key_prefix + "other", b"")
        await kv.put(w + "after", b"1")
        await kv.delete(w + "before")
        await asyncio.wait_for(task, 5)
        assert seen == [("put", "before"), ("put", "after"), ("delete", "before")]
    run(make_kv, body)


def test_a_transactions_events_arrive_in_one_batch(make_kv: KVFactory, key_prefix: str) -> None:
    """A watcher is woken once per transaction, not once per key: an engine commit
    of a machine's 10 schedule entries is one wake of its agent (EtcdKV used to
    yield aetcd's events one by one: 10 wakes)."""
    async def body(kv: KV) -> None:
        w = key_prefix + "batch/"
        rev = await kv.put(key_prefix + "start", b"")
        batches: list[list[str]] = []

        async def watch() -> None:
            async for batch in kv.watch_prefix(w, rev):
                batches.append([e.key.removeprefix(w) for e in batch])
                if sum(map(len, batches)) >= 10:
                    return
        task = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        assert await kv.txn([], [Put(f"{w}k{i}", b"v") for i in range(10)])
        await asyncio.wait_for(task, 5)
        assert batches == [[f"k{i}" for i in range(10)]]
    run(make_kv, body)


def _independent_txns(prefix: str) -> list[Txn]:
    """Eight transactions over disjoint keys; the fourth's compare fails."""
    txns: list[Txn] = []
    for i in range(8):
        key = f"{prefix}many/k{i}"
        compare = mod_is(key, 12345) if i == 3 else mod_is(key, 0)
        txns.append(([compare], [Put(key, f"v{i}".encode()), Put(key + "-b", b"b")]))
    return txns


def test_txn_many_applies_independent_transactions(make_kv: KVFactory,
                                                   key_prefix: str) -> None:
    """Each transaction as txn() would apply it, whatever order they ran in; the
    outcomes in order; the one whose compare failed wrote nothing."""
    async def body(kv: KV) -> None:
        got = await kv.txn_many(_independent_txns(key_prefix))
        assert got == [True, True, True, False, True, True, True, True]
        values = await kv.get_many([f"{key_prefix}many/k{i}" for i in range(8)])
        assert [v.value if v else None for v in values] == [
            None if i == 3 else f"v{i}".encode() for i in range(8)]
        assert await kv.txn_many([]) == []
    run(make_kv, body)


def test_txn_many_without_an_event_loop(etcd: EtcdCluster, key_prefix: str) -> None:
    """The gateway driven by run_blocking (the CLI's bulk verbs) runs them in threads,
    each on a connection of its own, with the same outcomes."""
    kv = GatewayKV.create(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=10))
    got = run_blocking(kv.txn_many(_independent_txns(key_prefix)))
    assert got == [True, True, True, False, True, True, True, True]
    values = run_blocking(kv.get_many([f"{key_prefix}many/k{i}" for i in range(8)]))
    assert [v.value if v else None for v in values] == [
        None if i == 3 else f"v{i}".encode() for i in range(8)]


@pytest.mark.parametrize("adapter", [EtcdKV, GatewayKV])
def test_unreachable_store_raises_registry_unavailable(adapter: type[EtcdKV | GatewayKV]) -> None:
    async def go() -> None:
        kv = await adapter.connect(EtcdConfig(endpoints=("http://127.0.0.1:9",), timeout=1))
        with pytest.raises(RegistryUnavailable):
            await kv.get("/x")
        await kv.close()
    asyncio.run(go())


def test_a_value_near_the_request_limit_round_trips(make_kv: KVFactory, key_prefix: str) -> None:
    """A 1 MiB body (the CLI's limit) with its keys in one transaction, read back whole."""
    async def body(kv: KV) -> None:
        big = bytes(range(256)) * 4096
        assert await kv.txn([mod_is(key_prefix + "big", 0)],
                            [Put(key_prefix + "big", big), Put(key_prefix + "ref", b"")])
        got = await kv.get(key_prefix + "big")
        assert got is not None and got.value == big
        assert [x.value for x in (await kv.get_prefix(key_prefix)).kvs] == [big, b""]
    run(make_kv, body)


def test_a_transaction_at_the_op_limit_is_accepted(make_kv: KVFactory, key_prefix: str) -> None:
    """MAX_TXN_OPS compares and MAX_TXN_OPS puts in one transaction: etcd's
    --max-txn-ops (128) bounds each list on its own, which pack relies on."""
    async def body(kv: KV) -> None:
        keys = [f"{key_prefix}op/{i:03}" for i in range(MAX_TXN_OPS)]
        assert await kv.txn([mod_is(k, 0) for k in keys], [Put(k, b"v") for k in keys])
        assert len((await kv.get_prefix(key_prefix + "op/")).kvs) == MAX_TXN_OPS
        over = [f"{key_prefix}over/{i:03}" for i in range(129)]
        with pytest.raises(RegistryError, match="too many operations"):
            await kv.txn([mod_is(k, 0) for k in over], [Put(over[0], b"v")])
        with pytest.raises(RegistryError, match="too many operations"):
            await kv.txn([], [Put(k, b"v") for k in over])
        assert not (await kv.get_prefix(key_prefix + "over/")).kvs  # nothing applied
    run(make_kv, body)


def test_get_prefix_pages_form_one_snapshot(make_kv: KVFactory, key_prefix: str) -> None:
    """Many keys read two at a time: every key, in order, all at the first page's
    revision, even while another client rewrites them between the pages."""
    async def body(kv: KV) -> None:
        names = [f"{key_prefix}k{i:03d}" for i in range(300)]
        for i in range(0, len(names), 100):
            await kv.txn([], [Put(k, b"old") for k in names[i:i + 100]])
        kv.page_size = 2
        writer = await make_kv()
        await writer.get(names[0])  # both connected before the race
        await kv.get(names[0])
        started = asyncio.Event()

        async def overwrite() -> None:  # in key order: a snapshot sees a prefix rewritten
            for i in range(0, len(names), 10):
                await writer.txn([], [Put(k, b"new") for k in names[i:i + 10]])
                started.set()
        try:
            task = asyncio.create_task(overwrite())
            await started.wait()
            rng = await kv.get_prefix(key_prefix)
            await task
        finally:
            await writer.close()
        assert [x.key for x in rng.kvs] == names
        assert all(x.mod_rev <= rng.revision for x in rng.kvs)
        values = [x.value for x in rng.kvs]
        rewritten = values.count(b"new")
        assert values == [b"new"] * rewritten + [b"old"] * (len(names) - rewritten)
        assert all(x.value == b"new" for x in (await kv.get_prefix(key_prefix)).kvs)
    run(make_kv, body)


def test_a_watch_cancelled_at_any_moment_ends(make_kv: KVFactory, key_prefix: str) -> None:
    """Cancelled while it connects or reads, a watch ends (asyncio.wait_for in
    Python 3.11 may swallow a cancellation that races the connection)."""
    async def body(kv: KV) -> None:
        async def watch() -> None:
            async for _ in kv.watch_prefix(key_prefix, 1):
                pass
        hung = 0
        for i in range(60):
            task = asyncio.create_task(watch())
            await asyncio.sleep((i % 30) * 0.0001)
            task.cancel()
            try:
                await asyncio.wait_for(task, 3)
            except asyncio.CancelledError:
                pass
            except TimeoutError:
                hung += 1
        assert hung == 0
    run(make_kv, body)
