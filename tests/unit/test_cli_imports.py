"""The shape of ``unitctl/cli`` and ``unitctl/client``: no import cycle, command
modules import only leaves, and ``unitctl --help`` does not load the etcd client."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "client")

#: The cli modules that define commands; only main.py may import them.
COMMAND_MODULES = {"unitctl.cli.bundle", "unitctl.cli.describe", "unitctl.cli.generate",
                   "unitctl.cli.lists", "unitctl.cli.remote", "unitctl.cli.units",
                   "unitctl.cli.rollout"}

#: The modules above ``cli/main.py`` (they run it); nothing else may import it.
ENTRY_MODULES = {"unitctl.cli.launch", "unitctl.cli.helpgen"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / "unitctl" / package).glob("*.py")):
            found[_module_name(path)] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports (any depth in the file)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` is an edge to the submodule only
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out.update(subs)
            if node.module in known and len(subs) < len(node.names):
                out.add(node.module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def test_no_import_cycle_in_cli_and_client() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack, name]))
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_command_modules_import_only_leaves() -> None:
    graph = _graph()
    for name, deps in graph.items():
        if name == "unitctl.cli.main":
            continue
        bad = deps & COMMAND_MODULES
        assert not bad, f"{name} imports the command modules {sorted(bad)}"
        if name in ENTRY_MODULES:
            continue  # they sit above the group: the launcher and the help's generator
        assert "unitctl.cli.main" not in deps, f"{name} imports unitctl.cli.main"


def test_no_type_checking_back_imports() -> None:
    for name, path in _modules().items():
        assert "TYPE_CHECKING" not in path.read_text(encoding="utf-8"), name


def test_help_does_not_import_the_etcd_client() -> None:
    code = ("import sys\n"
            "from unitctl.cli.main import cli\n"
            "try:\n"
            "    cli.main(['--help'], prog_name='unitctl')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aetcd', 'grpc')))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "[]"


#: What a read-only command or ``--help`` must not load: asyncio (~25 ms), the
#: gRPC client (~90 ms), the generator's jinja2/yaml, http.client (~18 ms).
HEAVY = ("asyncio", "grpc", "aetcd", "jinja2", "yaml", "http.client")


def _loaded(code: str) -> list[str]:
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       cwd=str(ROOT), check=True, timeout=60)
    return list(json.loads(r.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_module() -> None:
    assert _loaded("import unitctl.cli.main") == []


def test_help_loads_no_heavy_module() -> None:
    code = ("import contextlib, io, unitctl.cli.main as m\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    m.main(['--help'])")
    assert _loaded(code) == []


def test_the_client_modules_of_the_read_path_load_no_heavy_module() -> None:
    assert _loaded("import unitctl.client.connect, unitctl.client.facade") == []


def test_help_imports_no_command_module_nor_the_client() -> None:
    code = ("import contextlib, io, json, sys, unitctl.cli.main as m\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    m.main(['--help'])\n"
            "print(json.dumps(sorted(n for n in sys.modules if n.startswith(('unitctl.client', "
            "'unitctl.registry.registry', 'unitctl.cli.units', 'unitctl.cli.lists', "
            "'unitctl.cli.remote', 'unitctl.cli.describe', 'unitctl.cli.generate')))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), check=True, timeout=60)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_the_verb_table_matches_each_command() -> None:
    from unitctl.cli.main import _load_verb
    from unitctl.cli.verbs import VERBS

    for name, verb in VERBS.items():
        cmd = _load_verb(name)
        assert cmd is not None and cmd.name == name, name
        assert cmd.get_short_help_str(1000) == verb.summary, name


def test_every_command_module_verb_is_in_the_table() -> None:
    import importlib

    from unitctl.cli.verbs import VERBS

    for module in {v.module for v in VERBS.values()}:
        mod = importlib.import_module(f"unitctl.cli.{module}")
        for cmd in getattr(mod, "COMMANDS", []):
            assert cmd.name in VERBS, f"{module}.{cmd.name} is not in unitctl.cli.verbs.VERBS"


def _modules_after(args: list[str]) -> list[str]:
    """The modules ``python -m unitctl ARGS`` has loaded when it exits (80 columns)."""
    code = ("import atexit, json, runpy, sys\n"
            "atexit.register(lambda: print('\\nMODULES ' + json.dumps(sorted(sys.modules))))\n"
            f"sys.argv = ['unitctl', *{args!r}]\n"
            "runpy.run_module('unitctl', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), env={**os.environ, "COLUMNS": "80"}, check=False,
                       timeout=60)
    line = r.stdout.rsplit("\nMODULES ", 1)[-1]
    return list(json.loads(line))


def test_help_through_the_launcher_loads_neither_click_nor_the_cli() -> None:
    # the launcher prints the kept text: no click, no verb table, no other unitctl module
    for args in ([], ["--help"], ["-h"], ["help"], ["--endpoint", "http://127.0.0.1:1", "--help"]):
        loaded = _modules_after(args)
        assert not [m for m in loaded if m.split(".")[0] == "click"], args
        ours = {m for m in loaded if m.split(".")[0] == "unitctl"}
        assert ours <= {"unitctl", "unitctl.__main__", "unitctl.cli", "unitctl.cli.launch",
                        "unitctl.cli.helptext", "unitctl.cli.startup"}, (args, sorted(ours))
        for heavy in ("shutil", "traceback", "subprocess", "dataclasses", "typing"):
            assert heavy not in loaded, (args, heavy)


def test_the_registry_makes_its_rarely_used_stores_on_first_use() -> None:
    """A list verb builds a Registry: the stores of the agent channel, the API,
    bundles, templates, rollouts, services and volumes are imported only when used."""
    lazy = ("requests", "tokens", "audit", "dynmeta", "bundles", "templates", "rollouts",
            "services", "volumes")
    code = ("import json, sys\nfrom unitctl.registry.registry import Registry\n"
            "from unitctl.registry.memory import MemoryKV\nreg = Registry(MemoryKV())\n"
            f"print(json.dumps([m for m in {lazy!r} if 'unitctl.registry.' + m in sys.modules]))\n"
            "reg.rollouts, reg.volumes\n"
            "print(json.dumps(['unitctl.registry.rollouts' in sys.modules, "
            "'unitctl.registry.volumes' in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), check=True, timeout=60)
    before, after = (json.loads(line) for line in r.stdout.strip().splitlines()[-2:])
    assert before == [] and after == [True, True]


#: What ``list-units`` does not use, and so must not load: click and the group, the
#: session and the facade (the write path), the unit-file and [X-Fleet] modules, the
#: failure policy and the agent channel.
NOT_ON_THE_LIST_PATH = ("click", "unitctl.cli.main", "unitctl.cli.session", "unitctl.cli.lists",
                        "unitctl.client.facade", "unitctl.client.views", "unitctl.xfleet",
                        "unitctl.unitfile", "unitctl.failover", "unitctl.health",
                        "unitctl.channel", "unitctl.registry.failures", "logging", "asyncio",
                        "secrets")


def test_list_units_through_the_launcher_loads_neither_click_nor_the_write_path() -> None:
    # an unreachable endpoint: the verb's modules are loaded before it connects
    for args in (["list-units"], ["--request-timeout", "1", "list-units", "--json", "-l"]):
        loaded = set(_modules_after(["--endpoint", "http://127.0.0.1:1", *args]))
        assert "unitctl.cli.leanread" in loaded, args
        assert not loaded & set(NOT_ON_THE_LIST_PATH), (args, sorted(loaded
                                                                    & set(NOT_ON_THE_LIST_PATH)))


def _dataclass_modules(args: list[str]) -> list[str]:
    """The modules whose dataclasses ``python -m unitctl ARGS`` creates."""
    code = ("import atexit, dataclasses, json, runpy, sys\n"
            "made = []\ncreate = dataclasses._process_class\n"
            "def counted(cls, *a, **k):\n    made.append(cls.__module__)\n"
            "    return create(cls, *a, **k)\n"
            "dataclasses._process_class = counted\n"
            "atexit.register(lambda: print('\\nDATACLASSES ' + json.dumps(sorted(set(made)))))\n"
            f"sys.argv = ['unitctl', *{args!r}]\n"
            "runpy.run_module('unitctl', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), check=False, timeout=60)
    return list(json.loads(r.stdout.rsplit("\nDATACLASSES ", 1)[-1]))


def test_the_list_path_defines_its_records_without_dataclasses() -> None:
    # the read path's records are unitctl.record.Frozen; what is left is named here
    made = _dataclass_modules(["--endpoint", "http://127.0.0.1:1", "list-units"])
    assert set(made) <= {"unitctl.model", "unitctl.registry.gateway",
                         "unitctl.registry.leader"}, made


#: What ``start`` does not use, and so must not load: click, the group, the session,
#: the completion and ssh modules, the command modules and the list verbs' modules.
NOT_ON_THE_START_PATH = ("click", "unitctl.cli.main", "unitctl.cli.session",
                         "unitctl.cli.complete", "unitctl.cli.units", "unitctl.cli.ssh",
                         "unitctl.cli.reach", "unitctl.cli.leanread", "unitctl.cli.listfields",
                         "unitctl.cli.output")


def test_start_through_the_launcher_loads_neither_click_nor_the_group() -> None:
    # an unreachable endpoint: the verb's modules are loaded before it connects
    for args in (["start", "--no-block", "x.service"],
                 ["load", "--block-attempts", "1", "--replace", "x.service"]):
        loaded = set(_modules_after(["--endpoint", "http://127.0.0.1:1",
                                     "--request-timeout", "0.2", *args]))
        assert "unitctl.cli.leanactivate" in loaded, args
        assert not loaded & set(NOT_ON_THE_START_PATH), (args, sorted(loaded
                                                                      & set(NOT_ON_THE_START_PATH)))
