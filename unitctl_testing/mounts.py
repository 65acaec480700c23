"""Mounts on the host, and the one recursive delete that respects them.

The harness makes overlay and bind mounts below its work directories (machine
roots, the wheelhouse in a chroot). A recursive delete that walks into a live
mount deletes the mount's *source*: ``safe_rmtree`` refuses while anything is
mounted at or below its path. Use it for every tree the harness removes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def mounts_under(path: Path | str) -> list[str]:
    """Mount points at or below ``path`` (host mount namespace)."""
    prefix = os.path.realpath(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == prefix or mp.startswith(prefix + "/"):
                found.append(mp)
    return found


def safe_rmtree(path: Path | str) -> None:
    """``rm -rf`` that refuses to run while anything is mounted below ``path``.

    A recursive delete through a leftover bind mount deletes the mount's
    source (e.g. a bind-mounted wheelhouse or source tree): never do that.
    """
    if not (os.path.lexists(path)):
        return
    left = mounts_under(path)
    if left:
        raise RuntimeError(f"refusing to delete {path}: still mounted below it: {left}")
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)
