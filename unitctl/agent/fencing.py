"""Fencing: stop this machine's units before anyone else may start them.

The rule (documented in docs/fencing.md):

* The engine re-places a machine's units only after the machine's lease has
  expired, i.e. ``agent_ttl`` after the agent's last successful keepalive.
* An agent whose lease has not been renewed for ``FENCE_AFTER * ttl`` (counted
  from the *sending* of the last keepalive that etcd answered: the lease cannot
  expire earlier than ``ttl`` after it) asks its peers (the other live machines
  it last saw) how long ago *they* last reached etcd.
  A peer "reaches etcd" when its last contact is more recent than this
  machine's first failed keepalive (``peer_age < own_age - keepalive - SLACK``):
  ages are relative, so no clock needs to agree with another.
  - some peer reaches etcd → this machine is cut off while the cluster goes on:
    **fence** (stop every local unit now, well before the lease can expire);
  - no peer answers at all → this machine is isolated: **fence**;
  - some peer does not answer → it may be on the side of a split that still
    reaches etcd: **fence** (safety first: a unit must never run twice);
  - every known peer answers and every one is cut off from etcd too → etcd
    itself is down; no engine can move anything and leases survive an etcd
    restart: **hold** (stop nothing);
  - there are no peers (a one-machine cluster) → nobody could take the units:
    **hold**.

This module is the pure rule (no I/O); :mod:`unitctl.agent.fence` holds the
loop that applies it and the small TCP protocol that asks the peers.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

#: Fraction of the TTL since the last renewal of the lease after which peers are
#: consulted: 1/2 + 1/8, where the fence acted at the latest before (half the TTL
#: after a contact that could come one TTL/8 keepalive after the renewal). Counted
#: from the renewal itself, the margins no longer depend on the keepalive interval.
FENCE_AFTER = 0.625
#: Allowance for round trips when comparing a peer's age with ours (seconds).
SLACK = 0.1
#: The last look at etcd before fencing (seconds).
LAST_LOOK = 0.3
#: How long the engine waits after a machine's key vanished before it moves
#: its units (the engine's ``loss_grace``, seconds).
LOSS_GRACE = 0.5


def keepalive_interval(ttl: float) -> float:
    """Seconds between keepalives of a lease of ``ttl`` seconds (TTL/5, at least 0.2 s):
    an etcd outage shorter than ``ttl - keepalive_interval(ttl)`` never expires it
    (docs/fencing.md, "Why the keepalive is agent_ttl/5"). The agent's session
    uses it, and the simulator models the same interval."""
    return max(0.2, ttl / 5)


def retry_interval(ttl: float) -> float:
    """Seconds between two attempts to renew the lease while none has answered
    (TTL/20, at least 0.05 s): a keepalive that fails, or whose answer is slow or
    lost, is followed by another this soon, and not one keepalive interval later."""
    return max(0.05, ttl / 20)


def check_interval(ttl: float) -> float:
    """Seconds between two looks of the fence loop at the age of the last contact."""
    return max(0.05, ttl / 20)


def peer_timeout(ttl: float) -> float:
    """Seconds to connect to a peer, and again to read its answer."""
    return min(0.5, ttl / 10)


def fence_margin(ttl: float) -> float:
    """Worst-case seconds from "the fence queued the stops here" to "the units may
    start elsewhere": the time a unit has to stop (docs/fencing.md, "Timing").

    The lease expires ``ttl`` after the last keepalive etcd answered (at the
    earliest: counted from its sending), and the engine waits ``LOSS_GRACE``
    more. The fence acts ``FENCE_AFTER * ttl`` after that same sending, plus up
    to one check interval, the peer query (connect + read) and the last look at
    etcd.
    """
    fenced = FENCE_AFTER * ttl + check_interval(ttl) + 2 * peer_timeout(ttl) + LAST_LOOK
    return ttl + LOSS_GRACE - fenced


def hold_backoff_cap(ttl: float) -> float:
    """The longest pause between two questions to the peers while holding (etcd
    down for everyone): ``FENCE_AFTER * ttl + check - 2 * peer_timeout - retry``
    (5.25 s at TTL 10, at least one check interval).

    Why this bound keeps :func:`fence_margin`: when etcd comes back (restarted or
    re-elected, every lease renewed for ``ttl``) for some peer but not for this
    machine, that peer answers "fresh" within one retry of its keepalive. The
    round then running here may have heard it stale; the next one starts at most
    one peer query plus this pause later, hears it fresh, and fences after one
    more query and the last look. That is no later after etcd's return than the
    normal fence is after the last renewal, so the units have the same margin
    before the lease (renewed at etcd's return) can expire.
    """
    cap = FENCE_AFTER * ttl + check_interval(ttl) - 2 * peer_timeout(ttl) - retry_interval(ttl)
    return max(check_interval(ttl), cap)


def hold_pause(ttl: float, lease_age: float, previous: float) -> float:
    """Seconds until the next question to the peers after a HOLD verdict.

    While the lease may still be alive without etcd having renewed it
    (``lease_age < ttl + LOSS_GRACE``), every check interval, as before the
    hold: a peer whose etcd came back before this lease expires must be heard at
    once. After that, doubling from ``previous`` up to :func:`hold_backoff_cap`:
    N agents asking N peers every ttl/20 for the whole of a long etcd outage was
    N x N connections per half second (the "fence storm").
    """
    step = check_interval(ttl)
    if lease_age < ttl + LOSS_GRACE:
        return step
    return min(hold_backoff_cap(ttl), max(step, 2 * previous))


class Verdict(enum.Enum):
    """What the fence loop does: nothing (OK), stop the local units (FENCE) or wait (HOLD)."""

    OK = "ok"
    FENCE = "fence"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class PeerReport:
    """What a peer said: its machine id and seconds since it last reached etcd."""

    machine_id: str
    etcd_age: float


def decide(since_contact: float, ttl: float, keepalive: float, peers_known: int,
           reports: Sequence[PeerReport]) -> tuple[Verdict, str]:
    """Decide whether to fence, and why.

    Args:
        since_contact: seconds since this agent's lease was last renewed (since
            the sending of the last keepalive that etcd answered).
        ttl: the lease TTL; keepalive: seconds between this agent's keepalives
            (``since_contact - keepalive`` is the age of its first missed one).
        peers_known: how many peers were asked; reports: the answers.
    """
    if since_contact < FENCE_AFTER * ttl:
        return Verdict.OK, "etcd reachable"
    if peers_known == 0:
        return Verdict.HOLD, "no peers: nobody could take over the units"
    fresh = [r for r in reports if r.etcd_age < since_contact - keepalive - SLACK]
    if fresh:
        return Verdict.FENCE, (f"peer {fresh[0].machine_id[:8]} reaches etcd "
                               "and this machine does not")
    if not reports:
        return Verdict.FENCE, "isolated: neither etcd nor any peer answers"
    if len(reports) < peers_known:
        return Verdict.FENCE, (f"{peers_known - len(reports)} of {peers_known} peers do not "
                               "answer and may still reach etcd")
    return Verdict.HOLD, "etcd is unreachable from every peer too: holding"
