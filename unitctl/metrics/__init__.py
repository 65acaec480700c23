"""Prometheus metrics of an agent (and of its engine while it leads).

:mod:`.catalog` is the registry of unitctl's metrics (one place names them all);
:mod:`.agentview` reads an agent's own state at scrape time; :mod:`.rounds`
turns the engine's rounds into round, placement and failover metrics;
:mod:`.kv` times every etcd request; :mod:`.exposition` serves ``/metrics``.
Updates are a counter increment or a histogram observation, outside every lock
and wait of the agent; whatever can be read at scrape time is read then.
"""
