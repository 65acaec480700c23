"""Config templates on real systemd machines and a real etcd (issue 15, item 2).

One cluster for the module: 3 machines whose agents allow ``/etc/unitctl-tpl``
(``template_dirs``). The files are read inside the machines; the statuses
through ``unitctl templates --json``. The promises: a template is rendered
again when a key changes and when a unit it lists moves (its machine killed);
a failing check_cmd leaves the old file and is reported; a failing reload_cmd
puts the old file back; a change made right after an etcd restart is not
missed; min_entries holds a render back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.helpers import service, unitctl, wait, where_active, write_unit
from tests.integration.test_watch_recovery import restart_all
from unitctl_testing.cluster import Cluster

pytestmark = pytest.mark.cluster

DIR = "/etc/unitctl-tpl"
DROP_IN_DIR = "/etc/systemd/system/unitctl-agent.service.d"
CLUSTER_KWARGS: dict[str, Any] = {"n_machines": 3}
MOVE_WITHIN = 30.0  # agent TTL 3 s + the engine + systemd + one render


@pytest.fixture(scope="module")
def tpl_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The module's cluster, its agents restarted with template_dirs set (and the
    directory writable: the shipped unit has ProtectSystem=full, /etc is read-only)."""
    for name in cluster.names:
        cluster.exec(name, "mkdir", "-p", DIR, DROP_IN_DIR)
        cluster.exec(name, "sh", "-c", f"printf '[Service]\\nReadWritePaths={DIR}\\n' > "
                     f"{DROP_IN_DIR}/50-templates.conf")
        cluster.systemctl(name, "daemon-reload")
        cluster.exec(name, "sh", "-c", f"grep -q template_dirs /etc/unitctl/unitctl.conf || "
                     f"echo 'template_dirs = {DIR}' >> /etc/unitctl/unitctl.conf")
        cluster.systemctl(name, "restart", "unitctl-agent")
    wait(lambda: len(json.loads(unitctl(cluster, "list-machines", "--json").stdout)) == 3,
         timeout=60, what="3 machines registered again")
    yield cluster


def cat(c: Cluster, name: str, path: str) -> str:
    r = c.exec(name, "cat", path, check=False, timeout=10)
    return r.stdout if r.returncode == 0 else "<missing>"


def submit(c: Cluster, tmp: Path, name: str, body: str) -> None:
    path = tmp / f"{name}.toml"
    path.write_text(body)
    unitctl(c, "template", "submit", str(path))


def results(c: Cluster, template: str) -> dict[str, dict[str, str]]:
    rows = json.loads(unitctl(c, "templates", "--json", "--full").stdout)
    return {r["machine"].split("/")[0]: r for r in rows
            if r["template"] == template and r["machine"]}


def all_files(c: Cluster, path: str, want: str, machines: list[str] | None = None,
              timeout: float = 20) -> None:
    names = machines or list(c.names)
    wait(lambda: all(cat(c, n, path) == want for n in names), timeout=timeout,
         what=f"{path} == {want!r} on {names}: {[cat(c, n, path) for n in names]}")


def test_a_key_change_renders_again_on_every_machine(tpl_cluster: Cluster,
                                                     tmp_path: Path) -> None:
    c = tpl_cluster
    unitctl(c, "data", "set", "/zk/hosts/1", "10.0.0.1")
    submit(c, tmp_path, "zoo", f'''[template]
name = "zoo"
dest = "{DIR}/zoo.cfg"
keys = ["/zk/hosts"]
reload_cmd = "/usr/bin/touch {DIR}/zoo.reloaded"
template = """
{{% for h in getvs("/zk/hosts/*") %}}server.{{{{ loop.index }}}}={{{{ h }}}}:2888:3888
{{% endfor %}}"""
''')
    all_files(c, f"{DIR}/zoo.cfg", "server.1=10.0.0.1:2888:3888\n")
    unitctl(c, "data", "set", "/zk/hosts/2", "10.0.0.2")
    all_files(c, f"{DIR}/zoo.cfg",
              "server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888\n")
    for n in c.names:  # the previous file is kept, the reload ran
        assert cat(c, n, f"{DIR}/zoo.cfg.unitctl-prev") == "server.1=10.0.0.1:2888:3888\n"
        assert cat(c, n, f"{DIR}/zoo.reloaded") == ""
    wait(lambda: len(results(c, "zoo")) == 3 and
         all(r["result"] == "ok" for r in results(c, "zoo").values()), what="3 x ok")


def test_a_failing_check_cmd_leaves_the_old_file_and_is_reported(tpl_cluster: Cluster,
                                                                 tmp_path: Path) -> None:
    c = tpl_cluster
    unitctl(c, "data", "set", "/chk/v", "good")
    submit(c, tmp_path, "chk", f'''[template]
name = "chk"
dest = "{DIR}/chk.conf"
keys = ["/chk"]
check_cmd = "/bin/grep -q good {{{{src}}}}"
template = "value={{{{ getv('/chk/v') }}}}\\n"
''')
    all_files(c, f"{DIR}/chk.conf", "value=good\n")
    unitctl(c, "data", "set", "/chk/v", "bad")
    wait(lambda: len(results(c, "chk")) == 3 and all(
        r["result"] == "check failed" for r in results(c, "chk").values()),
        what="3 x check failed")
    for n in c.names:
        assert cat(c, n, f"{DIR}/chk.conf") == "value=good\n"
    row = next(iter(results(c, "chk").values()))
    assert "check_cmd exited 1" in row["detail"]
    listing = unitctl(c, "templates").stdout
    assert "check failed" in listing


def test_a_failing_reload_cmd_restores_the_old_file(tpl_cluster: Cluster,
                                                    tmp_path: Path) -> None:
    c = tpl_cluster
    unitctl(c, "data", "set", "/rl/v", "ok")
    # the "reload" reads the installed file: it fails when the new file is broken
    submit(c, tmp_path, "rl", f'''[template]
name = "rl"
dest = "{DIR}/rl.conf"
keys = ["/rl"]
reload_cmd = "/bin/grep -qx state=ok {DIR}/rl.conf"
template = "state={{{{ getv('/rl/v') }}}}\\n"
''')
    all_files(c, f"{DIR}/rl.conf", "state=ok\n")
    unitctl(c, "data", "set", "/rl/v", "broken")
    wait(lambda: len(results(c, "rl")) == 3 and all(
        r["result"] == "reload failed" for r in results(c, "rl").values()),
        what="3 x reload failed")
    for n in c.names:
        assert cat(c, n, f"{DIR}/rl.conf") == "state=ok\n"


def test_min_entries_holds_a_render_back(tpl_cluster: Cluster, tmp_path: Path) -> None:
    c = tpl_cluster
    unitctl(c, "data", "set", "/mn/a", "1")
    unitctl(c, "data", "set", "/mn/b", "2")
    submit(c, tmp_path, "mn", f'''[template]
name = "mn"
dest = "{DIR}/mn.conf"
keys = ["/mn"]
min_entries = {{ "/mn/*" = 2 }}
template = "{{{{ getvs('/mn/*') | join(',') }}}}\\n"
''')
    all_files(c, f"{DIR}/mn.conf", "1,2\n")
    unitctl(c, "data", "rm", "/mn/b")
    wait(lambda: len(results(c, "mn")) == 3 and all(
        r["result"] == "held back" for r in results(c, "mn").values()),
        what="3 x held back")
    for n in c.names:
        assert cat(c, n, f"{DIR}/mn.conf") == "1,2\n"
    unitctl(c, "data", "set", "/mn/c", "3")
    all_files(c, f"{DIR}/mn.conf", "1,3\n")


def test_no_change_is_missed_across_an_etcd_restart(tpl_cluster: Cluster,
                                                    tmp_path: Path) -> None:
    c = tpl_cluster
    unitctl(c, "data", "set", "/er/v", "before")
    submit(c, tmp_path, "er", f'''[template]
name = "er"
dest = "{DIR}/er.conf"
keys = ["/er"]
template = "{{{{ getv('/er/v') }}}}\\n"
''')
    all_files(c, f"{DIR}/er.conf", "before\n")
    assert c.etcd is not None
    restart_all(c.etcd)
    # written the moment etcd answers again: before the agents' watches are back
    wait(lambda: unitctl(c, "data", "set", "/er/v", "after", check=False).returncode == 0,
         timeout=30, what="etcd answering")
    all_files(c, f"{DIR}/er.conf", "after\n", timeout=30)
    unitctl(c, "data", "set", "/er/v", "later")
    all_files(c, f"{DIR}/er.conf", "later\n")


def test_a_unit_moving_renders_again(tpl_cluster: Cluster, tmp_path: Path) -> None:
    """Last: it kills a machine (booted again at the end)."""
    c = tpl_cluster
    submit(c, tmp_path, "lb", f'''[template]
name = "lb"
dest = "{DIR}/upstreams.conf"
units = ["tweb@*.service"]
template = """upstream web {{
{{% for u in units("tweb@*.service") %}}    server {{{{ u.ip }}}}:{{{{ u.instance }}}};
{{% endfor %}}}}
"""
''')
    unitctl(c, "start", write_unit(tmp_path, "tweb@8080.service", service()))
    wait(lambda: len(where_active(c, "tweb@8080.service")) == 1, timeout=30,
         what="tweb@8080 active")
    first = where_active(c, "tweb@8080.service").pop()
    expect = f"upstream web {{\n    server {c.ip(first)}:8080;\n}}\n"
    all_files(c, f"{DIR}/upstreams.conf", expect)
    c.kill(first)
    try:
        survivors = [n for n in c.names if n != first]
        wait(lambda: len(where_active(c, "tweb@8080.service", survivors)) == 1,
             timeout=MOVE_WITHIN, what="tweb@8080 moved")
        second = where_active(c, "tweb@8080.service", survivors).pop()
        all_files(c, f"{DIR}/upstreams.conf",
                  f"upstream web {{\n    server {c.ip(second)}:8080;\n}}\n", survivors)
    finally:
        c.boot(first)
