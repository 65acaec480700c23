"""A real dockerd and the test image, for the tests that need them.

The session fixture ``dockerd`` (import ``dockerd_fixture`` into a test module
to use it) runs scripts/setup-docker.sh, which is idempotent: it starts dockerd
when ``docker info`` fails and builds :data:`IMAGE` (busybox-static, no
registry) when it is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.real import require_root

REPO = Path(__file__).resolve().parents[2]

#: The image scripts/setup-docker.sh builds (sh, sleep, echo, true, false...).
IMAGE = "unitctl-busybox:test"


@pytest.fixture(scope="session", name="dockerd")
def dockerd_fixture() -> None:
    """Make sure dockerd runs and the test image exists (idempotent script)."""
    require_root("installing and starting dockerd needs root")
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-docker.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/setup-docker.sh failed: {proc.stderr.strip()}")
