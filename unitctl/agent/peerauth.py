"""Peer authentication: the cluster secret and the MAC of a peer's answer.

The peer protocol (:mod:`unitctl.agent.fence`) answers "how long since you
last reached etcd?". An answer counts only if it carries
``HMAC-SHA256(secret, "unitctl-peer-1\\n" nonce "\\n" id "\\n" repr(etcd_age))``
for the nonce the asker just sent, with the cluster secret:

* the secret is 32 random bytes (hex) kept in etcd at ``<prefix>peer-secret``:
  the first agent creates it with a create-if-absent transaction
  (:func:`load_secret`), and every agent reads it at each registration. Who
  can read the prefix can answer for a peer (that is anyone who can already
  rewrite the schedule, i.e. root on every machine);
* a fresh nonce per question (16 random bytes, hex), so an answer cannot be
  replayed;
* an answer without a valid MAC, or before this agent knows the secret,
  counts as no answer (the fence treats that peer as silent).

Pure apart from :func:`load_secret` (one transaction and one read).
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: Tells this MAC from any other use of the secret.
DOMAIN = "unitctl-peer-1"
_NONCE_RE = re.compile(r"^[0-9a-f]{16,128}$")


def valid_nonce(nonce: object) -> bool:
    """True for a hex nonce of 16 to 128 digits (what a server accepts)."""
    return isinstance(nonce, str) and bool(_NONCE_RE.match(nonce))


def mac(secret: bytes, nonce: str, machine_id: str, etcd_age: float) -> str:
    """The MAC of one answer (hex)."""
    text = f"{DOMAIN}\n{nonce}\n{machine_id}\n{float(etcd_age)!r}"
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def verify(secret: bytes, nonce: str, machine_id: str, etcd_age: float, tag: str) -> bool:
    """True when ``tag`` is the MAC of this answer (constant-time compare)."""
    if not secret:
        return False
    return hmac.compare_digest(mac(secret, nonce, machine_id, etcd_age), tag)
