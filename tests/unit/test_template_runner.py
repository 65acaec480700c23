"""The agent's template runner over the in-memory KV and the fake host: what it writes,
checks, reloads, restores and reports, one step at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from unitctl.agent.template_fake import FakeHost
from unitctl.agent.template_host import PREVIOUS
from unitctl.agent.templates import TemplateRunner
from unitctl.model import Machine, UnitState
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.templating.resource import TemplateResource, from_mapping

DEST = "/etc/app/zoo.cfg"
ZOO = ("{% for h in getvs('/hosts/*') %}server.{{ loop.index }}={{ h }}:2888:3888\n"
       "{% endfor %}")


def zoo(**extra: object) -> TemplateResource:
    return from_mapping({"name": "zoo", "template": ZOO, "dest": DEST, "keys": ["/hosts"],
                         **extra})


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


def scenario(body: Callable[[Registry, TemplateRunner, FakeHost], Awaitable[None]],
             metadata: dict[str, str] | None = None) -> None:
    async def go() -> None:
        reg = Registry(MemoryKV())
        host = FakeHost(dirs={"/etc/app", "/etc/other"})
        machine = Machine("m1", "10.0.0.1", metadata or {})
        lease = await reg.leases.grant(60)
        runner = TemplateRunner(reg, machine, ("/etc/app",), host, lambda: lease,
                                lambda: ["lb.service"], settle=0.01)
        task = asyncio.create_task(runner.run())
        try:
            await body(reg, runner, host)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    asyncio.run(asyncio.wait_for(go(), 20))


async def status(reg: Registry, name: str = "zoo") -> str:
    st = (await reg.templates.statuses()).get(name, {}).get("m1")
    return "" if st is None else st.result


def test_renders_on_a_key_change_and_reports_ok() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        await reg.templates.set_data("/hosts/a", "10.0.0.1")
        await reg.templates.submit(zoo())
        await until(lambda: host.files.get(DEST) == b"server.1=10.0.0.1:2888:3888\n")
        await reg.templates.set_data("/hosts/b", "10.0.0.2")
        await until(lambda: b"server.2=10.0.0.2" in host.files.get(DEST, b""))
        assert host.files[DEST + PREVIOUS] == b"server.1=10.0.0.1:2888:3888\n"
        await until(lambda: runner.published("zoo") == runner.statuses["zoo"])
        assert await status(reg) == "ok"
    scenario(body)


def test_a_burst_renders_once_and_the_same_bytes_are_not_rewritten() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        await reg.templates.submit(zoo(reload_cmd="/bin/reload"))
        await reg.templates.set_data("/hosts/a", "x")
        await until(lambda: host.writes == 1)
        for i in range(20):
            await reg.templates.set_data(f"/hosts/n{i:02d}", str(i))
        await until(lambda: b"=19:" in host.files.get(DEST, b""))
        assert host.writes == 2
        await reg.templates.set_data("/hosts/n00", "0")  # same value: same bytes
        await reg.templates.set_data("/other", "y")
        runner.poke()
        await asyncio.sleep(0.2)
        assert host.writes == 2 and len(host.calls) == 2
    scenario(body)


def test_a_failing_check_keeps_the_old_file_and_is_reported() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        await reg.templates.set_data("/hosts/a", "good")
        await reg.templates.submit(zoo(check_cmd="/bin/check -c {{src}}"))
        await until(lambda: DEST in host.files)
        old = host.files[DEST]
        host.codes["/bin/check"] = 1
        await reg.templates.set_data("/hosts/a", "bad")
        await until(lambda: len(host.calls) == 2)
        argv, staged = host.seen[-1]
        assert argv[:2] == ["/bin/check", "-c"] and staged is not None and b"bad" in staged
        await until(lambda: runner.statuses["zoo"].result == "check failed")
        assert host.files[DEST] == old
        assert not any(k.endswith(".unitctl-new") for k in host.files)
        await until(lambda: runner.published("zoo") == runner.statuses["zoo"])
        assert await status(reg) == "check failed"
    scenario(body)


def test_a_failing_reload_restores_the_previous_file() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        await reg.templates.set_data("/hosts/a", "one")
        await reg.templates.submit(zoo(reload_cmd="/bin/reload"))
        await until(lambda: DEST in host.files)
        old = host.files[DEST]
        host.codes["/bin/reload"] = 3
        await reg.templates.set_data("/hosts/a", "two")
        await until(lambda: runner.statuses["zoo"].result == "reload failed")
        assert host.files[DEST] == old
        assert "exited 3" in runner.statuses["zoo"].detail
    scenario(body)


def test_min_entries_holds_the_render_back() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        await reg.templates.set_data("/hosts/a", "1")
        await reg.templates.set_data("/hosts/b", "2")
        await reg.templates.submit(zoo(min_entries={"/hosts/*": 2}))
        await until(lambda: DEST in host.files)
        await reg.templates.delete_data("/hosts/b")
        await until(lambda: runner.statuses["zoo"].result == "held back")
        assert b"=2:" in host.files[DEST]
        assert "1 entries, 2 required" in runner.statuses["zoo"].detail
        await reg.templates.set_data("/hosts/c", "3")
        await until(lambda: b"=3:" in host.files.get(DEST, b""))
        assert runner.statuses["zoo"].result == "ok"
    scenario(body)


def test_a_destination_outside_template_dirs_is_refused() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        res = from_mapping({"name": "x", "template": "hi\n", "dest": "/etc/other/x.conf"})
        await reg.templates.submit(res)
        await until(lambda: "x" in runner.statuses)
        assert runner.statuses["x"].result == "refused"
        assert "/etc/other/x.conf" not in host.files
    scenario(body)


def test_units_lists_where_a_glob_runs_from_the_machines_reports() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        await reg.register_machine(Machine("m2", "10.0.0.2", {}), 0)
        res = from_mapping({
            "name": "lb", "dest": "/etc/app/lb.conf", "units": ["web@*.service"],
            "template": "{% for u in units('web@*.service') %}server {{ u.ip }}:"
                        "{{ u.instance }}\n{% endfor %}", "on_unit": "lb.service"})
        await reg.templates.submit(res)
        await reg.put_state(UnitState("web@80.service", "m2", "loaded", "active", "running",
                                      "h"), 0)
        await until(lambda: host.files.get("/etc/app/lb.conf") == b"server 10.0.0.2:80\n")
        await reg.put_state(UnitState("web@80.service", "m2", "loaded", "failed", "failed",
                                      "h"), 0)
        await until(lambda: host.files.get("/etc/app/lb.conf") == b"")
    scenario(body)


def test_a_template_for_other_metadata_is_not_rendered() -> None:
    async def body(reg: Registry, runner: TemplateRunner, host: FakeHost) -> None:
        await reg.templates.submit(zoo(on_metadata={"role": "zk"}))
        await reg.templates.submit(from_mapping({"name": "y", "template": "y\n",
                                                 "dest": "/etc/app/y"}))
        await until(lambda: "/etc/app/y" in host.files)
        assert DEST not in host.files and "zoo" not in runner.statuses
    scenario(body, metadata={"role": "web"})
