"""The unitctl client, run as a user runs it (from the .venv) against the demo's etcd."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from unitctl_testing.demo.console import PROG, die
from unitctl_testing.demo.scenario import REPO, venv_python


def unitctl(endpoint: str, *args: str, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the unitctl client (from the .venv) against the demo's etcd."""
    if not os.access(venv_python(), os.X_OK):
        die(f"{venv_python()} is missing: run `{PROG} up` (it installs the client)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([venv_python(), "-m", "unitctl", "--endpoint", endpoint, *args],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, check=False)
    if check and p.returncode != 0:
        die(f"unitctl {' '.join(args)} failed (exit {p.returncode}): "
            f"{' '.join((p.stderr or p.stdout).split())}")
    return p


def show(endpoint: str, *args: str) -> str:
    """Print ``$ unitctl ARGS`` and its output; return the output."""
    p = unitctl(endpoint, *args, check=False)
    print(f"$ unitctl {' '.join(args)}")
    out = p.stdout + p.stderr
    print(out.rstrip("\n"), flush=True)
    return out


def registered(endpoint: str) -> dict[str, Any]:
    """machine id -> list-machines --json row (best effort: {} on error)."""
    p = unitctl(endpoint, "list-machines", "--json", "--full", check=False, timeout=30)
    try:
        return {m["machine"]: m for m in json.loads(p.stdout)} if p.returncode == 0 else {}
    except (ValueError, KeyError, TypeError):
        return {}


def unit_rows(endpoint: str) -> list[dict[str, str]]:
    p = unitctl(endpoint, "list-units", "--json", "--full", check=False, timeout=30)
    try:
        return list(json.loads(p.stdout)) if p.returncode == 0 else []
    except (ValueError, TypeError):
        return []


def service_record(endpoint: str, name: str) -> dict[str, Any]:
    """The first ``unitctl resolve NAME --json --full`` row ({} when none or on error)."""
    p = unitctl(endpoint, "resolve", "--json", "--full", name, check=False, timeout=30)
    try:
        rows = json.loads(p.stdout) if p.returncode == 0 else []
        return dict(rows[0]) if rows else {}
    except (ValueError, TypeError, IndexError, KeyError):
        return {}
