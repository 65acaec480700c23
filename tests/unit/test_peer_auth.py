"""The peer protocol is authenticated (issue 10, peer part of defect 9).

The MAC itself, then the real TCP server and client on loopback: an answer
from a process that does not know the cluster secret (a squatter on
``peer_port`` while the agent is down) counts as silent, so the fence never
takes its word. A taken port is a loud error, retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from unitctl.agent.fence import PeerServer, ask_peer, ask_peers, new_nonce
from unitctl.agent.fencing import PeerReport, Verdict, decide
from unitctl.agent.peerauth import mac, verify
from unitctl.registry.memory import MemoryKV
from unitctl.registry.secret import load_secret

SECRET = b"s" * 64
ME = "a" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mac_binds_secret_nonce_id_and_age() -> None:
    nonce = new_nonce()
    tag = mac(SECRET, nonce, ME, 0.25)
    assert verify(SECRET, nonce, ME, 0.25, tag)
    assert not verify(b"other", nonce, ME, 0.25, tag)
    assert not verify(SECRET, new_nonce(), ME, 0.25, tag)  # no replay
    assert not verify(SECRET, nonce, "b" * 32, 0.25, tag)
    assert not verify(SECRET, nonce, ME, 9.0, tag)
    assert not verify(b"", nonce, ME, 0.25, mac(b"", nonce, ME, 0.25))  # no secret: no trust


def test_secret_is_created_once_and_shared() -> None:
    async def go() -> tuple[bytes, bytes]:
        kv = MemoryKV()
        return await load_secret(kv, "/p/"), await load_secret(kv, "/p/")
    first, second = asyncio.run(go())
    assert first == second and len(first) == 64


async def _serve_and_ask(server_secret: bytes, asker_secret: bytes) -> PeerReport | None:
    port = free_port()
    server = PeerServer(ME, lambda: 0.5, lambda: server_secret)
    await server.start("127.0.0.1", port)
    try:
        return await ask_peer("127.0.0.1", port, 1.0, asker_secret)
    finally:
        await server.close()


def test_real_server_answers_with_a_valid_mac() -> None:
    assert asyncio.run(_serve_and_ask(SECRET, SECRET)) == PeerReport(ME, 0.5)


def test_answer_under_another_secret_is_silent() -> None:
    assert asyncio.run(_serve_and_ask(b"t" * 64, SECRET)) is None


async def _squatter(port: int, answer: dict[str, object]) -> asyncio.Server:
    """A local process on peer_port that answers for the peer, without the secret."""
    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(json.dumps(answer).encode() + b"\n")
        await w.drain()
        w.close()
    return await asyncio.start_server(handle, "127.0.0.1", port)


@pytest.mark.parametrize("answer", [
    {"id": ME, "etcd_age": 99.0},  # the old unauthenticated protocol
    {"id": ME, "etcd_age": 99.0, "mac": "00" * 32},
])
def test_a_fake_peer_without_the_secret_is_ignored(answer: dict[str, object]) -> None:
    """The squatter claims "I am cut off from etcd too", which would make this
    machine hold (keep its units) while the real peer may be moving them."""
    async def go() -> list[PeerReport]:
        port = free_port()
        fake = await _squatter(port, answer)
        try:
            return await ask_peers([("127.0.0.1", port)], 1.0, SECRET)
        finally:
            fake.close()
            await fake.wait_closed()
    reports = asyncio.run(go())
    assert reports == []
    assert decide(7.0, 10, 2.0, 1, reports)[0] is Verdict.FENCE


def test_taken_peer_port_is_a_loud_error_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> list[str]:
        port = free_port()
        blocker = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", port)
        notes: list[str] = []
        server = PeerServer(ME, lambda: 0.0, lambda: SECRET)
        task = asyncio.create_task(server.keep_bound("127.0.0.1", port, notes.append,
                                                     retry=0.05))
        await asyncio.sleep(0.2)
        blocker.close()
        await blocker.wait_closed()
        await asyncio.wait_for(task, 5)  # bound once the port is free
        report = await ask_peer("127.0.0.1", port, 1.0, SECRET)
        await server.close()
        assert report == PeerReport(ME, 0.0)
        return notes
    with caplog.at_level(logging.ERROR, "unitctl.agent"):
        notes = asyncio.run(go())
    assert notes and notes[0].startswith("STATUS=peer_port")
    assert any("cannot bind peer_port" in r.message and r.levelno == logging.ERROR
               for r in caplog.records)


class _CountingPeer:
    """A peer server that counts the connections open at once."""

    def __init__(self, answer: bool) -> None:
        self.open = self.most = self.served = 0
        self.answer = answer

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            nonce = json.loads(await r.readline())["nonce"]
            await asyncio.sleep(0.01)
            if not self.answer:
                await asyncio.sleep(60)
            w.write(json.dumps({"id": ME, "etcd_age": 0.5,
                                "mac": mac(SECRET, nonce, ME, 0.5)}).encode() + b"\n")
            await w.drain()
            self.served += 1
        finally:
            self.open -= 1
            w.close()


def test_peers_are_asked_a_bounded_number_at_a_time() -> None:
    async def go() -> tuple[int, _CountingPeer]:
        peer = _CountingPeer(answer=True)
        server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reports = await ask_peers([("127.0.0.1", port)] * 200, 2.0, SECRET, limit=16)
        finally:
            server.close()
        return len(reports), peer
    answered, peer = asyncio.run(go())
    assert answered == 200 and peer.served == 200
    assert peer.most <= 16


def test_peers_not_heard_in_time_count_as_silent_and_the_verdict_is_fence() -> None:
    async def go() -> tuple[list[PeerReport], float]:
        peer = _CountingPeer(answer=False)
        server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            reports = await ask_peers([("127.0.0.1", port)] * 50, 0.2, SECRET, limit=8)
        finally:
            server.close()
        return reports, loop.time() - began
    reports, took = asyncio.run(go())
    assert reports == []
    assert took < 5  # bounded by 2 x timeout (0.4 s), not 50 x: a deadline, not a speed
    verdict, _ = decide(10.0, 10.0, 1.25, 50, reports)
    assert verdict is Verdict.FENCE
