"""The layering of unitctl.docker and unitctl.generate: the pure parts stay pure.

generate may use only the pure modules of the docker package (argv, spec),
never the runtime adapter or the run flow; argv, spec and every generate module
import no I/O library. Checked on the import graph (transitively, from a fresh
interpreter) and on each module's own imports.
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "unitctl"
IO_MODULES = {"subprocess", "socket", "os", "fcntl", "signal", "threading", "shutil", "asyncio"}
PURE = ["docker/argv.py", "docker/spec.py", "docker/events.py", "generate/__init__.py",
        "generate/spec.py", "generate/quadlet.py",
        "generate/values.py", "generate/render.py"]


def _imports(path: pathlib.Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("target", PURE)
def test_pure_modules_import_no_io(target: str) -> None:
    assert _imports(PKG / target) & IO_MODULES == set()


@pytest.mark.parametrize("module", ["unitctl.generate", "unitctl.docker.argv",
                                    "unitctl.docker.spec", "unitctl.docker"])
def test_pure_imports_never_load_the_runtime(module: str) -> None:
    code = (f"import sys, json, {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('unitctl'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    loaded = set(json.loads(out))
    assert loaded & {"unitctl.docker.runtime", "unitctl.docker.run", "unitctl.docker.fake"} == set()


def test_the_fake_is_not_the_real_adapter() -> None:
    from unitctl.docker.fake import FakeContainerRuntime
    from unitctl.docker.runtime import CliContainerRuntime

    assert not issubclass(FakeContainerRuntime, CliContainerRuntime)
