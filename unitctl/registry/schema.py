"""The store as a whole: its schema version, and its current revision.

``version`` is written once, by the first unitctl to find the store empty; a
unitctl refuses a store written by a newer schema than the one it understands.
"""

from __future__ import annotations

from unitctl.errors import RegistryError, RegistryUnavailable
from unitctl.registry.keys import SCHEMA_VERSION, Keys
from unitctl.registry.kv import KV, Put, mod_is


async def ensure_schema(kv: KV, keys: Keys) -> int:
    """Write the schema version if absent; refuse a store written by a newer schema."""
    k = keys.version
    got = await kv.get(k)
    if got is None:
        try:
            await kv.txn([mod_is(k, 0)], [Put(k, str(SCHEMA_VERSION).encode())])
        except RegistryUnavailable:
            raise
        except RegistryError:
            return SCHEMA_VERSION  # a read-only user on an empty registry
        got = await kv.get(k)
    try:
        version = int(got.value) if got else 0
    except ValueError as exc:
        raise RegistryError(f"corrupt schema version at {k}") from exc
    if version > SCHEMA_VERSION:
        raise RegistryError(
            f"the registry has schema {version}; this unitctl understands {SCHEMA_VERSION}")
    return version


async def revision(kv: KV, keys: Keys) -> int:
    """The store's current revision, read under our own prefix (RBAC-friendly)."""
    return (await kv.get_prefix(keys.version)).revision
