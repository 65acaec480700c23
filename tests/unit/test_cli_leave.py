"""How a ``unitctl`` process ends (:func:`unitctl.cli.launch.leave`): the exit code and
every byte written are those of a normal exit, the ``atexit`` callbacks run, and where
that cannot be promised the exit is the normal one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import atexit, sys, threading, time\nfrom unitctl.cli.launch import leave\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, cwd=str(ROOT), check=False, timeout=60)


def test_buffered_output_and_atexit_callbacks_are_not_lost() -> None:
    # stdout is a pipe (block-buffered): nothing written is flushed before leave()
    r = _run("atexit.register(lambda: print('from atexit'))\n"
             "sys.stdout.write('x' * 100000)\nsys.stderr.write('err')\nleave(3)\n")
    assert r.returncode == 3
    assert r.stdout == "x" * 100000 + "from atexit\n"
    assert r.stderr == "err"


def test_exit_codes_are_those_of_system_exit() -> None:
    for code, status in (("None", 0), ("0", 0), ("2", 2), ("True", 1), ("256", 0), ("-1", 255)):
        assert _run(f"leave({code})").returncode == status, code


def test_a_text_code_is_printed_and_exits_1_as_python_does() -> None:
    r = _run("leave('bad thing')")
    assert (r.returncode, r.stderr) == (1, "bad thing\n")


def test_a_running_non_daemon_thread_is_waited_for() -> None:
    r = _run("threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
             "leave(4)\n")
    assert (r.returncode, r.stdout) == (4, "thread done\n")


def test_a_closed_stdout_exits_as_python_does() -> None:
    # a write to a reader that went away: the exit is the one Python makes of it
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run([sys.executable, "-c",
                            "import sys\nfrom unitctl.cli.launch import leave\n"
                            "sys.stdout.write('x')\nleave(0)\n"],
                           stdout=write, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                           check=False, timeout=60)
        plain = subprocess.run([sys.executable, "-c", "import sys\nsys.stdout.write('x')\n"],
                               stdout=write, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                               check=False, timeout=60)
    finally:
        os.close(write)
    assert r.returncode == plain.returncode != 0
    assert "BrokenPipeError" in r.stderr and "BrokenPipeError" in plain.stderr
