"""``status``, ``journal`` and ``ssh``: see a unit on its machine.

``status`` and ``journal`` ask the unit's machine's agent by default, over the
agent channel in etcd (:mod:`unitctl.client.agents`): no sshd is needed, and
the agent's stdout and stderr bytes are printed as they come. With ``--ssh``
(or the global ``--tunnel``, fleetctl's) they run the command as fleetctl did:
locally (argv list, never a shell) when the machine is this host, else through
the OpenSSH client to ``<ssh-username>@<public ip>`` (the remote side receives
the command quoted with :func:`shlex.join`). ``ssh`` always uses OpenSSH.

Exit codes: ``status`` maps systemctl's with :func:`unitctl.errors.status_exit_code`
(3 "not running" becomes 11); ``journal`` exits with journalctl's. The process
runner is injectable (``Session.runner``) so tests can assert the exact argv.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from unitctl import names as unames
from unitctl.channel import JOURNAL_MODES, MAX_LINES, Verb
from unitctl.cli.complete import complete_machines, complete_units
from unitctl.cli.reach import agent_options, print_output, registered, via_ssh
from unitctl.cli.session import Session, session_of
from unitctl.cli.ssh import command_argv, ssh_argv
from unitctl.client.facade import Client
from unitctl.client.views import Snapshot
from unitctl.errors import (
    NotFoundError,
    RemoteCommandError,
    UnitctlError,
    UsageError,
    status_exit_code,
)
from unitctl.model import Machine


def _command_argv(sess: Session, machine_id: str, machine: Machine | None,
                  command: Sequence[str], port: int, tty: bool = False) -> list[str]:
    return command_argv(sess.ssh, sess.machine_id(), machine_id, machine, command, port, tty)


# ------------------------------------------------------------------ targets


async def _unit_targets(client: Client, name: str) -> tuple[bool, list[tuple[str, Machine | None]]]:
    """(is global, the machines the unit is loaded on)."""
    snap = await client.snapshot()
    rec = snap.units.get(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} does not exist.")
    if await client.is_global(rec):
        machines = sorted(snap.states.get(name, {}))
        return True, [(m, snap.machines.get(m)) for m in machines]
    machine, stored = snap.placed_state(name)
    if machine is None or stored is None:
        return False, []
    return False, [(machine, snap.machines.get(machine))]


def _not_loaded(name: str) -> UnitctlError:
    return UnitctlError(f"Unit {name} does not appear to be loaded.")


ssh_port_option = click.option("--ssh-port", type=click.IntRange(1, 65535), default=22,
                               show_default=True, help="Port of sshd on the machines (--ssh).")


Targets = list[tuple[str, Machine | None]]


async def _status_targets(client: Client, names: list[str]) -> list[Targets]:
    out = []
    for name in names:
        _, targets = await _unit_targets(client, name)
        if not targets:
            raise _not_loaded(name)
        out.append(targets)
    return out


@click.command("status")
@click.argument("units", nargs=-1, required=True, shell_complete=complete_units)
@agent_options
@ssh_port_option
@click.pass_context
def status(ctx: click.Context, units: tuple[str, ...], use_ssh: bool, agent_timeout: float,
           ssh_port: int) -> None:
    """Show `systemctl status -l UNIT` of the machine(s) running each unit."""
    sess = session_of(ctx)
    names = [unames.mangle(u) for u in units]
    if via_ssh(sess.ssh, use_ssh):
        ctx.exit(_status_over_ssh(sess, names, ssh_port))

    async def ask(client: Client) -> int:
        plans = await _status_targets(client, names)
        from unitctl.client.agents import AgentChannel  # asyncio: only these verbs

        async with AgentChannel(client.registry, agent_timeout) as channel:
            for i, (name, targets) in enumerate(zip(names, plans, strict=True)):
                for j, (machine_id, machine) in enumerate(targets):
                    if i or j:
                        click.echo("")
                    answer = await channel.ask(registered(machine_id, machine), Verb.STATUS,
                                               name, print_output)
                    code = status_exit_code(answer.check().code)
                    if code:
                        return code
        return 0

    ctx.exit(sess.run(ask))


def _status_over_ssh(sess: Session, names: list[str], ssh_port: int) -> int:
    async def plan(client: Client) -> list[list[list[str]]]:
        cmd = ["systemctl", "status", "-l"]
        return [[_command_argv(sess, m, machine, [*cmd, name], ssh_port) for m, machine in targets]
                for name, targets in zip(names, await _status_targets(client, names),
                                         strict=True)]

    for i, argvs in enumerate(sess.run(plan)):
        for j, argv in enumerate(argvs):
            if i or j:
                click.echo("")
            code = status_exit_code(sess.run_argv(argv))
            if code:
                return code
    return 0


@click.command("journal")
@click.argument("unit", shell_complete=complete_units)
@click.option("--lines", "-n", type=click.IntRange(0, MAX_LINES), default=10, show_default=True,
              help="Number of recent journal lines to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries (journalctl -f).")
@click.option("--output", "-o", default="short", show_default=True,
              help="journalctl output mode (short, verbose, json, cat ...).")
@click.option("--sudo", is_flag=True, help="Run journalctl with sudo (--ssh only).")
@agent_options
@ssh_port_option
@click.pass_context
def journal(ctx: click.Context, unit: str, lines: int, follow: bool, output: str, sudo: bool,
            use_ssh: bool, agent_timeout: float, ssh_port: int) -> None:
    """Show the journal of a unit, from the machine it runs on."""
    sess = session_of(ctx)
    name = unames.mangle(unit)
    ssh = via_ssh(sess.ssh, use_ssh)
    if not ssh and output not in JOURNAL_MODES:
        raise UsageError(f"unknown output mode {output!r}: use one of "
                         f"{', '.join(sorted(JOURNAL_MODES))}")

    async def target(client: Client) -> tuple[str, Machine | None]:
        is_global, targets = await _unit_targets(client, name)
        if is_global:
            raise UsageError(f"Unable to get journal for global unit {name}. "
                             "Check on a machine-by-machine basis.")
        if not targets:
            raise _not_loaded(name)
        return targets[0]

    if ssh:
        cmd = _journalctl_argv(name, lines, output, follow, sudo)
        machine_id, machine = sess.run(target)
        ctx.exit(sess.run_argv(_command_argv(sess, machine_id, machine, cmd, ssh_port,
                                             tty=follow)))

    async def ask(client: Client) -> int:
        machine_id, machine = await target(client)
        from unitctl.client.agents import AgentChannel  # asyncio: only these verbs

        async with AgentChannel(client.registry, agent_timeout) as channel:
            answer = await channel.ask(registered(machine_id, machine), Verb.JOURNAL, name,
                                       print_output, lines=lines, follow=follow, output=output)
        return answer.check().code

    try:
        code = sess.run(ask)
    except KeyboardInterrupt:
        code = 130  # interrupted -f: the request went with the lease; the agent stopped
    ctx.exit(code)


def _journalctl_argv(name: str, lines: int, output: str, follow: bool,
                     sudo: bool) -> list[str]:
    """The journalctl command the --ssh path runs on the unit's machine."""
    cmd = ["journalctl", "--unit", name, "--no-pager", "-n", str(lines), "--output", output,
           *(["-f"] if follow else [])]
    return ["sudo", *cmd] if sudo else cmd


@click.command("ssh", context_settings={"ignore_unknown_options": True,
                                         "allow_interspersed_args": False})
@click.argument("target", shell_complete=complete_machines)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--machine", "as_machine", is_flag=True, help="TARGET is a machine id prefix.")
@click.option("--unit", "as_unit", is_flag=True, help="TARGET is a unit name.")
@click.option("--forward-agent", "-A", is_flag=True, help="Forward the ssh agent.")
@ssh_port_option
@click.pass_context
def ssh(ctx: click.Context, target: str, command: tuple[str, ...], as_machine: bool,
        as_unit: bool, forward_agent: bool, ssh_port: int) -> None:
    """Open a shell (or run COMMAND) on a machine, given by id prefix or by a unit on it."""
    sess = session_of(ctx)
    if as_machine and as_unit:
        raise UsageError("--machine and --unit cannot be used together")

    async def find(client: Client) -> Machine:
        machines = [] if as_unit else await client.machine_by_prefix(target)
        unit_machine: Machine | None = None
        name = unames.mangle(target)
        unit_found = False
        if not as_machine and await client.registry.get_unit(name) is not None:
            unit_found = True
            unit_machine = await _machine_of_unit(client, name, await client.snapshot())
        if machines and unit_found:
            raise UsageError(f"{target} matches both a machine and unit {name}; "
                             "use --machine or --unit")
        if unit_found:
            if unit_machine is None:
                raise _not_loaded(name)
            return unit_machine
        if len(machines) > 1:
            ids = ", ".join(m.id for m in machines)
            raise UsageError(f"machine prefix {target} is ambiguous: it matches {ids}")
        if not machines:
            raise NotFoundError(f"no machine or unit matches {target}")
        return machines[0]

    machine = sess.run(find)
    if not machine.public_ip:
        raise RemoteCommandError(f"machine {machine.id} has no public IP to ssh to")
    argv = ssh_argv(sess.ssh, machine.public_ip, ssh_port, command or None,
                    forward_agent=forward_agent)
    ctx.exit(sess.run_argv(argv))


async def _machine_of_unit(client: Client, name: str, snap: Snapshot) -> Machine | None:
    rec = snap.units.get(name)
    if rec is None:
        return None
    if await client.is_global(rec):
        raise UsageError(f"Unable to connect to global unit {name}: use a machine id")
    machine, stored = snap.placed_state(name)
    if machine is None or stored is None:
        return None
    found = snap.machines.get(machine)
    if found is None:
        raise RemoteCommandError(f"machine {machine} of unit {name} is not registered")
    return found


COMMANDS = (status, journal, ssh)
