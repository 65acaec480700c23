"""The one exception hierarchy of unitctl.

Every error a user can see is a :class:`UnitctlError`. Adapters translate the
errors of the libraries they wrap (aetcd, dbus-fast, docker) into these types at
the boundary, chained with ``raise ... from exc``. The CLI maps them to one line
on stderr and the exit code of the class; it never shows a traceback.
:func:`report` is that one mapping, used by ``unitctl``, ``unitctl generate``
and ``unitctl-agent`` alike.

::

    UnitctlError                      exit 1
    ├── UsageError                    exit 2   bad flags or arguments
    ├── InvalidUnitError              exit 2   unit text that cannot be parsed
    │   ├── InvalidUnitNameError      exit 2   a name fleet would refuse
    │   └── InvalidOptionsError       exit 2   [X-Fleet] options that cannot hold together
    ├── NotFoundError                 exit 3   unknown unit, machine or template
    ├── ConflictError                 exit 4   the stored state forbids the change
    ├── RegistryError                 exit 5   etcd failed
    │   └── RegistryUnavailable       exit 5   etcd cannot be reached
    ├── WaitTimeout                   exit 6   waited --block-attempts for a state
    │   └── UnschedulableError        exit 7   no machine can take the unit
    ├── SystemdError                  exit 8   systemd refused an operation
    │   └── BusLost                   exit 8   the connection to systemd's bus is gone
    ├── ContainerError                exit 9   the container engine failed
    ├── RemoteCommandError            exit 10  ssh / systemctl / journalctl / an agent failed
    ├── UnitNotRunning                exit 11  ``status``: systemd says the unit is not running
    └── ConfigError                   exit 2   bad agent configuration
"""

from __future__ import annotations

import typing as t


class UnitctlError(Exception):
    """Base of every error unitctl shows to a user."""

    #: The process exit code the CLI uses for this error.
    exit_code: t.ClassVar[int] = 1


class UsageError(UnitctlError):
    """Bad flags or arguments."""

    exit_code = 2


class InvalidUnitError(UnitctlError):
    """A unit file that cannot be parsed or is otherwise unusable."""

    exit_code = 2


class InvalidUnitNameError(InvalidUnitError):
    """A unit name that fleet's rules refuse."""


class InvalidOptionsError(InvalidUnitError):
    """[X-Fleet] options that contradict each other (fleet's ValidateOptions)."""


class NotFoundError(UnitctlError):
    """An unknown unit, machine or template."""

    exit_code = 3


class ConflictError(UnitctlError):
    """The registry's current state forbids the requested change."""

    exit_code = 4


class RegistryError(UnitctlError):
    """etcd returned an error."""

    exit_code = 5


class RegistryUnavailable(RegistryError):
    """etcd could not be reached within the request timeout."""


class WaitTimeout(UnitctlError):
    """A blocking command gave up after --block-attempts."""

    exit_code = 6


class UnschedulableError(WaitTimeout):
    """No machine can run the unit; the message carries the engine's reasons."""

    exit_code = 7


class SystemdError(UnitctlError):
    """systemd refused or failed an operation."""

    exit_code = 8


class BusLost(SystemdError):
    """The D-Bus connection to systemd is gone: the agent restarts in place."""


class ContainerError(UnitctlError):
    """The container engine (docker or podman) failed."""

    exit_code = 9


class RemoteCommandError(UnitctlError):
    """A command run over ssh (or locally for status/journal) failed."""

    exit_code = 10


class UnitNotRunning(UnitctlError):
    """``status``: systemd reports the unit inactive or failed (systemctl's exit 3)."""

    exit_code = 11


#: systemctl status's exit codes (LSB) -> unitctl's: 3 "not running" gets its own
#: code (it is unitctl's "not found" otherwise), 4 "no such unit" is unitctl's
#: "not found", and any other failure (1, ssh's 255 ...) a failed remote command.
_STATUS_EXIT = {0: 0, 3: UnitNotRunning.exit_code, 4: NotFoundError.exit_code}


def status_exit_code(systemctl_code: int) -> int:
    """The exit code of ``unitctl status`` for the exit code of ``systemctl status``."""
    return _STATUS_EXIT.get(systemctl_code, RemoteCommandError.exit_code)


class ConfigError(UnitctlError):
    """Bad agent configuration."""

    exit_code = 2


def one_line(text: str) -> str:
    """``text`` with its whitespace runs folded into single spaces."""
    return " ".join(text.split())


def report(exc: BaseException) -> tuple[str, int]:
    """The one error -> (message, exit code) mapping of every unitctl command.

    A :class:`UnitctlError` gives its own message (one line) and its class's
    exit code; anything else is an internal error, exit 1, named by its type.
    """
    if isinstance(exc, UnitctlError):
        return one_line(str(exc)) or type(exc).__name__, exc.exit_code
    return f"internal error: {type(exc).__name__}: {one_line(str(exc))}".rstrip(": "), 1
