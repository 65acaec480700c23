"""The shape of the code: pure modules stay pure through every import, no module
imports itself back in a circle, and no module or function outgrows one concept.

These walk the source with ``ast``; nothing is imported, so a broken module
fails here with a clear message instead of hiding.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "unitctl"

#: The pure core: no I/O library anywhere in what importing it executes.
PURE = [
    "unitctl.unitfile", "unitctl.names", "unitctl.xfleet", "unitctl.specifiers", "unitctl.glob",
    "unitctl.metadata", "unitctl.channel", "unitctl.cli.verbs", "unitctl.cli.helptext",
    "unitctl.resources",
    "unitctl.graphs",
    "unitctl.ports", "unitctl.volumes", "unitctl.scheduler.capacity", "unitctl.agent.dnszone",
    "unitctl.agent.dnslabels", "unitctl.metrics.textformat", "unitctl.metrics.instruments",
    "unitctl.daemonargs",
    "unitctl.model", "unitctl.record", "unitctl.errors", "unitctl.scheduler",
    "unitctl.scheduler.round",
    "unitctl.scheduler.incremental",
    "unitctl.agent.reconcile", "unitctl.agent.tasks", "unitctl.agent.fencing",
    "unitctl.registry.keys", "unitctl.registry.codec", "unitctl.registry.keyspace",
    "unitctl.registry.connection", "unitctl.registry.poison", "unitctl.agent.peerauth",
    "unitctl.registry.httpwire", "unitctl.registry.gatewayjson",
    "unitctl.agent.backoff", "unitctl.generate.stoptime", "unitctl.dependencies",
    "unitctl.agent.ordering", "unitctl.health", "unitctl.failover",
    "unitctl.engine.view", "unitctl.engine.commit", "unitctl.engine.planned",
    "unitctl.systemd.states", "unitctl.systemd.api",
    "unitctl.docker.argv", "unitctl.docker.spec", "unitctl.docker.events",
    "unitctl.generate.quadlet", "unitctl.generate.bricks",
    "unitctl.generate", "unitctl.generate.spec", "unitctl.generate.values",
    "unitctl.generate.render", "unitctl.cli.output", "unitctl.legend", "unitctl.agent.options",
    "unitctl.sim.core", "unitctl.sim.world", "unitctl.sim.actors", "unitctl.sim.faults",
    "unitctl.sim.invariants", "unitctl.sim.systemd", "unitctl.sim.workload",
    "unitctl.sim.ledger",
    "unitctl.api.errors", "unitctl.api.fleetschema",
    "unitctl.bundle.located", "unitctl.bundle.spec", "unitctl.bundle.render",
    "unitctl.bundle.plan", "unitctl.bundle.diff", "unitctl.registry.revisions",
    "unitctl.templating", "unitctl.templating.resource", "unitctl.templating.functions",
    "unitctl.templating.render", "unitctl.templating.plan",
    "unitctl.rollout", "unitctl.rolloutcodec",
]
IO_MODULES = {"aetcd", "grpc", "dbus_fast", "subprocess", "socket", "asyncio", "os", "shutil",
              "threading", "signal", "fcntl", "tempfile", "urllib", "http", "sdnotify"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40


def _file_of(module: str) -> pathlib.Path | None:
    rel = pathlib.Path(*module.split("."))
    for cand in (ROOT / rel / "__init__.py", ROOT / rel.with_suffix(".py")):
        if cand.is_file():
            return cand
    return None


def _module_of(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs, skipping ``if TYPE_CHECKING:`` blocks."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The fully qualified modules an import statement executes."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
        return
    base = node.module or ""
    if node.level:
        pkg = module.split(".")
        if _file_of(module) is not None and _file_of(module).name != "__init__.py":  # type: ignore[union-attr]
            pkg = pkg[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, base] if base else pkg)
    yield base
    for alias in node.names:
        yield f"{base}.{alias.name}"


def _with_parents(module: str) -> Iterator[str]:
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def imports_of(module: str) -> set[str]:
    """The modules (ours and foreign, top names for foreign) importing ``module`` runs."""
    path = _file_of(module)
    assert path is not None, f"{module} is missing"
    out: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        for target in _targets(module, node):
            if target.split(".")[0] != "unitctl":
                out.add(target.split(".")[0])
                continue
            out.update(m for m in _with_parents(target) if _file_of(m) is not None)
    out.discard(module)
    return out


def closure(module: str) -> dict[str, str]:
    """Every module importing ``module`` executes, each mapped to who imported it first."""
    seen: dict[str, str] = {m: "(parent package)" for m in _with_parents(module)}
    seen[module] = "(root)"
    todo = list(seen)
    while todo:
        current = todo.pop()
        if _file_of(current) is None:
            continue
        for dep in imports_of(current):
            if dep not in seen:
                seen[dep] = current
                todo.append(dep)
    return seen


@pytest.mark.parametrize("module", PURE)
def test_pure_module_reaches_no_io_through_any_import(module: str) -> None:
    reached = closure(module)
    offenders = {dep: via for dep, via in reached.items() if dep in IO_MODULES}
    assert offenders == {}, f"{module} reaches I/O libraries (library: imported by)"


def _our_modules() -> list[str]:
    return sorted(_module_of(p) for p in PKG.rglob("*.py"))


def test_no_import_cycles_in_the_package() -> None:
    graph = {m: {d for d in imports_of(m) if d.startswith("unitctl") and d not in
                 set(_with_parents(m))} for m in _our_modules()}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep):], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_raw_kv_outside_the_registry() -> None:
    """Outside registry/ nobody reaches through ``registry.kv`` (types may be imported)."""
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith("registry/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "kv":
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_no_module_over_the_size_limit() -> None:
    big = {p.relative_to(ROOT).as_posix(): n for p in PKG.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert big == {}


def test_no_function_over_the_size_limit() -> None:
    long = {}
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {node.name}"] = length
    assert long == {}
