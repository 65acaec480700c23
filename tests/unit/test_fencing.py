"""The fencing rule (pure), case by case."""

from __future__ import annotations

import pytest

from unitctl.agent.fencing import PeerReport, Verdict, decide

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
