"""Running a command on a machine: locally, or through the OpenSSH client.

:class:`SshConfig` holds the ssh-related global flags; :func:`ssh_argv` builds
the ``ssh`` argv (the remote side receives the command quoted with
:func:`shlex.join`); :func:`command_argv` runs a command locally (argv list,
never a shell) when the machine is this host, else over ssh;
:func:`run_process` is the real process runner (tests inject a fake one).
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from unitctl.errors import RemoteCommandError
from unitctl.model import Machine

#: Runs an argv with the terminal's stdio; returns its exit code.
Runner = Callable[[Sequence[str]], int]

DEFAULT_KNOWN_HOSTS = "~/.unitctl/known_hosts"


def run_process(argv: Sequence[str]) -> int:
    """The real runner: a child process sharing our stdin/stdout/stderr."""
    import subprocess  # only the verbs that run a process pay for it

    try:
        return subprocess.run(list(argv), check=False).returncode
    except FileNotFoundError as exc:
        raise RemoteCommandError(f"cannot run {argv[0]}: command not found") from exc
    except OSError as exc:
        raise RemoteCommandError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class SshConfig:
    """The ssh-related global flags."""

    username: str = "core"
    timeout: float = 10.0
    known_hosts_file: str = DEFAULT_KNOWN_HOSTS
    strict_host_key_checking: bool = True
    tunnel: str = ""


def ssh_argv(cfg: SshConfig, host: str, port: int, command: Sequence[str] | None,
             forward_agent: bool = False, tty: bool = False) -> list[str]:
    """The OpenSSH client argv that runs ``command`` (a shell when None) on ``host``."""
    known_hosts = os.path.expanduser(cfg.known_hosts_file)
    argv = ["ssh",
            "-o", f"StrictHostKeyChecking={'yes' if cfg.strict_host_key_checking else 'no'}",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-p", str(port)]
    if cfg.timeout and cfg.timeout > 0:
        argv += ["-o", f"ConnectTimeout={max(1, math.ceil(cfg.timeout))}"]
    if cfg.tunnel:
        argv += ["-J", cfg.tunnel]
    if forward_agent:
        argv.append("-A")
    if tty:
        argv.append("-t")
    argv += ["--", f"{cfg.username}@{host}"]
    if command:
        argv.append(shlex.join(command))
    return argv


def command_argv(ssh: SshConfig, local_machine_id: str, machine_id: str,
                 machine: Machine | None, command: Sequence[str], port: int,
                 tty: bool = False) -> list[str]:
    """Run ``command`` locally when ``machine_id`` is this host's, else over ssh."""
    if machine_id and machine_id == local_machine_id:
        return list(command)
    if machine is None:
        raise RemoteCommandError(f"machine {machine_id} is not registered (is its agent down?)")
    if not machine.public_ip:
        raise RemoteCommandError(f"machine {machine_id} has no public IP to ssh to")
    return ssh_argv(ssh, machine.public_ip, port, command, tty=tty)
