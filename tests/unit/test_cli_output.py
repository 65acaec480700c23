"""Table rendering: a faithful port of Go's tabwriter as fleetctl configures it
(``tabwriter.NewWriter(out, 0, 8, 1, '\\t', 0)``), and the list verbs' columns."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from unitctl.cli.main import cli
from unitctl.cli.output import parse_fields, render_json, render_table, tabwrite
from unitctl.cli.session import Session
from unitctl.errors import UsageError
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

M1 = "113f16a7" + "0" * 24
M2 = "2e45a1b0" + "f" * 24

# ------------------------------------------------------------------ tabwriter


def test_tabwriter_matches_go_for_fleet_list_units() -> None:
    # Column widths: max cell + 1 padding, rounded up to a multiple of 8, padded
    # with tabs; e.g. UNIT/hello.service -> 14 -> 16: "UNIT" gets 2 tabs.
    text = ("UNIT\tMACHINE\tACTIVE\tSUB\n"
            "hello.service\t113f16a7.../172.17.8.103\tactive\trunning\n")
    assert tabwrite(text) == (
        "UNIT\t\tMACHINE\t\t\t\tACTIVE\tSUB\n"
        "hello.service\t113f16a7.../172.17.8.103\tactive\trunning\n")


def test_tabwriter_exact_multiple_gets_a_full_tab() -> None:
    # a 7-wide cell + padding 1 = 8: one tab; an 8-wide cell -> 9 -> 16: 1 tab for
    # the 8-wide cell, 2 tabs for a 1-wide cell.
    assert tabwrite("abcdefg\tx\nA\ty\n") == "abcdefg\tx\nA\ty\n"
    assert tabwrite("abcdefgh\tx\nA\ty\n") == "abcdefgh\tx\nA\t\ty\n"


def test_tabwriter_last_cell_is_not_padded_and_empty_cells_are() -> None:
    # col 0: 6+1 -> 8 (one tab each); col 1: 1+1 -> 8, the empty cell still gets its tab
    assert tabwrite("a\t\tc\nlonger\tb\tc\n") == "a\t\tc\nlonger\tb\tc\n"
    assert tabwrite("a\t\tc\nb\tlonger than 8\tc\n") == "a\t\t\tc\nb\tlonger than 8\tc\n"


def test_tabwriter_column_blocks_are_independent() -> None:
    # Go formats a column per block of consecutive lines that have that cell:
    # the line without a tab ends the block, so the widths restart after it.
    text = "aaaaaaaaaaaa\tb\nsep\nc\td\n"
    assert tabwrite(text) == "aaaaaaaaaaaa\tb\nsep\nc\td\n"
    text = "aaaaaaaaaaaa\tb\nc\td\n"
    assert tabwrite(text) == "aaaaaaaaaaaa\tb\nc\t\td\n"


def test_tabwriter_without_trailing_newline_and_space_padding() -> None:
    assert tabwrite("ab\tc\nd\te") == "ab\tc\nd\te"
    assert tabwrite("ab\tc\nlonger\te\n", padchar=" ") == "ab     c\nlonger e\n"


def test_tabwriter_counts_characters_not_bytes() -> None:
    assert tabwrite("\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\tx\n") == \
        "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\tx\n"


def test_render_table_header_missing_values_and_no_legend() -> None:
    rows = [{"unit": "a.service", "machine": None, "active": "", "sub": "dead"}]
    fields = ["unit", "machine", "active", "sub"]
    assert render_table(fields, rows) == \
        "UNIT\t\tMACHINE\tACTIVE\tSUB\na.service\t-\t-\tdead\n"
    assert render_table(fields, rows, legend=False) == "a.service\t-\t-\tdead\n"
    assert render_table(fields, [], legend=False) == ""


def test_render_json_uses_null_for_missing() -> None:
    out = json.loads(render_json(["unit", "hash"], [{"unit": "a.service", "hash": None}]))
    assert out == [{"unit": "a.service", "hash": None}]


def test_parse_fields() -> None:
    assert parse_fields("unit,sub", ["unit", "sub"]) == ["unit", "sub"]
    with pytest.raises(UsageError, match="invalid field: nope"):
        parse_fields("unit,nope", ["unit"])
    with pytest.raises(UsageError):
        parse_fields("", ["unit"])


# ------------------------------------------------------------------ list verbs

HELLO = "[Unit]\nDescription=Hello world\n\n[Service]\nExecStart=/bin/sleep 1000\n"
GLOBAL = "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nGlobal=true\n"


@pytest.fixture
def populated() -> Session:
    reg = Registry(MemoryKV())
    hello = UnitFile.parse(HELLO)
    glob = UnitFile.parse(GLOBAL)

    async def fill() -> None:
        await reg.ensure_schema()
        await reg.register_machine(Machine(M1, "172.17.8.103", {"role": "web", "az": "b"}), 0)
        await reg.register_machine(Machine(M2, "", {}), 0)
        await reg.create_unit(UnitRecord("hello.service", hello.hash(), DesiredState.LAUNCHED),
                              hello.serialize())
        await reg.create_unit(UnitRecord("glob.service", glob.hash(), DesiredState.LAUNCHED),
                              glob.serialize())
        await reg.kv.put(reg.keys.placement("hello.service"), M1.encode())
        await reg.put_state(UnitState("hello.service", M1, "loaded", "active", "running",
                                      hello.hash()), 0)
        for m in (M2, M1):
            await reg.put_state(UnitState("glob.service", m, "loaded", "active", "exited",
                                          glob.hash()), 0)

    asyncio.run(fill())
    return Session(registry=reg)


def invoke(sess: Session, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args), obj=sess)
    return res.exit_code, res.stdout, res.stderr


def test_list_units_default(populated: Session) -> None:
    code, out, _ = invoke(populated, "list-units")
    assert code == 0
    assert out == (
        "UNIT\t\tMACHINE\t\t\t\tACTIVE\tSUB\n"
        "glob.service\t113f16a7.../172.17.8.103\tactive\texited\n"
        "glob.service\t2e45a1b0...\t\t\tactive\texited\n"
        "hello.service\t113f16a7.../172.17.8.103\tactive\trunning\n")


def test_list_units_fields_full_no_legend(populated: Session) -> None:
    code, out, _ = invoke(populated, "list-units", "--fields", "unit,hash,machine", "-l",
                          "--no-legend")
    assert code == 0
    hello_hash = UnitFile.parse(HELLO).hash()
    assert f"hello.service\t{hello_hash}\t{M1}/172.17.8.103\n" in out
    assert "UNIT" not in out
    code, out, _ = invoke(populated, "list-units", "--fields", "hash", "--no-legend")
    assert out.splitlines()[-1] == hello_hash[:7]


def test_list_unit_files_default_and_global(populated: Session) -> None:
    code, out, _ = invoke(populated, "list-unit-files")
    assert code == 0
    h, g = UnitFile.parse(HELLO).hash()[:7], UnitFile.parse(GLOBAL).hash()[:7]
    assert out == tabwrite(
        "UNIT\tHASH\tDSTATE\tSTATE\tTARGET\n"
        f"glob.service\t{g}\tlaunched\t-\tglobal\n"
        f"hello.service\t{h}\tlaunched\tlaunched\t113f16a7.../172.17.8.103\n")
    assert out.startswith("UNIT\t\tHASH\tDSTATE\t\tSTATE\t\tTARGET\n")


def test_list_unit_files_extra_fields(populated: Session) -> None:
    code, out, _ = invoke(populated, "list-unit-files", "--fields",
                          "unit,global,desc,reason,tmachine", "--no-legend")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("\t")[0] == "glob.service"
    assert "true" in lines[0] and "Hello world" in lines[1]
    assert [c for c in lines[1].split("\t") if c][3] == "-"  # no reason: placed


def test_list_unit_files_has_no_short_full_flag(populated: Session) -> None:
    code, _, err = invoke(populated, "list-unit-files", "-l")
    assert code == 2 and "No such option" in err


def test_list_machines(populated: Session) -> None:
    code, out, _ = invoke(populated, "list-machines")
    assert code == 0
    assert out == ("MACHINE\t\tIP\t\tMETADATA\n"
                   "113f16a7...\t172.17.8.103\taz=b,role=web\n"
                   "2e45a1b0...\t-\t\t-\n")
    code, out, _ = invoke(populated, "list-machines", "--full", "--fields", "machine")
    assert out == f"MACHINE\n{M1}\n{M2}\n"


def test_list_json(populated: Session) -> None:
    code, out, _ = invoke(populated, "list-machines", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"machine": M1, "ip": "172.17.8.103", "metadata": "az=b,role=web"},
        {"machine": M2, "ip": None, "metadata": None},
    ]
    code, out, _ = invoke(populated, "list-unit-files", "--json", "--fields", "unit,target,hash")
    data = json.loads(out)
    assert data[1] == {"unit": "hello.service", "target": f"{M1}/172.17.8.103",
                       "hash": UnitFile.parse(HELLO).hash()}


def test_invalid_field(populated: Session) -> None:
    code, out, err = invoke(populated, "list-units", "--fields", "unit,bogus")
    assert (code, out, err) == (2, "", "Error: invalid field: bogus\n")
