"""The chaos soak's tests: test_soak.py is marked ``chaos`` and ``cluster`` (root, nspawn).

test_checks.py checks the checker itself on made-up records (pure, fast).
test_soak.py skips, with the reason, when not root or systemd-nspawn is missing
(the rule of tests/cluster). Its settings: ``UNITCTL_CHAOS_SECONDS`` (length,
default 180), ``UNITCTL_CHAOS_TTL`` (agent TTL, default 3), ``UNITCTL_CHAOS_SEED``
(default: the clock; printed and in the report), ``UNITCTL_CHAOS_REPORT`` (where
the JSON report goes).
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    soak = os.path.join(os.path.dirname(__file__), "test_soak.py")
    for item in items:
        if str(item.fspath) == soak:
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.cluster)
