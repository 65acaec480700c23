"""The verbs that change units: ``submit``, ``load``, ``start``, ``stop``,
``unload``, ``destroy`` and ``restart`` (fleetctl's semantics and messages).

Every argument is resolved and validated before anything is written, so bad
input never changes what is stored. Blocking verbs wait with registry watches;
one ``--block-attempts`` attempt lasts about a second and 0 waits for ever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from unitctl import names as unames
from unitctl.cli.complete import complete_units
from unitctl.cli.reach import agent_options, via_ssh
from unitctl.cli.session import Session, pass_session
from unitctl.cli.ssh import command_argv
from unitctl.client.activate import activate, set_and_wait
from unitctl.client.facade import Client
from unitctl.client.resolve import existing
from unitctl.client.views import Snapshot
from unitctl.errors import RemoteCommandError, UnitctlError
from unitctl.model import DesiredState, UnitRecord


def _no_units() -> None:
    click.echo("No units given", err=True)


def _blocking(f: Any) -> Any:
    f = click.option("--block-attempts", type=click.IntRange(min=0), default=0,
                     show_default=True,
                     help="Wait this many attempts (about 1 s each) for the state; "
                          "0 waits for ever.")(f)
    f = click.option("--no-block", is_flag=True,
                     help="Do not wait for the units to reach the state.")(f)
    return f


def _units_arg(f: Any) -> Any:
    return click.argument("units", nargs=-1, shell_complete=complete_units)(f)


def _mangled(units: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(unames.mangle(u) for u in units))


async def _records(c: Client, snap: Snapshot | None, names: Sequence[str]) -> list[UnitRecord]:
    """The stored records of ``names`` (all must exist), from ``snap`` when read already."""
    if snap is None:
        return await c.records(names)
    return [existing(snap.units, name) for name in names]


# ------------------------------------------------------------------ submit


@click.command("submit")
@_units_arg
@click.option("--replace", is_flag=True,
              help="Replace units in the registry that differ from the local files.")
@pass_session
def submit(sess: Session, units: tuple[str, ...], replace: bool) -> None:
    """Upload unit files (or template instances) to the registry."""
    if not units:
        _no_units()
        return

    async def go(c: Client) -> None:
        resolved = await c.resolve(units, "submit")
        for rec in await c.submit(resolved, replace, "submit"):
            c.out(f"Unit {rec.name} {rec.desired.value}")

    sess.run(go)


# ------------------------------------------------------------------ load / start


def _activate(sess: Session, units: Sequence[str], target: DesiredState, verb: str,
              no_block: bool, block_attempts: int, replace: bool) -> None:
    if not units:
        _no_units()
        return

    async def go(c: Client) -> None:
        await activate(c, units, target, verb, no_block, block_attempts, replace)

    sess.run(go)


@click.command("load")
@_units_arg
@_blocking
@click.option("--replace", is_flag=True, help="Replace units that differ from the local files.")
@pass_session
def load(sess: Session, units: tuple[str, ...], no_block: bool, block_attempts: int,
         replace: bool) -> None:
    """Submit units if needed and load them on a machine (desired state loaded)."""
    _activate(sess, units, DesiredState.LOADED, "load", no_block, block_attempts, replace)


@click.command("start")
@_units_arg
@_blocking
@click.option("--replace", is_flag=True, help="Replace units that differ from the local files.")
@pass_session
def start(sess: Session, units: tuple[str, ...], no_block: bool, block_attempts: int,
          replace: bool) -> None:
    """Submit and load units if needed, and start them (desired state launched)."""
    _activate(sess, units, DesiredState.LAUNCHED, "start", no_block, block_attempts, replace)


# ------------------------------------------------------------------ stop / unload


def _lower(sess: Session, units: Sequence[str], target: DesiredState, verb: str,
           no_block: bool, block_attempts: int,
           check: Callable[[Snapshot, str], None] | None) -> list[str] | None:
    """Set a lower desired state; return the non-global units waited for."""
    if not units:
        _no_units()
        return None
    names = _mangled(units)

    async def go(c: Client) -> list[str]:
        snap = await c.snapshot() if check is not None else None
        records = await _records(c, snap, names)
        local, glob = await c.split_global(records)
        if check is not None and snap is not None:
            for name in local:
                check(snap, name)
        await set_and_wait(c, records, (local, glob), target, verb, no_block, block_attempts)
        return local

    result: list[str] = sess.run(go)
    return result


def _must_be_active(verb: str) -> Callable[[Snapshot, str], None]:
    def check(snap: Snapshot, name: str) -> None:
        if snap.current(name) is DesiredState.INACTIVE:
            raise UnitctlError(f"Unable to {verb} unit {name} in state inactive")
    return check


def _go_list(names: Sequence[str]) -> str:
    """Go's ``%v`` of a []string: ``[a b]``."""
    return "[" + " ".join(names) + "]"


@click.command("stop")
@_units_arg
@_blocking
@pass_session
def stop(sess: Session, units: tuple[str, ...], no_block: bool, block_attempts: int) -> None:
    """Stop units (desired state loaded); they stay loaded on their machine."""
    done = _lower(sess, units, DesiredState.LOADED, "stop", no_block, block_attempts,
                  _must_be_active("stop"))
    if done is not None:
        click.echo(f"Successfully stopped units {_go_list(done)}.", err=True)


@click.command("unload")
@_units_arg
@_blocking
@pass_session
def unload(sess: Session, units: tuple[str, ...], no_block: bool, block_attempts: int) -> None:
    """Stop and unload units from their machines (desired state inactive)."""
    done = _lower(sess, units, DesiredState.INACTIVE, "unload", no_block, block_attempts, None)
    if done is not None:
        click.echo(f"Successfully unloaded units {_go_list(done)}.", err=True)


# ------------------------------------------------------------------ destroy


@click.command("destroy")
@_units_arg
@_blocking
@pass_session
def destroy(sess: Session, units: tuple[str, ...], no_block: bool,
            block_attempts: int) -> None:
    """Remove units from the registry (stopping and unloading them first)."""
    if not units:
        _no_units()
        return
    names = _mangled(units)

    async def go(c: Client) -> None:
        destroyed = await c.destroy(names)
        for name in destroyed:
            c.out(f"Destroyed {name}")
        if not no_block:
            await c.wait_for(destroyed, Client.gone, block_attempts,
                             what="be removed from its machines")

    sess.run(go)


# ------------------------------------------------------------------ restart


@click.command("restart")
@_units_arg
@click.option("--block-attempts", type=click.IntRange(min=0), default=0, show_default=True,
              help="Wait this many attempts (about 1 s each) per step; 0 waits for ever.")
@agent_options
@click.option("--ssh-port", type=click.IntRange(1, 65535), default=22, show_default=True,
              help="Port of sshd, to restart global units (--ssh).")
@pass_session
def restart(sess: Session, units: tuple[str, ...], block_attempts: int, use_ssh: bool,
            agent_timeout: float, ssh_port: int) -> None:
    """Restart units: stop then start (global units: restarted by each machine's agent)."""
    if not units:
        _no_units()
        return
    names = _mangled(units)
    ssh = via_ssh(sess.ssh, use_ssh)

    async def go(c: Client) -> list[tuple[str, list[list[str]]]]:
        snap = await c.snapshot()
        records = await _records(c, snap, names)
        local, glob = await c.split_global(records)
        check = _must_be_active("restart")
        for name in local:
            check(snap, name)
        by_name = {rec.name: rec for rec in records}
        for name in local:
            await c.restart(snap, by_name[name], block_attempts)
        if ssh:
            return [(name, restart_global_argvs(sess, snap, name, ssh_port)) for name in glob]
        failed = [name for name in glob
                  if not await restart_global(c, snap, name, agent_timeout)]
        if failed:
            raise RemoteCommandError(f"restart of global unit(s) {', '.join(failed)} failed "
                                     "on some machines")
        return []

    for name, argvs in sess.run(go):
        for argv in argvs:
            code = sess.run_argv(argv)
            if code:
                raise RemoteCommandError(f"restart of global unit {name} failed (exit {code})")
        click.echo(f"Restarted global unit {name}")


async def restart_global(c: Client, snap: Snapshot, name: str, agent_timeout: float) -> bool:
    """Restart a global unit through the agent of every machine reporting it, at once.

    One line per machine; True when every machine restarted it.
    """
    machines = sorted(snap.states.get(name, {}))
    if not machines:
        click.echo(f"Global unit {name} runs on no machine: nothing to restart", err=True)
        return True
    from unitctl.client.agents import AgentChannel  # asyncio: only these verbs

    async with AgentChannel(c.registry, agent_timeout) as channel:
        results = await channel.restart_each(
            {m: snap.machines.get(m) is not None for m in machines}, name)
    for machine, why in zip(machines, results, strict=True):
        if why is None:
            click.echo(f"Restarted global unit {name} on {machine}")
        else:
            click.echo(f"Failed to restart global unit {name} on {machine}: {why}", err=True)
    return all(why is None for why in results)


def restart_global_argvs(sess: Session, snap: Snapshot, name: str,
                         port: int = 22) -> list[list[str]]:
    """``systemctl restart UNIT`` on every machine reporting a global unit."""
    cmd = ["systemctl", "restart", name]
    local_id = sess.machine_id()
    return [command_argv(sess.ssh, local_id, m, snap.machines.get(m), cmd, port)
            for m in sorted(snap.states.get(name, {}))]


COMMANDS = (submit, load, start, stop, unload, destroy, restart)
