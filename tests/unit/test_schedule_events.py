"""An agent's schedule kept from its watch's events, and the engine's pipelined commit.

* :meth:`ScheduleStore.apply_events`: the schedule read once, then every watch
  batch applied, equals a fresh read (puts, deletes, an undecodable value left
  out as the read skips it, another machine's keys ignored);
* :func:`unitctl.registry.schedules._windows`: batches in flight together never
  touch a key another of them writes; the commit result is the sequential one.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.model import DesiredState, ScheduleEntry
from unitctl.registry import codec
from unitctl.registry.kv import Delete, Group, Put, mod_is
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.registry.schedules import COMMIT_IN_FLIGHT, _windows

M, OTHER = "m" * 32, "o" * 32

#: (op, unit index, hash index): put a valid entry, put garbage, or delete
CHANGE = st.tuples(st.sampled_from(["put", "bad", "delete", "other"]),
                   st.integers(0, 5), st.integers(0, 2))


async def _follow(changes: list[list[tuple[str, int, int]]]) -> None:
    reg = Registry(MemoryKV(), "/p/")
    entries, rev = await reg.get_schedule(M)
    watch = reg.watch_schedule(M, rev + 1)
    for batch in changes:
        ops = []
        for op, i, h in batch:
            key = reg.keys.scheduled(OTHER if op == "other" else M, f"u{i}.service")
            entry = ScheduleEntry(f"u{i}.service", f"h{h}", DesiredState.LAUNCHED)
            ops.append(Delete(key) if op == "delete" else
                       Put(key, b"{not json" if op == "bad" else codec.encode_entry(entry)))
        ops = list({o.key: o for o in ops}.values())  # one op per key per txn
        mine = [o for o in ops if o.key.startswith(reg.keys.schedule(M))]
        changes_mine = [o for o in mine
                        if isinstance(o, Put) or await reg.kv.get(o.key) is not None]
        await reg.kv.txn([], ops)
        if not changes_mine:  # a delete of an absent key is no event
            continue
        events = await asyncio.wait_for(anext(watch), 5)
        entries = reg.schedules.apply_events(M, entries, events)
        assert entries == (await reg.get_schedule(M))[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(CHANGE, min_size=1, max_size=6), max_size=6))
def test_applied_events_equal_a_fresh_read(changes: list[list[tuple[str, int, int]]]) -> None:
    asyncio.run(_follow(changes))


def _group(reads: list[str], writes: list[str]) -> Group:
    return [mod_is(k, 0) for k in reads], [Put(k, b"v") for k in writes]


def test_windows_split_where_a_batch_touches_a_key_another_writes() -> None:
    a = [_group(["u/a"], ["s/a"])]
    b = [_group(["u/b"], ["s/b"])]
    reads_a = [_group(["s/a"], ["s/c"])]
    writes_b = [_group([], ["s/b"])]
    assert _windows([a, b]) == [[a, b]]
    assert _windows([a, reads_a]) == [[a], [reads_a]]
    assert _windows([b, writes_b]) == [[b], [writes_b]]
    many = [[_group([f"u/{i}"], [f"s/{i}"])] for i in range(COMMIT_IN_FLIGHT + 1)]
    assert [len(w) for w in _windows(many)] == [COMMIT_IN_FLIGHT, 1]


def test_windows_keep_order_and_every_batch() -> None:
    batches = [[_group([f"u/{i % 3}"], [f"s/{i % 4}"])] for i in range(20)]
    windows = _windows(batches)
    assert [b for w in windows for b in w] == batches
    for w in windows:
        written = [k for b in w for g in b for k in (o.key for o in g[1])]
        compared = {c.key for b in w for g in b for c in g[0]}
        assert len(written) == len(set(written)) and not compared & set(written)
