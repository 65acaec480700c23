"""A restart whose stop ended ``failed`` (a container killed by its own stop) must
not take that stale ``failed``, published again by the agent after the start was
asked, for a failed start (seen with docker-run units: tests/cluster/test_container_restart.py)."""

from __future__ import annotations

import pytest

from unitctl.client.predicates import reached
from unitctl.client.views import Snapshot, StoredState
from unitctl.errors import SystemdError
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState

M = "a" * 32
NAME = "db.service"


def snap(active: str, rev: int) -> Snapshot:
    state = UnitState(NAME, M, "loaded", active, "failed" if active == "failed" else active, "h")
    return Snapshot(revision=rev, units={NAME: UnitRecord(NAME, "h", DesiredState.LAUNCHED)},
                    placements={NAME: M}, states={NAME: {M: StoredState(state, rev)}},
                    explanations={}, machines={M: Machine(M, "10.0.0.1")})


def test_a_stale_failed_after_a_failed_stop_is_not_a_failed_start() -> None:
    check = reached(DesiredState.LAUNCHED, since=10, failed_before=True)
    assert check(snap("failed", 11), NAME) is None  # re-published: keep waiting
    assert check(snap("activating", 12), NAME) is None
    assert check(snap("active", 13), NAME) == f"Unit {NAME} launched on aaaaaaaa.../10.0.0.1"


def test_failed_after_the_unit_moved_on_is_a_failed_start() -> None:
    check = reached(DesiredState.LAUNCHED, since=10, failed_before=True)
    assert check(snap("activating", 11), NAME) is None
    with pytest.raises(SystemdError, match="active=failed"):
        check(snap("failed", 12), NAME)


def test_without_a_failed_stop_a_fresh_failed_ends_the_wait_at_once() -> None:
    with pytest.raises(SystemdError, match="active=failed"):
        reached(DesiredState.LAUNCHED, since=10)(snap("failed", 11), NAME)
    assert reached(DesiredState.LAUNCHED, since=10)(snap("failed", 9), NAME) is None


def test_a_stop_is_done_once_the_unit_stopped_not_while_it_stops() -> None:
    check = reached(DesiredState.LOADED, since=10)
    assert check(snap("deactivating", 11), NAME) is None
    assert check(snap("failed", 12), NAME) == f"Unit {NAME} loaded on aaaaaaaa.../10.0.0.1"
