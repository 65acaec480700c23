"""KeepaliveStream: many leases' refreshes on one stream (unitctl/registry/leasestream.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from unitctl.registry.leasestream import KeepaliveStream, LeaseKeepalives


@dataclass
class Reply:
    ID: int
    TTL: int


class FakeEtcd:
    """Answers each request with its lease's TTL, in order, unless told to hold;
    counts the streams opened and can break the current one."""

    def __init__(self, ttls: dict[int, int]) -> None:
        self.ttls = ttls
        self.opened = 0
        self.hold = False
        self.break_with: BaseException | None = None
        self.close_cleanly = False
        self.requests: list[int] = []

    async def open(self, requests: AsyncIterator[int]) -> AsyncIterator[Reply]:
        self.opened += 1
        async for lease in requests:
            self.requests.append(lease)
            while self.hold:
                await asyncio.sleep(0.001)
            if self.break_with is not None:
                error, self.break_with = self.break_with, None
                raise error
            if self.close_cleanly:
                self.close_cleanly = False
                return
            yield Reply(lease, self.ttls.get(lease, 0))


def stream(etcd: FakeEtcd, timeout: float = 1.0) -> KeepaliveStream:
    return KeepaliveStream(etcd.open, lambda lease: lease, timeout)


def test_concurrent_refreshes_of_many_leases_share_one_stream() -> None:
    async def go() -> None:
        etcd = FakeEtcd({lease: 10 + lease for lease in range(1, 51)})
        ka = stream(etcd)
        ttls = await asyncio.gather(*(ka.refresh(lease) for lease in range(1, 51)))
        assert ttls == [10 + lease for lease in range(1, 51)]
        assert await ka.refresh(7) == 17
        assert etcd.opened == ka.opened == 1
        await ka.close()
    asyncio.run(go())


def test_a_gone_lease_answers_zero_and_the_stream_goes_on() -> None:
    async def go() -> None:
        etcd = FakeEtcd({1: 5})
        ka = stream(etcd)
        assert await ka.refresh(99) == 0
        assert await ka.refresh(1) == 5
        assert etcd.opened == 1
        await ka.close()
    asyncio.run(go())


def test_a_broken_stream_fails_its_waiters_and_the_next_refresh_reopens() -> None:
    async def go() -> None:
        etcd = FakeEtcd({1: 5, 2: 6})
        ka = stream(etcd)
        assert await ka.refresh(1) == 5
        etcd.hold = True
        waiting = [asyncio.create_task(ka.refresh(lease)) for lease in (1, 2)]
        await asyncio.sleep(0.01)
        etcd.break_with, etcd.hold = OSError("connection reset"), False
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, OSError) for r in results), results
        assert await ka.refresh(2) == 6
        assert etcd.opened == 2
        await ka.close()
    asyncio.run(go())


def test_a_clean_close_is_a_connection_error() -> None:
    async def go() -> None:
        etcd = FakeEtcd({1: 5})
        ka = stream(etcd)
        etcd.close_cleanly = True
        with pytest.raises(ConnectionError):
            await ka.refresh(1)
        assert await ka.refresh(1) == 5
        await ka.close()
    asyncio.run(go())


def test_no_reply_in_time_raises_and_drops_the_stream() -> None:
    async def go() -> None:
        etcd = FakeEtcd({1: 5, 2: 6})
        ka = stream(etcd, timeout=0.05)
        etcd.hold = True
        other = asyncio.create_task(ka.refresh(2))
        with pytest.raises(TimeoutError):
            await ka.refresh(1)
        with pytest.raises(TimeoutError):  # the other lease's waiter is failed with it
            await other
        etcd.hold = False
        assert await ka.refresh(1) == 5
        assert etcd.opened == 2
        await ka.close()
    asyncio.run(go())


def test_a_cancelled_refresh_withdraws_only_itself() -> None:
    async def go() -> None:
        etcd = FakeEtcd({1: 5, 2: 6})
        ka = stream(etcd)
        etcd.hold = True
        gone = asyncio.create_task(ka.refresh(1))
        kept = asyncio.create_task(ka.refresh(2))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        etcd.hold = False
        assert await kept == 6
        assert gone.cancelled()
        assert await ka.refresh(1) == 5  # the cancelled one's late reply went nowhere
        assert etcd.opened == 1
        await ka.close()
    asyncio.run(go())


def test_replies_of_one_lease_go_to_its_refreshes_in_order() -> None:
    async def go() -> None:
        answers = iter([9, 8, 7])

        async def open_(requests: AsyncIterator[Any]) -> AsyncIterator[Reply]:
            async for lease in requests:
                yield Reply(lease, next(answers))

        ka = KeepaliveStream(open_, lambda lease: lease, 1.0)
        first, second, third = (asyncio.create_task(ka.refresh(4)) for _ in range(3))
        assert [await first, await second, await third] == [9, 8, 7]
        await ka.close()
    asyncio.run(go())


class PerLeaseEtcd:
    """etcd's keepalive stream as it behaves: requests answered in order, and a
    lease in ``dead`` (expired, not yet revoked) holds its stream until released."""

    def __init__(self) -> None:
        self.dead: set[int] = set()
        self.release = asyncio.Event()
        self.opened = 0

    async def open(self, requests: AsyncIterator[int]) -> AsyncIterator[Reply]:
        self.opened += 1
        async for lease in requests:
            if lease in self.dead:
                await self.release.wait()
                yield Reply(lease, 0)
                continue
            yield Reply(lease, 10)


def test_a_dead_lease_does_not_hold_another_leases_keepalive() -> None:
    async def go() -> None:
        etcd = PerLeaseEtcd()
        ka = LeaseKeepalives(etcd.open, lambda lease: lease, 5.0)
        assert [await ka.refresh(1), await ka.refresh(2)] == [10, 10]
        etcd.dead.add(1)
        held = asyncio.create_task(ka.refresh(1))
        await asyncio.sleep(0.01)
        assert await asyncio.wait_for(ka.refresh(2), 1) == 10  # not behind lease 1
        assert not held.done()
        etcd.release.set()
        assert await held == 0
        assert ka.opened == 2 and etcd.opened == 2  # one stream per lease, kept
        await ka.close()
    asyncio.run(go())


def test_past_the_bound_leases_share_the_streams() -> None:
    async def go() -> None:
        etcd = FakeEtcd({lease: lease for lease in range(1, 41)})
        ka = LeaseKeepalives(etcd.open, lambda lease: lease, 1.0, max_streams=8)
        for _ in range(3):
            assert await asyncio.gather(*(ka.refresh(lease) for lease in range(1, 41))) \
                == list(range(1, 41))
        assert ka.opened == etcd.opened == 8  # 40 leases, 120 refreshes, 8 streams
        await ka.close()
        assert await ka.refresh(5) == 5  # after close, a new stream
        assert etcd.opened == 9
        await ka.close()
    asyncio.run(go())
