"""``unitctl serve`` (the API server) and ``unitctl token`` (its bearer tokens).

``serve`` runs :mod:`unitctl.api.server` with the global etcd flags; aiohttp
is imported only when it runs (the ``api`` extra). ``token create`` prints
the new token once (only its hash is stored); ``token list`` and ``token
revoke`` need etcd credentials, never an API token.
"""

from __future__ import annotations

import time

import click

from unitctl.cli.output import render_table
from unitctl.cli.session import Session, pass_session
from unitctl.client.facade import Client
from unitctl.errors import ConfigError, UsageError

ROLE_CHOICE = click.Choice(["read", "operate", "admin"])


@click.command("serve")
@click.option("--listen", default="127.0.0.1:8379", show_default=True,
              help="Address to listen on, HOST:PORT (a non-loopback HOST needs TLS).")
@click.option("--tls-cert", default="", help="The server's TLS certificate (PEM).")
@click.option("--tls-key", default="", help="The server's TLS key (PEM).")
@click.option("--client-ca", default="", help="CA of accepted client certificates.")
@click.option("--cert-role", "cert_roles", multiple=True,
              help="Map a client certificate to a role: CN=<name>=<role> or "
                   "sha256:<hex>=<role> (repeatable).")
@click.option("--loopback-role", type=ROLE_CHOICE, default=None,
              help="Role of unauthenticated requests from loopback (default: refused).")
@click.option("--static-dir", default="", help="Directory served at /ui/.")
@click.option("--agent-timeout", type=float, default=10.0, show_default=True,
              help="Seconds a machine's agent has to take a status or journal request.")
@pass_session
def serve(sess: Session, listen: str, tls_cert: str, tls_key: str, client_ca: str,
          cert_roles: tuple[str, ...], loopback_role: str | None, static_dir: str,
          agent_timeout: float) -> None:
    """Serve fleet's v1 HTTP API and unitctl's own (see docs/api.md)."""
    host, port = _listen(listen)
    try:
        import asyncio
        import logging

        from unitctl.api import auth, server
    except ImportError as exc:
        raise ConfigError(f"unitctl serve needs the api extra (pip install "
                          f"'unitctl[api]'): {exc}") from exc
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = auth.AuthSettings(loopback_role,
                                 dict(auth.parse_cert_role(s) for s in cert_roles))
    cfg = server.ServeConfig(sess.config.etcd, sess.config.prefix, host, port,
                             server.TlsFiles(tls_cert, tls_key, client_ca), settings,
                             static_dir, agent_timeout)
    asyncio.run(server.run(cfg))


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad --listen {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.group("token")
def token() -> None:
    """Create, list and revoke the API's bearer tokens (needs etcd credentials)."""


@token.command("create")
@click.option("--role", type=ROLE_CHOICE, required=True,
              help="read: reads only; operate: also load/start/stop/restart/unload; "
                   "admin: everything.")
@click.option("--name", default="", help="Who or what the token is for (shown by list).")
@pass_session
def token_create(sess: Session, role: str, name: str) -> None:
    """Make a token and print it (once: only its hash is stored)."""
    async def go(c: Client) -> str:
        secret, made = await c.registry.tokens.create(role, name, time.time())
        click.echo(f"Created token {made.id} ({role}); it is shown only now:", err=True)
        return secret
    click.echo(sess.run(go))


@token.command("list")
@pass_session
def token_list(sess: Session) -> None:
    """List the tokens: id, role, name, created."""
    tokens = sess.run(lambda c: c.registry.tokens.list())
    rows = [{"id": t.id, "role": t.role, "name": t.name or None,
             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t.created))}
            for t in tokens]
    click.echo(render_table(["id", "role", "name", "created"], rows), nl=False)


@token.command("revoke")
@click.argument("token_id")
@pass_session
def token_revoke(sess: Session, token_id: str) -> None:
    """Revoke the token whose id starts with TOKEN_ID (it is refused at once)."""
    gone = sess.run(lambda c: c.registry.tokens.revoke(token_id))
    click.echo(f"Revoked token {gone.id} ({gone.role})")


COMMANDS = (serve, token)
