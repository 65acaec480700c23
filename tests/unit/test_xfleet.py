"""Tests for unitctl.xfleet: [X-Fleet] requirements, validation and globs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.errors import ConfigError, InvalidOptionsError, InvalidUnitNameError
from unitctl.model import Requirements
from unitctl.unitfile import UnitFile
from unitctl.xfleet import (
    LEGACY,
    OPTIONS,
    SECTION,
    conflicts_between,
    format_metadata,
    matches_glob,
    option_values,
    parse_metadata,
    replace_cycle,
    replaces,
    requirements,
    validate,
)

MID = "0123456789abcdef0123456789abcdef"


def fleet(*lines: str) -> UnitFile:
    """A unit with a [Service] section and the given [X-Fleet] lines."""
    return UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\n" + "\n".join(lines))


def test_constants() -> None:
    assert SECTION == "X-Fleet"
    assert set(OPTIONS) == {
        "MachineID", "MachineOf", "MachineMetadata", "Conflicts", "Global", "Replaces",
    }
    assert dict(LEGACY) == {
        "X-ConditionMachineID": "MachineID",
        "X-ConditionMachineBootID": "MachineID",
        "X-ConditionMachineOf": "MachineOf",
        "X-ConditionMachineMetadata": "MachineMetadata",
        "X-Conflicts": "Conflicts",
    }


# -- option_values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(["K=a"], ["a"], id="single"),
        pytest.param(["K=a b"], ["a b"], id="unquoted-kept-whole"),
        pytest.param(["K=a", "K=b"], ["a", "b"], id="accumulate"),
        pytest.param(['K="a" "b"'], ["a", "b"], id="quoted-split"),
        pytest.param(['K="a b" "c"'], ["a b", "c"], id="space-inside-quotes"),
        pytest.param(['K="a"  "b"'], ["a", "b"], id="empty-pieces-dropped"),
        pytest.param(['K="region=us-east-1" "disk=ssd"'], ["region=us-east-1", "disk=ssd"],
                     id="metadata-example"),
        pytest.param(['K="a" b'], ['"a" b'], id="not-ending-in-quote"),
        pytest.param(['K=a "b"'], ['a "b"'], id="not-starting-with-quote"),
        pytest.param(['K="'], ['"'], id="lone-quote"),
        pytest.param(["K=a", "K="], [], id="reset"),
        pytest.param(["K=a", "K=", "K=b"], ["b"], id="reset-then-add"),
        pytest.param(["K=a", 'K=""', "K=b"], ["b"], id="quoted-empty-resets"),
        pytest.param(["K=%n"], ["foo@bar.service"], id="spec-n"),
        pytest.param(["K=%N"], ["foo@bar"], id="spec-N"),
        pytest.param(["K=%p"], ["foo"], id="spec-p"),
        pytest.param(["K=%i"], ["bar"], id="spec-i"),
        pytest.param(["K=%p-%i.socket"], ["foo-bar.socket"], id="spec-combined"),
        pytest.param(["K=100%%"], ["100%"], id="spec-percent"),
        pytest.param(["K=%%n"], ["%n"], id="spec-escaped-n"),
        pytest.param(["K=%H %m"], ["%H %m"], id="spec-unknown-kept"),
        pytest.param(['K="%p.a" "%i.b"'], ["foo.a", "bar.b"], id="spec-in-quoted"),
        pytest.param(["k=a"], [], id="case-sensitive"),
    ],
)
def test_option_values(lines: list[str], expected: list[str]) -> None:
    assert option_values("foo@bar.service", fleet(*lines), "K") == expected


def test_option_values_reads_only_x_fleet() -> None:
    unit = UnitFile.parse("[Unit]\nMachineOf=a.service\n[X-Fleet]\nMachineOf=b.service\n")
    assert option_values("x.service", unit, "MachineOf") == ["b.service"]


# -- requirements --------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([], Requirements(), id="nothing"),
        pytest.param([f"MachineID={MID.upper()}"], Requirements(machine_id=MID), id="id-lower"),
        pytest.param(["MachineID=aaaaaaaa", "MachineID=bbbbbbbb"],
                     Requirements(machine_id="bbbbbbbb"), id="id-last"),
        pytest.param(["MachineID=aaaaaaaa", "MachineID="], Requirements(), id="id-reset"),
        pytest.param(["X-ConditionMachineID=aaaaaaaa"], Requirements(machine_id="aaaaaaaa"),
                     id="id-legacy"),
        pytest.param(["X-ConditionMachineBootID=cccccccc"],
                     Requirements(machine_id="cccccccc"), id="id-boot"),
        pytest.param(["X-ConditionMachineBootID=cccccccc", "X-ConditionMachineID=bbbbbbbb",
                      "MachineID=aaaaaaaa"], Requirements(machine_id="aaaaaaaa"),
                     id="id-modern-first"),
        pytest.param(["X-ConditionMachineBootID=cccccccc", "X-ConditionMachineID=bbbbbbbb"],
                     Requirements(machine_id="bbbbbbbb"), id="id-legacy-before-boot"),
        pytest.param(["MachineID=%i"], Requirements(machine_id="bar"), id="id-specifier"),
        pytest.param(
            ["MachineMetadata=region=us", "MachineMetadata=region=eu",
             "X-ConditionMachineMetadata=disk=ssd"],
            Requirements(metadata={"region": frozenset({"us", "eu"}),
                                   "disk": frozenset({"ssd"})}),
            id="metadata-merge",
        ),
        pytest.param(['MachineMetadata="a=1" "b=2"'],
                     Requirements(metadata={"a": frozenset({"1"}), "b": frozenset({"2"})}),
                     id="metadata-quoted"),
        pytest.param(["MachineMetadata=noequals", "MachineMetadata==v", "MachineMetadata=k=",
                      "MachineMetadata=ok=1"],
                     Requirements(metadata={"ok": frozenset({"1"})}), id="metadata-malformed"),
        pytest.param(["MachineMetadata=host=%i"],
                     Requirements(metadata={"host": frozenset({"bar"})}), id="metadata-spec"),
        pytest.param(["MachineMetadata=a=1", "MachineMetadata="], Requirements(),
                     id="metadata-reset"),
        pytest.param(["MachineOf=a.service", "X-ConditionMachineOf=b.service"],
                     Requirements(machine_of=("a.service", "b.service")), id="machineof-merge"),
        pytest.param(["MachineOf=%p.socket"], Requirements(machine_of=("foo.socket",)),
                     id="machineof-spec"),
        pytest.param(["Conflicts=a.service b*.service", "X-Conflicts=c.service"],
                     Requirements(conflicts=("a.service", "b*.service", "c.service")),
                     id="conflicts-split-and-merge"),
        pytest.param(["Conflicts=%p@*.service"], Requirements(conflicts=("foo@*.service",)),
                     id="conflicts-spec"),
        pytest.param(["Conflicts=a.service", "Conflicts=", "Conflicts=b.service"],
                     Requirements(conflicts=("b.service",)), id="conflicts-reset"),
        pytest.param(["Replaces=old*.service", "Replaces=x.service"],
                     Requirements(replaces=("old*.service", "x.service")), id="replaces"),
        *(
            pytest.param([f"Global={v}"], Requirements(is_global=True), id=f"global-{v}")
            for v in ["true", "TRUE", "yes", "Yes", "1", "on", "ON", "t", "T"]
        ),
        *(
            pytest.param([f"Global={v}"], Requirements(is_global=False), id=f"global-{v}")
            for v in ["false", "no", "0", "off", "f", "2", "truthy", "y"]
        ),
        pytest.param(["Global=true", "Global=false"], Requirements(), id="global-last"),
        pytest.param(["Global=false", "Global=true"], Requirements(is_global=True),
                     id="global-last-true"),
        pytest.param(["Global=true", "Global="], Requirements(), id="global-reset"),
    ],
)
def test_requirements(lines: list[str], expected: Requirements) -> None:
    assert requirements("foo@bar.service", fleet(*lines)) == expected


def test_requirements_ignore_other_sections() -> None:
    unit = UnitFile.parse("[Unit]\nGlobal=true\nConflicts=x.service\n[Service]\nA=b\n")
    assert requirements("a.service", unit) == Requirements()


# -- validate ------------------------------------------------------------------


def _problems(name: str, unit: UnitFile) -> str:
    with pytest.raises(InvalidOptionsError) as info:
        validate(name, unit)
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    return message


@pytest.mark.parametrize(
    ("lines", "fragments"),
    [
        pytest.param([f"MachineID={MID}", "MachineOf=b.service"],
                     ["MachineID cannot be combined with MachineOf"], id="id+of"),
        pytest.param([f"MachineID={MID}", "Conflicts=b.service"],
                     ["MachineID cannot be combined with Conflicts"], id="id+conflicts"),
        pytest.param([f"MachineID={MID}", "Global=true"],
                     ["MachineID cannot be combined with Global"], id="id+global"),
        pytest.param([f"MachineID={MID}", "Replaces=b.service"],
                     ["MachineID cannot be combined with Replaces"], id="id+replaces"),
        pytest.param([f"X-ConditionMachineID={MID}", "X-ConditionMachineOf=b.service"],
                     ["MachineID cannot be combined with MachineOf"], id="legacy-id+of"),
        pytest.param([f"X-ConditionMachineBootID={MID}", "X-Conflicts=b.service"],
                     ["MachineID cannot be combined with Conflicts"], id="boot-id+conflicts"),
        pytest.param(["MachineOf=b.service", "Global=true"],
                     ["MachineOf cannot be combined with Global"], id="of+global"),
        pytest.param(["Global=yes", "Replaces=b.service"],
                     ["Global cannot be combined with Replaces"], id="global+replaces"),
        pytest.param(["Conflicts=b.service", "Replaces=c.service"],
                     ["Conflicts cannot be combined with Replaces"], id="conflicts+replaces"),
        pytest.param(["X-Conflicts=b.service", "Replaces=c.service"],
                     ["Conflicts cannot be combined with Replaces"], id="xconflicts+replaces"),
        pytest.param(["MachineOf=b.service", "Conflicts=b*.service"],
                     ["unresolvable requirements", "'b.service'", "Conflicts", "'b*.service'"],
                     id="of-matches-conflicts"),
        pytest.param(["MachineOf=b.service", "Replaces=b.service"],
                     ["unresolvable requirements", "'b.service'", "Replaces"],
                     id="of-matches-replaces"),
        pytest.param(["X-ConditionMachineOf=b.service", "X-Conflicts=*.service"],
                     ["unresolvable requirements"], id="legacy-of-matches-conflicts"),
        pytest.param(["MachineOf=a.service"], ["'a.service' names the unit itself"],
                     id="of-self"),
        pytest.param(["MachineOf=%n"], ["'a.service' names the unit itself"],
                     id="of-self-specifier"),
        pytest.param(["MachineOf=nope"], ["MachineOf", "'nope'"], id="of-invalid-name"),
        pytest.param(["MachineOf=b*.service"], ["MachineOf", "'b*.service'"],
                     id="of-glob-is-not-a-name"),
        pytest.param(["MachineMetadata=region"], ["MachineMetadata 'region'"],
                     id="metadata-no-equals"),
        pytest.param(["MachineMetadata==us"], ["MachineMetadata '=us'"], id="metadata-no-key"),
        pytest.param(["MachineMetadata=region="], ["MachineMetadata 'region='"],
                     id="metadata-no-value"),
        pytest.param(["X-ConditionMachineMetadata=bad"], ["MachineMetadata 'bad'"],
                     id="legacy-metadata"),
        pytest.param(["MachineID=abc"], ["MachineID 'abc'", "8 or 32 hex"], id="id-short"),
        pytest.param(["MachineID=" + "g" * 32], ["MachineID 'gggg"], id="id-not-hex"),
        pytest.param(["MachineID=" + "a" * 31], ["MachineID 'aaaa"], id="id-31"),
        pytest.param(["MachineID=" + "a" * 9], ["MachineID 'aaaaaaaaa'"], id="id-9"),
        pytest.param(["Conflicts=[b.service"], ["Conflicts pattern '[b.service' is malformed"],
                     id="conflicts-bad-glob"),
        pytest.param(["Replaces=x[-]"], ["Replaces pattern 'x[-]' is malformed"],
                     id="replaces-bad-glob"),
        *(pytest.param([f"Global={v}"], [f"Global {v!r} is not a boolean"],
                       id=f"global-not-boolean-{v}")
          for v in ["maybe", "2", "truthy", "y", "n", "enabled"]),
        pytest.param(["Global=maybe", "Global=true"], ["Global 'maybe' is not a boolean"],
                     id="global-not-boolean-even-when-a-later-value-is"),
    ],
)
def test_validate_problems(lines: list[str], fragments: list[str]) -> None:
    message = _problems("a.service", fleet(*lines))
    for fragment in fragments:
        assert fragment in message


def test_validate_lists_every_problem_once() -> None:
    unit = fleet(
        "MachineID=xyz", "MachineOf=b.service", "Global=true", "Conflicts=b.service",
        "Replaces=c.service", "MachineMetadata=oops",
    )
    message = _problems("a.service", unit)
    expected = [
        "MachineID cannot be combined with MachineOf",
        "MachineID cannot be combined with Conflicts",
        "MachineID cannot be combined with Global",
        "MachineID cannot be combined with Replaces",
        "MachineOf cannot be combined with Global",
        "Global cannot be combined with Replaces",
        "Conflicts cannot be combined with Replaces",
        "MachineID 'xyz'",
        "MachineMetadata 'oops'",
        "unresolvable requirements",
    ]
    for fragment in expected:
        assert message.count(fragment) == 1, fragment
    assert message.count("; ") == len(expected) - 1


def test_validate_checks_own_name_first() -> None:
    with pytest.raises(InvalidUnitNameError, match="'bad'"):
        validate("bad", fleet("MachineID=x", "Global=true"))
    with pytest.raises(InvalidUnitNameError, match=r"'@x\.service'"):
        validate("@x.service", fleet())


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([], id="no-options"),
        pytest.param([f"MachineID={MID}"], id="full-id"),
        pytest.param(["MachineID=01234567"], id="short-id"),
        pytest.param([f"MachineID={MID.upper()}"], id="upper-id"),
        pytest.param([f"MachineID={MID}", "MachineMetadata=a=b", "Global=false"],
                     id="id+metadata+global-false"),
        pytest.param(["MachineOf=b.service", "Conflicts=c*.service"], id="of+other-conflicts"),
        pytest.param(["MachineOf=b.service", "MachineOf=c@1.service"], id="two-peers"),
        pytest.param(["Global=true", "Conflicts=b.service", "MachineMetadata=a=b"],
                     id="global+conflicts+metadata"),
        pytest.param(["Replaces=old*.service", "MachineMetadata=role=web"], id="replaces"),
        pytest.param(["MachineMetadata=a=b=c"], id="metadata-value-with-equals"),
        pytest.param(["MachineOf=b.service", "MachineOf=", "Global=true"],
                     id="reset-drops-machineof"),
        pytest.param(["Conflicts=a.service"], id="conflicts-itself-is-fine"),
        pytest.param(['MachineMetadata="a=1" "b=2"'], id="quoted-metadata"),
        *(pytest.param([f"Global={v}"], id=f"global-boolean-{v}")
          for v in ["true", "TRUE", "yes", "1", "on", "t", "false", "No", "0", "off", "F"]),
        pytest.param(["Global=maybe", "Global="], id="global-reset-drops-earlier-values"),
    ],
)
def test_validate_accepts(lines: list[str]) -> None:
    assert validate("a.service", fleet(*lines)) == []


@pytest.mark.parametrize(
    ("lines", "warnings"),
    [
        pytest.param(["MachinOf=b.service"],
                     ["unknown [X-Fleet] option 'MachinOf' (did you mean MachineOf?)"],
                     id="typo-machineof"),
        pytest.param(["machineid=01234567"],
                     ["unknown [X-Fleet] option 'machineid' (did you mean MachineID?)"],
                     id="typo-case"),
        pytest.param(["Conflict=b.service"],
                     ["unknown [X-Fleet] option 'Conflict' (did you mean Conflicts?)"],
                     id="typo-conflicts"),
        pytest.param(["Frobnicate=1"], ["unknown [X-Fleet] option 'Frobnicate'"],
                     id="unknown-no-hint"),
        pytest.param(["Frobnicate=1", "Frobnicate=2"], ["unknown [X-Fleet] option 'Frobnicate'"],
                     id="unknown-once"),
        *(
            pytest.param([f"{legacy}={value}"], [f"{legacy} is deprecated, use {modern}"],
                         id=f"legacy-{legacy}")
            for legacy, modern, value in [
                ("X-ConditionMachineID", "MachineID", "01234567"),
                ("X-ConditionMachineBootID", "MachineID", "01234567"),
                ("X-ConditionMachineOf", "MachineOf", "b.service"),
                ("X-ConditionMachineMetadata", "MachineMetadata", "a=b"),
                ("X-Conflicts", "Conflicts", "b.service"),
            ]
        ),
        pytest.param(["X-Conflicts=b.service", "Foo=1"],
                     ["X-Conflicts is deprecated, use Conflicts",
                      "unknown [X-Fleet] option 'Foo'"], id="file-order"),
    ],
)
def test_validate_warnings(lines: list[str], warnings: list[str]) -> None:
    assert validate("a.service", fleet(*lines)) == warnings


def test_unknown_keys_outside_x_fleet_are_not_warned() -> None:
    unit = UnitFile.parse("[Service]\nMachinOf=x\n[X-Fleet]\nMachineOf=b.service\n")
    assert validate("a.service", unit) == []


# -- globs (Go path.Match test table) -----------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("abc", "abc", True),
        ("*", "abc", True),
        ("*c", "abc", True),
        ("a*", "a", True),
        ("a*", "abc", True),
        ("a*", "ab/c", False),
        ("a*/b", "abc/b", True),
        ("a*/b", "a/c/b", False),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
        ("a*b?c*x", "abxbbxdbxebxczzx", True),
        ("a*b?c*x", "abxbbxdbxebxczzy", False),
        ("ab[c]", "abc", True),
        ("ab[b-d]", "abc", True),
        ("ab[e-g]", "abc", False),
        ("ab[^c]", "abc", False),
        ("ab[^b-d]", "abc", False),
        ("ab[^e-g]", "abc", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "ab", False),
        ("a?b", "a\u263ab", True),
        ("a[^a]b", "a\u263ab", True),
        ("a???b", "a\u263ab", False),
        ("a[^a][^a][^a]b", "a\u263ab", False),
        ("[a-\u03b6]*", "\u03b1", True),
        ("*[a-\u03b6]", "A", False),
        ("a?b", "a/b", False),
        ("a*b", "a/b", False),
        ("[\\]a]", "]", True),
        ("[\\-]", "-", True),
        ("[x\\-]", "x", True),
        ("[x\\-]", "-", True),
        ("[x\\-]", "z", False),
        ("[\\-x]", "x", True),
        ("[\\-x]", "-", True),
        ("[\\-x]", "a", False),
        ("*x", "xxx", True),
        ("[^a]", "/", True),
        ("[z-a]", "m", False),
        ("[^z-a]", "m", True),
        ("[!a]", "!", True),
        ("[!a]", "b", False),
        ("a]", "a]", True),
        ("[a-c]", "", False),
        ("", "", True),
        ("", "a", False),
        ("foo@*.service", "foo@1.service", True),
        ("foo@*.service", "foo.service", False),
        ("*.service", "a.service", True),
        ("*.service", "a.socket", False),
        ("web.service", "web.service", True),
        ("web.service", "webxservice", False),
        ("a.(b)+c$", "a.(b)+c$", True),
        # malformed patterns match nothing
        ("[]a]", "]", False),
        ("[-]", "-", False),
        ("[x-]", "x", False),
        ("[x-]", "-", False),
        ("[-x]", "x", False),
        ("\\", "\\", False),
        ("[a-b-c]", "a", False),
        ("[", "[", False),
        ("[^", "a", False),
        ("[^bc", "a", False),
        ("a[", "a", False),
        ("a[", "ab", False),
        ("*[", "x[", False),
        ("abc[", "abc", False),
        ("[a\\", "a", False),
    ],
)
def test_matches_glob(pattern: str, name: str, matched: bool) -> None:
    assert matches_glob(pattern, name) is matched


@given(st.text(alphabet="ab.-@_/x", max_size=12))
def test_literal_pattern_matches_itself_only(name: str) -> None:
    assert matches_glob(name, name)
    assert not matches_glob(name, name + "z")


# -- conflicts and replaces ------------------------------------------------------


def req(**kwargs: tuple[str, ...]) -> Requirements:
    return Requirements(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a_name", "a_req", "b_name", "b_req", "expected"),
    [
        ("a.service", req(conflicts=("b.service",)), "b.service", req(), True),
        ("a.service", req(), "b.service", req(conflicts=("a.service",)), True),
        ("a.service", req(conflicts=("b*",)), "b1.service", req(), True),
        ("a.service", req(), "b1.service", req(conflicts=("a*",)), True),
        ("a.service", req(conflicts=("c*",)), "b.service", req(conflicts=("d*",)), False),
        ("a.service", req(), "b.service", req(), False),
        ("a@1.service", req(conflicts=("a@*.service",)), "a@1.service",
         req(conflicts=("a@*.service",)), False),
        ("a@1.service", req(conflicts=("a@*.service",)), "a@2.service", req(), True),
        ("a.service", req(conflicts=("[",)), "[", req(), False),
    ],
)
def test_conflicts_between(
    a_name: str, a_req: Requirements, b_name: str, b_req: Requirements, expected: bool
) -> None:
    assert conflicts_between(a_name, a_req, b_name, b_req) is expected
    assert conflicts_between(b_name, b_req, a_name, a_req) is expected


@pytest.mark.parametrize(
    ("a_name", "a_req", "b_name", "b_req", "expected"),
    [
        ("new.service", req(replaces=("old.service",)), "old.service", req(), True),
        ("new.service", req(replaces=("old*",)), "old-1.service", req(), True),
        ("new.service", req(), "old.service", req(replaces=("new.service",)), False),
        ("new.service", req(replaces=("other*",)), "old.service", req(), False),
        ("a.service", req(replaces=("b.service",)), "b.service",
         req(replaces=("a.service",)), False),
        ("a.service", req(replaces=("*",)), "a.service", req(), False),
        ("a.service", req(conflicts=("b.service",)), "b.service", req(), False),
    ],
)
def test_replaces(
    a_name: str, a_req: Requirements, b_name: str, b_req: Requirements, expected: bool
) -> None:
    assert replaces(a_name, a_req, b_name, b_req) is expected


def test_replaces_is_one_way() -> None:
    new, old = req(replaces=("old.service",)), req()
    assert replaces("new.service", new, "old.service", old)
    assert not replaces("old.service", old, "new.service", new)


# -- machine metadata ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("a=1", {"a": "1"}),
        ("a=1,b=2", {"a": "1", "b": "2"}),
        (" a = 1 , b=2 ", {"a": "1", "b": "2"}),
        ("a=1,,b=2,", {"a": "1", "b": "2"}),
        (",", {}),
        ("a=x=y", {"a": "x=y"}),
        ("a=1,a=2", {"a": "2"}),
        ("region=us-east-1,disk=ssd", {"region": "us-east-1", "disk": "ssd"}),
    ],
)
def test_parse_metadata(text: str, expected: dict[str, str]) -> None:
    assert parse_metadata(text) == expected


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("a", "'a'"),
        ("a=1,b", "'b'"),
        ("=1", "'=1'"),
        ("a=", "'a='"),
        ("a=1, b = ", "'b ='"),
        (" = ", "'='"),
    ],
)
def test_parse_metadata_errors(text: str, pair: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_metadata(text)
    assert pair in str(info.value)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({}, ""),
        ({"a": "1"}, "a=1"),
        ({"b": "2", "a": "1"}, "a=1,b=2"),
        ({"a": "x=y"}, "a=x=y"),
    ],
)
def test_format_metadata(mapping: dict[str, str], expected: str) -> None:
    assert format_metadata(mapping) == expected
    assert parse_metadata(expected) == mapping


@pytest.mark.parametrize(
    "mapping",
    [
        {"": "1"},
        {"a": ""},
        {"a=b": "1"},
        {"a,b": "1"},
        {"a": "1,2"},
        {" a": "1"},
        {"a": "1 "},
    ],
)
def test_format_metadata_errors(mapping: dict[str, str]) -> None:
    ((key, value),) = mapping.items()
    with pytest.raises(ConfigError) as info:
        format_metadata(mapping)
    assert repr(f"{key}={value}") in str(info.value)


_META_TEXT = st.text(
    st.characters(exclude_characters=",=", codec="utf-8"), min_size=1,
    max_size=6,
).map(str.strip).filter(bool)


@given(st.dictionaries(_META_TEXT, _META_TEXT, max_size=5))
def test_metadata_round_trip(mapping: dict[str, str]) -> None:
    assert parse_metadata(format_metadata(mapping)) == mapping


# -- the submit-time Replaces cycle ---------------------------------------------


def test_replace_cycle_names_each_step_and_its_pattern() -> None:
    units = {"a.service": req(replaces=("b*",)), "b1.service": req(replaces=("c.service",)),
             "c.service": req(replaces=("x.service", "a.*")), "d.service": req()}
    assert replace_cycle(units, ["c.service"]) == [
        ("c.service", "a.*"), ("a.service", "b*"), ("b1.service", "c.service")]


def test_replace_cycle_ignores_one_way_self_global_and_stored_only_cycles() -> None:
    one_way = {"a.service": req(replaces=("b.service",)), "b.service": req()}
    assert replace_cycle(one_way, ["a.service", "b.service"]) is None
    itself = {"web@1.service": req(replaces=("web@*.service",))}
    assert replace_cycle(itself, ["web@1.service"]) is None
    stored_cycle = {"a.service": req(replaces=("b.service",)),
                    "b.service": req(replaces=("a.service",)), "new.service": req()}
    assert replace_cycle(stored_cycle, ["new.service"]) is None
    with_global = {"a.service": req(replaces=("g.service",)),
                   "g.service": Requirements(replaces=("a.service",), is_global=True)}
    assert replace_cycle(with_global, ["a.service"]) is None


# -- templates: values that use specifiers are checked per instance (issue 11 item 5) ---


@pytest.mark.parametrize("line", [
    "MachineMetadata=hostname=%i", "MachineID=%i", "MachineOf=db@%i.service",
    "Conflicts=%p@%i-*", "Global=%i", 'MachineMetadata="host=%I" "zone=eu"',
])
def test_a_template_is_accepted_when_only_instances_can_be_checked(line: str) -> None:
    """fleet accepted these templates; unitctl refused MachineMetadata=hostname=%i."""
    assert validate("metadata@.service", fleet(line)) == []


def test_each_instance_is_checked_with_its_own_name() -> None:
    unit = fleet("MachineMetadata=hostname=%i", "MachineID=%i")
    assert validate(f"m@{MID[:8]}.service", unit) == []
    assert requirements(f"m@{MID[:8]}.service", unit).metadata == {"hostname": {MID[:8]}}
    with pytest.raises(InvalidOptionsError) as err:
        validate("m@web.service", unit)
    assert str(err.value) == (
        "m@web.service: MachineID 'web' is not a machine id (8 or 32 hex characters)")


def test_a_template_still_checks_what_does_not_depend_on_the_instance() -> None:
    with pytest.raises(InvalidOptionsError, match="MachineMetadata 'zone' is not of the form"):
        validate("m@.service", fleet("MachineMetadata=hostname=%i", "MachineMetadata=zone"))
    with pytest.raises(InvalidOptionsError, match="MachineID cannot be combined with Global"):
        validate("m@.service", fleet("MachineID=%i", "Global=true"))
    with pytest.raises(InvalidOptionsError, match="names the unit itself"):
        validate("m@x.service", fleet("MachineOf=%n"))


@pytest.mark.parametrize("name", ["web.service", "web@.service", "web@1.service"])
def test_machine_specifiers_are_refused_in_x_fleet(name: str) -> None:
    with pytest.raises(InvalidOptionsError) as err:
        validate(name, fleet("MachineMetadata=hostname=%H", "Conflicts=a-%m-%H b"))
    assert str(err.value) == (
        f"{name}: MachineMetadata 'hostname=%H' uses %H, which depends on the machine the "
        "unit runs on and is not known when it is placed (to choose a machine by name, make "
        "it the instance: MachineMetadata=hostname=%i); Conflicts 'a-%m-%H b' uses %m, %H, "
        "which depends on the machine the unit runs on and is not known when it is placed "
        "(to choose a machine by name, make it the instance: MachineMetadata=hostname=%i)")
    assert validate(name, fleet("MachineMetadata=pct=100%%H")) == []
