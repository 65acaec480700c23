"""The code base stays typed, linted, and respects its adapter boundaries."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "unitctl"

#: module prefix -> the only file allowed to import it
ADAPTERS = {"aetcd": "registry/etcd.py", "grpc": "registry/etcd.py",
            "dbus_fast": "systemd/bus.py"}
#: modules that must stay pure (no I/O libraries at all)
PURE = ["unitfile.py", "names.py", "xfleet.py", "model.py", "scheduler", "agent/reconcile.py",
        "agent/tasks.py", "registry/keys.py", "registry/codec.py", "engine/planned.py"]
IO_MODULES = {"aetcd", "grpc", "dbus_fast", "subprocess", "socket", "asyncio", "os", "shutil"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_only_adapters_import_their_libraries() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        for lib, owner in ADAPTERS.items():
            if lib in _imports(path) and rel != owner:
                offenders.append(f"{rel} imports {lib}")
    assert offenders == []


def test_only_docker_module_runs_docker() -> None:
    offenders = [rel for p in PKG.rglob("*.py")
                 if (rel := p.relative_to(PKG).as_posix()) != "docker/runtime.py"
                 and "subprocess" in _imports(p)
                 and ('"docker"' in (text := p.read_text(encoding="utf-8"))
                      or "DEFAULT_ENGINE" in text)]
    assert offenders == []


@pytest.mark.parametrize("target", PURE)
def test_pure_core_does_no_io(target: str) -> None:
    path = PKG / target
    files = list(path.rglob("*.py")) if path.is_dir() else [path]
    assert files, f"{target} is missing"
    bad = {f.relative_to(PKG).as_posix(): _imports(f) & IO_MODULES for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_mypy_strict() -> None:
    # pyproject.toml's [tool.mypy] covers unitctl, unitctl_testing, tests and bench.
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff() -> None:
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "unitctl", "unitctl_testing",
                        "tests", "bench", "bin/demo"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
