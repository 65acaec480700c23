"""The ``unitctl`` command: global flags, the verb group and error mapping.

``unitctl`` is used like ``fleetctl --driver=etcd``. Every global flag can also
come from the environment as ``UNITCTL_<FLAG>`` (upper-case, ``-`` → ``_``),
e.g. ``UNITCTL_ENDPOINT``. Sub-commands may be abbreviated to a unique prefix
(as cobra allowed fleetctl's).

Errors: one place (:meth:`UnitctlGroup.invoke`) turns a
:class:`~unitctl.errors.UnitctlError` into one line ``Error: <message>`` on
stderr and the class's exit code; anything else becomes ``Error: internal
error: <type>: <message>`` and exit 1. A traceback is printed only with
``--debug``.

Tests inject a registry (and a fake process runner) through click's ``obj``::

    CliRunner().invoke(cli, [...], obj=Session(registry=Registry(MemoryKV())))
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from unitctl import __version__
from unitctl.cli import lists, remote, units
from unitctl.client import (
    DEFAULT_ENDPOINT,
    DEFAULT_PREFIX,
    Client,
    ClientConfig,
    open_registry,
)
from unitctl.errors import UnitctlError
from unitctl.registry.registry import Registry

T = TypeVar("T")


def _out(text: str) -> None:
    click.echo(text)


def _err(text: str) -> None:
    click.echo(text, err=True)


@dataclass
class Session:
    """What the verbs share: configuration, the registry and the process runner.

    Attributes:
        config: how to reach etcd (from the global flags).
        ssh: how to reach machines (from the global flags).
        registry: a registry to use instead of connecting to etcd (tests).
        runner: runs an argv with our stdio and returns its exit code.
        machine_id: returns this host's machine id.
        attempt_seconds: the length of one --block-attempts attempt.
        debug: print tracebacks.
    """

    config: ClientConfig = field(default_factory=ClientConfig)
    ssh: remote.SshConfig = field(default_factory=remote.SshConfig)
    registry: Registry | None = None
    runner: remote.Runner = remote.run_process
    machine_id: Callable[[], str] = remote.read_machine_id
    attempt_seconds: float = 1.0
    debug: bool = False

    def run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``fn`` with a client on a fresh event loop; close what we opened."""
        return asyncio.run(self._run(fn))

    async def _run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        registry = self.registry if self.registry is not None else \
            await open_registry(self.config)
        try:
            client = Client(registry, out=_out, err=_err, attempt_seconds=self.attempt_seconds)
            return await fn(client)
        finally:
            if registry is not self.registry:
                await registry.close()


#: Commands that live in modules other engineers own: imported on first use,
#: and simply absent when the module is missing or broken.
LAZY_COMMANDS = {"generate": ("unitctl.cli.generate", "generate")}


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


class UnitctlGroup(click.Group):
    """A group with prefix matching, lazy commands and the one error mapping."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        for name, (module, _) in LAZY_COMMANDS.items():
            try:
                if importlib.util.find_spec(module) is not None:
                    names.add(name)
            except (ImportError, ValueError):
                continue
        return sorted(names)

    def _lazy(self, name: str) -> click.Command | None:
        module, attr = LAZY_COMMANDS[name]
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except Exception:  # a colleague's module missing or broken: no such verb
            return None
        return cmd if isinstance(cmd, click.Command) else None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        if cmd_name in LAZY_COMMANDS:
            return self._lazy(cmd_name)
        matches = [n for n in self.list_commands(ctx) if n.startswith(cmd_name)]
        if len(matches) > 1:
            ctx.fail(f"ambiguous command {cmd_name!r}: it could be {', '.join(matches)}")
        if len(matches) == 1:
            return self.get_command(ctx, matches[0])
        return None

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd is not None else name), cmd, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except UnitctlError as exc:
            self._report(ctx, _one_line(str(exc)) or type(exc).__name__)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            self._report(ctx, f"internal error: {type(exc).__name__}: {_one_line(str(exc))}")
            ctx.exit(1)

    @staticmethod
    def _report(ctx: click.Context, message: str) -> None:
        sess = ctx.obj
        if isinstance(sess, Session) and sess.debug:
            click.echo(traceback.format_exc().rstrip(), err=True)
        click.echo(f"Error: {message}", err=True)


CONTEXT = {"auto_envvar_prefix": "UNITCTL", "help_option_names": ["-h", "--help"]}


@click.group("unitctl", cls=UnitctlGroup, context_settings=CONTEXT)
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True,
              help="etcd client URLs, comma-separated.")
@click.option("--etcd-key-prefix", default=DEFAULT_PREFIX, show_default=True,
              help="Key prefix of unitctl's data in etcd.")
@click.option("--ca-file", default="", help="CA certificate to verify etcd's TLS certificate.")
@click.option("--cert-file", default="", help="Client TLS certificate for etcd.")
@click.option("--key-file", default="", help="Client TLS key for etcd.")
@click.option("--username", default="", help="etcd user name.")
@click.option("--password", default="", help="etcd password.")
@click.option("--request-timeout", type=float, default=3.0, show_default=True,
              help="Seconds to wait for an answer from etcd.")
@click.option("--debug", is_flag=True, help="Print tracebacks of errors.")
@click.option("--tunnel", default="", help="Reach machines through this ssh jump host "
              "(host[:port]).")
@click.option("--ssh-username", default="core", show_default=True,
              help="User name for ssh to the machines.")
@click.option("--ssh-timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for an ssh connection.")
@click.option("--known-hosts-file", default=remote.DEFAULT_KNOWN_HOSTS, show_default=True,
              help="ssh known-hosts file for the machines.")
@click.option("--strict-host-key-checking", type=click.BOOL, default=True, show_default=True,
              help="Verify machines' ssh host keys (fleetctl's form: "
                   "--strict-host-key-checking=false).")
@click.option("--no-strict-host-key-checking", "no_strict", is_flag=True, hidden=True)
@click.option("--driver", type=click.Choice(["etcd", "API"], case_sensitive=False),
              default="etcd", hidden=True,
              help="Accepted for fleetctl scripts; unitctl always talks to etcd.")
@click.version_option(__version__, "--version", "-v", prog_name="unitctl",
                      message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, endpoint: str, etcd_key_prefix: str, ca_file: str, cert_file: str,
        key_file: str, username: str, password: str, request_timeout: float, debug: bool,
        tunnel: str, ssh_username: str, ssh_timeout: float, known_hosts_file: str,
        strict_host_key_checking: bool, no_strict: bool, driver: str) -> None:
    """unitctl: run systemd units across a cluster of machines (fleetctl, on etcd v3)."""
    if driver.lower() != "etcd":
        raise click.UsageError("--driver=API: unitctl has no fleet API server; it talks to "
                               "etcd directly (--driver=etcd, the default)")
    if no_strict:
        strict_host_key_checking = False
    if isinstance(ctx.obj, Registry):
        ctx.obj = Session(registry=ctx.obj)
    sess = ctx.ensure_object(Session)
    sess.debug = debug
    sess.config = ClientConfig(
        endpoint=endpoint, prefix=etcd_key_prefix, ca_file=ca_file, cert_file=cert_file,
        key_file=key_file, username=username, password=password,
        request_timeout=request_timeout)
    sess.ssh = remote.SshConfig(
        username=ssh_username, timeout=ssh_timeout, known_hosts_file=known_hosts_file,
        strict_host_key_checking=strict_host_key_checking, tunnel=tunnel)


@cli.command("version")
def version() -> None:
    """Print the version of unitctl."""
    click.echo(f"unitctl version {__version__}")


@cli.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_(ctx: click.Context, command: str | None) -> None:
    """Show help for unitctl or one of its commands."""
    parent = ctx.parent
    assert parent is not None
    if command is None:
        click.echo(parent.get_help())
        return
    group = parent.command
    assert isinstance(group, click.Group)
    cmd = group.get_command(parent, command)
    if cmd is None:
        raise click.UsageError(f"no such command {command!r}", ctx)
    with click.Context(cmd, info_name=cmd.name, parent=parent) as sub:
        click.echo(cmd.get_help(sub))


for _cmd in (*units.COMMANDS, *lists.COMMANDS, *remote.COMMANDS):
    cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> None:
    """The console-script entry point."""
    cli.main(args=argv, prog_name="unitctl")


if __name__ == "__main__":
    main()
