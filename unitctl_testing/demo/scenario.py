"""The demo's cluster and units: three machines with metadata, the example units of
units/demo/, and the network defaults that keep it apart from the test suite's.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = "units/demo"  # relative to the repo: the commands we print stay short
DEFAULT_STATE = os.environ.get("UNITCTL_DEMO_STATE", "/run/unitctl-demo/state.json")
# Network/name defaults that differ from the test suite's cluster (br-unitctl,
# 10.231.77, no tag), so the demo and the cluster tests can run side by side.
DEFAULT_TAG = os.environ.get("UNITCTL_DEMO_TAG", "demo")
DEFAULT_BRIDGE = os.environ.get("UNITCTL_DEMO_BRIDGE", "br-unitctl-demo")
DEFAULT_SUBNET = os.environ.get("UNITCTL_DEMO_SUBNET", "10.231.99")
AGENT_TTL = "3s"
MACHINES = {  # name -> metadata
    "m1": {"region": "eu", "disk": "ssd"},
    "m2": {"region": "us", "disk": "hdd"},
    "m3": {"region": "eu", "disk": "hdd"},
}
# (unit, what it shows); started in this order, web@4 last and without blocking.
UNITS = [
    ("mongo.service", "the database (python3 stand-in, no docker)"),
    ("employees.service", "After= + X-ConditionMachineOf=mongo.service: on mongo's machine\n"
     "(X-ConditionMachineOf: the CoreOS guide's legacy name of MachineOf; unitctl warns)"),
    ("node-exporter.service", "Global=true: on every machine"),
    ("cache.service", "MachineMetadata=disk=ssd: only on m1"),
    ("web@1.service", "web@.service, Conflicts=web@*.service: one per machine"),
    ("web@2.service", ""),
    ("web@3.service", ""),
    ("testdb.service", "Ports=@PORT + Volume=: a host port the engine allocates, passed in\n"
     "as $PORT, and a local volume (it waits for its machine when that is lost)"),
]
UNSCHEDULABLE = "web@4.service"
# The service with a dynamic port and a local volume: its name resolves
# (`unitctl resolve testdb`, DNS testdb.unitctl on every machine).
SERVICE = "testdb"
SERVICE_VOLUME_FILE = "starts"  # one line per start, in its volume
DNS_DOMAIN = "unitctl"  # a 4th web@ on 3 machines: stays unscheduled
# The config template (docs/templates.md): the web@ upstream list on every machine.
TEMPLATE_FILE = "units/demo/upstreams.toml"
TEMPLATE_DIR = "/etc/unitctl-demo"
TEMPLATE_DEST = f"{TEMPLATE_DIR}/upstreams.conf"
AGENT_DROP_IN = "/etc/systemd/system/unitctl-agent.service.d/50-templates.conf"


def venv_dir() -> Path:
    return REPO / os.environ.get("UNITCTL_VENV", ".venv")


def venv_python() -> str:
    return str(venv_dir() / "bin" / "python")
