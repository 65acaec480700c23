"""Local volumes: the ``Volume=`` option, the record, the drop-in, the agent's sink,
and the scheduler keeping a unit with its volume's machine (pure and on tmp dirs)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.agent.volumes import LocalVolumes
from unitctl.errors import InvalidOptionsError, UnitctlError
from unitctl.model import DesiredState, Machine, Requirements
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.memory import MemoryKV
from unitctl.registry.volumes import VolumeStore
from unitctl.scheduler import Action, ClusterSnapshot, UnitInfo, schedule
from unitctl.unitfile import UnitFile
from unitctl.volumes import (
    Volume,
    VolumeRecord,
    dropin_text,
    format_size,
    parse_size,
    parse_volume,
    parse_volumes,
    pins,
)
from unitctl.xfleet import validate

M1, M2, M3 = ("1" * 32, "2" * 32, "3" * 32)


def test_parse_volume() -> None:
    assert parse_volume("pgdata:1G:/var/lib/pgsql/data") == Volume(
        "pgdata", 2**30, "/var/lib/pgsql/data")
    assert parse_volume("a.b_c-1:128m:/data").size == 128 * 2**20


@pytest.mark.parametrize(("value", "needle"), [
    ("pgdata:1G", "is not NAME:SIZE:PATH"),
    ("pg/data:1G:/data", "Volume name"),
    ("../x:1G:/data", "Volume name"),
    ("pg:0:/data", "positive size"),
    ("pg:1Q:/data", "positive size"),
    ("pg:1G:data", "Volume path"),
    ("pg:1G:/a/../b", "Volume path"),
    ("pg:1G:/a b", "Volume path"),
    ("pg:1G:/", "Volume path"),
])
def test_bad_volumes_name_the_problem(value: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_volume(value)


def test_a_name_or_path_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="name 'a' is given twice"):
        parse_volumes(["a:1G:/x", "a:1G:/y"])
    with pytest.raises(ValueError, match="path '/x' is given twice"):
        parse_volumes(["a:1G:/x", "b:1G:/x"])


def test_validate_refuses_a_bad_volume_and_knows_the_option() -> None:
    good = UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\nVolume=a:1G:/x\n")
    assert validate("a.service", good) == []
    bad = UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\nVolume=a:1G\n")
    with pytest.raises(InvalidOptionsError, match="is not NAME:SIZE:PATH"):
        validate("a.service", bad)


@given(st.integers(min_value=1, max_value=2**40))
def test_format_size_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_dropin_binds_each_volume() -> None:
    text = dropin_text([Volume("b", 1, "/b"), Volume("a", 1, "/a")])
    assert text.endswith("[Service]\nBindPaths=/var/lib/unitctl/volumes/a:/a\n"
                         "BindPaths=/var/lib/unitctl/volumes/b:/b\n")


def test_record_round_trips_and_bad_values_are_refused() -> None:
    rec = VolumeRecord("a", M1, "/var/lib/unitctl/volumes/a", 5, "a.service")
    assert VolumeRecord.decode("a", rec.encode()) == rec
    moved = VolumeRecord("a", M2, "/p", 5, "a.service", left_on=M1)
    assert VolumeRecord.decode("a", moved.encode()) == moved and b"left_on" in moved.encode()
    assert b"left_on" not in rec.encode()  # records written before the field read the same
    for bad in (b"[]", b'{"machine":"m"}', b'{"machine":"m","path":"/p","size":true,"unit":"u"}',
                b'{"machine":"m","path":"/p","size":1,"unit":"u","left_on":7}'):
        with pytest.raises(ValueError):
            VolumeRecord.decode("a", bad)


def test_pins_take_each_units_first_volume() -> None:
    recs = {n: VolumeRecord(n, m, "/p", 1, "u.service") for n, m in (("b", M2), ("a", M1))}
    assert pins(recs) == {"u.service": (M1, "a")}


def _unit(name: str) -> UnitInfo:
    return UnitInfo(name, "h", DesiredState.LAUNCHED, Requirements())


def test_a_unit_stays_with_its_volume_and_waits_for_its_lost_machine() -> None:
    machines = {m: Machine(id=m) for m in (M1, M2, M3)}
    units = {"db.service": _unit("db.service")}
    pinned = {"db.service": (M3, "pg")}
    plan = schedule(ClusterSnapshot(machines, units, {}, volume_pins=pinned))
    assert plan.placements == {"db.service": M3}
    lost = ClusterSnapshot({m: machines[m] for m in (M1, M2)}, units, {"db.service": M3},
                           volume_pins=pinned)
    plan = schedule(lost)
    assert [(d.action, d.machine) for d in plan.decisions] == [(Action.UNSCHEDULE, M3)]
    reason = f"waits for machine {M3}: its volume pg lives there (data stays behind)"
    assert plan.unplaceable["db.service"] == {M1: reason, M2: reason}
    # without the record it moves
    plan = schedule(ClusterSnapshot(lost.machines, units, {"db.service": M3}))
    assert plan.placements["db.service"] in (M1, M2)


def test_a_placed_unit_leaves_a_machine_that_is_not_its_volumes() -> None:
    machines = {m: Machine(id=m) for m in (M1, M2)}
    units = {"db.service": _unit("db.service")}
    plan = schedule(ClusterSnapshot(machines, units, {"db.service": M1},
                                    volume_pins={"db.service": (M2, "pg")}))
    assert plan.placements == {"db.service": M2}


BODY = "[Service]\nExecStart=/bin/true\n[X-Fleet]\nVolume=pg:1G:/data\n"


def test_agent_makes_records_and_reuses_a_volume(tmp_path: Path) -> None:
    store = VolumeStore(MemoryKV(), Keyspace(Keys("/unitctl/")))
    sink = LocalVolumes(store, M1, root=str(tmp_path / "vol"), unit_root=str(tmp_path / "run"))
    asyncio.run(sink.prepare("db.service", BODY))
    (tmp_path / "vol" / "pg" / "data.txt").write_text("kept")
    asyncio.run(sink.prepare("db.service", BODY))  # a reload or an agent restart
    assert (tmp_path / "vol" / "pg" / "data.txt").read_text() == "kept"
    assert oct(os.stat(tmp_path / "vol" / "pg").st_mode & 0o777) == "0o700"
    dropin = Path(sink.dropin_path("db.service"))
    assert f"BindPaths={tmp_path}/vol/pg:/data" in dropin.read_text()
    assert asyncio.run(store.all()) == {"pg": VolumeRecord(
        "pg", M1, f"{tmp_path}/vol/pg", 2**30, "db.service")}
    # another machine never overwrites the record
    other = LocalVolumes(store, M2, root=str(tmp_path / "vol2"), unit_root=str(tmp_path / "r2"))
    asyncio.run(other.prepare("db.service", BODY))
    assert asyncio.run(store.get("pg")) is not None
    assert asyncio.run(store.get("pg")).machine == M1  # type: ignore[union-attr]
    sink.remove("db.service")
    assert not dropin.exists() and (tmp_path / "vol" / "pg" / "data.txt").exists()


def test_agent_refuses_a_bad_volume(tmp_path: Path) -> None:
    store = VolumeStore(MemoryKV(), Keyspace(Keys("/unitctl/")))
    sink = LocalVolumes(store, M1, root=str(tmp_path / "vol"), unit_root=str(tmp_path / "run"))
    with pytest.raises(UnitctlError, match=r"db\.service: Volume="):
        asyncio.run(sink.prepare("db.service", BODY.replace("pg:1G:/data", "pg:1G")))
