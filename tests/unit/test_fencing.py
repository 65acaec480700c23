"""The fencing rule (pure), case by case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.agent.fencing import (
    FENCE_AFTER,
    LAST_LOOK,
    LOSS_GRACE,
    PeerReport,
    Verdict,
    check_interval,
    decide,
    fence_margin,
    hold_backoff_cap,
    hold_pause,
    peer_timeout,
    retry_interval,
)

TTL, KEEPALIVE = 8.0, 1.0  # peers are asked once the lease is FENCE_AFTER * 8 = 5 s old


@pytest.mark.parametrize("age,known,reports,verdict,word", [
    (1.0, 2, [], Verdict.OK, "reachable"),
    (4.9, 2, [], Verdict.OK, "reachable"),
    # cut off while a peer still talks to etcd: fence
    (5.0, 2, [PeerReport("a" * 32, 0.3), PeerReport("b" * 32, 6.0)], Verdict.FENCE, "aaaaaaaa"),
    # isolated: nobody answers
    (5.0, 2, [], Verdict.FENCE, "isolated"),
    # a peer is silent: it may be on the side that reaches etcd
    (5.0, 2, [PeerReport("a" * 32, 5.2)], Verdict.FENCE, "1 of 2"),
    # etcd down for everyone: every peer lost it about when we did
    (5.0, 2, [PeerReport("a" * 32, 4.5), PeerReport("b" * 32, 5.4)], Verdict.HOLD, "every peer"),
    # a peer whose last contact is only a keepalive younger than ours is not "fresh"
    (5.0, 1, [PeerReport("a" * 32, 5.0 - KEEPALIVE)], Verdict.HOLD, "every peer"),
    # one-machine cluster: nobody could take over
    (6.0, 0, [], Verdict.HOLD, "no peers"),
])
def test_decide(age: float, known: int, reports: list[PeerReport], verdict: Verdict,
                word: str) -> None:
    got, why = decide(age, TTL, KEEPALIVE, known, reports)
    assert got is verdict
    assert word in why


@pytest.mark.parametrize("lease_age,previous,pause", [
    (5.0, 0.0, 0.4),     # before ttl + LOSS_GRACE (8.5 s): every check interval (ttl/20)
    (8.4, 3.0, 0.4),     # still: the lease may be alive without etcd having renewed it
    (8.5, 0.4, 0.8),     # then doubling
    (20.0, 1.6, 3.2),
    (20.0, 3.2, 4.0),    # up to the cap: 0.625 * 8 + 0.4 - 2 * 0.5 - 0.4 = 4.0
    (99.0, 4.0, 4.0),
])
def test_hold_pause_backs_off_once_the_lease_could_only_live_by_an_etcd_restart(
        lease_age: float, previous: float, pause: float) -> None:
    assert hold_pause(TTL, lease_age, previous) == pytest.approx(min(pause, hold_backoff_cap(TTL)))


@given(st.floats(min_value=0.5, max_value=600, allow_nan=False))
def test_the_hold_cap_keeps_the_fence_margin_after_etcd_comes_back(ttl: float) -> None:
    """etcd back for a peer ``retry`` after its return at the latest; the round running
    here may have heard that peer stale (one query), the next starts at most the cap
    later and fences after one more query and the last look. That must come no later
    after etcd's return than the normal fence after the last renewal."""
    query = 2 * peer_timeout(ttl)
    held = retry_interval(ttl) + query + hold_backoff_cap(ttl) + query + LAST_LOOK
    normal = FENCE_AFTER * ttl + check_interval(ttl) + query + LAST_LOOK
    assert held <= normal + 1e-9 or hold_backoff_cap(ttl) == check_interval(ttl)
    assert ttl + LOSS_GRACE - normal == pytest.approx(fence_margin(ttl))
    assert hold_backoff_cap(ttl) >= check_interval(ttl)
