"""The agent's timing and feature switches (built from :class:`unitctl.config.AgentConfig`)."""

from __future__ import annotations

from dataclasses import dataclass


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
    #: Seconds a graceful stop may spend stopping units before the agent exits
    #: without revoking its lease (docs/fencing.md, "Graceful stop").
    stop_budget: float = 30.0
    #: Directories config templates may write into (empty: templates disabled).
    template_dirs: tuple[str, ...] = ()
