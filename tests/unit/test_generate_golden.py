"""Golden files of ``unitctl generate``, in the style of Quadlet's test data.

Each ``tests/data/generate/<case>.yaml`` or ``<case>.container`` (Quadlet) is an
input; ``<case>.service`` beside it is the exact unit expected. Each expected
unit must also pass ``systemd-analyze verify`` (with docker-run's path pointed
at an executable that exists here, and a stand-in for each required unit
this host lacks). Refusals of ``.container`` keys are checked
below, each by the name it must give.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.real import require_tool
from unitctl.docker.argv import parse_run_argv
from unitctl.docker.portvars import substitute_ports
from unitctl.errors import UsageError
from unitctl.generate import docker_run_argv, generate_units, parse_spec, parse_spec_text
from unitctl.generate.quadlet import container_spec

DATA = Path(__file__).resolve().parents[1] / "data" / "generate"
CASES = sorted(p for p in DATA.iterdir() if p.suffix in (".yaml", ".container"))


def generated(source: Path) -> str:
    units = generate_units(parse_spec_text(source.read_text(), source.name))
    assert len(units) == 1
    return next(iter(units.values()))


def test_there_are_cases_of_both_kinds() -> None:
    assert {p.suffix for p in CASES} == {".yaml", ".container"}


@pytest.mark.parametrize("source", CASES, ids=[p.name for p in CASES])
def test_generated_unit_is_the_golden_one(source: Path) -> None:
    assert generated(source) == source.with_suffix(".service").read_text()


@pytest.mark.parametrize("source", CASES, ids=[p.name for p in CASES])
def test_systemd_analyze_verify_accepts_the_golden_unit(source: Path, tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "systemd-analyze is not installed (systemd)")
    expected = source.with_suffix(".service")
    text = expected.read_text().replace("/usr/local/bin/docker-run", "/bin/true")
    unit = tmp_path / expected.name
    unit.write_text(text)
    for needed in re.findall(r"^Requires=(.*)$", text, re.MULTILINE)[0].split():
        if not Path("/lib/systemd/system", needed).exists():  # db.service: a stand-in
            (tmp_path / needed).write_text("[Service]\nExecStart=/bin/true\n")
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{expected.name}:" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Container]\nImage=a\nNetwork=host\n", "[Container] Network= is unknown"),
        ("[Container]\nImage=a\nContainerName=x\n", "ContainerName= is not supported"),
        ("[Container]\nImage=a\nHealthOnFailure=kill\n", "HealthOnFailure= is not supported"),
        ("[Container]\nImage=a\nNotify=true\n", "Notify=true"),
        ("[Container]\nImage=a\nNotify=maybe\n", "expected true or false"),
        ("[Container]\nImage=a\n[Pod]\nPod=x\n", "section [Pod] is not supported"),
        ("[Container]\nImage=a\n[X-Fleet]\nMachineID=x\n", "[X-Fleet] MachineID= is not supported"),
        ("[Unit]\nDescription=x\n", "no [Container] section"),
        ("[Container]\nImage=a\nExec=sh -c 'x\n", "cannot split"),
        ("[Container]\nImage=a\n[Service]\nType=simple\n", "Type= is written by unitctl"),
        ("[Container]\nImage=a\n[Service]\nExecStart=/bin/x\n", "ExecStart= is written"),
        ("[Container]\nImage=a\nPull=sometimes\n", "spec key 'pull'"),
        ("[Container]\nImage=a\nHealthInterval=5s\n", "needs health_cmd"),
        ("[Container]\nImage=a\nHealthRetries=x\n", "health_retries"),
        ("[Container]\nImage=a\nStopTimeout=30\n", "more than the fence allows"),
        ("[Container]\n Image = a \n[ Bad ]\n", "web.container"),
    ],
)
def test_container_refusals_name_the_key(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        generate_units(parse_spec_text(text, "web.container"))


def test_container_defaults_are_quadlets() -> None:
    raw = container_spec("[Container]\nImage=a\n", "/etc/containers/systemd/db.container")
    assert raw == {"name": "db", "ephemeral": True, "restart": "no", "image": "a"}


@pytest.mark.parametrize("source", CASES, ids=[p.name for p in CASES])
def test_docker_run_accepts_the_golden_exec_start(source: Path) -> None:
    spec = parse_spec(parse_spec_text(source.read_text(), source.name))
    # as docker-run does: the allocated ports (seed.yaml's @PORT) substituted, then parsed
    request = parse_run_argv(substitute_ports(docker_run_argv(spec)[1:], {"PORT": "31000"}))
    assert (request.name, request.image, request.pull) == (spec.name, spec.image, spec.pull)
    assert request.ephemeral == spec.ephemeral
