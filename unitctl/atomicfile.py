"""Write a file atomically: the one implementation every writer of unitctl uses.

A reader sees either the old content or the new, never a torn file: the data
goes to a temporary file in the same directory, is flushed and fsynced, then
renamed over the target with ``os.replace``; the directory is fsynced after
the rename when ``durable`` is set. The temporary file never outlives a
failure. Pure I/O on the local file system, no other dependency (not even
:mod:`tempfile`, which would load shutil and random into every agent).
"""

from __future__ import annotations

import contextlib
import os

#: How a temporary file is opened: as :func:`tempfile.mkstemp` does (owner only).
_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644,
                 durable: bool = True, make_dirs: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically.

    Args:
        path: the file to write; its directory must exist unless ``make_dirs``.
        data: bytes, or text (written as UTF-8).
        mode: the permission bits of the new file.
        durable: fsync the directory after the rename, so the rename survives a crash.
        make_dirs: create the directory (0755) when it is missing.

    Raises:
        OSError: the write or the rename failed; ``path`` is unchanged.
    """
    target = os.fspath(path)
    directory = os.path.dirname(target) or "."
    if make_dirs and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    # A short fixed prefix: the temp name must fit NAME_MAX whatever the target's length.
    fd, tmp = _temp_file(directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(directory)


def _temp_file(directory: str) -> tuple[int, str]:
    """A new file ``.tmp-<random>~`` in ``directory``, created exclusively (mode 0600)."""
    for _ in range(100):
        name = os.path.join(directory, f".tmp-{os.urandom(6).hex()}~")
        try:
            return os.open(name, _TEMP_FLAGS, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def _fsync_dir(directory: str) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
