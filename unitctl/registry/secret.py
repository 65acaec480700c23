"""The cluster's peer secret: one random value under ``<prefix>peer-secret``.

Created once by the first agent (a create-if-absent transaction, so two agents
racing agree on one value) and read at every registration; the agents'
peer protocol MACs its answers with it (:mod:`unitctl.agent.peerauth`). Only
etcd users who can read the prefix can read it.
"""

from __future__ import annotations

import os

from unitctl.errors import RegistryError
from unitctl.registry.kv import KV, Compare, CompareField, Put

SECRET_NAME = "peer-secret"


async def load_secret(kv: KV, prefix: str) -> bytes:
    """The cluster secret, created first if absent (create-if-absent transaction)."""
    key = f"{prefix}{SECRET_NAME}"
    fresh = os.urandom(32).hex().encode()  # secrets.token_hex(32), without its import
    await kv.txn([Compare(key, CompareField.CREATE, "==", 0)], [Put(key, fresh)])
    stored = await kv.get(key)
    if stored is None or not stored.value:
        raise RegistryError(f"{key}: the peer secret vanished right after it was written")
    return stored.value
