"""The chaos soak's tests: test_soak.py is marked ``chaos`` and ``cluster`` (root, nspawn).

test_checks.py checks the checker itself on made-up records (pure, fast).

Skipped, with the reason, when not root or systemd-nspawn is missing (the same
rule as tests/cluster). ``UNITCTL_CHAOS_SECONDS`` sets the soak's length (default
180), ``UNITCTL_CHAOS_SEED`` its seed (default: from the clock, printed and in
the report), ``UNITCTL_CHAOS_REPORT`` where the JSON report goes.
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
