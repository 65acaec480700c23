"""Resource needs, capacity records, the ports drop-in, @PORT in docker-run, seed flags."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from unitctl.cli.generate import generate
from unitctl.docker.portvars import substitute_ports
from unitctl.errors import InvalidOptionsError, UsageError
from unitctl.model import UNLIMITED, Capacity, DesiredState, Machine, Needs, ScheduleEntry
from unitctl.ports import dropin_text
from unitctl.registry import codec
from unitctl.resources import check, needs, parse_cpu_quota, parse_size
from unitctl.unitfile import UnitFile


@pytest.mark.parametrize(("text", "size"), [
    ("512M", 512 * 2**20), ("1.5G", 3 * 2**29), ("1048576", 2**20), ("2T", 2 * 2**40),
    ("infinity", None), ("50%", None), ("", None)])
def test_sizes_as_systemd_parses_them(text: str, size: int | None) -> None:
    assert parse_size(text) == size


def test_cpu_quota_is_read_as_cpus() -> None:
    assert parse_cpu_quota("50%") == 500
    assert parse_cpu_quota("150%") == 1500
    assert parse_cpu_quota("bogus") is None


def test_xfleet_overrides_the_systemd_directives() -> None:
    unit = UnitFile.parse("[Service]\nCPUQuota=50%\nMemoryMax=1G\nMemoryHigh=2G\n"
                          "[X-Fleet]\nCPU=2\nMemory=256M\nPorts=@PORT 80 53/udp\n"
                          "Placement=binpack\n")
    assert needs(unit) == Needs(2000, 256 * 2**20, ("PORT",), (53, 80), binpack=True)
    assert needs(UnitFile.parse("[Service]\nMemoryHigh=2G\n")).mem_bytes == 2 * 2**30


def test_container_units_are_read_for_ports() -> None:
    unit = UnitFile.parse("[Service]\nExecStart=/usr/local/bin/docker-run --name db "
                          "-e DBPORT=@PORT_DB -p @PORT:5432 -p 127.0.0.1:8080:80 "
                          "--publish=9000-9001:9000-9001/udp img\n")
    got = needs(unit)
    assert got.dynamic_ports == ("PORT", "PORT_DB")
    assert got.fixed_ports == (8080, 9000, 9001)
    assert needs(UnitFile.parse("[Service]\nExecStart=/bin/echo -p 80:80\n")).fixed_ports == ()


def test_malformed_resource_options_are_refused_by_name() -> None:
    unit = UnitFile.parse("[X-Fleet]\nCPU=lots\nMemory=12Q\nPorts=@port 70000\n"
                          "Placement=random\n")
    with pytest.raises(InvalidOptionsError) as err:
        check("x.service", unit)
    text = str(err.value)
    for bad in ("CPU 'lots'", "Memory '12Q'", "Ports '@port'", "Ports '70000'",
                "Placement 'random'"):
        assert bad in text


def test_old_machine_records_are_unlimited_and_new_ones_round_trip() -> None:
    old = b'{"id":"ab","public_ip":"","metadata":{},"version":"0.1"}'
    assert codec.decode_machine("k", old).capacity == UNLIMITED
    machine = Machine("ab", capacity=Capacity(2000, 2**30, (30000, 30010)))
    assert codec.decode_machine("k", codec.encode_machine(machine)) == machine
    assert b"capacity" not in codec.encode_machine(Machine("ab"))


def test_schedule_entries_carry_ports_and_old_ones_have_none() -> None:
    entry = ScheduleEntry("a.service", "h", DesiredState.LAUNCHED, (("PORT", 31000),))
    assert codec.decode_entry("k", "a.service", codec.encode_entry(entry)) == entry
    plain = ScheduleEntry("a.service", "h", DesiredState.LAUNCHED)
    assert codec.encode_entry(plain) == b'{"desired":"launched","hash":"h"}'
    with pytest.raises(Exception, match="bad ports"):
        codec.decode_entry("k", "a.service", b'{"desired":"launched","hash":"h","ports":[1]}')


def test_dropin_passes_ports_as_environment() -> None:
    assert "Environment=PORT=31000 PORT_ADMIN=31001\n" in dropin_text(
        [("PORT_ADMIN", 31001), ("PORT", 31000)])


def test_docker_run_substitutes_ports_from_the_environment() -> None:
    env = {"PORT": "31000", "PORT_DB": "31001"}
    assert substitute_ports(["-p", "@PORT:5432", "-e", "X=@PORT_DB", "@PORTS"], env) == [
        "-p", "31000:5432", "-e", "X=31001", "@PORTS"]
    with pytest.raises(UsageError, match=r"\$PORT_WEB"):
        substitute_ports(["-p", "@PORT_WEB:80"], env)


def test_generate_takes_the_seeds_flags() -> None:
    result = CliRunner().invoke(generate, [
        "--name", "testdb", "--image", "postgres:9.6", "--cpu", "0.5", "--mem", "512",
        "--env", "DBUSER=x, DBPORT=@PORT", "--port", "@PORT:5432",
        "--volume", "/var/crash:/var/crash"])
    assert result.exit_code == 0, result.output
    for line in ("CPUQuota=50%", "MemoryMax=512M", "-e DBUSER=x", "-e DBPORT=@PORT",
                 "-p @PORT:5432", "-v /var/crash:/var/crash"):
        assert line in result.output
    got = needs(UnitFile.parse(result.output))
    assert (got.cpu_milli, got.mem_bytes, got.dynamic_ports) == (500, 512 * 2**20, ("PORT",))


def test_a_unit_taking_room_freed_in_its_round_is_guarded_by_the_leaving_unit() -> None:
    from unitctl.engine.commit import plan_groups
    from unitctl.engine.view import EngineView, PlannedSchedule
    from unitctl.model import UnitRecord
    from unitctl.registry.keys import Keys

    keys = Keys("/unitctl/")
    old = ScheduleEntry("old.service", "h", DesiredState.LAUNCHED)
    new = ScheduleEntry("new.service", "h", DesiredState.LAUNCHED)
    view = EngineView(
        10, {"new.service": UnitRecord("new.service", "h", DesiredState.LAUNCHED),
             "old.service": UnitRecord("old.service", "h", DesiredState.INACTIVE)},
        {"new.service": 5, "old.service": 7}, {"old.service": "m1"}, {"old.service": 3},
        {"m1": {"old.service": old}}, {"m1": Machine("m1")}, {})
    planned = PlannedSchedule({"new.service": "m1"}, {"m1": {"new.service": new}},
                              guarded=frozenset({"new.service"}))
    groups = {tuple(op.key for op in ops): compares for compares, ops in
              plan_groups(keys, view, planned)}
    compares = next(c for k, c in groups.items() if keys.placement("new.service") in k)
    guarded = {(c.key, c.operand) for c in compares}
    assert (keys.placement("old.service"), 3) in guarded
    assert (keys.unit("old.service"), 7) in guarded
