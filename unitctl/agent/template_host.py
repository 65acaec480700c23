"""The template runner's port to the machine (files, owners, commands) and its real adapter.

:class:`TemplateHost` is what rendering needs from the machine; the fake is
:class:`unitctl.agent.template_fake.FakeHost`. Contract:

* ``refusal(dest, dirs)``: "" when ``dest`` may be written: its directory exists,
  its *resolved* path lies inside one of ``dirs`` (resolved too), and ``dest``
  is not a symlink; otherwise the reason;
* ``read(dest)``: the current bytes, None when there is no file;
* ``stage(dest, data, mode, owner, group)``: the new file written atomically
  next to ``dest`` (``<dir>/.<name>.unitctl-new``, mode and owner set), its path;
* ``install(staged, dest)``: the current file kept as ``dest + PREVIOUS``, then
  the staged file renamed over ``dest`` (atomic; a reader sees old or new);
* ``restore(dest)``: the kept previous file put back (``dest`` removed when
  there was none);
* ``discard(staged)``; ``run(argv, timeout)``: exit code and the output's
  last bytes (no shell; a command that cannot start is exit 127).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
from collections.abc import Iterable, Sequence
from typing import Protocol

from unitctl.agent.commands import ProcessCommands
from unitctl.atomicfile import atomic_write
from unitctl.channel import ReplyKind
from unitctl.errors import SystemdError
from unitctl.templating.plan import allowed

PREVIOUS = ".unitctl-prev"
STAGED = ".unitctl-new"
OUTPUT_TAIL = 400


class TemplateHost(Protocol):
    def refusal(self, dest: str, dirs: Iterable[str]) -> str: ...
    def read(self, dest: str) -> bytes | None: ...
    def stage(self, dest: str, data: bytes, mode: int, owner: str, group: str) -> str: ...
    def install(self, staged: str, dest: str) -> None: ...
    def restore(self, dest: str) -> None: ...
    def discard(self, staged: str) -> None: ...
    async def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]: ...


def staged_path(dest: str) -> str:
    head, tail = os.path.split(dest)
    return os.path.join(head, f".{tail}{STAGED}")


class LocalHost:
    """:class:`TemplateHost` on this machine's file system and processes."""

    def __init__(self) -> None:
        self.commands = ProcessCommands()

    def refusal(self, dest: str, dirs: Iterable[str]) -> str:
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            return f"{directory} does not exist"
        real = os.path.realpath(directory)
        if not allowed(real, [os.path.realpath(d) for d in dirs]):
            return f"{dest} is outside template_dirs ({', '.join(dirs) or 'none set'})"
        if os.path.islink(dest):
            return f"{dest} is a symlink"
        return ""

    def read(self, dest: str) -> bytes | None:
        try:
            with open(dest, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def stage(self, dest: str, data: bytes, mode: int, owner: str, group: str) -> str:
        staged = staged_path(dest)
        uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        atomic_write(staged, data, mode=mode, durable=False)
        try:
            os.chown(staged, uid, gid)
            os.chmod(staged, mode)  # chown may clear set-id bits
        except OSError:
            self.discard(staged)
            raise
        return staged

    def install(self, staged: str, dest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest + PREVIOUS)
        with contextlib.suppress(FileNotFoundError):
            os.link(dest, dest + PREVIOUS)  # the previous file, kept as it was
        os.replace(staged, dest)
        _fsync_dir(os.path.dirname(dest))

    def restore(self, dest: str) -> None:
        try:
            os.replace(dest + PREVIOUS, dest)
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
        _fsync_dir(os.path.dirname(dest))

    def discard(self, staged: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)

    async def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        out = bytearray()

        async def sink(_kind: ReplyKind, data: bytes) -> None:
            out.extend(data)
            del out[:-OUTPUT_TAIL]
        try:
            code = await asyncio.wait_for(self.commands.run(argv, sink), timeout)
        except SystemdError as exc:
            return 127, str(exc)
        except TimeoutError:
            return 124, f"timed out after {timeout:g}s"
        return code, out.decode(errors="replace").strip()


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
