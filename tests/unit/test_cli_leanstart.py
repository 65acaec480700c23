"""The lean ``start``/``load`` take only the argument lists they understand completely."""

from __future__ import annotations

import pytest

from unitctl.cli import leanstart


def test_the_common_forms_are_taken() -> None:
    p = leanstart.parse(["--endpoint", "http://e:1", "start", "a.service", "--no-block",
                         "b.service", "--block-attempts", "3", "--replace"], {})
    assert p is not None
    assert (p["verb"], p["units"], p["no_block"], p["replace"], p["block_attempts"],
            p["endpoint"]) == ("start", ["a.service", "b.service"], True, True, 3, "http://e:1")


def test_defaults_and_the_equals_form() -> None:
    p = leanstart.parse(["load", "--block-attempts=0", "a.service"], {})
    assert p is not None
    assert (p["verb"], p["no_block"], p["replace"], p["block_attempts"]) == (
        "load", False, False, 0)


def test_the_environment_fills_global_options() -> None:
    p = leanstart.parse(["start", "a"], {"UNITCTL_ETCD_KEY_PREFIX": "/x/", "UNITCTL_USERNAME": ""})
    assert p is not None and p["etcd_key_prefix"] == "/x/" and "username" not in p


@pytest.mark.parametrize("argv", [
    [], ["start"], ["start", "--no-block"], ["sta", "a"], ["start", "--help", "a"],
    ["start", "-h", "a"], ["start", "--", "a"], ["start", "--block-attempts", "-1", "a"],
    ["start", "--block-attempts", "x", "a"], ["start", "--block-attempts", "+1", "a"],
    ["start", "--block-attempts", "\u00b2", "a"], ["start", "a", "--block-attempts"],
    ["--debug", "start", "a"], ["--driver", "API", "start", "a"], ["stop", "a"],
    ["start", "--no-block=1", "a"], ["start", "-", "a"],
])
def test_anything_else_is_clicks(argv: list[str]) -> None:
    assert leanstart.parse(argv, {}) is None


@pytest.mark.parametrize("env", [{"UNITCTL_START_NO_BLOCK": "1"}, {"UNITCTL_DEBUG": "1"}])
def test_variables_the_lean_path_does_not_read_are_clicks(env: dict[str, str]) -> None:
    assert leanstart.parse(["start", "a"], env) is None


def test_an_api_endpoint_is_clicks() -> None:
    assert leanstart.run(["--endpoint", "https://api:8379/v1/", "start", "a"], {}) is None
