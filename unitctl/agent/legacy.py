"""Transitional: the engine an :class:`~unitctl.agent.agent.Agent` got without asking.

Before :mod:`unitctl.daemon` composed the Agent and the Engine, an Agent built
its own engine when ``AgentOptions.engine`` was set. Callers that still
construct an Agent without ``engine=`` (tests/harness/sim.py, bench/) get that
same engine from here. Delete this module once they pass
``engine=unitctl.daemon.engine_factory(registry, machine_id, options)``.
"""

from __future__ import annotations

from unitctl.engine.engine import Engine
from unitctl.registry.registry import Registry

from .engine_runner import EngineFactory
from .options import AgentOptions


def implicit_engine(registry: Registry, machine_id: str,
                    options: AgentOptions) -> EngineFactory | None:
    """The engine factory an Agent used to build for itself, or None when disabled."""
    if not options.engine:
        return None
    return lambda: Engine(registry, machine_id, resync=options.engine_resync,
                          grace=float(options.ttl))
