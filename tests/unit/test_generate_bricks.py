"""``unitctl generate --brick``: the seed's storage flag as a local volume of the unit.

The seed (``mgmt service --id testdb --image … --cpu 0.5 --mem 512 --env
"DBUSER=…, DBPORT=@PORT" --port @PORT:5432 --volume /var/crash:/var/crash
--brick 131072:/var/lib/pgsql/9.6/data/``) runs through the real CLI unchanged;
the unit it gives is read back by the code that places it (needs, [X-Fleet]
validation, the volume option).
"""

from __future__ import annotations

import typing as t

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from unitctl.cli.generate import generate
from unitctl.errors import InvalidOptionsError, UsageError
from unitctl.generate import docker_run_argv, parse_spec
from unitctl.generate.bricks import parse_bricks
from unitctl.resources import needs
from unitctl.unitfile import UnitFile
from unitctl.volumes import Volume, parse_volumes
from unitctl.xfleet import validate

SEED = ["--name", "testdb", "--image", "postgres:9.6", "--cpu", "0.5", "--mem", "512",
        "--env", "DBUSER=postgres, DBPORT=@PORT", "--port", "@PORT:5432",
        "--volume", "/var/crash:/var/crash", "--brick", "131072:/var/lib/pgsql/9.6/data/"]
DATA = "/var/lib/pgsql/9.6/data"


def test_the_seeds_flags_give_a_unit_the_cluster_accepts() -> None:
    result = CliRunner().invoke(generate, SEED)
    assert result.exit_code == 0, result.output
    unit = UnitFile.parse(result.output)
    assert validate("testdb.service", unit) == []
    got = needs(unit)
    assert (got.cpu_milli, got.mem_bytes, got.dynamic_ports) == (500, 512 * 2**20, ("PORT",))
    # the brick: 131072 MiB (the seed's unit), the trailing slash dropped
    assert unit.values("X-Fleet", "Volume") == [f"testdb:128G:{DATA}"]
    assert parse_volumes(unit.values("X-Fleet", "Volume")) == (
        Volume("testdb", 131072 * 2**20, DATA),)
    # ...mounted into the container from the directory the agent makes for it
    for line in ("-e DBUSER=postgres", "-e DBPORT=@PORT", "-p @PORT:5432",
                 "-v /var/crash:/var/crash", f"-v /var/lib/unitctl/volumes/testdb:{DATA}",
                 "--cpus=0.5", "--memory=512m"):
        assert f"    {line} \\\n" in result.output, line


BASE: dict[str, t.Any] = {"name": "db", "image": "postgres:9.6"}


@pytest.mark.parametrize(("bricks", "want"), [
    (["1024:/data"], [Volume("db", 2**30, "/data")]),
    (["1G:/data///"], [Volume("db", 2**30, "/data")]),
    (["512m:/a", "2g:/b"], [Volume("db", 2**29, "/a"), Volume("db-2", 2**31, "/b")]),
    (["pg:64M:/var/lib/pg/"], [Volume("pg", 2**26, "/var/lib/pg")]),
])  # fmt: skip
def test_bricks_become_volumes(bricks: list[str], want: list[Volume]) -> None:
    spec = parse_spec({**BASE, "bricks": bricks})
    assert list(spec.bricks) == want
    argv = docker_run_argv(spec)
    for v in want:
        assert f"/var/lib/unitctl/volumes/{v.name}:{v.path}" in argv


@pytest.mark.parametrize(("raw", "error", "message"), [
    ({"bricks": ["/data"]}, UsageError, "expected SIZE:PATH or NAME:SIZE:PATH"),
    ({"bricks": ["a:b:c:d"]}, UsageError, "expected SIZE:PATH"),
    ({"bricks": ["0:/data"]}, UsageError, "not a positive size"),
    ({"bricks": ["12Q:/data"]}, UsageError, "not a positive size"),
    ({"bricks": ["1G:data"]}, UsageError, "not an absolute, normalised path"),
    ({"bricks": ["1G:/a/../b"]}, UsageError, "not an absolute, normalised path"),
    ({"bricks": ["1G:/a", "2G:/a/"]}, UsageError, "path '/a' is given twice"),
    ({"bricks": ["x:1G:/a", "x:2G:/b"]}, UsageError, "name 'x' is given twice"),
    ({"bricks": ["1G:/a"], "volumes": ["/srv:/a"]}, UsageError, "also a target of 'volumes'"),
    ({"bricks": ["1G:/a"], "global": True}, InvalidOptionsError, "cannot have bricks"),
    ({"name": "d" * 65, "bricks": ["1G:/a"]}, UsageError, "give NAME:SIZE:PATH"),
])  # fmt: skip
def test_bad_bricks_are_refused_by_name(raw: dict[str, t.Any], error: type[Exception],
                                        message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")) as info:
        parse_spec({**BASE, **raw})
    assert "bricks" in str(info.value) or "global" in str(info.value)


def test_a_bad_brick_flag_is_one_line_and_writes_nothing(tmp_path: t.Any) -> None:
    result = CliRunner().invoke(generate, [*SEED[:-1], "lots:/data", "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "spec key 'bricks'" in result.output
    assert list(tmp_path.iterdir()) == []


@given(st.integers(min_value=1, max_value=2**20), st.integers(min_value=0, max_value=3))
def test_a_bare_size_is_mib_and_trailing_slashes_do_not_matter(mib: int, slashes: int) -> None:
    [v] = parse_bricks([f"{mib}:/srv/data" + "/" * slashes], "db")
    assert v == Volume("db", mib * 2**20, "/srv/data")
