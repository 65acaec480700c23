"""When the engine runs its next round: how long the changes of a burst gather (pure).

:func:`gathering` picks the wait after a trigger (none for a lone change, the
last round's length for a burst, at most a second); :func:`gather_left` ends
it early once the burst is over, or lets it run to :data:`GATHER_MAX` while
changes keep coming (a bulk ``start`` streaming its transactions goes into
one round). ``Engine._gather`` is the one place the engine waits before a round.
"""

from __future__ import annotations

import math


def gathering(quiet: float, debounce: float, last_round: float, committed: bool = True
              ) -> float:
    """How long a round waits after its trigger for more changes to gather.

    ``quiet``: how long the engine waited for the trigger since its last round
    ended (0: a change came while it ran); ``committed``: that round wrote
    something. A change that finds the engine idle for at least the gathering
    time (a lone change), or that came after a round which wrote nothing had
    ended (``unitctl start`` creates the unit, then sets it launched: the first
    round has nothing to place), runs at once: 0. A change that came during a
    round, or soon after one that wrote (a burst), waits ``debounce`` for the
    rest of it, and under load as long as the last round took (up to a second),
    so rounds take at most about half of the time and a huge rollout never
    delays the next change for long.
    """
    wait = min(max(debounce, last_round), 1.0)
    return 0.0 if quiet >= wait or (not committed and quiet > 0) else wait


#: Seconds without a change after which a burst counts as over (a streaming bulk
#: ``start`` writes a transaction every few tens of milliseconds, even under load).
GATHER_QUIET = 0.1
#: The longest the gathering waits while changes keep coming in.
GATHER_MAX = 1.0


def gather_left(now: float, deadline: float, changed_at: float, started: float = -math.inf,
                cap: float = -math.inf, quiet: float = GATHER_QUIET) -> float:
    """Seconds the gathering before a round still waits at ``now`` (0: run the round).

    It ends once the last change (at ``changed_at``) is ``quiet`` seconds old; else
    at ``deadline``, or at ``cap`` when a change came after the wait ``started``
    (the burst is still going)."""
    if now - changed_at >= quiet:
        return 0.0
    end = max(deadline, cap) if changed_at > started else deadline
    if now >= end:
        return 0.0
    return min(end - now, quiet - (now - changed_at))
