"""The launcher's kept ``--help`` is click's, byte for byte, and only used when it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unitctl.cli import helpgen, helptext, launch

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], columns: str | None, launcher: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    code = ("import sys\nfrom unitctl.cli.launch import main\nmain(sys.argv[1:])\n" if launcher
            else "import sys\nfrom unitctl.cli.main import main\nmain(sys.argv[1:])\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=False, timeout=60)


def test_the_kept_help_is_current() -> None:
    assert launch.fingerprint() == helptext.FINGERPRINT, (
        "the help's sources changed: run `python -m unitctl.cli.helpgen`")
    assert helpgen.render() == helptext.TEXT, "run `python -m unitctl.cli.helpgen`"
    kept = {name: getattr(helptext, name) for name in helpgen.option_names()}
    assert helpgen.option_names() == kept, "run `python -m unitctl.cli.helpgen`"


@pytest.mark.parametrize("args", [list(a) for a in launch.HELP_ARGS])
@pytest.mark.parametrize("columns", [None, "80", "200"])
def test_the_launcher_prints_what_click_prints(args: list[str], columns: str | None) -> None:
    fast, slow = _run(args, columns, True), _run(args, columns, False)
    assert (fast.returncode, slow.returncode) == (0, 0), (fast.stderr, slow.stderr)
    assert fast.stdout == slow.stdout
    assert fast.stdout == helptext.TEXT


#: Global options around --help/-h: click prints the help before it converts any value.
WITH_OPTIONS = [
    ["--endpoint", "http://127.0.0.1:1", "--help"],
    ["--endpoint=http://127.0.0.1:1", "--debug", "-h"],
    ["--help", "--token", "-h"],
    ["--strict-host-key-checking", "false", "--no-strict-host-key-checking", "--help"],
    ["--request-timeout", "not-a-number", "--driver", "bogus", "--help"],
]

#: What the launcher leaves to click (each printed or refused as click does).
TO_CLICK = [
    ["--endpoint", "--help"],  # --help is --endpoint's value: no command, exit 2
    ["--help", "--endpoint"],  # a missing value
    ["--debug=1", "--help"],  # a flag given a value
    ["--version"], ["-v", "--help"], ["--help", "-v"],  # eager, in command-line order
    ["--endpoint", "http://127.0.0.1:1", "help"],  # the verb runs the group's callback
    ["--help", "list-units"], ["--hel"], ["-"], ["--", "--help"],
]


@pytest.mark.parametrize("args", WITH_OPTIONS)
def test_global_options_around_help_get_the_kept_text(args: list[str]) -> None:
    assert launch.asks_for_help(args)
    fast, slow = _run(args, "80", True), _run(args, "80", False)
    assert (fast.returncode, slow.returncode) == (0, 0), (fast.stderr, slow.stderr)
    assert fast.stdout == slow.stdout == helptext.TEXT


@pytest.mark.parametrize("args", TO_CLICK)
def test_anything_else_is_clicks(args: list[str]) -> None:
    assert not launch.asks_for_help(args)
    fast, slow = _run(args, "80", True), _run(args, "80", False)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode, slow.stdout, slow.stderr)


def test_a_narrow_terminal_gets_clicks_own_wrapping() -> None:
    fast, slow = _run(["--help"], "60", True), _run(["--help"], "60", False)
    assert fast.stdout == slow.stdout
    assert fast.stdout != helptext.TEXT


def test_other_arguments_go_to_click() -> None:
    fast, slow = _run(["help", "list-units"], None, True), _run(["help", "list-units"], None,
                                                                  False)
    assert fast.returncode == slow.returncode == 0
    assert fast.stdout == slow.stdout and "--fields" in fast.stdout
    bad = _run(["--no-such-flag"], None, True)
    assert bad.returncode == 2 and "No such option" in bad.stderr


@pytest.mark.parametrize("columns", ["80", "60"])
def test_a_closed_stdout_is_exit_1_without_a_traceback(columns: str) -> None:
    # the kept text (80) and click's own path (60) behave alike
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run([sys.executable, "-m", "unitctl", "--help"], stdout=write_end,
                           stderr=subprocess.PIPE, text=True, cwd=ROOT, check=False,
                           env={**os.environ, "COLUMNS": columns}, timeout=60)
    finally:
        os.close(write_end)
    assert (r.returncode, r.stderr) == (1, "")


@pytest.mark.parametrize("columns", ["80", "60"])
def test_no_stdout_at_all_is_exit_0_without_a_traceback(columns: str) -> None:
    # fd 1 closed: Python has no sys.stdout; click then prints nothing, and so do we
    code = ("import os, subprocess, sys\n"
            "os.close(1)\n"
            "r = subprocess.run([sys.executable, '-m', 'unitctl', '--help'],\n"
            "                   stderr=subprocess.PIPE)\n"
            "sys.stderr.write(f'{r.returncode} {r.stderr!r}')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       check=True, env={**os.environ, "COLUMNS": columns}, timeout=60)
    assert r.stderr == "0 b''"


def test_a_stale_fingerprint_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert launch.kept_help(["--help"]) == helptext.TEXT
    monkeypatch.setattr(helptext, "FINGERPRINT", helptext.FINGERPRINT ^ 1)
    assert launch.kept_help(["--help"]) is None


def test_missing_sources_fall_back(tmp_path: Path) -> None:
    assert launch.fingerprint(str(tmp_path)) is None
