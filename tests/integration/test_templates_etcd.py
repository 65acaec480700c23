"""The agent's template runner on a real etcd and the real file system: the watches
resume from the last revision seen across an etcd restart (no re-read, no change
missed), and the file steps (stage, check, install keeping the previous, restore)
on real files with real commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.integration.test_watch_recovery import restart_all, retry
from unitctl.agent.template_host import PREVIOUS, LocalHost
from unitctl.agent.templates import TemplateRunner
from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.model import Machine
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.registry import Registry
from unitctl.templating.resource import from_mapping
from unitctl_testing.etcd import EtcdCluster

pytestmark = pytest.mark.etcd
PREFIX = "/templates-it/"


async def until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.02)


def run(cluster: EtcdCluster, tmp: Path,
        body: Callable[[Registry, TemplateRunner, Path], Awaitable[None]]) -> None:
    async def go() -> None:
        reg = Registry(await EtcdKV.connect(EtcdConfig(endpoints=tuple(cluster.endpoints),
                                                       timeout=2)), PREFIX)
        await reg.ensure_schema()
        lease = await reg.leases.grant(60)
        runner = TemplateRunner(reg, Machine("m1", "10.0.0.1", {}), (str(tmp),), LocalHost(),
                                lambda: lease, lambda: [], settle=0.05)
        task = asyncio.create_task(runner.run())
        try:
            await body(reg, runner, tmp)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await reg.close()
    asyncio.run(asyncio.wait_for(go(), 90))


def test_a_change_right_after_an_etcd_restart_is_not_missed(own_etcd: EtcdCluster,
                                                            tmp_path: Path) -> None:
    dest = tmp_path / "v.conf"

    async def body(reg: Registry, runner: TemplateRunner, tmp: Path) -> None:
        await reg.templates.set_data("/v", "before")
        await reg.templates.submit(from_mapping({
            "name": "v", "dest": str(dest), "keys": ["/v"],
            "template": "{{ getv('/v') }}\n"}))
        await until(lambda: dest.exists() and dest.read_text() == "before\n")
        await asyncio.to_thread(restart_all, own_etcd)
        await retry(lambda: reg.templates.set_data("/v", "after"))
        await until(lambda: dest.read_text() == "after\n")
        data = runner.mirrors["data"]
        assert data.starts[0] == "read" and "resume" in data.starts[1:], data.starts
        assert "read" not in data.starts[1:]  # resumed from last + 1, never re-read
    run(own_etcd, tmp_path, body)


def test_check_install_and_restore_on_real_files(own_etcd: EtcdCluster,
                                                 tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"

    async def body(reg: Registry, runner: TemplateRunner, tmp: Path) -> None:
        await reg.templates.set_data("/app/v", "good")
        await reg.templates.submit(from_mapping({
            "name": "app", "dest": str(dest), "keys": ["/app"], "mode": "0600",
            "check_cmd": "/bin/grep -q -v bad {{src}}",
            "reload_cmd": f"/bin/grep -q -v broken {dest}",
            "template": "v={{ getv('/app/v') }}\n"}))
        await until(lambda: dest.exists() and dest.read_text() == "v=good\n")
        assert dest.stat().st_mode & 0o777 == 0o600
        await reg.templates.set_data("/app/v", "bad")
        await until(lambda: runner.statuses["app"].result == "check failed")
        assert dest.read_text() == "v=good\n"
        assert sorted(p.name for p in tmp.iterdir()) == ["app.conf"]  # no staged file left
        await reg.templates.set_data("/app/v", "better")
        await until(lambda: dest.read_text() == "v=better\n")
        assert Path(str(dest) + PREVIOUS).read_text() == "v=good\n"
        await reg.templates.set_data("/app/v", "broken")
        await until(lambda: runner.statuses["app"].result == "reload failed")
        assert dest.read_text() == "v=better\n"
        link = tmp / "escape"
        link.symlink_to("/etc")
        await reg.templates.submit(from_mapping({"name": "esc", "dest": f"{link}/x.conf",
                                                 "template": "x\n"}))
        await until(lambda: "esc" in runner.statuses)
        assert runner.statuses["esc"].result == "refused"
        assert not Path("/etc/x.conf").exists()
    run(own_etcd, tmp_path, body)


BUNDLE = """\
apiVersion: unitctl.io/v1
kind: Bundle
metadata:
  name: conf
spec:
  units:
    - name: app.service
      state: inactive
      body: |
        [Service]
        ExecStart=/bin/sleep infinity
  templates:
    - name: app-conf
      src: app.conf.j2
      dest: {dest}
      keys: [/app]
"""


def _cli(cluster: EtcdCluster, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["--endpoint", cluster.endpoints[0], "--etcd-key-prefix",
                                   PREFIX, *args], obj=Session())
    return res.exit_code, res.output


def test_a_template_applied_from_a_clusterfile_is_rendered_and_pruned_alone(
        own_etcd: EtcdCluster, tmp_path: Path) -> None:
    """``unitctl apply`` of a Clusterfile with ``spec.templates`` through the real CLI:
    an agent's runner renders it; ``--prune`` of it leaves the file in place."""
    dest = tmp_path / "out" / "app.conf"
    dest.parent.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.conf.j2").write_text("v={{ getv('/app/v') }}\n")
    path = src / "Clusterfile.yaml"
    path.write_text(BUNDLE.format(dest=dest))

    async def body(reg: Registry, runner: TemplateRunner, tmp: Path) -> None:
        await reg.templates.set_data("/app/v", "one")
        code, out = await asyncio.to_thread(_cli, own_etcd, "apply", "-f", str(path))
        assert code == 0 and "Template app-conf created" in out, out
        await until(lambda: dest.exists() and dest.read_text() == "v=one\n")
        path.write_text(BUNDLE.format(dest=dest).split("  templates:")[0])
        code, out = await asyncio.to_thread(_cli, own_etcd, "apply", "-f", str(path),
                                            "--prune")
        assert code == 0 and "Template app-conf pruned" in out, out
        assert await reg.templates.all() == []
        await until(lambda: "app-conf" not in runner.statuses)
        assert dest.read_text() == "v=one\n"
    run(own_etcd, tmp_path / "out", body)
