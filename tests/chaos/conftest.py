"""The chaos soak's tests: marked ``chaos`` and ``cluster`` (real systemd machines, root).

Skipped, with the reason, when not root or systemd-nspawn is missing (the same
rule as tests/cluster). ``UNITCTL_CHAOS_SECONDS`` sets the soak's length (default
180), ``UNITCTL_CHAOS_SEED`` its seed (default: from the clock, printed and in
the report), ``UNITCTL_CHAOS_REPORT`` where the JSON report goes.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.cluster)
