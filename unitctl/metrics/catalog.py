"""The registry of unitctl's metrics: every metric an agent exports, named once.

One :class:`~unitctl.metrics.instruments.Registry` per process (an agent is one
process): :data:`REGISTRY`. Metrics updated as things happen are module
constants here; what is read from the agent at scrape time is a collector
(:mod:`unitctl.metrics.agentview`) registered with :func:`register`.
"""

from __future__ import annotations

from unitctl.metrics.instruments import Collector, Counter, Gauge, Histogram, Registry

REGISTRY = Registry()

ETCD_SECONDS = Histogram(
    "unitctl_etcd_request_seconds", "Latency of etcd requests, by operation.",
    ["op"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
ETCD_ERRORS = Counter(
    "unitctl_etcd_request_errors", "etcd requests that failed, by operation and error.",
    ["op", "error"], registry=REGISTRY)
ENGINE_ROUND_SECONDS = Histogram(
    "unitctl_engine_round_seconds", "Duration of one engine round (read, schedule, commit).",
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
ENGINE_HELD_ROUNDS = Counter(
    "unitctl_engine_held_rounds", "Engine rounds that held back (machines went missing "
    "too recently, or an etcd outage).", registry=REGISTRY)
PLACEMENTS = Gauge(
    "unitctl_engine_placements", "Units placed on a machine after the last engine round "
    "(this agent's engine, while it leads).", registry=REGISTRY)
UNPLACEABLE = Gauge(
    "unitctl_engine_unplaceable_units", "Units that should run but no machine may take "
    "(after the last engine round of this agent's engine).", registry=REGISTRY)
FAILOVERS = Counter(
    "unitctl_engine_failovers", "Units moved off a machine that went away.",
    registry=REGISTRY)
FAILOVER_SECONDS = Histogram(
    "unitctl_engine_failover_seconds", "From the engine's first look at a machine gone to "
    "the round that moved its units (grace periods included).", registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0))


def register(collector: Collector) -> None:
    """Add a scrape-time collector to :data:`REGISTRY`."""
    REGISTRY.register(collector)


def unregister(collector: Collector) -> None:
    REGISTRY.unregister(collector)
