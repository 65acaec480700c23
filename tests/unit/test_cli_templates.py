"""``unitctl template submit|destroy``, ``templates`` and ``data`` over the in-memory KV."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner, Result

from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.templating.plan import Status


def invoke(reg: Registry, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=Session(registry=reg))


def test_submit_list_destroy(tmp_path: Path) -> None:
    reg = Registry(MemoryKV())
    (tmp_path / "zoo.cfg.j2").write_text("{{ getv('/hosts/a') }}\n")
    (tmp_path / "zoo.toml").write_text('[template]\nname = "zoo"\nsrc = "zoo.cfg.j2"\n'
                                       'dest = "/etc/zk/zoo.cfg"\nkeys = ["/hosts"]\n')
    r = invoke(reg, "template", "submit", str(tmp_path / "zoo.toml"))
    assert r.exit_code == 0 and "Template zoo created" in r.output
    assert "unchanged" in invoke(reg, "template", "submit", str(tmp_path / "zoo.toml")).output
    asyncio.run(reg.templates.put_status("zoo", "abcdef0123456789", Status(
        "check failed", "check_cmd exited 1", 12, 1700000000.0), 0))
    listing = invoke(reg, "templates").output
    assert "zoo" in listing and "check failed" in listing and "abcdef01" in listing
    assert invoke(reg, "template", "destroy", "zoo").exit_code == 0
    gone = invoke(reg, "template", "destroy", "zoo")
    assert gone.exit_code != 0 and "not found" in gone.output
    assert "zoo" not in invoke(reg, "templates").output


def test_bad_files_are_refused_with_the_problem_and_nothing_is_stored(tmp_path: Path) -> None:
    reg = Registry(MemoryKV())
    cases = {"syntax.toml": ('[template]\nname = "a"\ndest = "/x"\ntemplate = "{% for %}"\n',
                             "template a: line 1"),
             "dest.toml": ('[template]\nname = "a"\ndest = "x"\ntemplate = "t"\n', "absolute"),
             "toml.toml": ("[template\n", "template file"),
             "src.toml": ('[template]\nname = "a"\ndest = "/x"\nsrc = "missing.j2"\n',
                          "cannot read")}
    for name, (body, message) in cases.items():
        (tmp_path / name).write_text(body)
        r = invoke(reg, "template", "submit", str(tmp_path / name))
        assert r.exit_code != 0 and message in r.output, (name, r.output)
        assert "Traceback" not in r.output
    assert asyncio.run(reg.templates.all()) == []


def test_data_set_get_ls_rm() -> None:
    reg = Registry(MemoryKV())
    assert invoke(reg, "data", "set", "/hosts/a", "10.0.0.1").exit_code == 0
    invoke(reg, "data", "set", "/hosts/b", "10.0.0.2")
    assert invoke(reg, "data", "get", "/hosts/a").output == "10.0.0.1\n"
    assert invoke(reg, "data", "ls", "/hosts").output == "/hosts/a\t10.0.0.1\n" \
                                                        "/hosts/b\t10.0.0.2\n"
    assert invoke(reg, "data", "rm", "-r", "/hosts").exit_code == 0
    missing = invoke(reg, "data", "get", "/hosts/a")
    assert missing.exit_code != 0 and "not found" in missing.output
    bad = invoke(reg, "data", "set", "hosts a", "x")
    assert bad.exit_code != 0 and "bad data key" in bad.output
