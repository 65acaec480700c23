"""A machine's root: an overlayfs with the cached base rootfs as its lower layer.

The machine writes only to its own ``upper`` (which keeps its journal, so the
host can read it after a kill); the base is never written (pitfall 10).
"""

from __future__ import annotations

import os

from unitctl_testing.host import sh
from unitctl_testing.machine import Machine


def mount_root(m: Machine, base: str) -> None:
    """Mount the overlay at ``m.root`` (no-op when it is mounted)."""
    for d in (m.root, m.upper, os.path.join(m.dir, "work")):
        os.makedirs(d, exist_ok=True)
    if not m.mounted:
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir={base},upperdir={m.upper},workdir={m.dir}/work", m.root)
        m.mounted = True


def unmount_root(m: Machine) -> list[str]:
    """Unmount ``m.root`` (lazily if busy); return what is left (``[]``: unmounted)."""
    if not (m.mounted or os.path.ismount(m.root)):
        return []
    p = sh("umount", m.root, check=False)
    if p.returncode != 0 and os.path.ismount(m.root):
        p = sh("umount", "-l", m.root, check=False)
    if os.path.ismount(m.root):
        return [f"{m.name}: umount {m.root}: {p.stderr.strip()}"]
    m.mounted = False
    return []
