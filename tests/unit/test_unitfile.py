"""Tests for unitctl.unitfile: parsing, serialising and hashing unit files."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.errors import InvalidUnitError
from unitctl.unitfile import MAX_UNIT_SIZE, UnitFile, UnitOption

Triple = tuple[str, str, str]


def triples(unit: UnitFile) -> list[Triple]:
    return [(o.section, o.name, o.value) for o in unit.options]


# -- parsing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[Unit]\nA=b\n", [("Unit", "A", "b")], id="simple"),
        pytest.param("[Unit]\nA=b", [("Unit", "A", "b")], id="no-final-newline"),
        pytest.param("[Unit]\r\nA=b\r\n", [("Unit", "A", "b")], id="crlf"),
        pytest.param("\ufeff[Unit]\nA=b\n", [("Unit", "A", "b")], id="bom"),
        pytest.param("[Unit]\n  A  =  b c  \n", [("Unit", "A", "b c")], id="strip-key-value"),
        pytest.param("[Unit]\n\tA\t=\tb\t\n", [("Unit", "A", "b")], id="strip-tabs"),
        pytest.param("  [Unit]  \nA=b\n", [("Unit", "A", "b")], id="padded-header-line"),
        pytest.param("[Unit]\nA=\n", [("Unit", "A", "")], id="empty-value"),
        pytest.param("[Unit]\nA==b=c\n", [("Unit", "A", "=b=c")], id="first-equals-splits"),
        pytest.param("[Unit]\nA B=c\n", [("Unit", "A B", "c")], id="key-inner-space"),
        pytest.param(
            "[Unit]\nA=1\nA=2\n", [("Unit", "A", "1"), ("Unit", "A", "2")], id="repeated-key"
        ),
        pytest.param(
            "# c\n; c\n\n[Unit]\n# A=x\n  ; B=y\n\nA=b\n", [("Unit", "A", "b")], id="comments"
        ),
        pytest.param(
            "[Unit]\nA=1\n[Service]\nB=2\n[Unit]\nC=3\n",
            [("Unit", "A", "1"), ("Service", "B", "2"), ("Unit", "C", "3")],
            id="file-order-kept",
        ),
        pytest.param("[Unit]\n[Service]\nA=b\n", [("Service", "A", "b")], id="empty-section"),
        pytest.param("[a]b]\nA=b\n", [("a]b", "A", "b")], id="bracket-in-section"),
        pytest.param("[Unit]\nA=a\\\nb\n", [("Unit", "A", "a b")], id="continuation"),
        pytest.param(
            "[Unit]\nA=a \\\n  b\n", [("Unit", "A", "a    b")], id="continuation-keeps-inner"
        ),
        pytest.param(
            "[Unit]\nA=a\\\nb\\\nc\n", [("Unit", "A", "a b c")], id="continuation-twice"
        ),
        pytest.param(
            "[Unit]\nA=a\\\n# comment\n; other\nb\n",
            [("Unit", "A", "a b")],
            id="comments-in-continuation-skipped",
        ),
        pytest.param(
            "[Unit]\nA=a\\\n\nB=c\n",
            [("Unit", "A", "a"), ("Unit", "B", "c")],
            id="empty-line-ends-continuation",
        ),
        pytest.param(
            "[Unit]\nA=a\\\n   \nB=c\n",
            [("Unit", "A", "a"), ("Unit", "B", "c")],
            id="blank-line-ends-continuation",
        ),
        pytest.param("[Unit]\nA=a\\", [("Unit", "A", "a")], id="eof-ends-continuation"),
        pytest.param("[Unit]\nA=a\\\\\nB=c\n",
                     [("Unit", "A", "a\\\\"), ("Unit", "B", "c")], id="even-backslashes"),
        pytest.param("[Unit]\nA=a\\\\\\\nb\n", [("Unit", "A", "a\\\\ b")], id="odd-backslashes"),
        pytest.param("[Unit]\nA\\\n=b\n", [("Unit", "A", "b")], id="continuation-in-key"),
        pytest.param("[Un\\\nit]\nA=b\n", [("Un it", "A", "b")], id="continuation-in-header"),
        pytest.param("[Unit]\nA=é ü 😀\n", [("Unit", "A", "é ü 😀")], id="unicode"),
    ],
)
def test_parse(text: str, expected: list[Triple]) -> None:
    assert triples(UnitFile.parse(text)) == expected


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("", ["empty"], id="empty"),
        pytest.param("\n\n# only a comment\n", ["empty"], id="only-comments"),
        pytest.param("[Unit]\n", ["empty"], id="only-header"),
        pytest.param("A=b\n", ["line 1", "outside any section", "'A'"], id="key-outside"),
        pytest.param("# x\n\nA=b\n[Unit]\n", ["line 3", "outside"], id="key-outside-line3"),
        pytest.param("[Unit]\nA=b\nnoequals\n", ["line 3", "missing '='", "noequals"],
                     id="no-equals"),
        pytest.param("[Unit\nA=b\n", ["line 1", "unterminated", "[Unit"], id="unterminated"),
        pytest.param("[Unit]\nA=b\n[Service\n", ["line 3", "unterminated"],
                     id="unterminated-later"),
        pytest.param("[ Unit ]\nA=b\n", ["line 1", "' Unit '"], id="padded-header"),
        pytest.param("[Unit ]\nA=b\n", ["line 1", "'Unit '"], id="padded-header-right"),
        pytest.param("[]\nA=b\n", ["line 1", "empty section"], id="empty-header"),
        pytest.param("[Unit]\n=b\n", ["line 2", "empty key"], id="empty-key"),
        pytest.param("[Unit]\nA=b\nB=c\0d\n", ["line 3", "NUL"], id="nul"),
        pytest.param("[Unit]\nA=a\\\nb\nC\\\nD\n", ["line 4", "missing '='", "C D"],
                     id="continuation-start-line"),
        pytest.param("[Unit]\nX\\\nY\\\nZ\n", ["line 2", "missing '='", "X Y Z"],
                     id="three-line-continuation-start-line"),
        pytest.param("[Unit]\nA=b\n\n\n[Bad\\\nX\n", ["line 5", "unterminated"],
                     id="continued-header-start-line"),
        pytest.param("[Unit]\nA=b\nC=a\\ \n", ["line 3", "unescaped backslash"],
                     id="value-would-not-round-trip"),
    ],
)
def test_parse_errors(text: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidUnitError) as info:
        UnitFile.parse(text)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parse_size_limit() -> None:
    head = "[Unit]\nA="
    exact = head + "x" * (MAX_UNIT_SIZE - len(head))
    assert UnitFile.parse(exact).value("Unit", "A") is not None
    with pytest.raises(InvalidUnitError, match="1 MiB"):
        UnitFile.parse(exact + "x")
    with pytest.raises(InvalidUnitError, match="1 MiB"):
        UnitFile.parse_bytes((exact + "x").encode())


def test_parse_size_counts_utf8_bytes() -> None:
    head = "[Unit]\nA="
    text = head + "é" * ((MAX_UNIT_SIZE - len(head)) // 2 + 1)
    assert len(text) < MAX_UNIT_SIZE
    with pytest.raises(InvalidUnitError, match="1 MiB"):
        UnitFile.parse(text)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"[Unit]\nA=b\n", [("Unit", "A", "b")]),
        ("[Unit]\nA=\u00e9\n".encode(), [("Unit", "A", "\u00e9")]),
        (b"\xef\xbb\xbf[Unit]\nA=b\n", [("Unit", "A", "b")]),
    ],
)
def test_parse_bytes(data: bytes, expected: list[Triple]) -> None:
    assert triples(UnitFile.parse_bytes(data)) == expected


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"[Unit]\nA=\xff\n", "line 2"),
        (b"[Unit]\nA=\xc3\n", "UTF-8"),
        ("[Unit]\nA=\u00e9\n".encode("latin-1"), "UTF-8"),
        (b"[Unit]\nA=\x00\n", "NUL"),
    ],
)
def test_parse_bytes_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidUnitError, match=fragment):
        UnitFile.parse_bytes(data)


# -- UnitOption -------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "name", "value", "fragment"),
    [
        pytest.param("", "A", "b", "empty section", id="empty-section"),
        pytest.param(" Unit", "A", "b", "' Unit'", id="padded-section"),
        pytest.param("Un\nit", "A", "b", "section", id="newline-section"),
        pytest.param("Unit", "", "b", "empty key", id="empty-key"),
        pytest.param("Unit", " A", "b", "' A'", id="padded-key-left"),
        pytest.param("Unit", "A\t", "b", "'A\\t'", id="padded-key-right"),
        pytest.param("Unit", "A=B", "b", "'A=B'", id="key-with-equals"),
        pytest.param("Unit", "#A", "b", "'#A'", id="key-hash"),
        pytest.param("Unit", ";A", "b", "';A'", id="key-semicolon"),
        pytest.param("Unit", "[A", "b", "'[A'", id="key-bracket"),
        pytest.param("Unit", "A\nB", "b", "key", id="key-newline"),
        pytest.param("Unit", "A\0", "b", "key", id="key-nul"),
        pytest.param("Unit", "A", "b\nc", "value of A", id="value-newline"),
        pytest.param("Unit", "A", "b\rc", "value of A", id="value-cr"),
        pytest.param("Unit", "A", "b\0", "value of A", id="value-nul"),
        pytest.param("Unit", "A", "b\\", "unescaped backslash", id="value-backslash"),
        pytest.param("Unit", "A", "b\\\\\\", "unescaped backslash", id="value-3-backslashes"),
        pytest.param("Unit", "A", " b", "value of A", id="value-padded-left"),
        pytest.param("Unit", "A", "b ", "value of A", id="value-padded-right"),
    ],
)
def test_unit_option_refuses_what_cannot_round_trip(
    section: str, name: str, value: str, fragment: str
) -> None:
    with pytest.raises(InvalidUnitError) as info:
        UnitOption(section, name, value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [
        ("Unit", "A", ""),
        ("Unit", "A", "b\\\\"),
        ("Unit", "A", "b\\c"),
        ("Unit", "A", "#not-a-comment"),
        ("Unit", "A]", "x=y"),
        ("a]b", "A", "b"),
    ],
)
def test_unit_option_accepts_and_round_trips(section: str, name: str, value: str) -> None:
    unit = UnitFile((UnitOption(section, name, value),))
    assert UnitFile.parse(unit.serialize()) == unit


def test_unit_option_is_frozen() -> None:
    option = UnitOption("Unit", "A", "b")
    with pytest.raises(AttributeError):
        option.value = "c"  # Frozen: assigning raises


# -- queries ----------------------------------------------------------------

SAMPLE = """\
[Unit]
Description=web
After=a.service
After=b.service

[Service]
ExecStart=/bin/true
Environment=A=1
Environment=
Environment=B=2
Environment=C=3

[Install]
WantedBy=multi-user.target
"""


@pytest.mark.parametrize(
    ("section", "key", "values", "last"),
    [
        ("Unit", "Description", ["web"], "web"),
        ("Unit", "After", ["a.service", "b.service"], "b.service"),
        ("Service", "Environment", ["B=2", "C=3"], "C=3"),
        ("Service", "Missing", [], None),
        ("Missing", "Description", [], None),
        ("unit", "Description", [], None),
        ("Unit", "description", [], None),
    ],
)
def test_values_and_value(section: str, key: str, values: list[str], last: str | None) -> None:
    unit = UnitFile.parse(SAMPLE)
    assert unit.values(section, key) == values
    assert unit.value(section, key) == last


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[S]\nA=1\nA=\n", []),
        ("[S]\nA=\nA=1\n", ["1"]),
        ("[S]\nA=1\nA=\nA=2\nA=\nA=3\nA=4\n", ["3", "4"]),
        ("[S]\nA=1\n[T]\nA=\n[S]\nA=2\n", ["1", "2"]),
    ],
)
def test_empty_assignment_resets(text: str, expected: list[str]) -> None:
    assert UnitFile.parse(text).values("S", "A") == expected


def test_sections_and_has_section() -> None:
    unit = UnitFile.parse("[B]\nx=1\n[A]\ny=2\n[B]\nz=3\n")
    assert unit.sections() == ["B", "A"]
    assert unit.has_section("A")
    assert unit.has_section("B")
    assert not unit.has_section("C")
    assert not unit.has_section("a")


def test_from_options_with_option_without_section() -> None:
    unit = UnitFile.from_options([("Unit", "A", "1"), ("Service", "B", "2")])
    assert triples(unit) == [("Unit", "A", "1"), ("Service", "B", "2")]
    added = unit.with_option("Unit", "C", "3")
    assert triples(added) == [("Unit", "A", "1"), ("Service", "B", "2"), ("Unit", "C", "3")]
    assert triples(unit) == [("Unit", "A", "1"), ("Service", "B", "2")]
    assert triples(added.without_section("Unit")) == [("Service", "B", "2")]
    assert added.without_section("Nope") == added
    with pytest.raises(InvalidUnitError):
        unit.with_option("Unit", "bad=key", "x")
    with pytest.raises(InvalidUnitError):
        UnitFile.from_options([("Unit", "A", "x\ny")])


# -- serialisation and identity ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Unit]\nA=b\n", "[Unit]\nA=b\n"),
        ("# c\n\n[Unit]\n  A = b  \n\n\n", "[Unit]\nA=b\n"),
        ("[Unit]\nA=1\n[Service]\nB=2\n", "[Unit]\nA=1\n\n[Service]\nB=2\n"),
        (
            "[Unit]\nA=1\n[Service]\nB=2\n[Unit]\nC=3\n[X-Fleet]\nD=4\n[Service]\nE=5\n",
            "[Unit]\nA=1\nC=3\n\n[Service]\nB=2\nE=5\n\n[X-Fleet]\nD=4\n",
        ),
        ("[Unit]\nA=a\\\nb\n", "[Unit]\nA=a b\n"),
        ("[Unit]\nA=\nA=1\n", "[Unit]\nA=\nA=1\n"),
    ],
)
def test_serialize(text: str, expected: str) -> None:
    assert UnitFile.parse(text).serialize() == expected


def test_hash_is_sha1_of_serialize() -> None:
    unit = UnitFile.parse(SAMPLE)
    expected = hashlib.sha1(unit.serialize().encode()).hexdigest()
    assert unit.hash() == expected
    assert unit.short_hash == expected[:7]
    assert len(unit.short_hash) == 7


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("[Unit]\nA=b\n", "# comment\n[Unit]\n\n  A =   b\t\n\n", True),
        ("[Unit]\nA=b\n", "[Unit]\nA=c\n", False),
        ("[Unit]\nA=b\n", "[Unit]\na=b\n", False),
        ("[Unit]\nA=b\n", "[unit]\nA=b\n", False),
        ("[Unit]\nA=1\nA=2\n", "[Unit]\nA=2\nA=1\n", False),
        ("[Unit]\nA=1\n[S]\nB=2\n", "[S]\nB=2\n[Unit]\nA=1\n", False),
        ("[Unit]\nA=1\n[S]\nB=2\n[Unit]\nC=3\n", "[Unit]\nA=1\nC=3\n[S]\nB=2\n", True),
        ("[Unit]\nA=a b\n", "[Unit]\nA=a\\\nb\n", True),
    ],
)
def test_hash_identity(a: str, b: str, same: bool) -> None:
    assert (UnitFile.parse(a).hash() == UnitFile.parse(b).hash()) is same


# -- properties -------------------------------------------------------------

_SAFE = st.characters(
    exclude_characters="\n\r\0", codec="utf-8", max_codepoint=0x2FF
)


def _trailing_backslash_ok(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 0


sections_st = st.text(_SAFE, min_size=1, max_size=8).map(lambda s: s.strip(" \t")).filter(bool)
keys_st = (
    st.text(_SAFE, min_size=1, max_size=8)
    .map(lambda s: s.strip(" \t").replace("=", ""))
    .filter(lambda s: bool(s) and s[0] not in "#;[" and s == s.strip(" \t"))
)
values_st = (
    st.text(_SAFE, max_size=12)
    .map(lambda s: s.strip(" \t"))
    .filter(_trailing_backslash_ok)
)
option_st = st.builds(UnitOption, st.sampled_from(["Unit", "Service", "X-Fleet"]), keys_st,
                      values_st)
unit_st = st.lists(option_st, min_size=1, max_size=12).map(lambda o: UnitFile(tuple(o)))


@st.composite
def grouped_units(draw: st.DrawFn) -> UnitFile:
    names = draw(st.lists(sections_st, min_size=1, max_size=4, unique=True))
    options: list[UnitOption] = []
    for section in names:
        for key, value in draw(st.lists(st.tuples(keys_st, values_st), min_size=1, max_size=5)):
            options.append(UnitOption(section, key, value))
    return UnitFile(tuple(options))


@given(unit_st)
def test_serialize_is_idempotent(unit: UnitFile) -> None:
    once = unit.serialize()
    assert UnitFile.parse(once).serialize() == once
    assert once.endswith("\n") and not once.endswith("\n\n")


@given(grouped_units())
def test_round_trip_of_grouped_units(unit: UnitFile) -> None:
    assert UnitFile.parse(unit.serialize()) == unit
    assert UnitFile.parse_bytes(unit.serialize().encode()) == unit


@given(unit_st)
def test_values_unchanged_by_serialize(unit: UnitFile) -> None:
    again = UnitFile.parse(unit.serialize())
    for option in unit.options:
        assert again.values(option.section, option.name) == unit.values(
            option.section, option.name
        )
    assert again.sections() == unit.sections()


@st.composite
def decorated(draw: st.DrawFn, unit: UnitFile) -> str:
    """Render ``unit`` with comments, blank lines and blanks around keys and values."""
    pad = st.sampled_from(["", " ", "\t", "  \t "])
    noise = st.sampled_from(["", "\n", "# a comment\n", "; another one\n", "   \n", "#\n"])
    lines: list[str] = [draw(noise)]
    section: str | None = None
    for option in unit.options:
        if option.section != section:
            section = option.section
            lines.append(f"{draw(pad)}[{section}]{draw(pad)}\n{draw(noise)}")
        lines.append(
            f"{draw(pad)}{option.name}{draw(pad)}={draw(pad)}{option.value}{draw(pad)}\n"
            f"{draw(noise)}"
        )
    return "".join(lines)


@settings(max_examples=200)
@given(st.data())
def test_hash_ignores_comments_and_blanks(data: st.DataObject) -> None:
    unit = data.draw(unit_st)
    text = data.draw(decorated(unit))
    parsed = UnitFile.parse(text)
    assert parsed == unit
    assert parsed.hash() == unit.hash()
