"""unitctl-agent's command line reads as it did when it was a click command.

The agent's entry no longer imports click (~1.4 MiB of an idle agent); its flags,
``--help``, ``--version`` and usage errors are :mod:`unitctl.daemonargs`. Here the
old click command (kept in this test, as it was in unitctl/daemon.py) and the new
parser run the same command lines: same stdout, stderr and exit code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from unitctl import __version__, daemon
from unitctl.config import DEFAULT_CONFIG_FILE
from unitctl.daemonargs import FLAGS, Exit, Invocation, parse

REPO = Path(__file__).resolve().parents[2]
PROG = "unitctl-agent"
GOT: list[tuple[str, dict[str, str | None]]] = []


def _options(f: Callable[..., None]) -> Callable[..., None]:
    for name in reversed(FLAGS):
        f = click.option(f"--{name.replace('_', '-')}", name, default=None,
                         help=f"Overrides '{name}' from the config file and UNITCTL_"
                              f"{name.upper()}.")(f)
    return f


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", default=DEFAULT_CONFIG_FILE, show_default=True,
              help="Configuration file (key = value lines, fleet.conf option names).")
@click.version_option(__version__, "--version", message="unitctl-agent version %(version)s")
@_options
def old_cli(config_file: str, **flags: str | None) -> None:
    """Run the unitctl agent on this machine (and the engine when elected)."""
    GOT.append((config_file, flags))


def _click(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Invocation | Exit:
    GOT.clear()
    try:
        old_cli.main(argv, prog_name=PROG)
    except SystemExit as done:
        out, err = capsys.readouterr()
        if GOT:  # the command ran, then click's standalone mode exited 0
            return Invocation(*GOT[0])
        return Exit(int(done.code or 0), out, err)
    raise AssertionError("click's standalone mode always exits")


CASES = [[], ["--help"], ["-h"], ["--version"], ["--foo"], ["--confi"], ["--etcd"],
         ["--config"], ["--config", "/x.conf"], ["--config=/y.conf", "--agent-ttl", "5s"],
         ["x"], ["x", "y"], ["-x"], ["-hx"], ["-h", "--foo"], ["--help=1"], ["--version=2"],
         ["--etcd-servers=http://e:2379", "--bogus"], ["x", "--help"], ["--version", "--help"],
         ["--help", "--version"], ["--", "--help"], ["-"], [""], ["--config", "--version"],
         ["--public-ip", "10.0.0.1", "--public-ip", "10.0.0.2"], ["-config"],
         ["--metrics-address", "off", "--dns-address=off", "--disable-engine", "true"]]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) or "none" for c in CASES])
def test_same_as_the_click_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    width = max(min(shutil.get_terminal_size().columns, 80) - 2, 50)
    assert parse(argv, PROG, __version__, DEFAULT_CONFIG_FILE, width) == _click(argv, capsys)


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_help_wraps_as_click_did(columns: int, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    width = max(min(shutil.get_terminal_size().columns, 80) - 2, 50)
    want = _click(["--help"], capsys)
    assert parse(["--help"], PROG, __version__, DEFAULT_CONFIG_FILE, width) == want


def test_the_entry_point_prints_help_and_usage_errors() -> None:
    for argv, code, stream in ((["--help"], 0, "stdout"), (["--nope"], 2, "stderr")):
        r = subprocess.run([sys.executable, "-m", "unitctl.daemon", *argv], cwd=str(REPO),
                           capture_output=True, text=True, timeout=60, check=False)
        want = parse(argv, "python -m unitctl.daemon", __version__, DEFAULT_CONFIG_FILE, 78)
        assert isinstance(want, Exit) and r.returncode == code
        assert getattr(r, stream) == (want.out if stream == "stdout" else want.err)
    assert daemon.FLAGS == FLAGS


def test_the_startup_heap_is_frozen_and_later_objects_are_not() -> None:
    """The daemon moves what start-up made into the permanent generation before it
    runs the agent; what it makes afterwards stays with the collector."""
    import gc

    from unitctl.daemon import freeze_startup_heap

    gc.unfreeze()
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        after = [object()]  # a tracked container made after the freeze
        assert gc.is_tracked(after) and gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
