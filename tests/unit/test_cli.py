"""The ``unitctl`` verbs, in-process against the in-memory store.

The registry is injected through click's ``obj`` (``Session(registry=...)``);
a tiny fake engine+agent (:class:`FakeEngine`) runs on the command's own event
loop to place units and report their systemd states, so blocking verbs see the
cluster change as they would with the real engine and agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
import pytest
from click.testing import CliRunner

from unitctl.cli.complete import complete_machines, complete_units
from unitctl.cli.main import cli
from unitctl.cli.session import Session
from unitctl.client import Client
from unitctl.errors import SystemdError
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState
from unitctl.registry import codec
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

T = TypeVar("T")

M1 = "113f16a7" + "1" * 24
M2 = "2e45a1b0" + "2" * 24
M3 = "2e45ffff" + "3" * 24
IP1, IP2 = "10.0.0.1", "10.0.0.2"

HELLO = "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/sleep 1000\n"
HELLO2 = "[Unit]\nDescription=Hello again\n\n[Service]\nExecStart=/bin/sleep 2000\n"
TEMPLATE = "[Service]\nExecStart=/bin/echo %i\n"
GLOBAL = "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nGlobal=true\n"
BOTH = ("[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineID=" + M1 + "\nGlobal=true\n")


# ------------------------------------------------------------------ fake cluster


@dataclass
class FakeEngine:
    """Places every wanted unit on ``machine`` and reports systemd states for it.

    Units in ``unplaceable`` get an ``explain/`` entry instead; units in
    ``failing`` report ``failed`` when started.
    """

    registry: Registry
    machine: str = M1
    unplaceable: dict[str, dict[str, str]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(0.02)

    async def step(self) -> None:
        reg = self.registry
        units = {u.name: u for u in await reg.list_units()}
        placements = await reg.list_placements()
        states = {(s.name, s.machine_id): s for s in await reg.list_states()}
        explanations = await reg.list_explanations()
        for name, rec in units.items():
            if rec.desired is DesiredState.INACTIVE:
                await self._drop(name, placements, states)
                continue
            if name in self.unplaceable:
                if explanations.get(name) != self.unplaceable[name]:
                    await reg.kv.put(reg.keys.explanation(name),
                                     codec.encode_explanation(self.unplaceable[name]))
                continue
            if placements.get(name) != self.machine:
                await reg.kv.put(reg.keys.placement(name), self.machine.encode())
            if rec.desired is DesiredState.LAUNCHED:
                active, sub = ("failed", "failed") if name in self.failing else \
                    ("active", "running")
            else:
                active, sub = "inactive", "dead"
            want = UnitState(name, self.machine, "loaded", active, sub, rec.hash)
            if states.get((name, self.machine)) != want:
                await reg.put_state(want, 0)
        for name, _ in list(states):
            if name not in units:
                await self._drop(name, placements, states)

    async def _drop(self, name: str, placements: Mapping[str, str],
                    states: Mapping[tuple[str, str], UnitState]) -> None:
        if name in placements:
            await self.registry.kv.delete(self.registry.keys.placement(name))
        for (n, m) in states:
            if n == name:
                await self.registry.delete_state(name, m)


@dataclass
class SimSession(Session):
    """A Session whose commands run with a fake engine on the same event loop."""

    engine: FakeEngine | None = None

    async def _run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        task = asyncio.create_task(self.engine.run()) if self.engine else None
        try:
            return await super()._run(fn)
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@dataclass
class FakeRunner:
    """Records every argv instead of running it."""

    code: int = 0
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        return self.code


@dataclass
class Env:
    registry: Registry
    session: SimSession
    runner: FakeRunner
    dir: str

    def write(self, name: str, text: str | bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return path

    def do(self, coro: Awaitable[T]) -> T:
        async def go() -> T:
            return await coro
        return asyncio.run(go())

    def dump(self) -> dict[str, bytes]:
        rng = self.do(self.registry.kv.get_prefix(""))
        return {kv.key: kv.value for kv in rng.kvs}

    def unit(self, name: str) -> UnitRecord | None:
        return self.do(self.registry.get_unit(name))

    def body(self, name: str) -> str | None:
        rec = self.unit(name)
        assert rec is not None
        return self.do(self.registry.get_body(rec.hash))

    def store(self, name: str, text: str,
              desired: DesiredState = DesiredState.INACTIVE) -> UnitRecord:
        uf = UnitFile.parse(text)
        rec = UnitRecord(name, uf.hash(), desired)
        self.do(self.registry.create_unit(rec, uf.serialize()))
        return rec

    def place(self, name: str, machine: str = M1, active: str = "active",
              sub: str = "running") -> None:
        rec = self.unit(name)
        assert rec is not None
        reg = self.registry

        async def go() -> None:
            await reg.kv.put(reg.keys.placement(name), machine.encode())
            await reg.put_state(UnitState(name, machine, "loaded", active, sub, rec.hash), 0)
        self.do(go())

    def invoke(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        res = CliRunner().invoke(cli, list(args), obj=self.session, env=env)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return Result(res.exit_code, res.stdout, res.stderr)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.chdir(tmp_path)
    reg = Registry(MemoryKV())
    runner = FakeRunner()
    sess = SimSession(registry=reg, runner=runner, machine_id=lambda: "f" * 32,
                      attempt_seconds=0.1)
    e = Env(reg, sess, runner, str(tmp_path))

    async def setup() -> None:
        await reg.ensure_schema()
        await reg.register_machine(Machine(M1, IP1, {"role": "web"}), 0)
        await reg.register_machine(Machine(M2, IP2, {}), 0)
    e.do(setup())
    yield e


def engine(env: Env, **kw: Any) -> FakeEngine:
    env.session.engine = FakeEngine(env.registry, **kw)
    return env.session.engine


# ------------------------------------------------------------------ submit


def test_submit_stores_the_unit_and_cat_prints_it(env: Env) -> None:
    env.write("hello.service", "# comment\n[Unit]\nDescription=Hello\n[Service]\n"
              "ExecStart=/bin/sleep 1000\n")
    r = env.invoke("submit", "hello.service")
    assert (r.code, r.out, r.err) == (0, "Unit hello.service inactive\n", "")
    rec = env.unit("hello.service")
    assert rec is not None and rec.desired is DesiredState.INACTIVE
    assert rec.hash == UnitFile.parse(HELLO).hash()
    r = env.invoke("cat", "hello")
    assert (r.code, r.out) == (0, HELLO)  # serialised, no newline added


def test_submit_is_idempotent_and_implies_service(env: Env) -> None:
    env.write("hello.service", HELLO)
    assert env.invoke("submit", "hello").code == 0
    before = env.dump()
    r = env.invoke("submit", "hello")
    assert (r.code, r.out, r.err) == (0, "", "")
    assert env.dump() == before


def test_submit_without_units(env: Env) -> None:
    r = env.invoke("submit")
    assert (r.code, r.out, r.err) == (0, "", "No units given\n")


def test_submit_different_body_warns_then_replace(env: Env) -> None:
    env.write("hello.service", HELLO)
    env.invoke("submit", "hello.service")
    env.write("hello.service", HELLO2)
    before = env.dump()
    r = env.invoke("submit", "hello.service")
    assert r.code == 0
    assert r.err == ("WARNING: Unit hello.service in registry differs from local unit file "
                     "hello.service. Add --replace to override.\n")
    assert env.dump() == before
    r = env.invoke("submit", "--replace", "hello.service")
    assert r.code == 0
    assert env.body("hello.service") == HELLO2
    # the old body was garbage-collected with its last reference
    assert env.do(env.registry.get_body(UnitFile.parse(HELLO).hash())) is None


def test_replace_respects_fleet_state_rules(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.write("hello.service", HELLO2)
    before = env.dump()
    r = env.invoke("submit", "--replace", "hello.service")
    assert r.code == 0
    assert r.err == ("Warning: can not replace Unit(hello.service) in state 'launched', "
                     "use the appropriate command\n")
    assert env.dump() == before
    r = env.invoke("start", "--replace", "--no-block", "hello.service")
    assert r.code == 0
    assert env.body("hello.service") == HELLO2
    rec = env.unit("hello.service")
    assert rec is not None and rec.desired is DesiredState.LAUNCHED


def test_instance_from_local_template(env: Env) -> None:
    env.write("web@.service", TEMPLATE)
    r = env.invoke("submit", "web@1")
    assert (r.code, r.out) == (0, "Unit web@1.service inactive\n")
    assert env.body("web@1.service") == TEMPLATE
    assert env.unit("web@.service") is None


def test_instance_from_registry_template(env: Env) -> None:
    env.store("web@.service", TEMPLATE)
    r = env.invoke("start", "--no-block", "web@2.service")
    assert (r.code, r.out) == (0, "Triggered unit web@2.service start\n")
    assert env.body("web@2.service") == TEMPLATE
    rec = env.unit("web@2.service")
    assert rec is not None and rec.desired is DesiredState.LAUNCHED


def test_instance_from_template_in_the_arguments_directory(env: Env) -> None:
    os.mkdir(os.path.join(env.dir, "units"))
    env.write("units/web@.service", TEMPLATE)
    assert env.invoke("submit", "units/web@3.service").code == 0
    assert env.body("web@3.service") == TEMPLATE


def test_template_can_be_submitted_but_not_started(env: Env) -> None:
    env.write("web@.service", TEMPLATE)
    assert env.invoke("submit", "web@.service").code == 0
    before = env.dump()
    for verb in ("start", "load"):
        r = env.invoke(verb, "web@.service")
        assert r.code == 2
        assert r.err == (f"Error: cannot {verb} template web@.service: {verb} an instance "
                         "such as web@1.service\n")
    assert env.dump() == before


def test_xfleet_warnings_are_printed(env: Env) -> None:
    env.write("odd.service", "[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineOff=x\n")
    r = env.invoke("submit", "odd.service")
    assert r.code == 0
    assert r.err.startswith("WARNING: odd.service: ") and "MachineOff" in r.err


# ------------------------------------------------------------------ bad input


BAD_CASES = [
    # (files to write, args, exit code, text in the error)
    ({"bad.service": "garbage\n"}, ["submit", "bad.service"], 2, "bad.service"),
    ({}, ["submit", "../x.service"], 3, "unable to find unit x.service"),
    ({}, ["submit", "@x.service"], 2, "invalid unit name"),
    ({}, ["start", "a b.service"], 2, "invalid unit name"),
    ({}, ["start", "nope"], 3, "nope.service"),
    ({}, ["load", "web@7"], 3, "web@.service"),
    ({"both.service": BOTH}, ["start", "both.service"], 2, "Global"),
    ({"t@.service": TEMPLATE}, ["start", "t@.service"], 2, "cannot start template"),
    ({"utf.service": b"[Service]\nExecStart=\xff\n"}, ["submit", "utf.service"], 2, "UTF-8"),
    ({"good.service": HELLO, "bad.service": "[Service\n"},
     ["load", "good.service", "bad.service"], 2, "bad.service"),
    ({}, ["cat", "nope"], 3, "Unit nope.service not found"),
    ({}, ["explain", "nope"], 3, "nope.service"),
    ({}, ["stop", "nope"], 3, "nope.service"),
    ({}, ["unload", "nope"], 3, "nope.service"),
    ({}, ["destroy", "hello.service", "nope"], 3, "nope.service"),
    ({}, ["status", "nope"], 3, "nope.service"),
    ({}, ["list-unit-files", "--fields", "unit,x"], 2, "invalid field: x"),
]


@pytest.mark.parametrize(("files", "args", "code", "text"), BAD_CASES,
                         ids=[" ".join(c[1]) for c in BAD_CASES])
def test_bad_input_is_one_line_and_changes_nothing(env: Env, files: dict[str, Any],
                                                   args: list[str], code: int,
                                                   text: str) -> None:
    env.store("hello.service", HELLO)
    for name, content in files.items():
        env.write(name, content)
    before = env.dump()
    r = env.invoke(*args)
    assert r.code == code, r.err
    assert r.err.startswith("Error: ") and r.err.count("\n") == 1, r.err
    assert text in r.err
    assert "Traceback" not in r.err + r.out
    assert env.dump() == before


def test_unreadable_file(env: Env) -> None:
    os.mkdir(os.path.join(env.dir, "dir.service"))
    before = env.dump()
    r = env.invoke("submit", "dir.service")
    assert (r.code, r.err) == (2, "Error: cannot read unit file dir.service: Is a directory\n")
    assert env.dump() == before


def test_registry_unavailable_maps_to_exit_5(env: Env) -> None:
    assert isinstance(env.registry.kv, MemoryKV)
    env.registry.kv.unavailable = True
    r = env.invoke("list-units")
    assert r.code == 5 and r.err.startswith("Error: ") and r.err.count("\n") == 1


def test_internal_errors_are_one_line_unless_debug(env: Env,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(self: Client) -> list[Machine]:
        raise RuntimeError("boom")
    monkeypatch.setattr(Client, "list_machines", boom)
    r = env.invoke("list-machines")
    assert (r.code, r.err) == (1, "Error: internal error: RuntimeError: boom\n")
    r = env.invoke("--debug", "list-machines")
    assert r.code == 1 and "Traceback" in r.err
    assert r.err.endswith("Error: internal error: RuntimeError: boom\n")


# ------------------------------------------------------------------ load / start


def test_start_blocks_until_launched(env: Env) -> None:
    engine(env)
    env.write("hello.service", HELLO)
    r = env.invoke("start", "hello.service")
    assert r.code == 0, r.err
    assert r.out == ("Unit hello.service inactive\n"
                     f"Unit hello.service launched on 113f16a7.../{IP1}\n")


def test_load_blocks_until_loaded(env: Env) -> None:
    engine(env)
    env.write("hello.service", HELLO)
    r = env.invoke("load", "hello")
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == f"Unit hello.service loaded on 113f16a7.../{IP1}"


def test_start_already_running_unit(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service")
    r = env.invoke("start", "hello")
    assert (r.code, r.out) == (0, f"Unit hello.service launched on 113f16a7.../{IP1}\n")


def test_start_no_block_and_global(env: Env) -> None:
    env.write("hello.service", HELLO)
    env.write("glob.service", GLOBAL)
    r = env.invoke("start", "--no-block", "hello.service", "glob.service")
    assert r.code == 0
    assert r.out == ("Triggered global unit glob.service start\n"
                     "Triggered unit hello.service start\n")
    r = env.invoke("start", "glob.service")  # global units never block
    assert (r.code, r.out) == (0, "Triggered global unit glob.service start\n")


def test_start_failed_unit_is_an_error(env: Env) -> None:
    engine(env, failing={"hello.service"})
    env.write("hello.service", HELLO)
    r = env.invoke("start", "hello.service")
    assert r.code == SystemdError.exit_code
    assert r.err == (f"Error: Unit hello.service failed on 113f16a7.../{IP1}: "
                     "active=failed sub=failed\n")


def test_start_unschedulable_prints_reasons_and_exits_7(env: Env) -> None:
    reasons = {M1: "metadata region=eu not matched", M2: "metadata region=eu not matched"}
    engine(env, unplaceable={"hello.service": reasons})
    env.write("hello.service", HELLO)
    r = env.invoke("start", "--block-attempts", "2", "hello.service")
    assert r.code == 7
    lines = r.err.splitlines()
    assert lines[:3] == ["Unit hello.service cannot be placed:",
                         "  113f16a7...: metadata region=eu not matched",
                         "  2e45a1b0...: metadata region=eu not matched"]
    assert r.err.count("cannot be placed:\n") == 1  # shown once
    assert lines[-1] == ("Error: Unit hello.service cannot be placed: 113f16a7...: metadata "
                         "region=eu not matched; 2e45a1b0...: metadata region=eu not matched")
    r = env.invoke("list-unit-files", "--fields", "unit,reason", "--no-legend")
    assert r.out == "hello.service\tmetadata region=eu not matched\n"
    r = env.invoke("explain", "hello")
    assert r.code == 0
    assert "Unit hello.service cannot be placed:\n  113f16a7...: metadata" in r.out


def test_start_times_out_without_explanation(env: Env) -> None:
    env.write("hello.service", HELLO)
    r = env.invoke("start", "--block-attempts", "1", "hello.service")
    assert r.code == 6
    assert r.err.endswith("Error: timed out waiting for unit hello.service to report state "
                          "launched\n")


def test_wait_wakes_on_watch_events_not_polling() -> None:
    reg = Registry(MemoryKV())
    hello = UnitFile.parse(HELLO)

    async def go() -> float:
        await reg.register_machine(Machine(M1, IP1), 0)
        await reg.create_unit(UnitRecord("hello.service", hello.hash(),
                                         DesiredState.LAUNCHED), hello.serialize())
        client = Client(reg, out=lambda s: None, err=lambda s: None, attempt_seconds=30)

        async def later() -> None:
            await asyncio.sleep(0.1)
            await reg.kv.put(reg.keys.placement("hello.service"), M1.encode())
            await reg.put_state(UnitState("hello.service", M1, "loaded", "active", "running",
                                          hello.hash()), 0)
        t0 = time.monotonic()
        task = asyncio.create_task(later())
        await client.wait_for(["hello.service"],
                              client.reached(DesiredState.LAUNCHED), 1)
        await task
        return time.monotonic() - t0

    assert asyncio.run(go()) < 5


def test_stale_failed_state_does_not_end_the_wait() -> None:
    reg = Registry(MemoryKV())
    hello = UnitFile.parse(HELLO)

    async def go() -> None:
        await reg.create_unit(UnitRecord("hello.service", hello.hash(), DesiredState.LOADED),
                              hello.serialize())
        await reg.kv.put(reg.keys.placement("hello.service"), M1.encode())
        await reg.put_state(UnitState("hello.service", M1, "loaded", "failed", "failed",
                                      hello.hash()), 0)
        client = Client(reg, out=lambda s: None, err=lambda s: None, attempt_seconds=0.05)
        since = await client.set_state(["hello.service"], DesiredState.LAUNCHED)
        with pytest.raises(Exception, match="timed out"):
            await client.wait_for(["hello.service"],
                                  client.reached(DesiredState.LAUNCHED, since), 2)
        await reg.put_state(UnitState("hello.service", M1, "loaded", "failed", "failed",
                                      hello.hash()), 0)
        with pytest.raises(SystemdError):
            await client.wait_for(["hello.service"],
                                  client.reached(DesiredState.LAUNCHED, since), 2)

    asyncio.run(go())


# ------------------------------------------------------------------ stop / unload / destroy


def test_stop_inactive_unit_is_refused(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    before = env.dump()
    r = env.invoke("stop", "hello")
    assert (r.code, r.err) == (1, "Error: Unable to stop unit hello.service in state "
                                  "inactive\n")
    assert env.dump() == before


def test_stop_and_unload_block(env: Env) -> None:
    engine(env)
    env.write("hello.service", HELLO)
    env.write("other.service", HELLO2)
    assert env.invoke("start", "hello", "other").code == 0
    r = env.invoke("stop", "hello", "other")
    assert r.code == 0, r.err
    assert sorted(r.out.splitlines()) == [
        f"Unit hello.service loaded on 113f16a7.../{IP1}",
        f"Unit other.service loaded on 113f16a7.../{IP1}"]
    assert r.err == "Successfully stopped units [hello.service other.service].\n"
    r = env.invoke("unload", "hello")
    assert (r.code, r.out, r.err) == (0, "Unit hello.service inactive\n",
                                      "Successfully unloaded units [hello.service].\n")
    rec = env.unit("hello.service")
    assert rec is not None and rec.desired is DesiredState.INACTIVE


def test_stop_no_block(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service")
    r = env.invoke("stop", "--no-block", "hello")
    assert (r.code, r.out) == (0, "Triggered unit hello.service stop\n")
    assert r.err == "Successfully stopped units [hello.service].\n"


def test_destroy_waits_for_states_to_go(env: Env) -> None:
    engine(env)
    env.write("hello.service", HELLO)
    assert env.invoke("start", "hello").code == 0
    r = env.invoke("destroy", "hello")
    assert (r.code, r.out) == (0, "Destroyed hello.service\n")
    dump = env.dump()
    assert not [k for k in dump if "hello.service" in k]
    assert not [k for k in dump if "/bodies/" in k]


def test_destroy_no_block(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service")  # no agent will ever remove this state
    r = env.invoke("destroy", "--no-block", "hello.service")
    assert (r.code, r.out) == (0, "Destroyed hello.service\n")
    assert env.unit("hello.service") is None


def test_restart(env: Env) -> None:
    engine(env)
    env.write("hello.service", HELLO)
    assert env.invoke("start", "hello").code == 0
    r = env.invoke("restart", "hello")
    assert r.code == 0, r.err
    assert r.out == (f"Unit hello.service loaded on 113f16a7.../{IP1}\n"
                     f"Unit hello.service launched on 113f16a7.../{IP1}\n")
    env.store("idle.service", HELLO2)
    r = env.invoke("restart", "idle")
    assert (r.code, r.err) == (1, "Error: Unable to restart unit idle.service in state "
                                  "inactive\n")


def test_restart_stops_a_failed_unit_before_starting_it(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service", active="failed", sub="failed")
    r = env.invoke("restart", "--block-attempts", "1", "hello")  # no agent to start it
    assert r.out == f"Unit hello.service loaded on 113f16a7.../{IP1}\n"
    assert r.code == 6
    rec = env.unit("hello.service")
    assert rec is not None and rec.desired is DesiredState.LAUNCHED


def test_a_registry_can_be_injected_directly(env: Env) -> None:
    env.store("hello.service", HELLO)
    res = CliRunner().invoke(cli, ["list-unit-files", "--fields", "unit", "--no-legend"],
                             obj=env.registry)
    assert (res.exit_code, res.stdout) == (0, "hello.service\n")


def test_restart_global_runs_systemctl_on_each_machine(env: Env) -> None:
    env.store("glob.service", GLOBAL, DesiredState.LAUNCHED)
    env.place("glob.service", M1)
    env.place("glob.service", M2)
    r = env.invoke("restart", "--ssh", "glob")
    assert r.code == 0, r.err
    assert [c[-2:] for c in env.runner.calls] == [
        [f"core@{IP1}", "systemctl restart glob.service"],
        [f"core@{IP2}", "systemctl restart glob.service"]]


def test_restart_global_without_ssh_asks_every_agent_and_names_each_failure(env: Env) -> None:
    env.store("glob.service", GLOBAL, DesiredState.LAUNCHED)
    env.place("glob.service", M1)
    env.place("glob.service", M2)
    r = env.invoke("restart", "--agent-timeout", "0.2", "glob")
    assert r.code == 10 and env.runner.calls == []  # no ssh
    for m in (M1, M2):
        assert (f"Failed to restart global unit glob.service on {m}: its agent did not answer "
                "within 0.2s") in r.err


def test_status_and_journal_without_an_agent_name_the_machine(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service", M2)
    for verb in ("status", "journal"):
        r = env.invoke(verb, "--agent-timeout", "0.2", "hello")
        assert (r.code, r.err) == (10, f"Error: machine {M2}: its agent did not answer within "
                                       "0.2s (is unitctl-agent running there?)\n")
    assert env.runner.calls == []
    r = env.invoke("journal", "-o", "--all", "hello")
    assert r.code == 2 and "unknown output mode '--all'" in r.err


# ------------------------------------------------------------------ explain / misc


def test_explain_placed_unit(env: Env) -> None:
    env.write("hello.service", "[Service]\nExecStart=/bin/true\n[X-Fleet]\n"
              "MachineMetadata=role=web\n")
    env.invoke("submit", "hello")
    env.place("hello.service")
    r = env.invoke("explain", "hello.service")
    assert r.code == 0
    assert f"Placed on 113f16a7.../{IP1}" in r.out
    assert "MachineMetadata=role=web" in r.out


def test_version_help_and_prefix_matching(env: Env) -> None:
    assert env.invoke("version").out == "unitctl version 0.1.0\n"
    assert env.invoke("--version").out == "unitctl version 0.1.0\n"
    r = env.invoke("help")
    assert r.code == 0 and "list-unit-files" in r.out and "submit" in r.out
    r = env.invoke("list-m")
    assert r.code == 0 and r.out.startswith("MACHINE")
    r = env.invoke("list-unit")
    assert r.code == 2 and "ambiguous" in r.err


# ------------------------------------------------------------------ status / journal / ssh


def ssh_prefix(user: str = "core", strict: str = "yes", known: str | None = None,
               port: str = "22") -> list[str]:
    known = known or os.path.expanduser("~/.unitctl/known_hosts")
    return ["ssh", "-o", f"StrictHostKeyChecking={strict}", "-o", f"UserKnownHostsFile={known}",
            "-p", port, "-o", "ConnectTimeout=10"]


def test_status_local_and_remote(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service", M1)
    env.session.machine_id = lambda: M1
    r = env.invoke("status", "--ssh", "hello")
    assert r.code == 0
    assert env.runner.calls == [["systemctl", "status", "-l", "hello.service"]]
    env.runner.calls.clear()
    env.session.machine_id = lambda: M2
    r = env.invoke("--known-hosts-file", "/k/hosts", "status", "--ssh", "hello")
    assert env.runner.calls == [[*ssh_prefix(known="/k/hosts"), "--", f"core@{IP1}",
                                 "systemctl status -l hello.service"]]


def test_status_tunnel_user_and_no_strict(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service", M1)
    r = env.invoke("--tunnel", "bastion:2222", "--ssh-username", "admin",
                   "--no-strict-host-key-checking", "status", "--ssh-port", "2200", "hello")
    assert r.code == 0
    assert env.runner.calls == [
        [*ssh_prefix(strict="no", port="2200"), "-J", "bastion:2222", "--", f"admin@{IP1}",
         "systemctl status -l hello.service"]]


def test_status_maps_exit_code_and_needs_a_loaded_unit(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    for flags in ([], ["--ssh"]):
        r = env.invoke("status", *flags, "hello")
        assert (r.code, r.err) == (1, "Error: Unit hello.service does not appear to be loaded.\n")
    assert env.runner.calls == []
    env.place("hello.service", M1)
    # systemctl's 3 (not running) has its own code, 11: unitctl's 3 means "not found"
    for systemctl_code, code in ((3, 11), (4, 3), (1, 10), (255, 10), (0, 0)):
        env.runner.code = systemctl_code
        assert env.invoke("status", "--ssh", "hello").code == code


def test_journal_argv(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service", M1)
    env.session.machine_id = lambda: M1
    assert env.invoke("journal", "--ssh", "hello").code == 0
    assert env.invoke("journal", "--lines", "5", "-f", "--output", "json", "--sudo", "--ssh",
                      "hello").code == 0
    assert env.runner.calls == [
        ["journalctl", "--unit", "hello.service", "--no-pager", "-n", "10", "--output",
         "short"],
        ["sudo", "journalctl", "--unit", "hello.service", "--no-pager", "-n", "5", "--output",
         "json", "-f"]]


def test_journal_follow_over_ssh_gets_a_tty(env: Env) -> None:
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service", M2)
    assert env.invoke("journal", "--ssh", "-f", "hello").code == 0
    assert env.runner.calls == [[*ssh_prefix(), "-t", "--", f"core@{IP2}",
                                 "journalctl --unit hello.service --no-pager -n 10 --output "
                                 "short -f"]]


def test_journal_refuses_global_units(env: Env) -> None:
    env.store("glob.service", GLOBAL, DesiredState.LAUNCHED)
    env.place("glob.service", M1)
    r = env.invoke("journal", "glob")
    assert r.code == 2 and "global unit glob.service" in r.err
    assert env.runner.calls == []


def test_ssh_by_machine_prefix_and_unit(env: Env) -> None:
    r = env.invoke("ssh", "113f", "echo", "a b", "-x")
    assert r.code == 0
    assert env.runner.calls[-1] == [*ssh_prefix(), "--", f"core@{IP1}", "echo 'a b' -x"]
    r = env.invoke("ssh", "-A", M2)
    assert env.runner.calls[-1] == [*ssh_prefix(), "-A", "--", f"core@{IP2}"]
    env.store("hello.service", HELLO, DesiredState.LAUNCHED)
    env.place("hello.service", M2)
    assert env.invoke("ssh", "hello.service", "uptime").code == 0
    assert env.runner.calls[-1][-2:] == [f"core@{IP2}", "uptime"]
    env.runner.code = 255
    assert env.invoke("ssh", "113f", "true").code == 255


def test_ssh_ambiguous_and_unknown(env: Env) -> None:
    env.do(env.registry.register_machine(Machine(M3, "10.0.0.3"), 0))
    r = env.invoke("ssh", "2e45")
    assert r.code == 2 and "ambiguous" in r.err and r.err.count("\n") == 1
    r = env.invoke("ssh", "ffff")
    assert r.code == 3
    assert env.runner.calls == []


def test_env_vars_set_global_flags(env: Env) -> None:
    r = env.invoke("ssh", "113f", "true", env={"UNITCTL_SSH_USERNAME": "bob",
                                               "UNITCTL_TUNNEL": "jump",
                                               "UNITCTL_STRICT_HOST_KEY_CHECKING": "false"})
    assert r.code == 0
    assert env.runner.calls[-1] == [*ssh_prefix(strict="no"), "-J", "jump", "--",
                                    f"bob@{IP1}", "true"]


# ------------------------------------------------------------------ completion


def test_shell_completion_reads_the_registry(env: Env) -> None:
    env.store("hello.service", HELLO)
    env.store("other.service", HELLO2)
    ctx = click.Context(cli, obj=env.session)
    assert complete_units(ctx, cli.params[0], "he") == ["hello.service"]
    assert complete_machines(ctx, cli.params[0], "2e") == [M2]
    assert isinstance(env.registry.kv, MemoryKV)
    env.registry.kv.unavailable = True
    assert complete_units(ctx, cli.params[0], "") == []
