"""Config templates in a Clusterfile (``spec.templates``): applied with the bundle,
shown by ``diff``, owned (another bundle's or an unowned one refused), pruned only with
``--prune``, kept in revisions and restored by ``rollback``; bad entries refused with
their place and nothing stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from unitctl.bundle.plan import Desired, Stored, applied, plan
from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.errors import ConflictError
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.templating.resource import TemplateResource, from_mapping

CLUSTERFILE = """\
apiVersion: unitctl.io/v1
kind: Bundle
metadata:
  name: zk
spec:
  units:
    - name: zookeeper.service
      body: |
        [Service]
        ExecStart=/bin/sleep infinity
  templates:
    - name: zoo
      src: zoo.cfg.j2
      dest: /etc/zookeeper/zoo.cfg
      mode: "0640"
      keys: [/zk/hosts]
      reload_cmd: /bin/systemctl try-restart zookeeper.service
    - name: motd
      template: "cluster {{ 'zk' }}\\n"
      dest: /etc/zookeeper/motd
"""
ZOO = "{% for h in ls('/zk/hosts') %}server.{{ loop.index }}={{ h }}\n{% endfor %}"


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryKV())


def _write(tmp: Path, text: str = CLUSTERFILE, zoo: str = ZOO) -> str:
    (tmp / "zoo.cfg.j2").write_text(zoo)
    path = tmp / "Clusterfile.yaml"
    path.write_text(text)
    return str(path)


def run(registry: Registry, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=Session(registry=registry))


def _stored(registry: Registry) -> dict[str, TemplateResource]:
    async def read() -> dict[str, TemplateResource]:
        return {r.name: r for r in await registry.templates.all()}
    return asyncio.run(read())


def _everything(registry: Registry) -> dict[str, bytes]:
    async def read() -> dict[str, bytes]:
        rng = await registry.kv.get_prefix(registry.keys.prefix)
        return {kv.key: kv.value for kv in rng.kvs}
    return asyncio.run(read())


def test_apply_submits_the_templates_with_their_src_text(registry: Registry,
                                                        tmp_path: Path) -> None:
    r = run(registry, "apply", "-f", _write(tmp_path))
    assert r.exit_code == 0, r.output
    assert "Template zoo created" in r.output and "Template motd created" in r.output
    zoo = _stored(registry)["zoo"]
    assert zoo.template == ZOO and zoo.mode == 0o640 and zoo.keys == ("/zk/hosts",)
    assert zoo.dest == "/etc/zookeeper/zoo.cfg"
    assert _stored(registry)["motd"].template == "cluster {{ 'zk' }}\n"
    # the same file again: nothing written, no revision
    before = _everything(registry)
    r = run(registry, "apply", "-f", _write(tmp_path))
    assert r.output == "bundle zk: no changes\n" and _everything(registry) == before


def test_diff_shows_a_changed_template_and_apply_updates_it(registry: Registry,
                                                           tmp_path: Path) -> None:
    assert run(registry, "apply", "-f", _write(tmp_path)).exit_code == 0
    path = _write(tmp_path, zoo=ZOO + "\n# tuned\n")
    r = run(registry, "diff", "-f", path)
    assert r.exit_code == 1, r.output
    assert "--- a/template:zoo\n+++ b/template:zoo\n" in r.output
    assert "+  # tuned\n" in r.output and "motd" not in r.output
    r = run(registry, "apply", "-f", path)
    assert r.exit_code == 0 and "Template zoo updated" in r.output
    assert _stored(registry)["zoo"].template.endswith("# tuned\n")
    assert run(registry, "diff", "-f", path).exit_code == 0


def test_a_template_leaves_only_with_prune_and_rollback_brings_it_back(
        registry: Registry, tmp_path: Path) -> None:
    assert run(registry, "apply", "-f", _write(tmp_path)).exit_code == 0
    without = CLUSTERFILE[:CLUSTERFILE.index("    - name: motd")]
    path = _write(tmp_path, without)
    r = run(registry, "apply", "-f", path)
    assert r.exit_code == 0 and "motd" in _stored(registry)
    r = run(registry, "diff", "-f", path, "--prune")
    assert "prune template motd: owned by bundle zk, no longer in it" in r.output
    r = run(registry, "apply", "-f", path, "--prune")
    assert r.exit_code == 0, r.output
    assert "Template motd pruned" in r.output and set(_stored(registry)) == {"zoo"}
    r = run(registry, "rollback", "zk", "--to", "1", "--prune")
    assert r.exit_code == 0, r.output
    assert set(_stored(registry)) == {"zoo", "motd"}
    assert _stored(registry)["motd"].template == "cluster {{ 'zk' }}\n"


def test_a_template_of_another_bundle_or_of_nobody_is_refused(registry: Registry,
                                                             tmp_path: Path) -> None:
    assert run(registry, "apply", "-f", _write(tmp_path)).exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    text = CLUSTERFILE.replace("name: zk", "name: zk2").replace("zookeeper.service",
                                                                "zk2.service")
    before = _everything(registry)
    r = run(registry, "apply", "-f", _write(other, text))
    assert r.exit_code != 0 and "template motd belongs to bundle zk, not zk2" in r.output
    assert _everything(registry) == before
    (tmp_path / "t.toml").write_text('[template]\nname = "loose"\ntemplate = "x"\n'
                                     'dest = "/etc/zookeeper/loose"\n')
    assert run(registry, "template", "submit", str(tmp_path / "t.toml")).exit_code == 0
    text = CLUSTERFILE + "    - name: loose\n      template: y\n      dest: /etc/zookeeper/l\n"
    r = run(registry, "apply", "-f", _write(tmp_path, text))
    assert r.exit_code != 0 and "template loose exists and belongs to no bundle" in r.output
    r = run(registry, "apply", "-f", _write(tmp_path, text), "--adopt")
    assert r.exit_code == 0, r.output
    assert _stored(registry)["loose"].template == "y"


@pytest.mark.parametrize(("entry", "needle"), [
    ("    - name: bad\n      dest: /etc/x\n", "needs exactly one of src"),
    ("    - name: bad\n      template: x\n      src: zoo.cfg.j2\n      dest: /etc/x\n",
     "needs exactly one of src"),
    ("    - name: bad\n      template: x\n      dest: relative/x\n", "dest"),
    ("    - name: bad\n      template: x\n      dest: /etc/x\n      mode: 0644\n",
     "mode must be quoted"),
    ("    - name: bad\n      template: x\n      dest: /etc/x\n      colour: red\n",
     "unknown field(s) colour"),
    ("    - name: bad\n      src: missing.j2\n      dest: /etc/x\n", "cannot read missing.j2"),
    ("    - name: zoo\n      template: x\n      dest: /etc/x\n", "template zoo is named twice"),
    ("    - name: bad\n      template: x\n      dest: /etc/x\n      check_cmd: nginx -t\n",
     "absolute program path"),
])
def test_a_bad_template_entry_names_its_place_and_stores_nothing(
        registry: Registry, tmp_path: Path, entry: str, needle: str) -> None:
    r = run(registry, "apply", "-f", _write(tmp_path, CLUSTERFILE + entry))
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Clusterfile.yaml:" in r.output
    assert "Traceback" not in r.output
    assert _everything(registry) == {}


# -- the plan's invariants, over random templates and owners --------------------------

NAMES = ["a", "b", "c", "d"]


def _res(name: str, text: str) -> TemplateResource:
    return from_mapping({"name": name, "template": text, "dest": f"/etc/t/{name}"})


resources = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["x", "y"]))
owners = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["mine", "theirs"]))


def _desired(want: dict[str, str]) -> Desired:
    return Desired("mine", (), tuple(_res(n, want[n]) for n in sorted(want)))


@given(resources, resources, owners, st.booleans())
def test_plan_then_apply_then_plan_is_empty_and_prunes_only_its_own(
        want: dict[str, str], have: dict[str, str], own: dict[str, str],
        prune: bool) -> None:
    stored = Stored({}, {}, {n: _res(n, t) for n, t in have.items()}, own)
    desired = _desired(want)
    try:
        done = plan(desired, stored, prune, adopt=True)
    except ConflictError:
        assert any(own.get(n) == "theirs" for n in want)
        return
    assert all(own.get(n) == "mine" and n not in want for n in done.template_prune)
    if not prune:
        assert done.template_prune == ()
    after = applied(stored, done, desired)
    assert all(after.templates[n] == _res(n, want[n]) for n in want)
    assert plan(desired, after, prune, adopt=True).templates == ()
    assert not plan(desired, after, prune, adopt=True).template_claim
