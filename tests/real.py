"""Real components in the tests: the one place that decides "skip or fail" when one is missing.

A test that needs a real component (etcd, root, systemd-nspawn machines,
dockerd, dbus-daemon, busctl, shellcheck, systemd-analyze) calls
:func:`require` (or :func:`require_tool` / :func:`require_root`). When the
component is missing the test is skipped, with the reason, **unless**
``UNITCTL_REQUIRE_REAL=1`` is set: then it fails. ``.ci/run`` and ``bin/test``
set it, so CI can never pass by skipping the real thing. No other module of
tests/ calls ``pytest.skip`` or ``skipif`` (tests/unit/test_real_components.py
checks that).
"""

from __future__ import annotations

import os
import shutil

import pytest

#: The switch: set (and not "0") turns every skip for a missing component into a failure.
REQUIRE_REAL = "UNITCTL_REQUIRE_REAL"


def real_required() -> bool:
    """True when a missing real component must fail the test instead of skipping it."""
    return os.environ.get(REQUIRE_REAL, "") not in ("", "0")


def require(component: str, available: bool, why: str) -> None:
    """Go on if ``available``; else skip (``why``), or fail under ``UNITCTL_REQUIRE_REAL``."""
    if available:
        return
    reason = f"{component} unavailable: {why}"
    if real_required():
        pytest.fail(f"{reason} ({REQUIRE_REAL}=1: a real component cannot be skipped)",
                    pytrace=False)
    pytest.skip(reason)


def require_tool(tool: str, why: str = "") -> str:
    """The path of ``tool`` on PATH; :func:`require` it first."""
    path = shutil.which(tool)
    require(tool, path is not None, why or f"{tool} is not on PATH (scripts/install-deps.sh)")
    assert path is not None
    return path


def require_root(why: str) -> None:
    """:func:`require` root (``why``: what needs it)."""
    require("root", os.geteuid() == 0, why)


def require_nspawn(what: str = "real systemd machines") -> None:
    """Root and systemd-nspawn, for tests that boot machines (``what`` needs them)."""
    require_root(f"{what} need root (systemd-nspawn, netns, cgroups)")
    require_tool("systemd-nspawn", "systemd-nspawn is not installed (scripts/setup-cluster.sh)")
