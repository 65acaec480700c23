"""The state file of a running cluster: what ``attach`` needs to drive or remove it.

A JSON object (``"version": 1``) written atomically after every step that
made something, so that ``down`` from another process (``python -m
unitctl_testing down``, ``bin/demo down``) removes exactly what was made,
also after a crash half-way through ``up``. The machines' entries are
:meth:`Machine.to_state`; etcd is described here (members, ports, pids).
"""

from __future__ import annotations

import json
from typing import Any

from unitctl.atomicfile import atomic_write
from unitctl_testing.etcd import EtcdCluster, EtcdMember

DEFAULT_STATE_FILE = "/run/unitctl-cluster/state.json"
STATE_VERSION = 1


def write_json(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as indented JSON (its directory is made)."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n",
                 durable=False, make_dirs=True)


def read_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def etcd_to_state(etcd: EtcdCluster | None) -> dict[str, Any] | None:
    if etcd is None:
        return None
    return {"base_dir": etcd.base_dir, "members": [
        {"name": m.name, "client_port": m.client_port, "peer_port": m.peer_port,
         "data_dir": m.data_dir, "log_path": m.log_path,
         "pid": m.proc.pid if m.proc else 0} for m in etcd.members]}


def etcd_from_state(st: dict[str, Any], bridge_ip: str) -> EtcdCluster:
    """The EtcdCluster of a state file's ``etcd`` entry (its members, without processes)."""
    etcd = EtcdCluster(size=0, extra_client_hosts=[bridge_ip], base_dir=st["base_dir"])
    for mm in st["members"]:
        etcd.members.append(EtcdMember(
            name=mm["name"], client_port=mm["client_port"], peer_port=mm["peer_port"],
            data_dir=mm["data_dir"], extra_client_hosts=[bridge_ip],
            log_path=mm["log_path"]))
    return etcd
