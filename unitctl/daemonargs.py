"""unitctl-agent's command line: its flags, ``--help``, ``--version`` and usage errors. Pure.

The agent's only options are ``--config FILE`` and one ``--<name> VALUE`` per
configuration key in :data:`FLAGS` (a flag overrides the file and the
``UNITCTL_<NAME>`` environment), plus ``-h``/``--help`` and ``--version``. The
help page, the version line and every usage error read as click 8 wrote them
when the agent's entry was a click command (``tests/unit/test_daemon_args.py``
runs both on the same command lines): the agent does not import click (~1.4 MiB).

:func:`parse` maps ``argv`` to :class:`Invocation` (run with these settings) or to
:class:`Exit` (what to print where, and the exit code).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

FLAGS = ["etcd_servers", "etcd_key_prefix", "etcd_cafile", "etcd_certfile", "etcd_keyfile",
         "etcd_username", "etcd_password", "public_ip", "metadata", "agent_ttl",
         "units_directory", "peer_port", "stop_budget", "disable_engine", "verbosity",
         "reserved_cpu", "reserved_memory", "port_range", "metrics_address", "template_dirs",
         "dns_address", "dns_domain"]

SUMMARY = "Run the unitctl agent on this machine (and the engine when elected)."
CONFIG_HELP = "Configuration file (key = value lines, fleet.conf option names)."
#: long option → the configuration key it sets ("config" for --config)
VALUED = {"--config": "config", **{f"--{n.replace('_', '-')}": n for n in FLAGS}}
LONG = [*VALUED, "--version", "--help"]


@dataclass(frozen=True)
class Invocation:
    """Run the agent: the configuration file and the flags (None: not given)."""

    config_file: str
    flags: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Exit:
    """Print ``out`` on stdout and ``err`` on stderr, then exit with ``code``."""

    code: int
    out: str = ""
    err: str = ""


class _Usage(Exception):
    def __init__(self, message: str, with_usage: bool = True) -> None:
        super().__init__(message)
        self.message, self.with_usage = message, with_usage


def _help_rows(default_config: str) -> list[tuple[str, str]]:
    return [("--config TEXT", f"{CONFIG_HELP}  [default: {default_config}]"),
            ("--version", "Show the version and exit."),
            *((f"--{n.replace('_', '-')} TEXT",
               f"Overrides '{n}' from the config file and UNITCTL_{n.upper()}.") for n in FLAGS),
            ("-h, --help", "Show this message and exit.")]


def help_page(prog: str, default_config: str, width: int = 78) -> str:
    """The ``--help`` page (``width``: click's, the terminal's columns up to 80, minus 2)."""
    rows = _help_rows(default_config)
    first = min(max(len(opt) for opt, _ in rows), 30) + 2
    text_width = max(width - first - 2, 10)
    lines = [f"Usage: {prog} [OPTIONS]", "",
             *textwrap.wrap(SUMMARY, width, initial_indent="  ", subsequent_indent="  "),
             "", "Options:"]
    pad = " " * (first + 2)
    for opt, text in rows:
        wrapped = textwrap.wrap(text, text_width) or [""]
        if len(opt) <= first - 2:
            lines.append(f"  {opt:<{first}}{wrapped[0]}")
        else:
            lines += [f"  {opt}", pad + wrapped[0]]
        lines += [pad + w for w in wrapped[1:]]
    return "\n".join(lines) + "\n"


def _long(arg: str, rest: list[str], seen: dict[str, str]) -> str | None:
    """One ``--name[=value]``: its value stored in ``seen``; "help"/"version" returned."""
    name, eq, value = arg.partition("=")
    if name not in LONG:
        import difflib  # by the first unknown flag only: not in the running agent

        close = difflib.get_close_matches(name, LONG)
        hint = (f" Did you mean {close[0]!r}?" if len(close) == 1 else
                f" (Did you mean one of: {', '.join(repr(c) for c in sorted(close))}?)"
                if close else "")
        raise _Usage(f"No such option {name!r}.{hint}")
    if name in VALUED:
        if not eq:
            if not rest:
                raise _Usage(f"Option {name!r} requires an argument.", with_usage=False)
            value = rest.pop(0)
        seen[VALUED[name]] = value
        return None
    if eq:
        raise _Usage(f"Option {name!r} does not take a value.", with_usage=False)
    return name[2:]


def _scan(argv: Sequence[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(values given, eager options in order, extra arguments), as click's parser reads."""
    rest, extra = list(argv), []
    seen: dict[str, str] = {}
    eager: list[str] = []
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            extra += rest
            break
        if arg[:1] != "-" or arg == "-":
            extra.append(arg)
        elif arg.startswith("--") or arg.partition("=")[0] in LONG:
            action = _long(arg, rest, seen)
            eager += [action] if action else []
        else:
            for ch in arg[1:]:
                if ch != "h":
                    raise _Usage(f"No such option '-{ch}'.")
                eager.append("help")
    return seen, eager, extra


def parse(argv: Sequence[str], prog: str, version: str, default_config: str,
          width: int = 78) -> Invocation | Exit:
    """What the command line ``argv`` asks for (``prog``: the name shown in usage;
    ``default_config``: the configuration file when ``--config`` is not given)."""
    try:
        seen, eager, extra = _scan(argv)
        if eager:
            return (Exit(0, out=help_page(prog, default_config, width)) if eager[0] == "help"
                    else Exit(0, out=f"unitctl-agent version {version}\n"))
        if extra:
            plural = "s" if len(extra) > 1 else ""
            raise _Usage(f"Got unexpected extra argument{plural} ({' '.join(extra)})")
    except _Usage as exc:
        usage = (f"Usage: {prog} [OPTIONS]\nTry '{prog} --help' for help.\n\n"
                 if exc.with_usage else "")
        return Exit(2, err=f"{usage}Error: {exc.message}\n")
    config = seen.pop("config", default_config)
    return Invocation(config, {n: seen.get(n) for n in FLAGS})
