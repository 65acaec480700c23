"""How a command reaches a unit's machine: through its agent (the default) or OpenSSH.

``status``, ``journal`` and ``restart`` of a global unit ask the machine's
agent over the agent channel (:mod:`unitctl.client.agents`); ``--ssh``, or
fleetctl's global ``--tunnel``, makes them run the command over OpenSSH as
fleetctl did (:mod:`unitctl.cli.ssh`). :func:`print_output` prints what an
agent sent, byte for byte, as it comes.
"""

from __future__ import annotations

from typing import Any

import click

from unitctl.channel import ANSWER_TIMEOUT, ReplyKind
from unitctl.cli.ssh import SshConfig
from unitctl.errors import RemoteCommandError
from unitctl.model import Machine


def agent_options(f: Any) -> Any:
    """``--ssh`` and ``--agent-timeout``: how a command reaches a unit's machine."""
    f = click.option("--agent-timeout", type=click.FloatRange(min=0.1), default=ANSWER_TIMEOUT,
                     show_default=True,
                     help="Seconds a machine's agent has to take the request.")(f)
    return click.option("--ssh", "use_ssh", is_flag=True,
                        help="Use OpenSSH to the machine, as fleetctl did, instead of its agent "
                             "(implied by --tunnel).")(f)


def via_ssh(cfg: SshConfig, use_ssh: bool) -> bool:
    """True when the command goes over OpenSSH (``--ssh``, or fleetctl's ``--tunnel``)."""
    return use_ssh or bool(cfg.tunnel)


def registered(machine_id: str, machine: Machine | None) -> str:
    """``machine_id``, if its agent is registered (else a clear error)."""
    if machine is None:
        raise RemoteCommandError(f"machine {machine_id} is not registered (is its agent down?)")
    return machine_id


def print_output(kind: ReplyKind, data: bytes) -> None:
    """Write a remote command's stdout (or stderr) bytes as they are, at once."""
    stream = click.get_binary_stream("stderr" if kind is ReplyKind.ERR else "stdout")
    stream.write(data)
    stream.flush()
