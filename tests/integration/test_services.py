"""Service records and the agents' DNS, over the real Agent and Engine (fake systemd),
on the in-memory store and on a real etcd: published while active, withdrawn at
once on stop, gone with a killed machine's lease, answered over UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
import struct

import dns.message
import dns.rcode
import dns.rdatatype

from tests.conftest import KVFactory
from tests.integration.test_engine_sim import run_sim, submit
from unitctl.agent.dns import serving
from unitctl.agent.dnslabels import parse_domain_text
from unitctl.model import DesiredState
from unitctl.registry.registry import Registry
from unitctl_testing.inprocess import InProcessCluster, eventually

DB = "[Service]\nExecStart=/bin/sleep infinity\n[X-Fleet]\nPorts=@PORT\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _udp_query(port: int, name: str, rdtype: str) -> dns.message.Message:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not answer.done():
                answer.set_result(data)
    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(dns.message.make_query(name, rdtype).to_wire())
        return dns.message.from_wire(await asyncio.wait_for(answer, 5))
    finally:
        transport.close()


async def _tcp_query(port: int, name: str, rdtype: str) -> dns.message.Message:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    wire = dns.message.make_query(name, rdtype).to_wire()
    writer.write(struct.pack("!H", len(wire)) + wire)
    size = struct.unpack("!H", await reader.readexactly(2))[0]
    reply = dns.message.from_wire(await reader.readexactly(size))
    writer.close()
    return reply


def _addresses(msg: dns.message.Message) -> set[str]:
    return {r.to_text() for rrset in msg.answer for r in rrset
            if rrset.rdtype == dns.rdatatype.A}


def test_record_published_while_active_withdrawn_on_stop_and_machine_loss(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "testdb.service", DB)
        await eventually(lambda: reg.services.lookup("testdb"))
        [rec] = await reg.services.lookup("testdb.service")
        entry = sim.machines[rec.machine].agent.schedule["testdb.service"]
        assert rec.address == sim.machines[rec.machine].machine.public_ip
        assert dict(rec.ports) == dict(entry.ports) and "PORT" in rec.ports
        await reg.set_desired("testdb.service", DesiredState.LOADED)
        await eventually(lambda: _gone(reg, "testdb"))
        await reg.set_desired("testdb.service", DesiredState.LAUNCHED)
        await eventually(lambda: reg.services.lookup("testdb"))
        [rec] = await reg.services.lookup("testdb")
        await sim.kill(rec.machine)  # the lease runs out: the record goes with it
        await eventually(lambda: _moved(reg, "testdb", rec.machine), timeout=20)
    run_sim(make_kv, key_prefix, 2, body)


async def _gone(reg: Registry, name: str) -> bool:
    return not await reg.services.lookup(name)


async def _moved(reg: Registry, name: str, old: str) -> bool:
    found = await reg.services.lookup(name)
    return bool(found) and all(r.machine != old for r in found)


def test_dns_answers_a_and_srv_from_the_watch_udp_and_tcp(make_kv: KVFactory,
                                                          key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        port = _free_port()
        async with serving(reg, parse_domain_text("unitctl"), ("127.0.0.1", port)) as zone:
            await submit(reg, "testdb.service", DB)
            await submit(reg, "web@1.service")
            await eventually(lambda: len(zone.mirror.kvs) == 2)
            [rec] = await reg.services.lookup("testdb")
            await eventually(lambda: zone.zone.names)
            a = await _udp_query(port, "testdb.unitctl.", "A")
            assert _addresses(a) == {rec.address}
            srv = await _tcp_query(port, "_port._tcp.testdb.unitctl.", "SRV")
            assert [r.port for rrset in srv.answer for r in rrset] == [rec.ports["PORT"]]
            assert _addresses(await _udp_query(port, "1.web.unitctl.", "A"))
            assert (await _udp_query(port, "nope.unitctl.", "A")).rcode() == dns.rcode.NXDOMAIN
            assert (await _udp_query(port, "example.com.", "A")).rcode() == dns.rcode.REFUSED
            await reg.set_desired("testdb.service", DesiredState.LOADED)
            await eventually(lambda: len(zone.mirror.kvs) == 1)
            await eventually(lambda: _nx(port, "testdb.unitctl."))
    run_sim(make_kv, key_prefix, 2, body)


async def _nx(port: int, name: str) -> bool:
    return (await _udp_query(port, name, "A")).rcode() == dns.rcode.NXDOMAIN
