"""Who is asking, and may they: bearer tokens, client certificates and loopback.

A request is authenticated, in this order, by

1. ``Authorization: Bearer <token>``: the token's role (:mod:`unitctl.registry.tokens`);
   an unknown or revoked token is refused (401) even where 2. or 3. would pass;
2. a client TLS certificate that the server's ``--client-ca`` verified, mapped to a
   role by ``--cert-role``: ``CN=<common name>=<role>`` or ``sha256:<hex>=<role>``
   (the certificate's DER fingerprint);
3. the operator's ``--loopback-role``: the role of unauthenticated requests from
   127.0.0.0/8 or ::1 (none by default: they are refused).

A route needs a role (:mod:`unitctl.api.routes`); a weaker one gets 403.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from unitctl.api.errors import ApiError
from unitctl.errors import UsageError
from unitctl.registry.registry import Registry
from unitctl.registry.tokens import allows, check_role


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who (for the audit log) and their role."""

    who: str
    role: str


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How the server authenticates (``unitctl serve``'s options)."""

    loopback_role: str | None = None
    #: ``CN=<name>`` or ``sha256:<hex>`` -> role
    cert_roles: Mapping[str, str] = field(default_factory=dict)


def parse_cert_role(spec: str) -> tuple[str, str]:
    """``CN=name=role`` or ``sha256:HEX=role`` -> (selector, role); UsageError otherwise."""
    selector, _, role = spec.rpartition("=")
    check_role(role)
    if selector.startswith("CN=") and len(selector) > 3:
        return selector, role
    if selector.startswith("sha256:") and len(selector) == 71:
        return "sha256:" + selector[7:].lower().replace(":", ""), role
    raise UsageError(f"bad --cert-role {spec!r}: use CN=<name>=<role> or "
                     "sha256:<64 hex digits>=<role>")


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _from_certificate(request: web.Request, cert_roles: Mapping[str, str]) -> Principal | None:
    if request.transport is None or not cert_roles:
        return None
    sslobj = request.transport.get_extra_info("ssl_object")
    if not isinstance(sslobj, ssl.SSLObject):
        return None
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None  # no certificate, or one the client CA did not verify
    fingerprint = "sha256:" + hashlib.sha256(der).hexdigest()
    if fingerprint in cert_roles:
        return Principal(fingerprint[:19], cert_roles[fingerprint])
    for rdn in (sslobj.getpeercert() or {}).get("subject", ()):
        for pair in rdn:
            key, value = str(pair[0]), str(pair[1])
            if key == "commonName" and f"CN={value}" in cert_roles:
                return Principal(f"CN={value}", cert_roles[f"CN={value}"])
    return None


async def authenticate(request: web.Request, registry: Registry,
                       settings: AuthSettings) -> Principal | None:
    """The caller of ``request``, or None when it presents nothing acceptable.

    Raises:
        ApiError: 401 for a bearer token that is not (or no longer) valid.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "bad Authorization header: expected 'Bearer <token>'")
        token = await registry.tokens.lookup(secret.strip())
        if token is None:
            raise ApiError(401, "unknown or revoked token")
        return Principal(f"token:{token.id}" + (f"({token.name})" if token.name else ""),
                         token.role)
    by_cert = _from_certificate(request, settings.cert_roles)
    if by_cert is not None:
        return by_cert
    if settings.loopback_role is not None and _is_loopback(request.remote):
        return Principal(f"loopback:{request.remote}", settings.loopback_role)
    return None


def require(principal: Principal | None, role: str) -> Principal:
    """``principal`` if it has at least ``role``; ApiError 401/403 otherwise."""
    if principal is None:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>' "
                            "(unitctl token create) or a client certificate")
    if not allows(principal.role, role):
        raise ApiError(403, f"forbidden: this needs the {role} role; {principal.who} has "
                            f"{principal.role}")
    return principal
