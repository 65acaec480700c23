"""The agent's timing and feature switches (built from :class:`unitctl.config.AgentConfig`)."""

from __future__ import annotations

from dataclasses import dataclass


def keepalive_interval(ttl: float) -> float:
    """Seconds between keepalives of a lease of ``ttl`` seconds (TTL/8, at least 0.2 s):
    an etcd outage shorter than ``ttl - keepalive_interval(ttl)`` never expires it.
    The agent's session uses it, and the simulator models the same interval."""
    return max(0.2, ttl / 8)


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Timing and feature switches (from :class:`unitctl.config.AgentConfig`)."""

    ttl: int = 10
    peer_port: int = 7947
    peer_host: str = "0.0.0.0"
    engine: bool = True
    engine_resync: float = 60.0
    resync: float = 60.0
    #: Where the lease id is kept, so a restarted agent adopts its own live
    #: lease instead of waiting for it to expire ("" = do not keep it).
    lease_file: str = ""
