"""This host's machine id, read from /etc/machine-id: the one reader in unitctl."""

from __future__ import annotations

import re

from unitctl.errors import ConfigError

MACHINE_ID_FILE = "/etc/machine-id"
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


def read_machine_id(path: str = MACHINE_ID_FILE) -> str:
    """The machine id (32 lowercase hex).

    Raises:
        ConfigError: the file cannot be read or does not hold a machine id.
    """
    try:
        with open(path, encoding="ascii") as f:
            mid = f.read().strip().lower()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise ConfigError(f"cannot read {path}: {why}") from exc
    if not _MACHINE_ID.fullmatch(mid):
        raise ConfigError(f"{path} does not hold a 32-hex machine id")
    return mid


def machine_id_or_empty(path: str = MACHINE_ID_FILE) -> str:
    """The machine id, or ``""`` when this host has none (a client on a workstation)."""
    try:
        return read_machine_id(path)
    except ConfigError:
        return ""
