"""The machines' own cgroups, on a hybrid host (cgroup v1 name=systemd + cgroup2).

Every machine's systemd-nspawn starts inside
``/sys/fs/cgroup/{systemd,unified}/unitctl-test/<tag><name>`` (harness.md
pitfall 1), so that a machine is one cgroup: ``cgroup.kill`` kills it whole,
``cgroup.freeze`` of its payload freezes it, and ``cgroup.events`` tells when
it is empty. A machine's cgroup is given relative to each hierarchy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from unitctl_testing.host import ClusterError, wait_until

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_HIERARCHIES = ("systemd", "unified")  # name=systemd v1 + cgroup2 (hybrid host)
CGROUP_PARENT = "unitctl-test"


def cgroup_dir(cgroup: str, hierarchy: str = "unified") -> Path:
    return CGROUP_ROOT / hierarchy / cgroup


def rmdir_tree(path: Path) -> list[str]:
    """rmdir a cgroup directory tree depth-first; return what could not be removed."""
    failed: list[str] = []
    if not path.is_dir():
        return failed
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            pass
        except OSError as e:
            failed.append(f"{dirpath}: {e.strerror}")
    return failed


def cgroup_populated(path: Path) -> bool:
    try:
        for line in (path / "cgroup.events").read_text().splitlines():
            if line.startswith("populated "):
                return line.split()[1] == "1"
    except OSError:
        return False
    return False


def make_cgroups(cgroup: str) -> list[str]:
    """Create the cgroup in each hierarchy; return their ``cgroup.procs`` files."""
    procs = []
    for h in CGROUP_HIERARCHIES:
        d = cgroup_dir(cgroup, h)
        d.mkdir(parents=True, exist_ok=True)
        procs.append(str(d / "cgroup.procs"))
    return procs


def kill_cgroup(cgroup: str, timeout: float, who: str) -> None:
    """``cgroup.kill`` the cgroup and wait until it is empty."""
    cg = cgroup_dir(cgroup)
    if cg.exists():
        with contextlib.suppress(FileNotFoundError):
            (cg / "cgroup.kill").write_text("1")
        if not wait_until(lambda: not cgroup_populated(cg), timeout):
            raise ClusterError(f"{who}: cgroup {cg} still populated after cgroup.kill")


def clean_cgroups(cgroup: str, keep_top: bool) -> list[str]:
    """Remove the cgroup's tree (``keep_top``: only what is below it)."""
    failed: list[str] = []
    for h in CGROUP_HIERARCHIES:
        top = cgroup_dir(cgroup, h)
        if not top.is_dir():
            continue
        if keep_top:
            for sub in [p for p in top.iterdir() if p.is_dir()]:
                failed += rmdir_tree(sub)
        else:
            failed += rmdir_tree(top)
    return failed


def remove_parent() -> None:
    """rmdir ``unitctl-test`` in each hierarchy, if it is empty."""
    for h in ("unified", "systemd"):
        with contextlib.suppress(OSError):
            os.rmdir(CGROUP_ROOT / h / CGROUP_PARENT)

