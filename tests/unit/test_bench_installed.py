"""The benchmarks' installed interpreter (bench/installed.py): it imports the
project's dependencies and a copy of the package on PYTHONPATH, and never the
editable install's finder that the development venv loads at every start."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.installed import installed_python

REPO = Path(__file__).resolve().parents[2]
PROBE = ("import sys, click, unitctl\n"
         "print(unitctl.__file__)\n"
         "print(sorted(m for m in sys.modules if 'editable' in m))\n")


def test_the_installed_interpreter_has_no_editable_finder(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(REPO / "unitctl", site / "unitctl")
    python = installed_python(str(tmp_path))
    r = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True,
                       cwd=str(site), env={**os.environ, "PYTHONPATH": str(site)}, timeout=60)
    where, finders = r.stdout.splitlines()
    assert where.startswith(str(site)), where
    assert finders == "[]"
