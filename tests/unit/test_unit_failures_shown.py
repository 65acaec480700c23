"""A unit's failure on its machine, as the agent publishes it (``error``, ``retry_at``
in its state record) and as ``list-units`` and ``explain`` show it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from unitctl.cli.main import cli
from unitctl.cli.output import failure_note
from unitctl.cli.session import Session
from unitctl.errors import RegistryError
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState
from unitctl.registry import codec
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

M1 = "113f16a7" + "0" * 24
GOOD = "[Unit]\nDescription=good\n\n[Service]\nExecStart=/bin/sleep 1d\n"
BAD = "[Unit]\nDescription=bad\nRefuseManualStart=yes\n\n[Service]\nExecStart=/bin/sleep 1d\n"
ERROR = ("start refused by systemd: Operation refused, unit bad.service may be requested "
         "by dependency only")


def test_state_codec_round_trip_and_old_records() -> None:
    healthy = UnitState("a.service", M1, "loaded", "active", "running", "h")
    assert codec.encode_state(healthy) == (
        b'{"active":"active","hash":"h","load":"loaded","sub":"running"}')  # as old agents
    old = b'{"active":"active","hash":"h","load":"loaded","sub":"running"}'
    assert codec.decode_state("k", "a.service", M1, old) == healthy
    failing = UnitState("a.service", M1, "loaded", "inactive", "dead", "h", ERROR, 1.7e9)
    assert codec.decode_state("k", "a.service", M1, codec.encode_state(failing)) == failing
    with pytest.raises(RegistryError, match="retry_at"):
        codec.decode_state("k", "a.service", M1, b'{"error":"x","retry_at":"soon"}')


def test_failure_note() -> None:
    st = UnitState("a.service", M1, "loaded", "inactive", "dead", "h", ERROR, 1040.2)
    assert failure_note(st, 1000.0) == f"{ERROR}; retry in 40 s"
    assert failure_note(st, 1040.0) == f"{ERROR}; retry due now"
    assert failure_note(UnitState("a.service", M1, "", "", "", "h"), 1000.0) is None


@pytest.fixture
def session() -> Session:
    reg = Registry(MemoryKV())

    async def fill() -> None:
        await reg.ensure_schema()
        await reg.register_machine(Machine(M1, "172.17.8.103", {}), 0)
        for name, text in (("bad.service", BAD), ("good.service", GOOD)):
            unit = UnitFile.parse(text)
            await reg.create_unit(UnitRecord(name, unit.hash(), DesiredState.LAUNCHED),
                                  unit.serialize())
            await reg.kv.put(reg.keys.placement(name), M1.encode())
        await reg.put_state(UnitState("good.service", M1, "loaded", "active", "running",
                                      UnitFile.parse(GOOD).hash()), 0)
        await reg.put_state(UnitState("bad.service", M1, "loaded", "inactive", "dead",
                                      UnitFile.parse(BAD).hash(), ERROR,
                                      time.time() + 40.4), 0)

    asyncio.run(fill())
    return Session(registry=reg)


def invoke(sess: Session, *args: str) -> str:
    res = CliRunner().invoke(cli, list(args), obj=sess)
    assert res.exit_code == 0, res.output
    return res.stdout


def test_list_units_adds_an_error_column_only_when_a_unit_fails(session: Session) -> None:
    out = invoke(session, "list-units")
    header, bad, good = out.splitlines()
    assert header.split() == ["UNIT", "MACHINE", "ACTIVE", "SUB", "ERROR"]
    assert bad.split("\t")[-1] == f"{ERROR}; retry in 40 s"
    assert good.split("\t")[-1] == "-"
    rows = json.loads(invoke(session, "list-units", "--json"))
    assert rows[0]["error"] == f"{ERROR}; retry in 40 s" and rows[1]["error"] is None
    assert "ERROR" not in invoke(session, "list-units", "--fields", "unit,active")
    rows = json.loads(invoke(session, "list-units", "--json", "--fields", "unit,retry_at"))
    assert rows[0]["retry_at"].endswith("Z") and rows[1]["retry_at"] is None


def test_explain_shows_the_failure(session: Session) -> None:
    out = invoke(session, "explain", "bad.service")
    assert f"  Failing on 113f16a7...: {ERROR}; retry in 40 s" in out.splitlines()
    assert "Failing on" not in invoke(session, "explain", "good.service")
    data = json.loads(invoke(session, "explain", "--json", "bad.service"))
    assert data["reported"][0]["error"] == ERROR
