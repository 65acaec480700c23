"""The metrics' pure parts: the failover clock of the round observer, the
exposition's answers, the metrics_address option, and MeteredKV's error count."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from unitctl.config import load_config, parse_address
from unitctl.errors import ConfigError, RegistryUnavailable
from unitctl.metrics import catalog
from unitctl.metrics.exposition import answer
from unitctl.metrics.kv import MeteredKV
from unitctl.metrics.rounds import RoundObserver, moved_off_lost_machines
from unitctl.registry.memory import MemoryKV
from unitctl.scheduler.plan import Action, Decision, PlacementReason, Plan


@dataclass
class FakeRound:
    plan: Plan | None
    seconds: float = 0.01


def _plan(*decisions: Decision) -> Plan:
    return Plan(tuple(decisions), {"a.service": "m2"}, {}, {"b.service": {"": "x"}})


def value(name: str, labels: dict[str, str] | None = None) -> float:
    got = catalog.REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if got is None else got


def test_failover_counts_units_moved_off_lost_machines_and_times_from_first_hold() -> None:
    now = [100.0]
    observer = RoundObserver(clock=lambda: now[0])
    gone = Decision(Action.UNSCHEDULE, "a.service", "m1",
                    PlacementReason.MACHINE_GONE.render(machine="m1"))
    other = Decision(Action.UNSCHEDULE, "c.service", "m1",
                     PlacementReason.TARGET_INACTIVE.render())
    assert moved_off_lost_machines(_plan(gone, other)) == 1
    before = value("unitctl_engine_failovers_total")
    count = value("unitctl_engine_failover_seconds_count")
    total = value("unitctl_engine_failover_seconds_sum")
    observer(FakeRound(None))
    now[0] = 100.5
    observer(FakeRound(None))
    now[0] = 102.0
    observer(FakeRound(_plan(gone, other)))
    assert value("unitctl_engine_failovers_total") == before + 1
    assert value("unitctl_engine_failover_seconds_count") == count + 1
    assert value("unitctl_engine_failover_seconds_sum") == pytest.approx(total + 2.0)
    assert value("unitctl_engine_unplaceable_units") == 1
    assert value("unitctl_engine_placements") == 1
    observer(FakeRound(_plan()))  # no move: the clock is not running any more
    assert value("unitctl_engine_failover_seconds_count") == count + 1


def test_exposition_answers() -> None:
    ok = answer(b"GET /metrics HTTP/1.1", catalog.REGISTRY)
    assert ok.startswith(b"HTTP/1.1 200 OK") and b"unitctl_engine_round_seconds" in ok
    head = answer(b"HEAD /metrics HTTP/1.1", catalog.REGISTRY)
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    assert answer(b"GET /x HTTP/1.1", catalog.REGISTRY).startswith(b"HTTP/1.1 404")
    assert answer(b"PUT /metrics HTTP/1.1", catalog.REGISTRY).startswith(b"HTTP/1.1 405")
    assert answer(b"garbage", catalog.REGISTRY).startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9479", ("127.0.0.1", 9479)), ("[::1]:9100", ("::1", 9100)),
    ("0.0.0.0:1", ("0.0.0.0", 1)), ("off", None), ("", None)])
def test_metrics_address(text: str, want: tuple[str, int] | None) -> None:
    assert parse_address(text, "metrics_address") == want


@pytest.mark.parametrize("text", ["9479", "host:", ":80", "h:0", "h:70000", "h:x"])
def test_bad_metrics_address_names_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="metrics_address"):
        load_config("/nonexistent", env={}, flags={"metrics_address": text})


def test_metrics_address_default_is_loopback() -> None:
    assert load_config("/nonexistent", env={}).metrics_address == ("127.0.0.1", 9479)


def test_metered_kv_counts_errors_and_passes_answers_through() -> None:
    class Broken(MemoryKV):
        async def get(self, key: str) -> None:
            raise RegistryUnavailable("etcd down")

    async def go() -> None:
        kv = MeteredKV(MemoryKV())
        await kv.put("/k", b"v")
        got = await kv.get("/k")
        assert got is not None and got.value == b"v"
        with pytest.raises(RegistryUnavailable):
            await MeteredKV(Broken()).get("/k")
    labels = {"op": "get", "error": "RegistryUnavailable"}
    before = value("unitctl_etcd_request_errors_total", labels)
    asyncio.run(go())
    assert value("unitctl_etcd_request_errors_total", labels) == before + 1
    assert value("unitctl_etcd_request_seconds_count", {"op": "put"}) >= 1
