"""API bearer tokens: created, looked up by hash, listed and revoked (``tokens/<sha256>``).

A token is ``uct_`` followed by 32 random bytes (URL-safe base64) from
:mod:`secrets`. Only its SHA-256 is stored, as the key itself, so a lookup is
one read and a copy of etcd does not give anybody a usable token. A plain
hash is enough (no bcrypt or scrypt): those slow functions protect guessable,
low-entropy passwords against offline guessing; a 256-bit random token cannot
be guessed, however fast the hash. The value is JSON
``{"id", "role", "name", "created"}``; ``id`` is the first 12 hex digits of
the hash, what ``token list`` shows and ``token revoke`` takes.

Roles, from least to most: ``read`` (reads only), ``operate`` (also load,
start, stop, restart, unload), ``admin`` (everything, tokens excepted: those
are made with etcd credentials, by ``unitctl token``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from unitctl.errors import ConflictError, NotFoundError, UsageError
from unitctl.registry.keys import Keys
from unitctl.registry.kv import KV, KeyValue, Put, mod_is

#: Roles in increasing power.
ROLES = ("read", "operate", "admin")
TOKEN_PREFIX = "uct_"
ID_LENGTH = 12


def digest(token: str) -> str:
    """The SHA-256 (hex) of a token: its key in the store."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise UsageError."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what needs ``needed`` (both in :data:`ROLES`)."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class Token:
    """What is stored about one token (never the token itself)."""

    id: str
    role: str
    name: str
    created: float


def _decode(kv: KeyValue) -> Token | None:
    try:
        obj = json.loads(kv.value)
        token = Token(str(obj["id"]), str(obj["role"]), str(obj.get("name", "")),
                      float(obj.get("created", 0)))
    except (ValueError, KeyError, TypeError):
        return None
    return token if token.role in ROLES else None


class TokenStore:
    """The tokens under ``tokens/``."""

    def __init__(self, kv: KV, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    async def create(self, role: str, name: str, now: float) -> tuple[str, Token]:
        """Make and store a new token; return it (shown once) and its record."""
        check_role(role)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key_digest = digest(secret)
        token = Token(key_digest[:ID_LENGTH], role, name, now)
        value = json.dumps({"id": token.id, "role": role, "name": name, "created": now},
                           sort_keys=True).encode()
        key = self.keys.token(key_digest)
        if not await self.kv.txn([mod_is(key, 0)], [Put(key, value)]):
            raise ConflictError("a token with the same hash exists (retry)")
        return secret, token

    async def lookup(self, secret: str) -> Token | None:
        """The record of a presented token, or None (unknown, revoked or malformed)."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        kv = await self.kv.get(self.keys.token(digest(secret)))
        return None if kv is None else _decode(kv)

    async def list(self) -> list[Token]:
        """Every stored token, oldest first (malformed records are left out)."""
        rng = await self.kv.get_prefix(self.keys.tokens())
        found = [t for t in (_decode(kv) for kv in rng.kvs) if t is not None]
        return sorted(found, key=lambda t: (t.created, t.id))

    async def revoke(self, token_id: str) -> Token:
        """Delete the token whose id starts with ``token_id`` (one must match).

        Raises:
            NotFoundError: no token matches. UsageError: several do.
        """
        if not token_id:
            raise UsageError("no token id given")
        rng = await self.kv.get_prefix(self.keys.tokens())
        matches = [(kv.key, t) for kv in rng.kvs
                   if (t := _decode(kv)) is not None and t.id.startswith(token_id.lower())]
        if not matches:
            raise NotFoundError(f"no token with id {token_id}")
        if len(matches) > 1:
            raise UsageError(f"token id {token_id} is ambiguous: it matches "
                             + ", ".join(t.id for _, t in matches))
        key, token = matches[0]
        await self.kv.delete(key)
        return token
