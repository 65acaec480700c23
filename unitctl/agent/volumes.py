"""The agent's local volumes: a unit's ``Volume=`` made on this machine and bound in.

Before the executor loads a unit (:class:`~unitctl.agent.executor.VolumesSink`),
:meth:`LocalVolumes.prepare` reads its ``[X-Fleet] Volume=NAME:SIZE:PATH``
items (:mod:`unitctl.volumes`) and, for each:

* makes ``/var/lib/unitctl/volumes/<NAME>`` (mode 0700) unless it is there,
  so a restart, a reload or an agent restart reuses it and its data; the size
  is recorded, not enforced (no quota);
* records it under ``volumes/<NAME>`` (created once, no lease,
  :class:`~unitctl.registry.volumes.VolumeStore`): the engine then keeps the
  unit on this machine for as long as the record exists.

It then writes ``/run/systemd/system/<unit>.d/60-unitctl-volumes.conf``
(``BindPaths=<dir>:<PATH>``) atomically, as the ports drop-in is written,
before the load's daemon-reload. Unloading removes the drop-in only: the data
stays, and ``unitctl volume rm`` removes the record, never the directory.
A unit without volumes gets no drop-in (any old one is removed).
"""

from __future__ import annotations

import contextlib
import logging
import os

from unitctl.atomicfile import atomic_write
from unitctl.errors import SystemdError, UnitctlError
from unitctl.registry.volumes import VolumeStore
from unitctl.systemd.unitdir import RUNTIME_UNIT_DIR
from unitctl.unitfile import UnitFile
from unitctl.volumes import (
    DROPIN_NAME,
    OPTION,
    VOLUMES_ROOT,
    Volume,
    VolumeRecord,
    dropin_text,
    parse_volumes,
    volume_dir,
)
from unitctl.xfleet import option_values

log = logging.getLogger("unitctl.agent")


class LocalVolumes:
    """Makes, records and binds in the local volumes of the units loaded here."""

    def __init__(self, store: VolumeStore, machine: str, root: str = VOLUMES_ROOT,
                 unit_root: str = RUNTIME_UNIT_DIR) -> None:
        self.store = store
        self.machine = machine
        self.root = root
        self.unit_root = unit_root

    def dropin_path(self, name: str) -> str:
        """The drop-in's path for unit ``name``."""
        return os.path.join(self.unit_root, f"{name}.d", DROPIN_NAME)

    async def prepare(self, name: str, text: str) -> None:
        """Make and record every volume of unit ``name``, then write its drop-in."""
        try:
            volumes = parse_volumes(option_values(name, UnitFile.parse(text), OPTION))
        except ValueError as exc:
            raise UnitctlError(f"{name}: {exc}") from exc
        if not volumes:
            self.remove(name)
            return
        for volume in volumes:
            self._make(volume)
            await self._record(name, volume)
        try:
            atomic_write(self.dropin_path(name), dropin_text(volumes, self.root),
                         mode=0o644, make_dirs=True)
        except OSError as exc:
            raise SystemdError(f"cannot write {self.dropin_path(name)}: {exc}") from exc

    def remove(self, name: str) -> None:
        """Remove the drop-in (and its directory when that is left empty)."""
        path = self.dropin_path(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))

    def _make(self, volume: Volume) -> None:
        path = volume_dir(volume.name, self.root)
        try:
            os.makedirs(self.root, mode=0o755, exist_ok=True)
            os.mkdir(path, mode=0o700)
            log.info("agent: made volume %s at %s", volume.name, path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SystemdError(f"cannot make volume {volume.name} at {path}: {exc}") from exc

    async def _record(self, unit: str, volume: Volume) -> None:
        """Create the volume's record; one naming another machine is left as it is."""
        record = VolumeRecord(volume.name, self.machine, volume_dir(volume.name, self.root),
                              volume.size, unit)
        if await self.store.create(record):
            return
        stored = await self.store.get(volume.name)
        if stored is not None and stored.machine != self.machine:
            log.warning("agent: volume %s is recorded on machine %s, not here: "
                        "this machine's copy is a different one", volume.name, stored.machine)
