"""The agent's memory: it imports no module it does not use (issue 12, footprint).

grpcio and aetcd (EtcdKV, ~13 MiB resident) are never imported by the agent: it
speaks etcd's JSON gateway. prometheus_client and dnspython are imported only
when ``/metrics`` and DNS are on, jinja2 when a config template is first
rendered. Checked in a fresh interpreter each.
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


def _loaded(**flags: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(flags)], cwd=str(REPO),
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return set(json.loads(out))


def test_the_agent_never_imports_grpc_or_aetcd() -> None:
    loaded = _loaded(etcd_servers="http://127.0.0.1:2379")
    assert not loaded & {"grpc", "aetcd", "google"}
    assert "prometheus_client" in loaded  # /metrics is on by default
    assert "jinja2" not in loaded  # imported by the first config template rendered


def test_metrics_and_dns_off_import_neither_library() -> None:
    loaded = _loaded(etcd_servers="http://127.0.0.1:2379", metrics_address="off",
                     dns_address="off")
    assert not loaded & {"grpc", "aetcd", "google", "prometheus_client", "dns"}
