"""Build (once) and cache the base rootfs the test machines boot from.

The base is a Debian ``minbase`` tree with systemd, dbus and python3, plus a
venv at ``/opt/unitctl/venv`` holding unitctl's pinned runtime dependencies
(installed offline from a host wheelhouse). It is cached as
``$CACHE/rootfs-<key>.tar.zst`` and unpacked next to it as
``$CACHE/rootfs-<key>/``; the key hashes everything that shapes the tree, so a
change of packages, provisioning or pins builds a new one (harness.md §1).

Machines never write to the base: each one mounts an overlayfs on top of it.
Never rebuild/replace a base while overlays on it are mounted (pitfall 10);
a new key gives a new directory, so that cannot happen by accident.

CLI: ``python -m unitctl_testing.rootfs [--rebuild]`` ensures the rootfs exists
and prints its path (timings go to stderr).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from unitctl_testing.mounts import mounts_under, safe_rmtree

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "iproute2", "procps")
# Bump when provision() changes what ends up in the tree.
PROVISION_VERSION = 1
MASKED_UNITS = (
    "console-getty.service",
    "getty@tty1.service",
    "getty-static.service",
    "getty.target",
    "systemd-networkd-wait-online.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "systemd-firstboot.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "man-db.timer",
    "systemd-tmpfiles-clean.timer",
)
VENV = "/opt/unitctl/venv"
REPO = Path(__file__).resolve().parents[1]
OK_MARKER = ".unitctl-rootfs-ok"
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg: str) -> None:
    print(f"rootfs: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """``$UNITCTL_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/unitctl``."""
    env = os.environ.get("UNITCTL_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "unitctl"


# --------------------------------------------------------------------------- inputs

def runtime_pins(setup_py: Path = REPO / "setup.py") -> list[str]:
    """The ``install_requires`` list of setup.py, read without executing it."""
    tree = ast.parse(setup_py.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            value = ast.literal_eval(node.value)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                break
            return list(value)
    raise RuntimeError(f"no literal install_requires list in {setup_py}")


def _deb822_blocks(text: str) -> Iterator[dict[str, str]]:
    block: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if block:
                yield block
            block, key = {}, ""
        elif line[0] in " \t" and key:
            block[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            block[key] = value.strip()
    if block:
        yield block


def apt_sources() -> list[tuple[str, list[str]]]:
    """``(uri, suites)`` of every enabled binary ``deb`` source configured for apt."""
    found: list[tuple[str, list[str]]] = []
    lists = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    for path in lists:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    found.append((words[1], [words[2]]))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with contextlib.suppress(OSError):
            for b in _deb822_blocks(Path(path).read_text(encoding="utf-8")):
                if b.get("enabled", "yes").lower() == "no" or "deb" not in b.get("types", ""):
                    continue
                for uri in b.get("uris", "").split():
                    found.append((uri, b.get("suites", "").split()))
    return found


def debian_mirror(suite: str = SUITE) -> str:
    """The mirror apt uses for ``suite`` (``$UNITCTL_DEBIAN_MIRROR`` overrides)."""
    override = os.environ.get("UNITCTL_DEBIAN_MIRROR")
    if override:
        return override
    sources = apt_sources()
    for uri, suites in sources:
        if suite in suites:
            return uri
    for uri, suites in sources:  # e.g. "stable" instead of the code name
        if "security" not in uri and not any("security" in s for s in suites):
            return uri
    raise RuntimeError(
        f"no Debian mirror for {suite!r} in /etc/apt/sources.list(.d); "
        "set UNITCTL_DEBIAN_MIRROR")


def cache_key(pins: list[str]) -> str:
    material = json.dumps({
        "suite": SUITE, "packages": PACKAGES, "provision": PROVISION_VERSION,
        "masked": MASKED_UNITS, "venv": VENV, "pins": sorted(pins),
    }, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- helpers

def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run a command; on failure raise with its (tail of) output."""
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, check=False)
    if p.returncode != 0:
        out = p.stdout.decode(errors="replace")[-3000:]
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(argv)}\n{out}")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock, so concurrent runs build once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def timed(what: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    dt = time.monotonic() - t0
    if timings is not None:
        timings[what] = dt
    log(f"{what}: {dt:.1f}s")


# --------------------------------------------------------------------------- wheels

def host_pip_env() -> dict[str, str]:
    """The host environment minus pip settings that would point pip elsewhere."""
    env = dict(os.environ)
    for k in ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TARGET", "PIP_PREFIX", "PIP_USER"):
        env.pop(k, None)
    return env


def wheelhouse(pins: list[str], timings: dict[str, float] | None = None) -> Path:
    """A directory of wheels for ``pins`` and their dependencies (cached)."""
    digest = hashlib.sha256("\n".join(sorted(pins)).encode()).hexdigest()[:12]
    dest = cache_dir() / f"wheels-{digest}"
    if (dest / ".complete").exists():
        return dest
    if sys.version_info[:2] != (3, 11):
        log(f"warning: host python {sys.version.split()[0]} != 3.11 of the rootfs; "
            "wheels may not match")
    tmp = Path(tempfile.mkdtemp(prefix="wheels.", dir=cache_dir()))
    try:
        with timed("pip download (wheelhouse)", timings):
            run([sys.executable, "-m", "pip", "download", "-q", "-d", str(tmp), *pins],
                env=host_pip_env())
            # sdist-only packages (sdnotify) -> build a wheel, since the
            # offline install in the chroot has no setuptools to build with.
            for sdist in [*tmp.glob("*.tar.gz"), *tmp.glob("*.zip")]:
                run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp),
                     str(sdist)], env=host_pip_env())
                sdist.unlink()
        (tmp / ".complete").touch()
        safe_rmtree(dest)
        tmp.rename(dest)
    finally:
        safe_rmtree(tmp)
    return dest


# --------------------------------------------------------------------------- build

def debootstrap(target: Path, timings: dict[str, float] | None = None) -> None:
    mirror = debian_mirror()
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    with timed(f"debootstrap {SUITE} from {mirror}", timings):
        run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
             f"--cache-dir={debs}", SUITE, str(target), mirror])


def mask_units(root: Path) -> None:
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True, exist_ok=True)
    for unit in MASKED_UNITS:
        link = etc / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")


def reset_identity(root: Path) -> None:
    """Empty machine-id (debootstrap copies the host's, pitfall 5), no hostname."""
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
        dbus_id.symlink_to("/etc/machine-id")
    (root / "etc/hostname").write_text("unitctl\n")


def chroot_env() -> dict[str, str]:
    """``env -i``-like environment for the chroot (pitfall 6: no host PIP_*)."""
    return {"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8"}


def install_venv(root: Path, wheels: Path, pins: list[str]) -> None:
    mnt = root / "wheels"
    mnt.mkdir(exist_ok=True)
    run(["mount", "--bind", "-o", "ro", str(wheels), str(mnt)])
    try:
        run(["chroot", str(root), "/usr/bin/python3", "-m", "venv", VENV], env=chroot_env())
        run(["chroot", str(root), f"{VENV}/bin/pip", "install", "-q", "--no-index",
             "--disable-pip-version-check", "--no-cache-dir", "--find-links", "/wheels", *pins],
            env=chroot_env())
        run(["chroot", str(root), f"{VENV}/bin/python", "-c",
             "import dbus_fast, click, jinja2, sdnotify, yaml"], env=chroot_env())
    finally:
        run(["umount", str(mnt)])
        mnt.rmdir()


def slim(root: Path) -> None:
    """Drop apt lists, caches, docs, man pages and locales (~100 MB)."""
    if mounts_under(root):
        raise RuntimeError(f"refusing to slim {root}: mounts below it: {mounts_under(root)}")
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/debconf/*-old", "usr/share/doc/*", "usr/share/man/*",
                    "usr/share/info/*", "usr/share/locale/*", "var/log/*.log",
                    "var/log/apt/*"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def provision(root: Path, wheels: Path, pins: list[str],
              timings: dict[str, float] | None = None) -> None:
    with timed("provision (mask, identity, venv, slim)", timings):
        mask_units(root)
        reset_identity(root)
        # /var/log/journal: a persistent journal lives in each machine's overlay
        # upper, so the host can still read it (journalctl --root) after a kill
        for d in ("opt/unitctl/src", "etc/unitctl", "var/log/journal", "usr/local/bin"):
            (root / d).mkdir(parents=True, exist_ok=True)
        install_venv(root, wheels, pins)
        slim(root)


def make_tarball(root: Path, tarball: Path, timings: dict[str, float] | None = None) -> None:
    tmp = tarball.with_name(tarball.name + f".tmp{os.getpid()}")
    try:
        with timed("tarball (zstd)", timings):
            run(["tar", "--numeric-owner", "--xattrs", "--acls", "-I", "zstd -T0 -3 -q",
                 "-cf", str(tmp), "-C", str(root), "."])
        tmp.rename(tarball)
    finally:
        tmp.unlink(missing_ok=True)


def extract_tarball(tarball: Path, target: Path, timings: dict[str, float] | None = None) -> None:
    with timed(f"restore {tarball.name}", timings):
        run(["tar", "--numeric-owner", "--xattrs", "--acls", "-I", "zstd -T0 -q",
             "-xpf", str(tarball), "-C", str(target)])


# --------------------------------------------------------------------------- entry

def paths(key: str) -> tuple[Path, Path]:
    base = cache_dir()
    return base / f"rootfs-{key}", base / f"rootfs-{key}.tar.zst"


def ensure_rootfs(rebuild: bool = False, timings: dict[str, float] | None = None) -> Path:
    """Return the ready base rootfs directory, restoring or building it as needed."""
    if os.geteuid() != 0:
        raise RuntimeError("building the rootfs needs root (debootstrap, chroot, mount)")
    pins = runtime_pins()
    key = cache_key(pins)
    root, tarball = paths(key)
    with locked(cache_dir() / "rootfs.lock"):
        if rebuild:
            if mounts_under(root) or _overlays_on(root):
                raise RuntimeError(f"{root} is in use (mounted/overlay lower); not rebuilding")
            tarball.unlink(missing_ok=True)
            safe_rmtree(root)
        if (root / OK_MARKER).exists():
            log(f"present: {root}")
            return root
        tmp = Path(tempfile.mkdtemp(prefix=f"rootfs-{key}.tmp.", dir=cache_dir()))
        tmp.chmod(0o755)  # becomes the machines' "/": mkdtemp's 0700 locks out non-root users
        try:
            if tarball.exists():
                extract_tarball(tarball, tmp, timings)
            else:
                wheels = wheelhouse(pins, timings)
                debootstrap(tmp, timings)
                provision(tmp, wheels, pins, timings)
                make_tarball(tmp, tarball, timings)
            tmp.chmod(0o755)
            (tmp / OK_MARKER).write_text(key + "\n")
            safe_rmtree(root)
            tmp.rename(root)  # atomic: a half-built tree never has the final name
        finally:
            safe_rmtree(tmp)
    return root


def _overlays_on(root: Path) -> bool:
    """True if some overlayfs uses ``root`` as a lower layer (pitfall 10)."""
    needle = f"lowerdir={os.path.realpath(root)}"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(needle in line for line in f)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m unitctl_testing.rootfs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rebuild", action="store_true", help="discard cache, build from scratch")
    ap.add_argument("--key", action="store_true", help="print the cache key and exit")
    args = ap.parse_args(argv)
    if args.key:
        print(cache_key(runtime_pins()))
        return 0
    t0 = time.monotonic()
    try:
        root = ensure_rootfs(rebuild=args.rebuild)
    except RuntimeError as e:
        log(f"error: {e}")
        return 1
    log(f"total: {time.monotonic() - t0:.1f}s")
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
