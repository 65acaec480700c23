"""The lease port: what an agent needs of etcd's leases, and its adapter over the KV.

A lease is etcd's liveness token: keys written under it disappear when it is
revoked or when it is not refreshed within its TTL. The agent's session holds
one per machine (fleet's ``pkg/lease``); nothing outside the registry package
touches the KV's lease calls.
"""

from __future__ import annotations

from typing import Protocol

from unitctl.registry.kv import KV


class Leases(Protocol):
    """Grant, refresh and revoke leases. Every method may raise RegistryError."""

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id (never 0)."""
        ...

    async def refresh(self, lease: int) -> int:
        """Keep ``lease`` alive; returns its remaining TTL, ``<= 0`` if it has expired.

        An expired lease is not an error: the caller registers again.
        """
        ...

    async def revoke(self, lease: int) -> None:
        """End ``lease`` now: every key written under it is deleted."""
        ...


class KVLeases:
    """:class:`Leases` over the KV port (etcd's lease API, or the in-memory fake's)."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv

    async def grant(self, ttl: int) -> int:
        return await self._kv.grant_lease(ttl)

    async def refresh(self, lease: int) -> int:
        return await self._kv.refresh_lease(lease)

    async def revoke(self, lease: int) -> None:
        await self._kv.revoke_lease(lease)
