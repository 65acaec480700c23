"""What an agent knows, read at scrape time: :class:`AgentCollector`.

Nothing here runs on the agent's own paths: a scrape reads the agent's
attributes (plain dicts and flags) on the event loop, between its steps.

- ``unitctl_units{state}``: the units with a file on this machine, by the last
  active state systemd reported (``unknown`` before the first report);
- ``unitctl_unit_health{unit,result}``: 1 for each unit's last health-check
  result, where the unit's state carries one (a ``health`` attribute);
- ``unitctl_fenced``: 1 while this agent has its units fenced; ``unitctl_fence``
  ``_events_total{event="fenced"|"lifted"}``: fences applied and lifted;
  ``unitctl_fence_peer_queries_total``: rounds of questions to the peers;
- ``unitctl_engine_leader``: 1 while this agent's engine leads the cluster;
- ``unitctl_etcd_contact_age_seconds``: since etcd last answered this agent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Protocol

from unitctl.metrics.instruments import Family, counter_family, gauge_family


class FenceView(Protocol):
    fenced: bool
    fenced_total: int
    lifted_total: int
    asks_total: int


class EngineView(Protocol):
    leading: bool


class UnitsView(Protocol):
    def present(self) -> Mapping[str, str]: ...


class AgentView(Protocol):
    """The attributes of :class:`unitctl.agent.agent.Agent` a scrape reads."""

    @property
    def unit_states(self) -> Mapping[str, object]: ...

    @property
    def fencer(self) -> FenceView: ...

    @property
    def engine(self) -> EngineView | None: ...

    @property
    def units(self) -> UnitsView: ...

    def etcd_age(self) -> float: ...


class AgentCollector:
    """The scrape-time metrics of one agent (see the module docstring)."""

    def __init__(self, agent: AgentView) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Family]:
        yield from self._units()
        fence = self.agent.fencer
        yield gauge_family("unitctl_fenced", "1 while this agent has fenced its units.",
                                value=1.0 if fence.fenced else 0.0)
        events = counter_family("unitctl_fence_events", "Fences applied and lifted.",
                                     labels=["event"])
        events.add_metric(["fenced"], fence.fenced_total)
        events.add_metric(["lifted"], fence.lifted_total)
        yield events
        queries = counter_family("unitctl_fence_peer_queries", "Rounds of questions to "
                                 "the peers while etcd was silent.")
        queries.add_metric([], fence.asks_total)
        yield queries
        engine = self.agent.engine
        yield gauge_family("unitctl_engine_leader",
                                "1 while this agent's engine leads the cluster.",
                                value=1.0 if engine is not None and engine.leading else 0.0)
        yield gauge_family("unitctl_etcd_contact_age_seconds",
                                "Seconds since etcd last answered this agent.",
                                value=self.agent.etcd_age())

    def _units(self) -> Iterator[Family]:
        states = dict(self.agent.unit_states)
        present = list(self.agent.units.present())
        by_state = Counter(str(getattr(states.get(name), "active", "unknown"))
                           for name in present)
        units = gauge_family("unitctl_units", "Units with a file on this machine, by "
                                  "systemd's active state.", labels=["state"])
        for state in sorted(by_state):
            units.add_metric([state], by_state[state])
        yield units
        health = gauge_family("unitctl_unit_health", "The last health-check result of "
                                   "each unit that has one.", labels=["unit", "result"])
        for name in sorted(present):
            result = getattr(states.get(name), "health", None)
            if result:
                health.add_metric([name, str(result)], 1.0)
        yield health
