"""Losing the machine of a unit's local volume: ``[X-Fleet] MoveWithoutVolume=``.

By default (no) the unit waits for that machine; with yes it is unpinned while that
machine is not registered, placed by its other rules with a loud reason, and the agent
of the new machine takes the volume's record over (only while the old machine is not
registered, compare-and-swap on the record's revision).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.agent.volumes import LocalVolumes
from unitctl.errors import InvalidOptionsError, SystemdError
from unitctl.model import DesiredState, Machine, Requirements
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.memory import MemoryKV
from unitctl.registry.volumes import VolumeStore
from unitctl.scheduler import ClusterSnapshot, UnitInfo, schedule
from unitctl.scheduler.incremental import schedule_keeping
from unitctl.unitfile import UnitFile
from unitctl.volumes import VolumeRecord, move_problems, parse_move, split_pins
from unitctl.xfleet import requirements, validate

M1, M2, M3 = ("1" * 32, "2" * 32, "3" * 32)
MACHINES = (M1, M2, M3)
DB = "[Service]\nExecStart=/bin/true\n[X-Fleet]\nVolume=pg:1G:/data\n"


def _file(extra: str = "") -> UnitFile:
    return UnitFile.parse(DB + extra)


@pytest.mark.parametrize(("values", "moves"), [
    ([], False), (["no"], False), (["yes"], True), (["YES"], True), (["on"], True),
    (["yes", "no"], False), (["0"], False), (["true"], True)])
def test_parse_move(values: list[str], moves: bool) -> None:
    assert parse_move(values) is moves
    assert move_problems(values) == []


def test_a_bad_value_is_refused_at_submit_with_the_option_named() -> None:
    with pytest.raises(InvalidOptionsError,
                       match=r"db.service: MoveWithoutVolume='maybe': use yes or no"):
        validate("db.service", _file("MoveWithoutVolume=maybe\n"))
    with pytest.raises(ValueError, match="use yes or no"):
        parse_move(["maybe"])


def test_the_option_is_known_and_carried_in_the_requirements() -> None:
    assert validate("db.service", _file("MoveWithoutVolume=yes\n")) == []
    assert requirements("db.service", _file("MoveWithoutVolume=yes\n")).moves_without_volume
    assert not requirements("db.service", _file()).moves_without_volume
    assert not requirements("db.service", _file("MoveWithoutVolume=no\n")).moves_without_volume
    assert (hash(requirements("a.service", _file("MoveWithoutVolume=yes\n")))
            != hash(requirements("a.service", _file())))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f"u{i}" for i in range(6)]),
                       st.tuples(st.sampled_from(MACHINES), st.sampled_from(["a", "b"]))),
       st.sets(st.sampled_from([f"u{i}" for i in range(6)])),
       st.sets(st.sampled_from(MACHINES)))
def test_split_pins_unpins_only_a_moving_unit_whose_machine_is_gone(
        pinned: dict[str, tuple[str, str]], moving: set[str], alive: set[str]) -> None:
    held, left = split_pins(pinned, moving.__contains__, alive)
    assert {**held, **left} == pinned and not held.keys() & left.keys()
    for unit, pin in pinned.items():
        assert (unit in left) == (unit in moving and pin[0] not in alive)


def _unit(name: str, moves: bool) -> UnitInfo:
    return UnitInfo(name, "h", DesiredState.LAUNCHED, Requirements(moves_without_volume=moves))


@st.composite
def clusters(draw: st.DrawFn) -> ClusterSnapshot:
    """Random live machines; units that wait or move, each with a random local volume
    pin (or none) and a random current placement."""
    live = draw(st.lists(st.sampled_from(MACHINES), unique=True))
    units, pinned, placements = {}, {}, {}
    for i in range(draw(st.integers(0, 6))):
        name = f"u{i}.service"
        units[name] = _unit(name, draw(st.booleans()))
        pin = draw(st.none() | st.sampled_from(MACHINES))
        if pin is not None:
            pinned[name] = (pin, f"v{i}")
        at = draw(st.none() | st.sampled_from(MACHINES))
        if at is not None:
            placements[name] = at
    return ClusterSnapshot({m: Machine(m) for m in live}, units, placements,
                           volume_pins=pinned)


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_a_waiting_unit_never_leaves_its_pin_and_a_moving_one_is_pinned_while_it_lives(
        snapshot: ClusterSnapshot) -> None:
    plan = schedule(snapshot)
    for unit, info in snapshot.units.items():
        pin = snapshot.volume_pins.get(unit)
        where = plan.placements.get(unit)
        if pin is None:
            continue
        if not info.req.moves_without_volume or pin[0] in snapshot.machines:
            assert where in (None, pin[0]), (unit, pin, where)
            assert (where is None) == (pin[0] not in snapshot.machines), (unit, pin, where)
        else:  # moves, machine gone: placed elsewhere whenever a machine is there
            assert (where is not None) == bool(snapshot.machines), (unit, where)
    for d in plan.decisions:
        loud = "MOVED WITHOUT ITS VOLUME" in d.reason
        pin = snapshot.volume_pins.get(d.unit)
        assert loud == (d.action.value == "schedule" and pin is not None
                        and pin[0] not in snapshot.machines), d


def test_a_moving_unit_is_placed_with_a_loud_reason_and_a_waiting_one_waits() -> None:
    units = {"db.service": _unit("db.service", True), "wait.service": _unit("wait.service", False)}
    pins = {"db.service": (M1, "pg"), "wait.service": (M1, "pw")}
    placements = {"db.service": M1, "wait.service": M1}
    plan = schedule(ClusterSnapshot({M2: Machine(M2)}, units, placements, volume_pins=pins))
    assert plan.placements == {"db.service": M2}
    [moved] = [d for d in plan.decisions if d.action.value == "schedule"]
    assert moved.reason.startswith(
        f"MOVED WITHOUT ITS VOLUME pg: its data stays behind on machine {M1}, which is gone; "
        "it starts here with an empty volume (MoveWithoutVolume=yes); least loaded")
    assert plan.unplaceable["wait.service"] == {
        M2: f"waits for machine {M1}: its volume pw lives there (data stays behind)"}
    # the old machine back, the record (taken over) names M2: the unit stays on M2
    back = schedule(ClusterSnapshot({M1: Machine(M1), M2: Machine(M2)}, units,
                                    {"db.service": M2}, volume_pins={"db.service": (M2, "pg")}))
    assert back.placements["db.service"] == M2
    assert not [d for d in back.decisions if d.unit == "db.service"]


# -- the agent's record takeover ---------------------------------------------


def _sink(tmp_path: Path, machine: str, store: VolumeStore) -> LocalVolumes:
    return LocalVolumes(store, machine, root=str(tmp_path / f"vol-{machine[:1]}"),
                        unit_root=str(tmp_path / f"run-{machine[:1]}"))


def _setup(tmp_path: Path) -> tuple[MemoryKV, VolumeStore, VolumeRecord]:
    kv = MemoryKV()
    store = VolumeStore(kv, Keyspace(Keys("/unitctl/")))
    old = VolumeRecord("pg", M1, str(tmp_path / "vol-1" / "pg"), 2**30, "db.service")
    assert asyncio.run(store.create(old))
    return kv, store, old


def test_the_agent_takes_the_record_over_from_a_lost_machine_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _kv, store, _old = _setup(tmp_path)
    sink = _sink(tmp_path, M2, store)
    with caplog.at_level(logging.WARNING, "unitctl.agent"):
        asyncio.run(sink.prepare("db.service", DB + "MoveWithoutVolume=yes\n"))
    path = tmp_path / "vol-2" / "pg"
    assert path.is_dir() and not any(path.iterdir())
    assert asyncio.run(store.get("pg")) == VolumeRecord("pg", M2, str(path), 2**30, "db.service",
                                                        left_on=M1)
    assert "MOVED WITHOUT ITS VOLUME pg" in caplog.text
    assert f"its data stays behind on machine {M1}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "unitctl.agent"):  # a restart: nothing to take
        asyncio.run(sink.prepare("db.service", DB + "MoveWithoutVolume=yes\n"))
    assert caplog.text == ""


def test_the_agent_refuses_while_the_old_machine_is_registered(tmp_path: Path) -> None:
    kv, store, old = _setup(tmp_path)
    asyncio.run(kv.put(f"/unitctl/machines/{M1}", b"{}"))
    with pytest.raises(SystemdError, match=f"recorded on machine {M1}, which is registered"):
        asyncio.run(_sink(tmp_path, M2, store).prepare("db.service",
                                                       DB + "MoveWithoutVolume=yes\n"))
    assert asyncio.run(store.get("pg")) == old


def test_two_machines_never_both_take_the_record_over(tmp_path: Path) -> None:
    _kv, store, _old = _setup(tmp_path)
    found = asyncio.run(store.get_with_revision("pg"))
    assert found is not None
    rev = found[1]
    mine = VolumeRecord("pg", M2, "/v/pg", 2**30, "db.service")
    theirs = VolumeRecord("pg", M3, "/v/pg", 2**30, "db.service")
    assert asyncio.run(store.take_over(mine, rev, M1))
    assert not asyncio.run(store.take_over(theirs, rev, M1))
    assert asyncio.run(store.get("pg")) == mine


def test_a_waiting_unit_leaves_the_record_as_it_is(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _kv, store, old = _setup(tmp_path)
    with caplog.at_level(logging.WARNING, "unitctl.agent"):
        asyncio.run(_sink(tmp_path, M2, store).prepare("db.service", DB))
    assert asyncio.run(store.get("pg")) == old
    assert "this copy is a different one" in caplog.text


def test_the_incremental_round_moves_a_new_unit_without_its_volume_as_a_full_round_does(
        ) -> None:
    """A unit destroyed and submitted again: its record (on lost M1) outlived it."""
    base = ClusterSnapshot({M2: Machine(M2)}, {}, {}, volume_pins={"db.service": (M1, "pg")})
    _plan, standing = schedule_keeping(base)
    assert standing is not None
    new = {"db.service": _unit("db.service", True)}
    inc = standing.place(new)
    full = schedule(ClusterSnapshot(base.machines, new, {}, volume_pins=base.volume_pins))
    assert inc is not None and inc.plan == full
    assert full.placements == {"db.service": M2}
