"""The ``unitctl`` command: global flags, the verb group and error mapping.

``unitctl`` is used like ``fleetctl --driver=etcd``. Every global flag can also
come from the environment as ``UNITCTL_<FLAG>`` (upper-case, ``-`` → ``_``),
e.g. ``UNITCTL_ENDPOINT``. Sub-commands may be abbreviated to a unique prefix
(as cobra allowed fleetctl's).

Errors: one place (:meth:`UnitctlGroup.invoke`) turns an exception into one
line ``Error: <message>`` on stderr and an exit code, through
:func:`unitctl.errors.report` (a :class:`~unitctl.errors.UnitctlError` gives
its class's code; anything else is ``internal error: <type>: <message>``,
exit 1). A traceback is printed only with ``--debug``.

The verbs are listed from :data:`unitctl.cli.verbs.VERBS` and a verb's module
is imported only when that verb runs (``--help`` imports none). Command
modules import only the leaves (session, complete, ssh, output) and never this
module. Tests inject a registry through click's ``obj`` (see
:mod:`unitctl.cli.session`).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from unitctl import __version__
from unitctl.cli import startup
from unitctl.cli.ssh import DEFAULT_KNOWN_HOSTS
from unitctl.cli.verbs import VERBS
from unitctl.errors import report
from unitctl.registry.connection import DEFAULT_ENDPOINT
from unitctl.registry.keys import DEFAULT_PREFIX


class UnitctlGroup(click.Group):
    """A group with prefix matching, the one error mapping, fleetctl's ``VERSION:``
    section in its help, and bare ``unitctl`` printing that help (exit 0)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and ctx.parent is None:  # fleetctl without arguments: help, exit 0
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's layout, with fleetctl's ``VERSION:`` section after the usage."""
        self.format_usage(ctx, formatter)
        with formatter.section("VERSION"):
            formatter.write_text(__version__)
        self.format_help_text(ctx, formatter)
        self.format_options(ctx, formatter)
        self.format_epilog(ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *VERBS})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The verbs with their one-line help, from the table (no module imported)."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
            elif cmd is None:
                rows.append((name, click.utils.make_default_short_help(VERBS[name].summary,
                                                                       limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name) or _load_verb(cmd_name)
        if cmd is not None and ctx.parent is None and _api_endpoint(ctx.params):
            # --endpoint is unitctl's HTTP API: its verbs, or a clear refusal
            return _api_command(cmd, cmd_name)
        if cmd is not None:
            return cmd
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
        except Exception as exc:  # the one place errors become exit codes
            message, code = report(exc)
            self._report(ctx, message)
            ctx.exit(code)

    @staticmethod
    def _report(ctx: click.Context, message: str) -> None:
        if getattr(ctx.obj, "debug", False) is True:
            import traceback  # only --debug prints one

            click.echo(traceback.format_exc().rstrip(), err=True)
        click.echo(f"Error: {message}", err=True)


def _load_verb(name: str) -> click.Command | None:
    """The click command of verb ``name``, its module imported now (None: no such verb)."""
    verb = VERBS.get(name)
    if verb is None:
        return None
    command = getattr(importlib.import_module(f"unitctl.cli.{verb.module}"), verb.attribute)
    assert isinstance(command, click.Command)
    startup.resume()  # the modules are loaded: the collector back on (unitctl.cli.startup)
    return command


def _api_endpoint(params: dict[str, Any]) -> bool:
    """The global flags name unitctl's HTTP API, not etcd."""
    from unitctl.client.connect import api_from_params

    return api_from_params(params) is not None


def _api_command(cmd: click.Command, typed: str) -> click.Command:
    """The API's form of verb ``cmd`` (``version`` and ``help`` stay; a verb the API
    cannot run is a command that says it needs etcd's endpoint)."""
    from unitctl.cli import apiverbs, lists

    commands = apiverbs.commands(apiverbs.Tables(
        (lists.UNIT_FIELDS, lists.UNIT_DEFAULT), (lists.UNIT_FILE_FIELDS, lists.UNIT_FILE_DEFAULT),
        (lists.MACHINE_FIELDS, lists.MACHINE_DEFAULT)))
    return commands.get(cmd.name or "") or (
        cmd if cmd.name in ("version", "help") else apiverbs.needs_etcd(typed))

CONTEXT = {"auto_envvar_prefix": "UNITCTL", "help_option_names": ["-h", "--help"]}


@click.group("unitctl", cls=UnitctlGroup, context_settings=CONTEXT)
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True,
              help="etcd client URLs, comma-separated; or the URL of unitctl's API "
                   "with a path (https://host:8379/), used with --token.")
@click.option("--token", default="", help="API bearer token (unitctl token create), "
              "with an API --endpoint.")
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
@click.option("--known-hosts-file", default=DEFAULT_KNOWN_HOSTS, show_default=True,
              help="ssh known-hosts file for the machines.")
@click.option("--strict-host-key-checking", type=click.BOOL, default=True, show_default=True,
              help="Verify machines' ssh host keys (fleetctl's form: "
                   "--strict-host-key-checking=false).")
@click.option("--no-strict-host-key-checking", "no_strict", is_flag=True, hidden=True)
@click.option("--driver", type=click.Choice(["etcd", "API"], case_sensitive=False),
              default="etcd", hidden=True,
              help="fleetctl's: API makes --endpoint the URL of unitctl's API server.")
@click.version_option(__version__, "--version", "-v", prog_name="unitctl",
                      message="%(prog)s version %(version)s")
@click.pass_context
def cli(ctx: click.Context, endpoint: str, token: str, etcd_key_prefix: str, ca_file: str,
        cert_file: str, key_file: str, username: str, password: str, request_timeout: float,
        debug: bool, tunnel: str, ssh_username: str, ssh_timeout: float,
        known_hosts_file: str, strict_host_key_checking: bool, no_strict: bool,
        driver: str) -> None:
    """unitctl: run systemd units across a cluster of machines (fleetctl, on etcd v3)."""
    # the session and the client are loaded by the verb that runs, not by --help
    from unitctl.cli.session import Session
    from unitctl.cli.ssh import SshConfig
    from unitctl.client.connect import config_from_params
    from unitctl.registry.registry import Registry

    if no_strict:
        strict_host_key_checking = False
    if isinstance(ctx.obj, Registry):
        ctx.obj = Session(registry=ctx.obj)
    sess = ctx.ensure_object(Session)
    sess.debug = debug
    sess.config = config_from_params(ctx.params)
    sess.ssh = SshConfig(
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


def main(argv: list[str] | None = None) -> None:
    """The console-script entry point."""
    cli.main(args=argv, prog_name="unitctl")


if __name__ == "__main__":
    main()
