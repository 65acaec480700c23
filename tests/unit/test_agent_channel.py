"""The agent channel's contract, in-process over MemoryKV: a client's request reaches one
machine's agent, which answers with a fixed argv under the request's lease; a bad key
never stops the agent; an unknown unit is refused; a client that goes away leaves nothing
behind and stops what ran for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

import pytest

from unitctl import channel
from unitctl.agent.fake_commands import FakeCommands, Script
from unitctl.agent.responder import Responder
from unitctl.channel import Reason, ReplyKind, Request, Verb
from unitctl.client.agents import AgentChannel, Answer
from unitctl.errors import NotFoundError, RegistryError, RemoteCommandError
from unitctl.model import DesiredState, ScheduleEntry
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry

M1, M2 = "1" * 32, "2" * 32


@dataclass
class Output:
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)

    def __call__(self, kind: ReplyKind, data: bytes) -> None:
        (self.err if kind is ReplyKind.ERR else self.out).extend(data)


@dataclass
class Agents:
    registry: Registry
    commands: dict[str, FakeCommands]
    schedule: dict[str, dict[str, ScheduleEntry]]
    present: dict[str, set[str]]

    async def keys(self, what: str) -> list[str]:
        rng = await self.registry.kv.get_prefix(f"{self.registry.keys.prefix}{what}/")
        return [kv.key for kv in rng.kvs]


def _responder(reg: Registry, machine: str, commands: FakeCommands,
               schedule: Callable[[], Mapping[str, ScheduleEntry]],
               present: Callable[[], Collection[str]]) -> Responder:
    return Responder(reg, machine, commands, schedule, present)


def with_agents(test: Callable[[Agents], Awaitable[None]]) -> Callable[[], None]:
    """Run ``test`` on a fresh loop with the responders of M1 and M2 running."""
    def run() -> None:
        asyncio.run(_run(test))
    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


async def _run(test: Callable[[Agents], Awaitable[None]]) -> None:
    async with _agents() as env:
        await asyncio.wait_for(test(env), 20)


@contextlib.asynccontextmanager
async def _agents() -> AsyncIterator[Agents]:
    reg = Registry(MemoryKV())
    env = Agents(reg, {M1: FakeCommands(), M2: FakeCommands()},
                 {M1: {"web.service": ScheduleEntry("web.service", "h", DesiredState.LAUNCHED),
                       "idle.service": ScheduleEntry("idle.service", "h", DesiredState.LOADED)},
                  M2: {}},
                 {M1: {"web.service", "idle.service"}, M2: {"other.service"}})
    tasks = [asyncio.create_task(_responder(
        reg, m, env.commands[m], lambda m=m: env.schedule[m],  # type: ignore[misc]
        lambda m=m: env.present[m]).run()) for m in (M1, M2)]  # type: ignore[misc]
    await asyncio.sleep(0)
    yield env
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@with_agents
async def test_status_runs_the_fixed_argv_on_that_machine_only(agents: Agents) -> None:
    agents.commands[M1].scripts["systemctl status"] = Script([b"\xe2\x97\x8f web.service\n"],
                                                             [b"warn\n"], 3)
    out = Output()
    async with AgentChannel(agents.registry, 2) as ch:
        answer = await ch.ask(M1, Verb.STATUS, "web.service", out)
    assert answer == Answer(M1, 3)
    assert (bytes(out.out), bytes(out.err)) == (b"\xe2\x97\x8f web.service\n", b"warn\n")
    assert agents.commands[M1].calls == [
        ["systemctl", "status", "-l", "--no-pager", "--", "web.service"]]
    assert agents.commands[M2].calls == []  # one request wakes one agent
    assert await agents.keys("requests") == [] and await agents.keys("replies") == []


@with_agents
async def test_big_output_comes_in_bounded_chunks_in_order(agents: Agents) -> None:
    blob = bytes(range(256)) * 1024  # 256 KiB
    agents.commands[M1].scripts["journalctl"] = Script([blob])
    out = Output()
    seen: list[int] = []

    def sink(kind: ReplyKind, data: bytes) -> None:
        seen.append(len(data))
        out(kind, data)
    async with AgentChannel(agents.registry, 2) as ch:
        answer = await ch.ask(M1, Verb.JOURNAL, "web.service", sink, lines=50)
    assert answer.code == 0 and bytes(out.out) == blob
    assert agents.commands[M1].calls == [["journalctl", "--no-pager", "-n", "50", "--output",
                                          "short", "--unit=web.service"]]


@with_agents
async def test_unknown_unit_invalid_name_and_restart_of_a_stopped_unit_are_refused(
        agents: Agents) -> None:
    async with AgentChannel(agents.registry, 2) as ch:
        answer = await ch.ask(M2, Verb.STATUS, "web.service", Output())
        assert answer.reason is Reason.NOT_FOUND
        with pytest.raises(NotFoundError, match=f"not one of the units of machine {M2}"):
            answer.check()
        bad = await ch.ask(M1, Verb.STATUS, "../etc/passwd", Output())
        assert bad.reason is Reason.INVALID and "invalid unit name" in bad.error
        with pytest.raises(RemoteCommandError, match=f"machine {M1}: invalid unit name"):
            bad.check()
        mode = await ch.ask(M1, Verb.JOURNAL, "web.service", Output(), output="--all")
        assert mode.reason is Reason.INVALID and "output mode" in mode.error
        idle = await ch.ask(M1, Verb.RESTART, "idle.service", Output())
        assert idle.reason is Reason.INVALID and "not launched" in idle.error
        ok = await ch.ask(M1, Verb.RESTART, "web.service", Output())
        assert ok == Answer(M1, 0)
    assert agents.commands[M2].calls == []
    assert agents.commands[M1].calls == [["systemctl", "restart", "--", "web.service"]]


@with_agents
async def test_a_malformed_request_is_skipped_and_the_agent_answers_on(agents: Agents) -> None:
    reg = agents.registry
    lease = await reg.leases.grant(30)
    for i, value in enumerate([b"{not json", b'{"verb": "rm -rf", "unit": "x.service"}',
                               b'{"verb": "status", "unit": "web.service"}',  # no lease
                               b'{"verb": "status", "unit": 7, "lease": 1}']):
        await reg.kv.put(reg.keys.request(M1, f"bad{i}"), value, lease)
    await reg.kv.put(f"{reg.keys.prefix}requests/{M1}", b"x")  # not even a request key
    await reg.kv.put(reg.keys.request(M1, "NOT-HEX"), channel.encode_request(  # not an id
        Request(Verb.STATUS, "web.service", lease)), lease)
    async with AgentChannel(reg, 2) as ch:
        assert (await ch.ask(M1, Verb.STATUS, "web.service", Output())).code == 0
    assert len(agents.commands[M1].calls) == 1


@with_agents
async def test_follow_streams_until_the_client_goes_away(agents: Agents) -> None:
    fake = agents.commands[M1]
    fake.scripts["journalctl"] = Script([b"old line\n"])
    out = Output()
    got = asyncio.Event()

    def sink(kind: ReplyKind, data: bytes) -> None:
        out(kind, data)
        if b"new line" in out.out:
            got.set()

    async def follow() -> None:
        async with AgentChannel(agents.registry, 2) as ch:
            await ch.ask(M1, Verb.JOURNAL, "web.service", sink, follow=True)
    client = asyncio.create_task(follow())
    while fake.running == 0:
        await asyncio.sleep(0.01)
    fake.emit(b"new line\n")
    await asyncio.wait_for(got.wait(), 5)
    assert bytes(out.out) == b"old line\nnew line\n"
    (argv,) = fake.calls
    assert argv[-2:] == ["-f", "--unit=web.service"] and argv[0] == "systemd-run"
    unit = argv[5].removeprefix("--unit=")
    assert unit.startswith("unitctl-follow-")
    client.cancel()  # ^C: the client revokes its lease on the way out
    await asyncio.gather(client, return_exceptions=True)
    while fake.running:
        await asyncio.sleep(0.01)
    assert fake.cancelled == 1
    assert fake.calls[1:] == [["systemctl", "stop", "--no-block", "--", unit]]
    assert await agents.keys("requests") == [] and await agents.keys("replies") == []


@with_agents
async def test_a_client_that_dies_leaves_nothing_after_its_lease(agents: Agents) -> None:
    """The request lives under the client's lease; when it expires (the client died) the
    request and its replies go, and the agent stops the command it ran for it."""
    reg = agents.registry
    fake = agents.commands[M1]
    lease = await reg.leases.grant(channel.REQUEST_TTL)
    await reg.requests.send(M1, "deadbeef00",
                            Request(Verb.JOURNAL, "web.service", lease, follow=True))
    while fake.running == 0:
        await asyncio.sleep(0.01)
    key = reg.keys.request(M1, "deadbeef00")
    stored = await reg.kv.get(key)
    assert stored is not None and stored.lease == lease
    assert (await reg.kv.get(reg.keys.reply("deadbeef00", 0))) is not None  # the agent's ack
    assert isinstance(reg.kv, MemoryKV)
    reg.kv.expire_lease(lease)
    while fake.running:
        await asyncio.sleep(0.01)
    assert fake.cancelled == 1
    assert await agents.keys("requests") == [] and await agents.keys("replies") == []


@with_agents
async def test_a_request_is_answered_once(agents: Agents) -> None:
    """The ack is a create-if-absent claim: a second agent process (a re-exec) does not
    run the command again."""
    reg = agents.registry
    async with AgentChannel(reg, 2) as ch:
        assert (await ch.ask(M1, Verb.RESTART, "web.service", Output())).code == 0
        assert await reg.requests.claim("taken", ch.lease)
        assert not await reg.requests.claim("taken", ch.lease)
    assert len(agents.commands[M1].calls) == 1


def test_no_agent_is_a_clear_error_naming_the_machine() -> None:
    asyncio.run(_no_agent())


async def _no_agent() -> None:
    reg = Registry(MemoryKV())
    async with AgentChannel(reg, 0.2) as ch:
        with pytest.raises(RemoteCommandError, match=f"machine {M1}: its agent did not answer "
                                                     "within 0.2s"):
            await ch.ask(M1, Verb.STATUS, "web.service", Output())
    assert (await reg.kv.get_prefix(reg.keys.prefix)).kvs == ()


def test_codec_round_trip_and_errors() -> None:
    req = Request(Verb.JOURNAL, "a.service", 7, 5, True, "json")
    assert channel.decode_request("k", channel.encode_request(req)) == req
    reply = channel.Reply(ReplyKind.EXIT, b"\x00\xff", 3, Reason.TIMEOUT, "late")
    assert channel.decode_reply("k", channel.encode_reply(reply)) == reply
    for bad in (b"[]", b'{"kind": "out", "data": "!!"}', b'{"kind": "nope"}',
                b'{"kind": "exit", "code": true}'):
        with pytest.raises(RegistryError, match="corrupt value at k"):
            channel.decode_reply("k", bad)
    assert all(len(c) <= channel.CHUNK_BYTES for c in channel.chunks(b"x" * 200_000))
