"""``unitctl apply``, ``diff``, ``rollback``, ``bundles`` and ``history`` in-process,
over the in-memory store; bad Clusterfiles refused with their place, nothing stored."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.model import DesiredState
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry

CLUSTERFILE = """\
apiVersion: unitctl.io/v1
kind: Bundle
metadata:
  name: web
spec:
  env:
    greeting: hello
  units:
    - name: hello.service
      body: |
        [Service]
        ExecStart=/bin/echo {{ greeting }}
    - path: units/web@.service
      instances: [1, 2]
      state: loaded
    - generate:
        name: cache
        image: redis:7
---
apiVersion: unitctl.io/v1
kind: Config
metadata:
  name: cache-port
spec:
  unit: cache.service
  strategy: merge
  data: |
    ports: ["6379:6379"]
"""

WEB = "[Unit]\nDescription=web {{ instance }}\n\n[Service]\nExecStart=/bin/sleep 100%i\n"


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryKV())


def _write(tmp: Path, text: str = CLUSTERFILE) -> str:
    (tmp / "units").mkdir(exist_ok=True)
    (tmp / "units" / "web@.service").write_text(WEB)
    path = tmp / "Clusterfile.yaml"
    path.write_text(text)
    return str(path)


def run(registry: Registry, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=Session(registry=registry))


def _keys(registry: Registry) -> dict[str, bytes]:
    async def read() -> dict[str, bytes]:
        rng = await registry.kv.get_prefix(registry.keys.prefix)
        return {kv.key: kv.value for kv in rng.kvs}
    return asyncio.run(read())


def _desired(registry: Registry) -> dict[str, str]:
    async def read() -> dict[str, str]:
        return {u.name: u.desired.value for u in await registry.list_units()}
    return asyncio.run(read())


def test_apply_creates_units_with_their_states_and_records_revision_1(
        registry: Registry, tmp_path: Path) -> None:
    r = run(registry, "apply", "-f", _write(tmp_path))
    assert r.exit_code == 0, r.output
    assert _desired(registry) == {"hello.service": "launched", "cache.service": "launched",
                                  "web@1.service": "loaded", "web@2.service": "loaded"}
    assert "bundle web: revision 1 (apply)" in r.output
    cat = run(registry, "cat", "web@2.service").output
    assert "Description=web 2" in cat and "ExecStart=/bin/sleep 100%i" in cat
    assert "-p 6379:6379" in run(registry, "cat", "cache.service").output
    assert "ExecStart=/bin/echo hello" in run(registry, "cat", "hello.service").output


def test_second_apply_changes_nothing_and_says_so(registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert run(registry, "apply", "-f", path).exit_code == 0
    before = _keys(registry)
    rev = asyncio.run(registry.revision())
    r = run(registry, "apply", "-f", path)
    assert r.exit_code == 0 and r.output == "bundle web: no changes\n"
    assert _keys(registry) == before and asyncio.run(registry.revision()) == rev


def test_diff_exits_1_with_a_unified_diff_and_0_once_applied(registry: Registry,
                                                            tmp_path: Path) -> None:
    path = _write(tmp_path)
    r = run(registry, "diff", "-f", path)
    assert r.exit_code == 1 and "+++ b/hello.service" in r.output
    assert "state hello.service: inactive -> launched" in r.output
    assert run(registry, "apply", "-f", path).exit_code == 0
    assert run(registry, "diff", "-f", path).exit_code == 0
    Path(path).write_text(CLUSTERFILE.replace("greeting: hello", "greeting: bye"))
    r = run(registry, "diff", "-f", path)
    assert r.exit_code == 1
    assert "-ExecStart=/bin/echo hello\n+ExecStart=/bin/echo bye\n" in r.output
    r = run(registry, "diff", "-f", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and "cannot read" in r.output


def test_prune_removes_only_units_the_bundle_owns(registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert run(registry, "apply", "-f", path).exit_code == 0
    (tmp_path / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert run(registry, "submit", str(tmp_path / "other.service")).exit_code == 0
    Path(path).write_text(CLUSTERFILE.replace("instances: [1, 2]", "instances: [1]"))
    r = run(registry, "apply", "-f", path)
    assert r.exit_code == 0 and "web@2.service" in _desired(registry)
    r = run(registry, "apply", "-f", path, "--prune")
    assert r.exit_code == 0, r.output
    assert "Unit web@2.service pruned" in r.output
    assert set(_desired(registry)) == {"hello.service", "cache.service", "web@1.service",
                                       "other.service"}


def test_rollback_restores_the_previous_revision_as_a_new_one(registry: Registry,
                                                              tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert run(registry, "apply", "-f", path).exit_code == 0
    Path(path).write_text(CLUSTERFILE.replace("greeting: hello", "greeting: bye")
                          .replace("state: loaded", "state: launched"))
    assert run(registry, "apply", "-f", path).exit_code == 0
    r = run(registry, "rollback", "web")
    assert r.exit_code == 0, r.output
    assert "bundle web: revision 3 (rollback to 1)" in r.output
    assert "ExecStart=/bin/echo hello" in run(registry, "cat", "hello.service").output
    assert _desired(registry)["web@1.service"] == DesiredState.LOADED.value
    hist = json.loads(run(registry, "history", "web", "--json").output)
    assert [h["revision"] for h in hist] == ["1", "2", "3"]
    assert run(registry, "rollback", "web", "--to", "3").output == "bundle web: no changes\n"
    assert run(registry, "rollback", "web", "--to", "9").exit_code == 3
    listing = run(registry, "bundles").output
    assert listing.splitlines()[0].split()[:3] == ["BUNDLE", "REVISION", "UNITS"]
    assert listing.splitlines()[1].split()[:3] == ["web", "3", "4"]


def test_units_of_another_bundle_or_by_hand_are_refused_before_any_write(
        registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "hello.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert run(registry, "submit", str(tmp_path / "hello.service")).exit_code == 0
    before = _keys(registry)
    r = run(registry, "apply", "-f", path)
    assert r.exit_code == 4 and "--adopt" in r.output
    assert _keys(registry) == before
    r = run(registry, "apply", "-f", path, "--adopt")
    assert r.exit_code == 0 and "Unit hello.service replaced" in r.output
    other = tmp_path / "other.yaml"
    other.write_text(CLUSTERFILE.replace("name: web", "name: db"))
    assert run(registry, "apply", "-f", str(other)).exit_code == 4


BAD = [
    ("spec:\n  units: [\n", "Clusterfile.yaml:3:1: YAML error"),
    (CLUSTERFILE.replace("      state: loaded", "      stat: loaded"),
     "Clusterfile.yaml:15:7: unknown key 'stat' in units[1]"),
    (CLUSTERFILE.replace("{{ greeting }}", "{{ greting }}"),
     "Clusterfile.yaml:12: units[0]: UndefinedError: 'greting' is undefined"),
    (CLUSTERFILE.replace("ExecStart=/bin/echo", "MachineOf=x.service\n        Global=true\n"
                         "        [Service]\n        ExecStart=/bin/echo").replace(
                             "[Service]\n        MachineOf", "[X-Fleet]\n        MachineOf"),
     "Clusterfile.yaml:9:7: hello.service: MachineOf cannot be combined with Global"),
    (CLUSTERFILE.replace("name: hello.service", "name: hello"),
     "Clusterfile.yaml:9:7: unit hello: "),
    (CLUSTERFILE.replace("image: redis:7", "image: redis:7\n        mem: lots"),
     "Clusterfile.yaml:17:9: units[2]: generate:"),
    (CLUSTERFILE.replace("unit: cache.service", "unit: nope.service"),
     "Clusterfile.yaml:25:3: Config cache-port: no entry of bundle web has the unit"),
    (CLUSTERFILE.replace("kind: Bundle", "kind: Bundel"), "Clusterfile.yaml:2:7: kind must"),
    (CLUSTERFILE.replace("  name: web", "  name: web\n  name: db"),
     "Clusterfile.yaml:5:3: duplicate key 'name'"),
    (CLUSTERFILE.replace("path: units/web@.service", "path: units/nothere.service"),
     "Clusterfile.yaml:13:13: cannot read units/nothere.service"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_clusterfiles_are_refused_with_their_place_and_nothing_is_stored(
        registry: Registry, tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    for verb in ("apply", "diff"):
        r = run(registry, verb, "-f", path)
        assert r.exit_code == 2, r.output
        assert message in r.output.replace(str(tmp_path) + "/", "")
    assert _keys(registry) == {}


def test_env_flags_override_the_file_and_bad_ones_are_refused(registry: Registry,
                                                             tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert run(registry, "apply", "-f", path, "-e", "greeting=hi there").exit_code == 0
    assert "ExecStart=/bin/echo hi there" in run(registry, "cat", "hello.service").output
    for bad in ("greeting", "instance=1", "a-b=1"):
        r = run(registry, "diff", "-f", path, "-e", bad)
        assert r.exit_code == 2 and "expected KEY=VALUE" in r.output
