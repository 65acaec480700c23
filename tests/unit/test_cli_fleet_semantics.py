"""Issue 11 items 3, 5 and 6 through the real CLI, in-process on the in-memory store:
templates whose [X-Fleet] values use specifiers, instances checked one by one,
circular Replaces, fleetctl's help (VERSION, bare ``unitctl``), booleans."""

from __future__ import annotations

from click.testing import CliRunner

from tests.unit import test_cli
from tests.unit.test_cli import Env
from unitctl import __version__
from unitctl.cli.main import cli

env = test_cli.env  # the in-memory store and CLI runner of test_cli

BODY = "[Service]\nExecStart=/bin/sleep 1000\n"


def xfleet(*lines: str) -> str:
    return BODY + "\n[X-Fleet]\n" + "\n".join(lines) + "\n"


def test_a_template_with_an_instance_specifier_is_submitted(env: Env) -> None:
    """It was refused: "MachineMetadata 'hostname=' is not of the form key=value"."""
    env.write("metadata@.service", xfleet("MachineMetadata=hostname=%i"))
    r = env.invoke("submit", "metadata@.service")
    assert r.code == 0, r.err
    assert env.unit("metadata@.service") is not None


def test_an_instance_that_breaks_a_rule_is_refused_by_name(env: Env) -> None:
    env.write("pin@.service", xfleet("MachineID=%i"))
    assert env.invoke("submit", "pin@.service").code == 0
    for verb in ("submit", "load", "start"):
        r = env.invoke(verb, "--no-block", "pin@web.service") if verb != "submit" else \
            env.invoke(verb, "pin@web.service")
        assert r.code == 2, (verb, r.err)
        assert "pin@web.service: MachineID 'web' is not a machine id" in r.err, r.err
        assert env.unit("pin@web.service") is None


def test_machine_specifiers_are_refused_at_submit(env: Env) -> None:
    env.write("h@.service", xfleet("MachineMetadata=hostname=%H"))
    r = env.invoke("submit", "h@.service")
    assert r.code == 2 and "uses %H, which depends on the machine" in r.err, r.err
    assert env.unit("h@.service") is None


def test_a_stored_replace_cycle_does_not_block_other_submits(env: Env) -> None:
    """A cycle written past the client is the scheduler's to resolve; other units submit."""
    env.store("a.service", xfleet("Replaces=b.service"))
    env.store("b.service", xfleet("Replaces=a.service"))
    env.write("c.service", xfleet("Replaces=a.service"))
    assert env.invoke("submit", "c.service").code == 0


def test_global_maybe_names_the_accepted_spellings(env: Env) -> None:
    env.write("g.service", xfleet("Global=maybe"))
    r = env.invoke("submit", "g.service")
    assert r.code == 2
    assert "Global 'maybe' is not a boolean (true/yes/1/on/t or false/no/0/off/f)" in r.err
    assert env.unit("g.service") is None


def test_help_prints_the_version_as_fleetctl_does() -> None:
    for args in (["help"], ["--help"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0
        assert f"\nVERSION:\n  {__version__}\n" in r.stdout


def test_bare_unitctl_prints_the_help_and_exits_0() -> None:
    r = CliRunner().invoke(cli, [])
    assert r.exit_code == 0, r.output
    assert r.stdout == CliRunner().invoke(cli, ["help"]).stdout
    assert "Commands:" in r.stdout and "VERSION:" in r.stdout
