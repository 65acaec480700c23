"""Shared volumes: ``Volume=NAME:SIZE:PATH:shared=STORE``, machines declaring
``storage.STORE=/mount`` in their metadata, the scheduler placing such a unit only
there (and never pinning it), and the agent's sink using ``<mount>/unitctl-volumes/NAME``."""

from __future__ import annotations

import asyncio
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
from unitctl.unitfile import UnitFile
from unitctl.volumes import (
    Volume,
    VolumeRecord,
    dropin_text,
    missing_store,
    mount_points,
    parse_volume,
    pins,
    store_needs,
    stores_of,
)
from unitctl.xfleet import requirements, validate

M1, M2, M3 = ("1" * 32, "2" * 32, "3" * 32)


def test_parse_a_shared_volume() -> None:
    assert parse_volume("pg:1G:/data:shared=nfs1") == Volume("pg", 2**30, "/data", "nfs1")
    assert parse_volume("pg:1G:/data").store == ""


@pytest.mark.parametrize("value", ["pg:1G:/data:nfs1", "pg:1G:/data:shared=",
                                   "pg:1G:/data:shared=a/b", "pg:1G:/data:shared=x:y"])
def test_a_bad_shared_field_names_the_problem(value: str) -> None:
    with pytest.raises(ValueError, match=r"shared=STORE|NAME:SIZE:PATH"):
        parse_volume(value)
    unit = UnitFile.parse(f"[Service]\nExecStart=/bin/true\n[X-Fleet]\nVolume={value}\n")
    with pytest.raises(InvalidOptionsError):
        validate("a.service", unit)


def test_requirements_carry_the_stores_of_shared_volumes() -> None:
    unit = UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\n"
                          "Volume=b:1G:/b:shared=nfs1\nVolume=a:1G:/a\nVolume=c:1G:/c:shared=x\n")
    assert requirements("db.service", unit).stores == (("nfs1", "b"), ("x", "c"))
    assert store_needs(["bad", "a:1G:/a:shared=s"]) == (("s", "a"),)


def test_a_global_unit_cannot_have_a_shared_volume() -> None:
    unit = UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\nGlobal=true\n"
                          "Volume=a:1G:/a:shared=nfs1\n")
    with pytest.raises(InvalidOptionsError, match="Global cannot be combined with a shared"):
        validate("a.service", unit)
    local = UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\nGlobal=true\n"
                           "Volume=a:1G:/a\n")
    assert validate("a.service", local) == []


def test_stores_of_metadata_and_missing_store() -> None:
    meta = {"storage.nfs1": "/mnt/nfs1", "storage.bad": "relative", "storage.a/b": "/x",
            "region": "eu", "storage.c": "/has:colon"}
    assert stores_of(meta) == {"nfs1": "/mnt/nfs1"}
    assert missing_store([("nfs1", "pg")], meta) is None
    assert missing_store([("nfs1", "pg"), ("c", "q")], meta) == ("c", "q")


def test_a_shared_record_names_its_store_and_pins_nothing() -> None:
    shared = VolumeRecord("a", "", "/mnt/s/unitctl-volumes/a", 5, "a.service", "s")
    assert b'"store":"s"' in shared.encode() and b"machine" not in shared.encode()
    assert VolumeRecord.decode("a", shared.encode()) == shared
    local = VolumeRecord("b", M1, "/p", 5, "b.service")
    assert VolumeRecord.decode("b", local.encode()) == local
    for bad in (b'{"machine":"m","store":"s","path":"/p","size":1,"unit":"u"}',
                b'{"path":"/p","size":1,"unit":"u"}',
                b'{"store":"a/b","path":"/p","size":1,"unit":"u"}'):
        with pytest.raises(ValueError):
            VolumeRecord.decode("a", bad)
    assert pins({"a": shared, "b": local}) == {"b.service": (M1, "b")}


def test_dropin_binds_a_shared_volume_from_its_store() -> None:
    text = dropin_text([Volume("s", 1, "/s", "nfs1"), Volume("l", 1, "/l")],
                       mounts={"nfs1": "/mnt/n"})
    assert text.endswith("BindPaths=/var/lib/unitctl/volumes/l:/l\n"
                         "BindPaths=/mnt/n/unitctl-volumes/s:/s\n")


def test_mount_points_decode_octal_escapes() -> None:
    text = ("22 27 0:21 / /proc rw - proc proc rw\n"
            "90 27 0:50 /x /mnt/my\\040store rw - nfs4 srv:/x rw\n")
    assert mount_points(text) == {"/proc", "/mnt/my store"}


def _unit(name: str, stores: tuple[tuple[str, str], ...] = ()) -> UnitInfo:
    return UnitInfo(name, "h", DesiredState.LAUNCHED, Requirements(stores=stores))


def test_a_shared_unit_goes_only_where_its_store_is_and_explain_names_it() -> None:
    machines = {M1: Machine(M1), M2: Machine(M2, metadata={"storage.nfs1": "/mnt/n"}),
                M3: Machine(M3, metadata={"storage.other": "/mnt/o"})}
    units = {"db.service": _unit("db.service", (("nfs1", "pg"),))}
    plan = schedule(ClusterSnapshot(machines, units, {}))
    assert plan.placements == {"db.service": M2}
    # its machine is lost: no other machine has the store, and explain says so
    lost = ClusterSnapshot({m: machines[m] for m in (M1, M3)}, units, {"db.service": M2})
    plan = schedule(lost)
    reason = ("no shared store nfs1 here (its volume pg is on it; a machine declares it "
              "with metadata storage.nfs1=/mount/point)")
    assert plan.unplaceable["db.service"] == {M1: reason, M3: reason}
    # a machine that stops declaring the store loses the unit
    plan = schedule(ClusterSnapshot({**machines, M2: Machine(M2)}, units, {"db.service": M2}))
    assert "db.service" not in plan.placements


def test_a_shared_volume_record_does_not_pin_its_unit() -> None:
    meta = {"storage.nfs1": "/mnt/n"}
    machines = {M1: Machine(M1, metadata=meta), M2: Machine(M2, metadata=meta)}
    units = {"db.service": _unit("db.service", (("nfs1", "pg"),))}
    record = VolumeRecord("pg", "", "/mnt/n/unitctl-volumes/pg", 1, "db.service", "nfs1")
    plan = schedule(ClusterSnapshot({M2: machines[M2]}, units, {"db.service": M1},
                                    volume_pins=pins({"pg": record})))
    assert plan.placements == {"db.service": M2}


MACHINES = (M1, M2, M3)
STORES = ("s1", "s2")


@st.composite
def clusters(draw: st.DrawFn) -> tuple[ClusterSnapshot, dict[str, str]]:
    """Live machines declaring random stores; units with a random shared store, a
    random local pin, both or neither; random current placements."""
    live = draw(st.lists(st.sampled_from(MACHINES), unique=True))
    machines = {m: Machine(m, metadata={f"storage.{s}": f"/mnt/{s}" for s in draw(
        st.lists(st.sampled_from(STORES), unique=True))}) for m in live}
    units, pinned, placements = {}, {}, {}
    for i in range(draw(st.integers(0, 6))):
        name = f"u{i}.service"
        stores = tuple((s, f"v{i}") for s in draw(st.lists(st.sampled_from(STORES),
                                                            unique=True, max_size=2)))
        units[name] = _unit(name, tuple(sorted(stores)))
        pin = draw(st.none() | st.sampled_from(MACHINES))
        if pin is not None:
            pinned[name] = (pin, f"local{i}")
        at = draw(st.none() | st.sampled_from(MACHINES))
        if at is not None:
            placements[name] = at
    snapshot = ClusterSnapshot(machines, units, placements, volume_pins=pinned)
    return snapshot, {u: p[0] for u, p in pinned.items()}


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_shared_units_run_only_with_their_stores_and_local_ones_stay_pinned(
        case: tuple[ClusterSnapshot, dict[str, str]]) -> None:
    snapshot, pinned = case
    plan = schedule(snapshot)
    for unit, machine in plan.placements.items():
        declared = stores_of(snapshot.machines[machine].metadata)
        assert all(s in declared for s, _ in snapshot.units[unit].req.stores), (unit, machine)
        assert pinned.get(unit, machine) == machine, (unit, machine)
    for unit, info in snapshot.units.items():
        able = [m for m in snapshot.machines
                if missing_store(info.req.stores, snapshot.machines[m].metadata) is None
                and pinned.get(unit, m) == m]
        # nothing else limits these units: each is placed whenever a machine can take it
        assert (unit in plan.placements) == bool(able), (unit, able)


def _sink(tmp_path: Path, machine: str, store: VolumeStore, mount: Path,
          mounted: bool = True) -> LocalVolumes:
    info = tmp_path / f"mountinfo-{machine[:1]}"
    info.write_text(f"90 27 0:50 / {mount if mounted else '/elsewhere'} rw - nfs4 s:/ rw\n")
    return LocalVolumes(store, machine, root=str(tmp_path / f"local-{machine[:1]}"),
                        unit_root=str(tmp_path / f"run-{machine[:1]}"),
                        stores={"nfs1": str(mount)}, mountinfo=str(info))


BODY = "[Service]\nExecStart=/bin/true\n[X-Fleet]\nVolume=pg:1G:/data:shared=nfs1\n"


def test_agent_puts_a_shared_volume_on_its_store_and_another_machine_reuses_it(
        tmp_path: Path) -> None:
    mount = tmp_path / "nfs"
    mount.mkdir()
    store = VolumeStore(MemoryKV(), Keyspace(Keys("/unitctl/")))
    first = _sink(tmp_path, M1, store, mount)
    asyncio.run(first.prepare("db.service", BODY))
    shared = mount / "unitctl-volumes" / "pg"
    (shared / "data.txt").write_text("kept")
    assert f"BindPaths={shared}:/data" in Path(first.dropin_path("db.service")).read_text()
    record = VolumeRecord("pg", "", str(shared), 2**30, "db.service", "nfs1")
    assert asyncio.run(store.all()) == {"pg": record}
    second = _sink(tmp_path, M2, store, mount)
    asyncio.run(second.prepare("db.service", BODY))
    assert (shared / "data.txt").read_text() == "kept"
    assert f"BindPaths={shared}:/data" in Path(second.dropin_path("db.service")).read_text()
    assert asyncio.run(store.all()) == {"pg": record}
    assert not (tmp_path / "local-1").exists() and not (tmp_path / "local-2").exists()


def test_agent_refuses_a_store_it_lacks_or_that_is_not_mounted(tmp_path: Path) -> None:
    mount = tmp_path / "nfs"
    mount.mkdir()
    store = VolumeStore(MemoryKV(), Keyspace(Keys("/unitctl/")))
    unmounted = _sink(tmp_path, M1, store, mount, mounted=False)
    with pytest.raises(SystemdError, match=f"shared store nfs1 is not mounted at {mount}"):
        asyncio.run(unmounted.prepare("db.service", BODY))
    lacking = LocalVolumes(store, M2, root=str(tmp_path / "l"), unit_root=str(tmp_path / "r"))
    with pytest.raises(SystemdError, match=r"does not declare .*storage\.nfs1=/mount/point"):
        asyncio.run(lacking.prepare("db.service", BODY))
    assert not (mount / "unitctl-volumes").exists()
    assert asyncio.run(store.all()) == {}


def test_the_agents_sink_reads_its_stores_from_the_machines_metadata() -> None:
    store = VolumeStore(MemoryKV(), Keyspace(Keys("/unitctl/")))
    machine = Machine(M1, metadata={"storage.nfs1": "/mnt/n", "region": "eu"})
    assert LocalVolumes.of(store, machine).stores == {"nfs1": "/mnt/n"}
