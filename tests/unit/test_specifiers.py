"""The one specifier expansion (unitctl.specifiers): fleet's and systemd's name specifiers."""

from __future__ import annotations

import pytest

from unitctl.specifiers import expand, instance_dependent, machine_specifiers


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("foo@bar.service", "%n|%N|%p|%i|%%", "foo@bar.service|foo@bar|foo|bar|%"),
    ("a-b@x-y\\x2dz.service", "%P|%I|%f|%j|%J", "a/b|x/y-z|/x/y-z|b|b"),
    ("a-b.service", "%f|%i|%I", "/a/b||"),
    ("foo@bar.service", "%H %m %q 50% %%i", "%H %m %q 50% %i"),
])
def test_expand(name: str, value: str, expected: str) -> None:
    assert expand(name, value) == expected


def test_instance_dependent_and_machine_specifiers() -> None:
    assert instance_dependent("hostname=%i") and instance_dependent("%n")
    assert not instance_dependent("%p-%%i-%j")
    assert machine_specifiers("%H-%m-%H-%i-%%b") == ["%H", "%m"]
