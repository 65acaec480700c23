"""A generated unit's stop timeout, kept inside the fence margin.

When a machine is cut off from etcd, its agent fences (queues a stop of every
unit) at the latest :func:`~unitctl.agent.fencing.fence_margin` seconds before
the engine may start the units elsewhere (2.45 s with the default
``agent_ttl = 10s``; docs/fencing.md, "Unit stop times"). A container must be
gone by then, so a generated unit stops its container with ``docker stop -t
N`` (the container is killed after N s) and carries ``TimeoutStopSec=``:

* ``N`` (spec key ``stop_timeout``, whole seconds) is at most
  :func:`max_stop_timeout` of the cluster's ``agent_ttl`` (spec key
  ``agent_ttl``, default 10 s): the margin less :data:`STOP_OVERHEAD` for the
  kill, the container's exit and the docker client. It defaults to that
  maximum (1 s for the default TTL); a larger value is refused, naming the
  rule: declare the cluster's larger ``agent_ttl`` in the spec to allow more;
* ``TimeoutStopSec=`` is ``N + STOP_OVERHEAD`` (whole seconds): systemd's
  bound on ``docker stop`` itself.

Pure (no I/O).
"""

from __future__ import annotations

import math

from unitctl.agent.fencing import fence_margin
from unitctl.errors import UsageError

__all__ = ["DEFAULT_AGENT_TTL", "STOP_OVERHEAD", "max_stop_timeout", "parse_agent_ttl",
           "parse_stop_timeout", "timeout_stop_sec"]

#: The agent's default ``agent_ttl`` (unitctl.config), seconds.
DEFAULT_AGENT_TTL = 10.0
#: Seconds from the end of docker's grace to the container gone and docker
#: stop returned (the SIGKILL, the exit, the client), allowed on top of N.
STOP_OVERHEAD = 1


def max_stop_timeout(agent_ttl: float) -> int:
    """The largest ``docker stop -t`` that keeps a container inside the fence margin."""
    return max(0, math.floor(fence_margin(agent_ttl) - STOP_OVERHEAD))


def timeout_stop_sec(stop_timeout: int) -> int:
    """``TimeoutStopSec=`` of a unit whose container stops with ``-t stop_timeout``."""
    return stop_timeout + STOP_OVERHEAD


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UsageError(f"spec key {key!r}: expected seconds (got {value!r})")
    try:
        number = float(str(value).strip().removesuffix("s"))
    except ValueError:
        raise UsageError(f"spec key {key!r}: expected seconds (got {value!r})") from None
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"spec key {key!r}: expected seconds (got {value!r})")
    return number


def parse_agent_ttl(value: object) -> float:
    """The cluster's ``agent_ttl`` the unit is meant for (``10``, ``30s``); default 10."""
    if value is None:
        return DEFAULT_AGENT_TTL
    ttl = _number("agent_ttl", value)
    if ttl < 1:
        raise UsageError(f"spec key 'agent_ttl': must be at least 1s (got {value!r})")
    return ttl


def parse_stop_timeout(value: object, agent_ttl: float) -> int:
    """``docker stop -t`` seconds: whole, at most :func:`max_stop_timeout` (the default)."""
    limit = max_stop_timeout(agent_ttl)
    if value is None:
        return limit
    number = _number("stop_timeout", value)
    if number != int(number):
        raise UsageError(f"spec key 'stop_timeout': expected whole seconds (got {value!r})")
    if number > limit:
        raise UsageError(
            f"spec key 'stop_timeout': {int(number)}s is more than the fence allows: with "
            f"agent_ttl {agent_ttl:g}s a container must be gone {fence_margin(agent_ttl):.2f}s "
            f"after the fence stops it, so stop_timeout may be at most {limit}s; raise the "
            "cluster's agent_ttl and declare it with the spec key 'agent_ttl' "
            "(docs/fencing.md, \"Unit stop times\")")
    return int(number)
