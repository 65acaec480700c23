"""Tests for unitctl.names: fleet's unit-name rules and helpers."""

from __future__ import annotations

import pytest

from unitctl.errors import InvalidUnitError, InvalidUnitNameError
from unitctl.names import (
    MAX_NAME_LENGTH,
    REMOVED_TYPES,
    TEMPLATE_TYPES,
    UNIT_TYPES,
    is_instance,
    is_template,
    mangle,
    name_without_suffix,
    template_of,
    unit_instance,
    unit_prefix,
    unit_suffix,
    validate_name,
)


def test_type_tables() -> None:
    assert sorted(UNIT_TYPES) == [
        "automount", "busname", "device", "mount", "path", "scope", "service",
        "slice", "snapshot", "socket", "swap", "target", "timer",
    ]
    assert sorted(TEMPLATE_TYPES) == ["path", "service", "socket", "target", "timer"]
    assert TEMPLATE_TYPES <= UNIT_TYPES
    assert MAX_NAME_LENGTH == 255  # systemd's UNIT_NAME_MAX (256) counts the NUL


@pytest.mark.parametrize(
    "name",
    [
        "foo.service",
        "a.service",
        "Foo-Bar_baz:1.service",
        "foo.bar.service",
        "foo\\x2dbar.service",
        "foo@.service",
        "foo@bar.service",
        "foo@bar.baz.service",
        "foo@bar@baz.service",
        "foo@1.socket",
        "foo@.path",
        "foo@x.target",
        "foo@x.timer",
        "x" * (MAX_NAME_LENGTH - len(".service")) + ".service",
        *(f"unit.{t}" for t in sorted(UNIT_TYPES - REMOVED_TYPES)),
    ],
)
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("x" * 250 + ".service", "longer than 255", id="too-long"),
        pytest.param("x" * 248 + ".service", "longer than 255 characters (256)",
                     id="256-chars-systemd-refuses"),
        pytest.param("unit.snapshot", "systemd no longer has the unit type 'snapshot'",
                     id="snapshot-removed-from-systemd"),
        pytest.param("unit.busname", "systemd no longer has the unit type 'busname'",
                     id="busname-removed-from-systemd"),
        pytest.param("foo", "suffix", id="no-dot"),
        pytest.param("foo.", "end with '.'", id="trailing-dot"),
        pytest.param("foo.bar", "unknown unit type 'bar'", id="unknown-type"),
        pytest.param("foo.Service", "unknown unit type 'Service'", id="type-case"),
        pytest.param("foo.service.bak", "unknown unit type 'bak'", id="backup-suffix"),
        pytest.param("@foo.service", "start with '@'", id="leading-at"),
        pytest.param("@.service", "start with '@'", id="only-at"),
        pytest.param(".service", "start with '.'", id="only-suffix"),
        pytest.param(".foo.service", "start with '.'", id="leading-dot"),
        pytest.param("a/b.service", "must not contain '/'", id="slash"),
        pytest.param("/etc/foo.service", "must not contain '/'", id="abs-path"),
        pytest.param("foo..service", "must not contain '..'", id="dotdot"),
        pytest.param("foo bar.service", "invalid character ' '", id="space"),
        pytest.param("foo$.service", "invalid character '$'", id="dollar"),
        pytest.param("f\u00f6o.service", "invalid character '\u00f6'", id="non-ascii"),
        pytest.param("foo%i.service", "invalid character '%'", id="percent"),
        pytest.param("foo\n.service", "invalid character", id="newline"),
        pytest.param("foo@.mount", "'mount' cannot be a template", id="template-mount"),
        pytest.param("foo@bar.device", "'device' cannot be a template", id="instance-device"),
        pytest.param("foo@bar.slice", "'slice' cannot be a template", id="instance-slice"),
        pytest.param("foo@bar.scope", "'scope' cannot be a template", id="instance-scope"),
    ],
)
def test_invalid_names(name: str, fragment: str) -> None:
    with pytest.raises(InvalidUnitNameError) as info:
        validate_name(name)
    message = str(info.value)
    assert fragment in message
    assert repr(name) in message


def test_invalid_name_is_an_invalid_unit_error() -> None:
    with pytest.raises(InvalidUnitError):
        validate_name("nope")


@pytest.mark.parametrize(
    ("name", "template", "instance", "prefix", "inst", "stem", "suffix"),
    [
        ("foo.service", False, False, "foo", "", "foo", "service"),
        ("foo@.service", True, False, "foo", "", "foo@", "service"),
        ("foo@bar.service", False, True, "foo", "bar", "foo@bar", "service"),
        ("foo@bar.baz.socket", False, True, "foo", "bar.baz", "foo@bar.baz", "socket"),
        ("a.b.timer", False, False, "a.b", "", "a.b", "timer"),
        ("foo@a@b.service", False, True, "foo", "a@b", "foo@a@b", "service"),
    ],
)
def test_name_parts(
    name: str, template: bool, instance: bool, prefix: str, inst: str, stem: str, suffix: str
) -> None:
    assert is_template(name) is template
    assert is_instance(name) is instance
    assert unit_prefix(name) == prefix
    assert unit_instance(name) == inst
    assert name_without_suffix(name) == stem
    assert unit_suffix(name) == suffix


@pytest.mark.parametrize(
    ("instance", "template"),
    [
        ("foo@bar.service", "foo@.service"),
        ("foo@1.socket", "foo@.socket"),
        ("a-b@x.y.timer", "a-b@.timer"),
    ],
)
def test_template_of(instance: str, template: str) -> None:
    assert template_of(instance) == template
    assert is_template(template_of(instance))


@pytest.mark.parametrize("name", ["foo.service", "foo@.service", "foo"])
def test_template_of_refuses_non_instances(name: str) -> None:
    with pytest.raises(InvalidUnitNameError, match=repr(name)):
        template_of(name)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("foo", "foo.service"),
        ("foo.service", "foo.service"),
        ("foo.socket", "foo.socket"),
        ("foo@1", "foo@1.service"),
        ("foo@1.timer", "foo@1.timer"),
        ("foo.bar", "foo.bar.service"),
        ("foo.service.bak", "foo.service.bak.service"),
        ("./units/foo.service", "foo.service"),
        ("/abs/path/web", "web.service"),
        ("dir/", "dir.service"),
        ("a/b/c.mount", "c.mount"),
        ("foo.", "foo..service"),
        ("", "..service"),
        ("/", "/.service"),
    ],
)
def test_mangle(arg: str, expected: str) -> None:
    assert mangle(arg) == expected
