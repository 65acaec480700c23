"""The collector is off while ``unitctl`` loads its modules and on (frozen) for the verb."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unitctl.cli import startup

ROOT = Path(__file__).resolve().parents[2]


def _gc_during(args: list[str]) -> dict[str, object]:
    """Whether the collector is on, and how much is frozen, when ``unitctl ARGS`` exits."""
    code = ("import atexit, gc, json, runpy, sys\n"
            "atexit.register(lambda: sys.stderr.write('\\nGC ' + json.dumps("
            "{'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}) + '\\n'))\n"
            f"sys.argv = ['unitctl', *{args!r}]\n"
            "runpy.run_module('unitctl', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "COLUMNS": "80"}, check=False, timeout=60)
    return dict(json.loads(r.stderr.rsplit("\nGC ", 1)[1]))


def test_a_verb_runs_with_the_collector_on_and_the_start_up_frozen() -> None:
    seen = _gc_during(["help", "list-units"])  # loads the verb's module, then prints
    assert seen["enabled"] is True
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000


def test_the_kept_help_never_turns_it_back_on() -> None:
    assert _gc_during(["--help"]) == {"enabled": False, "frozen": 0}


def test_resume_without_pause_leaves_the_collector_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "_paused", False)
    frozen = gc.get_freeze_count()
    startup.resume()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_pause_then_resume() -> None:
    assert gc.isenabled()
    try:
        startup.pause()
        assert not gc.isenabled()
        startup.resume()
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
