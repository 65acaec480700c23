"""The agent's memory: it imports no module it does not use (issue 12, footprint).

grpcio and aetcd (EtcdKV, ~13 MiB resident) are never imported by the agent: it
speaks etcd's JSON gateway. ``/metrics`` is served by unitctl's own metrics and
text writer (:mod:`unitctl.metrics.instruments`, :mod:`unitctl.metrics.textformat`),
never by prometheus_client, whose package import loads an HTTP server, urllib and
email; dnspython is imported by the first DNS query (the sockets are bound at
start); jinja2 by the first config template rendered; the entry point parses its
flags without click; tomllib is the CLI's. Checked in a fresh interpreter each,
on the agent's own composition: an idle agent (registered, engine leading, no
units) with ``/metrics`` and DNS on, then once a DNS query and a scrape arrived.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Composes the agent's registry as the daemon does (over MemoryKV), with the
#: engine factory, then prints the top-level packages loaded.
PROBE = """
import asyncio, json, sys
from unitctl import daemon
from unitctl.agent.options import AgentOptions
from unitctl.config import load_config
from unitctl.registry.memory import MemoryKV

async def memory(_cfg):
    return MemoryKV()

cfg = load_config("/dev/null", env={}, flags=json.loads(sys.argv[1]))
async def go():
    reg = await daemon.connect(cfg, memory)
    daemon.engine_factory(reg, "a" * 32, AgentOptions(ttl=10, peer_port=0),
                          metered=cfg.metrics_address is not None)()
asyncio.run(go())
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""

#: The idle agent with /metrics and DNS on, over MemoryKV and the fake systemd:
#: the modules loaded once it is ready, then after one DNS query and one scrape.
IDLE = """
import asyncio, json, socket, sys
import unitctl.systemd.manager  # the real agent's D-Bus adapter (the daemon imports it)
from unitctl import daemon
from unitctl.agent.agent import Agent
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.options import AgentOptions
from unitctl.config import load_config
from unitctl.model import Machine
from unitctl.registry.memory import MemoryKV

def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

DNS, METRICS = port(), port()
cfg = load_config("/dev/null", env={}, flags={
    "etcd_servers": "http://127.0.0.1:2379", "metrics_address": f"127.0.0.1:{METRICS}",
    "dns_address": f"127.0.0.1:{DNS}"})
QUERY = bytes.fromhex("abcd01000001000000000000") + b"\\x03web\\x07unitctl\\x00\\x00\\x01\\x00\\x01"

async def memory(_cfg):
    return MemoryKV()

async def scrape():
    reader, writer = await asyncio.open_connection("127.0.0.1", METRICS)
    writer.write(b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    data = await reader.read()
    writer.close()
    return data

async def ask_dns():
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", DNS))
    await loop.sock_sendall(sock, QUERY)
    reply = await asyncio.wait_for(loop.sock_recv(sock, 512), 10)
    sock.close()
    return reply

async def go():
    reg = await daemon.connect(cfg, memory)
    opts = AgentOptions(ttl=10, peer_port=0)
    agent = Agent(reg, FakeUnitManager(keep_history=False), Machine("a" * 32, "127.0.0.1"),
                  opts, engine=daemon.engine_factory(reg, "a" * 32, opts))
    stop = asyncio.Event()
    async with daemon.metrics(cfg, agent), daemon.service_dns(cfg, reg):
        run = asyncio.create_task(agent.run(stop))
        await asyncio.wait_for(agent.ready.wait(), 30)
        while agent.engine is None or not agent.engine.leading:
            await asyncio.sleep(0.05)
        idle = sorted(sys.modules)
        page = await scrape()
        reply = await ask_dns()
        used = sorted(sys.modules)
        stop.set()
        await run
    await reg.close()
    print(json.dumps({"idle": idle, "used": used, "page": page.decode(),
                      "rcode": reply[3] & 15, "id": reply[:2].hex()}))

asyncio.run(asyncio.wait_for(go(), 60))
"""

#: Not loaded by an idle agent (a module, or a package and everything in it).
NOT_IDLE = ["grpc", "aetcd", "google", "prometheus_client", "dns", "jinja2", "click",
            "tomllib", "http.server", "email", "urllib.request", "wsgiref",
            "unitctl.agent.dnszone", "unitctl.templating.render",
            # atomic_write, the peer nonces and the entry point's width use os directly
            "tempfile", "shutil", "secrets", "random", "bz2", "lzma",
            # read by the first unit's needs / the first misspelled option or flag
            "decimal", "_decimal", "difflib",
            # the template runner: only an agent with template_dirs (unset here) loads it
            "unitctl.agent.templates", "unitctl.agent.template_host",
            "grp", "pwd"]


def _loaded(**flags: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(flags)], cwd=str(REPO),
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return set(json.loads(out))


def _hits(modules: list[str], names: list[str]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_the_agent_never_imports_grpc_or_aetcd() -> None:
    loaded = _loaded(etcd_servers="http://127.0.0.1:2379")
    assert not loaded & {"grpc", "aetcd", "google"}
    assert "prometheus_client" not in loaded  # /metrics is unitctl's own (on by default)
    assert "jinja2" not in loaded  # imported by the first config template rendered


def test_metrics_and_dns_off_import_neither_library() -> None:
    loaded = _loaded(etcd_servers="http://127.0.0.1:2379", metrics_address="off",
                     dns_address="off")
    assert not loaded & {"grpc", "aetcd", "google", "prometheus_client", "dns"}


def test_the_idle_agent_loads_the_lean_set_and_dnspython_at_the_first_query() -> None:
    out = subprocess.run([sys.executable, "-c", IDLE], cwd=str(REPO), capture_output=True,
                         text=True, check=True, timeout=90).stdout
    got = json.loads(out)
    assert _hits(got["idle"], NOT_IDLE) == []
    assert "unitctl.metrics.exposition" in got["idle"] and "unitctl.agent.dns" in got["idle"]
    assert got["page"].startswith("HTTP/1.1 200 OK")
    assert "# TYPE unitctl_engine_leader gauge\nunitctl_engine_leader 1.0" in got["page"]
    assert got["id"] == "abcd" and got["rcode"] == 3  # NXDOMAIN: web.unitctl. has no unit
    assert "dns.message" in got["used"] and "unitctl.agent.dnszone" in got["used"]
    assert _hits(got["used"], ["prometheus_client", "click", "jinja2", "grpc"]) == []


def test_the_daemon_gives_a_template_host_only_with_template_dirs() -> None:
    from unitctl import daemon
    from unitctl.agent.template_host import LocalHost
    from unitctl.config import load_config

    servers = {"etcd_servers": "http://127.0.0.1:2379"}
    assert daemon.template_host(load_config("/dev/null", env={}, flags=servers)) is None
    with_dirs = load_config("/dev/null", env={}, flags={**servers, "template_dirs": "/etc/app"})
    assert isinstance(daemon.template_host(with_dirs), LocalHost)
