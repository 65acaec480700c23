"""The agent's volumes: a unit's ``Volume=`` made on this machine (or its shared store) and
bound in.

Before the executor loads a unit (:class:`~unitctl.agent.executor.VolumesSink`),
:meth:`LocalVolumes.prepare` reads its ``[X-Fleet] Volume=`` items
(:mod:`unitctl.volumes`) and, for each:

* a **local** volume: makes ``/var/lib/unitctl/volumes/<NAME>`` (mode 0700)
  unless it is there, so a restart, a reload or an agent restart reuses it and
  its data, and records it under ``volumes/<NAME>`` naming this machine
  (created once, no lease, :class:`~unitctl.registry.volumes.VolumeStore`): the
  engine then keeps the unit on this machine for as long as the record exists;
  a record naming another machine is left as it is (a warning), unless the unit
  moves without its volume (``MoveWithoutVolume=yes``): then, while that machine
  is not registered, this agent takes the record over
  (:meth:`~unitctl.registry.volumes.VolumeStore.take_over`, compare-and-swap on
  the record's revision) and logs a WARNING naming the machine the data stays on;
  while that machine is registered it refuses to start the unit with an empty
  volume (SystemdError);
* a **shared** volume (``shared=STORE``): looks STORE up in this machine's own
  metadata (``storage.STORE=/mount/point``, the agent's ``metadata`` option),
  refuses a mount point that is not mounted (listed in ``/proc/self/mountinfo``:
  a failed NFS mount must not turn into local storage silently), makes
  ``<mount>/unitctl-volumes/<NAME>`` (mode 0700) unless some machine made it
  already, and records it naming the store (it pins nothing).

The size is recorded, not enforced (no quota). It then writes
``/run/systemd/system/<unit>.d/60-unitctl-volumes.conf`` (``BindPaths=<dir>:<PATH>``)
atomically, as the ports drop-in is written, before the load's daemon-reload.
Unloading removes the drop-in only: the data stays, and ``unitctl volume rm``
removes the record, never the directory. A unit without volumes gets no
drop-in (any old one is removed).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping

from unitctl.atomicfile import atomic_write
from unitctl.errors import SystemdError, UnitctlError
from unitctl.model import Machine
from unitctl.record import replace
from unitctl.registry.volumes import VolumeStore
from unitctl.systemd.unitdir import RUNTIME_UNIT_DIR
from unitctl.unitfile import UnitFile
from unitctl.volumes import (
    DROPIN_NAME,
    MOVE_OPTION,
    OPTION,
    STORE_KEY_PREFIX,
    VOLUMES_ROOT,
    Volume,
    VolumeRecord,
    dropin_text,
    mount_points,
    parse_move,
    parse_volumes,
    shared_dir,
    stores_of,
    volume_dir,
)
from unitctl.xfleet import option_values

log = logging.getLogger("unitctl.agent")

#: Where the agent reads which paths are mount points.
MOUNTINFO = "/proc/self/mountinfo"


class LocalVolumes:
    """Makes, records and binds in the volumes of the units loaded here.

    ``stores`` maps each shared store this machine declares to its mount point
    (:func:`unitctl.volumes.stores_of` of the machine's metadata).
    """

    def __init__(self, store: VolumeStore, machine: str, root: str = VOLUMES_ROOT,
                 unit_root: str = RUNTIME_UNIT_DIR, stores: Mapping[str, str] | None = None,
                 mountinfo: str = MOUNTINFO) -> None:
        self.store = store
        self.machine = machine
        self.root = root
        self.unit_root = unit_root
        self.stores = dict(stores or {})
        self.mountinfo = mountinfo

    @classmethod
    def of(cls, store: VolumeStore, machine: Machine) -> LocalVolumes:
        """The sink of ``machine``, with the shared stores its metadata declares."""
        return cls(store, machine.id, stores=stores_of(machine.metadata))

    def dropin_path(self, name: str) -> str:
        """The drop-in's path for unit ``name``."""
        return os.path.join(self.unit_root, f"{name}.d", DROPIN_NAME)

    async def prepare(self, name: str, text: str) -> None:
        """Make and record every volume of unit ``name``, then write its drop-in."""
        try:
            unit = UnitFile.parse(text)
            volumes = parse_volumes(option_values(name, unit, OPTION))
            may_move = parse_move(option_values(name, unit, MOVE_OPTION))
        except ValueError as exc:
            raise UnitctlError(f"{name}: {exc}") from exc
        if not volumes:
            self.remove(name)
            return
        for volume in volumes:
            path = self._make(name, volume)
            await self._record(name, volume, path, may_move)
        try:
            atomic_write(self.dropin_path(name), dropin_text(volumes, self.root, self.stores),
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

    def _make(self, unit: str, volume: Volume) -> str:
        """Make the volume's directory unless it is there; return its path."""
        if volume.store:
            path = shared_dir(volume.name, self._mounted_store(unit, volume))
        else:
            path = volume_dir(volume.name, self.root)
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            os.mkdir(path, mode=0o700)
            log.info("agent: made volume %s at %s", volume.name, path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SystemdError(f"cannot make volume {volume.name} at {path}: {exc}") from exc
        return path

    def _mounted_store(self, unit: str, volume: Volume) -> str:
        """The mount point of the volume's shared store here; SystemdError when this
        machine does not declare the store or nothing is mounted there."""
        mount = self.stores.get(volume.store)
        if mount is None:
            raise SystemdError(
                f"{unit}: volume {volume.name} is on shared store {volume.store}, which this "
                f"machine does not declare (agent metadata {STORE_KEY_PREFIX}{volume.store}"
                "=/mount/point)")
        try:
            with open(self.mountinfo, encoding="utf-8") as f:
                mounted = os.path.realpath(mount) in mount_points(f.read())
        except OSError as exc:
            raise SystemdError(f"cannot read {self.mountinfo}: {exc}") from exc
        if not mounted:
            raise SystemdError(
                f"{unit}: shared store {volume.store} is not mounted at {mount} on this "
                f"machine: refusing to put volume {volume.name} on local disk")
        return mount

    async def _record(self, unit: str, volume: Volume, path: str, may_move: bool) -> None:
        """Create the volume's record; one naming another place is left as it is, unless
        the unit may move without its volume (:meth:`_take_over`)."""
        machine = "" if volume.store else self.machine
        record = VolumeRecord(volume.name, machine, path, volume.size, unit, volume.store)
        if await self.store.create(record):
            return
        found = await self.store.get_with_revision(volume.name)
        if found is None:
            return
        stored, revision = found
        if (stored.store, stored.machine) == (record.store, record.machine):
            return
        if may_move and not stored.store and not record.store:
            await self._take_over(replace(record, left_on=stored.machine), stored.machine,
                                  revision)
            return
        where = (f"on shared store {stored.store}" if stored.store
                 else f"on machine {stored.machine}")
        log.warning("agent: volume %s is recorded %s, not where this unit asks for it: "
                    "this copy is a different one (unitctl volume rm %s to re-record it)",
                    volume.name, where, volume.name)

    async def _take_over(self, record: VolumeRecord, old: str, revision: int) -> None:
        """Record the volume here in place of lost machine ``old``; SystemdError when
        ``old`` is registered (or the record changed since it was read)."""
        if not await self.store.take_over(record, revision, old):
            raise SystemdError(
                f"{record.unit}: volume {record.name} is recorded on machine {old}, which is "
                "registered (or the record just changed): not starting it here with an "
                "empty volume")
        log.warning("agent: %s MOVED WITHOUT ITS VOLUME %s (MoveWithoutVolume=yes): its data "
                    "stays behind on machine %s; this machine (%s) now owns the volume and "
                    "starts the unit on %s, empty unless it held it before",
                    record.unit, record.name, old, self.machine, record.path)
