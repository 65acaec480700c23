"""UNITCTL_REQUIRE_REAL (issue 10, deliver 12): a missing real component skips a
test, or fails it under the switch; and tests/real.py is the only place that skips."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.real import REQUIRE_REAL

REPO = Path(__file__).resolve().parents[2]
#: A real skip site: the systemd-analyze check of a generated unit.
SITE = "tests/unit/test_generate.py::test_systemd_analyze_verify_accepts_the_unit"


def _run_site(tmp_path: Path, switch: str) -> subprocess.CompletedProcess[str]:
    """Run SITE in a fresh pytest with a PATH that holds no systemd-analyze."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": str(empty), REQUIRE_REAL: switch}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rfs", SITE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(("switch", "rc", "outcome"), [
    ("1", 1, "1 failed"),
    ("", 0, "1 skipped"),
    ("0", 0, "1 skipped"),
])
def test_a_missing_tool_fails_under_the_switch_and_skips_without(
        tmp_path: Path, switch: str, rc: int, outcome: str) -> None:
    p = _run_site(tmp_path, switch)
    assert p.returncode == rc, p.stdout + p.stderr
    assert outcome in p.stdout, p.stdout
    assert "systemd-analyze unavailable" in p.stdout, p.stdout


def _skips(path: Path) -> list[str]:
    """Calls of pytest.skip / pytest.importorskip and pytest.mark.skip(if) in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("skip", "skipif", "importorskip"):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
    return found


def test_only_tests_real_skips() -> None:
    """Every skip for a missing component goes through tests/real.py's require()."""
    sites = [s for p in sorted((REPO / "tests").rglob("*.py"))
             if p != REPO / "tests" / "real.py" for s in _skips(p)]
    assert sites == []


def test_ci_and_bin_test_set_the_switch() -> None:
    assert f"export {REQUIRE_REAL}=1" in (REPO / ".ci" / "run").read_text()
    assert f"export {REQUIRE_REAL}=${{{REQUIRE_REAL}:-1}}" in (REPO / "bin" / "test").read_text()
