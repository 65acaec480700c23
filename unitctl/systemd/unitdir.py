"""The unit directory the agent owns (default ``/run/unitctl/units``).

Every file the manager writes, links, stops or deletes is ``<dir>/<name>`` for
a valid unit name; a name that would resolve elsewhere is refused. Files are
written atomically (:func:`unitctl.atomicfile.atomic_write`, mode 0644, the
directory is created 0755), and :meth:`UnitDirectory.present` reports each
file's :func:`~unitctl.agent.ports.content_hash`. A unit whose runtime link
(``/run/systemd/system/<name>``, made by ``LinkUnitFiles(runtime=True)``)
points into the directory is ours as well, even once its file is gone.

``present()`` runs on every state signal, so it must not re-read every file each
time (at 500 files that was 12 ms per signal): a file's hash is kept with its
``(inode, size, mtime_ns, ctime_ns)`` and recomputed only when that changes, or
after our own write or removal of it.

Local file-system I/O only; every failure is a :class:`unitctl.errors.SystemdError`.
"""

from __future__ import annotations

import os

from unitctl.agent.ports import content_hash
from unitctl.atomicfile import atomic_write
from unitctl.errors import InvalidUnitNameError, SystemdError
from unitctl.names import validate_name

__all__ = ["DEFAULT_UNITS_DIR", "RUNTIME_UNIT_DIR", "UnitDirectory"]

DEFAULT_UNITS_DIR = "/run/unitctl/units"
#: Where ``LinkUnitFiles(runtime=True)`` puts its symlinks.
RUNTIME_UNIT_DIR = "/run/systemd/system"


class UnitDirectory:
    """The unit files in one directory, by unit name."""

    def __init__(self, units_dir: str = DEFAULT_UNITS_DIR) -> None:
        self.path = os.path.abspath(units_dir)
        #: name -> (the file's stat signature, its content hash)
        self._hashes: dict[str, tuple[tuple[int, int, int, int], str]] = {}

    def file_path(self, name: str) -> str:
        """``<dir>/<name>`` for a valid name; refuses anything outside the dir."""
        validate_name(name)
        path = os.path.normpath(os.path.join(self.path, name))
        if os.path.dirname(path) != self.path or os.path.basename(path) != name:
            raise SystemdError(f"refusing {name!r}: resolves outside {self.path}")
        return path

    def present(self) -> dict[str, str]:
        """Unit files in the directory: name -> content hash."""
        found: dict[str, str] = {}
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            entries = []
        except OSError as exc:
            raise SystemdError(f"cannot list {self.path}: {exc}") from exc
        for entry in entries:
            if not _is_unit_name(entry.name):
                continue
            sha = self._hash_of(entry)
            if sha is not None:
                found[entry.name] = sha
        for gone in self._hashes.keys() - found.keys():
            del self._hashes[gone]
        return found

    def _hash_of(self, entry: os.DirEntry[str]) -> str | None:
        """The content hash of a regular file (cached by stat signature), or None."""
        try:
            if not entry.is_file(follow_symlinks=False):
                return None
            st = entry.stat(follow_symlinks=False)
            sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            cached = self._hashes.get(entry.name)
            if cached is not None and cached[0] == sig:
                return cached[1]
            with open(entry.path, "rb") as f:
                data = f.read()
        except OSError:
            return None  # removed meanwhile
        sha = content_hash(data)
        self._hashes[entry.name] = (sig, sha)
        return sha

    def write(self, name: str, text: str) -> None:
        """Write ``text`` atomically as ``<dir>/<name>`` (mode 0644, dir 0755). Blocks (fsync)."""
        path = self.file_path(name)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SystemdError(f"cannot write {path}: text is not valid UTF-8") from exc
        try:
            if not os.path.isdir(self.path):
                os.makedirs(self.path, mode=0o755, exist_ok=True)
                os.chmod(self.path, 0o755)  # whatever the umask
            self._hashes.pop(name, None)
            atomic_write(path, data, mode=0o644)
        except OSError as exc:
            raise SystemdError(f"cannot write {path}: {exc}") from exc

    def remove(self, name: str) -> None:
        """Delete ``<dir>/<name>``; a missing file is fine."""
        path = self.file_path(name)
        self._hashes.pop(name, None)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SystemdError(f"cannot remove {path}: {exc}") from exc

    def has_file(self, name: str) -> bool:
        """Whether anything (even a dangling symlink) is at ``<dir>/<name>``."""
        return os.path.lexists(self.file_path(name))

    def has_regular_file(self, name: str) -> bool:
        """Whether ``<dir>/<name>`` is a regular file, not a symlink."""
        path = self.file_path(name)
        return os.path.isfile(path) and not os.path.islink(path)

    def runtime_link_is_ours(self, name: str) -> bool:
        """Whether ``/run/systemd/system/<name>`` is a symlink into this directory."""
        try:
            target = os.readlink(os.path.join(RUNTIME_UNIT_DIR, name))
        except OSError:
            return False
        return os.path.dirname(os.path.normpath(target)) == self.path


def _is_unit_name(name: str) -> bool:
    try:
        validate_name(name)
    except InvalidUnitNameError:
        return False
    return True
