"""The ports drop-in: a unit's allocated host ports passed in as environment variables.

For a unit whose schedule entry carries ports, the agent writes
``/run/systemd/system/<unit>.d/50-unitctl-ports.conf`` (``[Service]
Environment=PORT=31000 ...``, :func:`unitctl.ports.dropin_text`) atomically
before it links the unit; the daemon-reload that follows every load makes
systemd read it. The unit's own file stays as stored (its hash is its
identity). systemd reads drop-ins only from its search path, not from the
directory of a linked file, hence the runtime directory; the file name is the
agent's and nothing else is touched there. Unloading the unit removes it.
"""

from __future__ import annotations

import contextlib
import os

from unitctl.atomicfile import atomic_write
from unitctl.errors import SystemdError
from unitctl.ports import DROPIN_NAME, dropin_ports, dropin_text
from unitctl.systemd.unitdir import RUNTIME_UNIT_DIR


class PortDropins:
    """Writes and removes the ports drop-in of a unit under ``root``."""

    def __init__(self, root: str = RUNTIME_UNIT_DIR) -> None:
        self.root = root

    def path(self, name: str) -> str:
        """The drop-in's path for unit ``name``."""
        return os.path.join(self.root, f"{name}.d", DROPIN_NAME)

    def write(self, name: str, ports: tuple[tuple[str, int], ...]) -> None:
        """Write the drop-in for ``ports``, or remove it when there are none."""
        if not ports:
            self.remove(name)
            return
        try:
            atomic_write(self.path(name), dropin_text(ports), mode=0o644, make_dirs=True)
        except OSError as exc:
            raise SystemdError(f"cannot write {self.path(name)}: {exc}") from exc

    def read(self, name: str) -> tuple[tuple[str, int], ...]:
        """The ports the unit's drop-in passes in now (none without a drop-in)."""
        try:
            with open(self.path(name), encoding="utf-8") as f:
                return dropin_ports(f.read())
        except FileNotFoundError:
            return ()
        except (OSError, UnicodeDecodeError) as exc:
            raise SystemdError(f"cannot read {self.path(name)}: {exc}") from exc

    def remove(self, name: str) -> None:
        """Remove the drop-in (and its directory when that is left empty)."""
        path = self.path(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))
