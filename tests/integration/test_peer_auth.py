"""Peer authentication with the real agents, their real TCP peer servers and a real
etcd (issue 10, peer part of defect 9).

Two agents on loopback addresses share the cluster secret that the first one
created in etcd; each authenticates the other's answer. When one agent is gone
and a local process squats its address and port, answering for it without
the secret, the other agent counts it as silent.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.fence import ask_peers
from unitctl.agent.fencing import PeerReport
from unitctl.model import Machine
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.registry import Registry
from unitctl.registry.secret import SECRET_NAME
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
A_IP, B_IP = "127.0.0.2", "127.0.0.3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _agent(etcd: EtcdCluster, prefix: str, ip: str, port: int,
                 mid: str) -> tuple[Agent, asyncio.Event, asyncio.Task[None], Registry]:
    kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=2))
    registry = Registry(kv, prefix)
    await registry.ensure_schema()
    opts = AgentOptions(ttl=4, peer_port=port, peer_host=ip, engine=False)
    agent = Agent(registry, FakeUnitManager(), Machine(mid, ip, {}, "test"), opts)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.ready.wait(), 10)
    return agent, stop, task, registry


async def _squat(ip: str, port: int, mid: str) -> asyncio.Server:
    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(json.dumps({"id": mid, "etcd_age": 99.0, "mac": "00" * 32}).encode() + b"\n")
        await w.drain()
        w.close()
    return await asyncio.start_server(handle, ip, port)


def test_peers_authenticate_and_a_squatter_is_silent(etcd: EtcdCluster, key_prefix: str) -> None:
    async def go() -> None:
        port = free_port()
        a, a_stop, a_task, a_reg = await _agent(etcd, key_prefix, A_IP, port, "a" * 32)
        b, _b_stop, b_task, b_reg = await _agent(etcd, key_prefix, B_IP, port, "b" * 32)
        stored = await a_reg.kv.get(f"{a_reg.keys.prefix}{SECRET_NAME}")
        assert stored is not None
        assert a.session.peer_secret == b.session.peer_secret == stored.value
        await eventually(lambda: a.peers.get("b" * 32) == B_IP)
        answers = await ask_peers([(B_IP, port)], 1.0, a.session.peer_secret)
        assert [r.machine_id for r in answers] == ["b" * 32]
        assert isinstance(answers[0], PeerReport) and answers[0].etcd_age < 4
        # b dies hard (its peer server goes with it); a local process takes its port
        b_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await b_task
        await b_reg.close()
        squatter = await _squat(B_IP, port, "b" * 32)
        try:
            assert await ask_peers([(B_IP, port)], 1.0, a.session.peer_secret) == []
        finally:
            squatter.close()
            await squatter.wait_closed()
            a_stop.set()
            await asyncio.wait_for(a_task, 10)
            await a_reg.close()
    asyncio.run(go())
