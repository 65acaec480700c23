"""Running the API server: etcd, TLS, the listening socket, until told to stop.

``unitctl serve`` runs :func:`run`. It listens on loopback by default; a
non-loopback address needs TLS (``--tls-cert``/``--tls-key``), so tokens never
cross a network in clear text. ``--client-ca`` makes the server ask for (not
require) client certificates, which that CA must have signed; a verified
certificate is then mapped to a role (:mod:`unitctl.api.auth`). The server
talks to etcd with the agent's adapter (:class:`~unitctl.registry.etcd.EtcdKV`,
one long-lived gRPC channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from unitctl.api import dashboard
from unitctl.api.app import make_app
from unitctl.api.auth import AuthSettings
from unitctl.api.context import ServerContext
from unitctl.errors import ConfigError
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.etcd import EtcdKV
from unitctl.registry.keys import DEFAULT_PREFIX
from unitctl.registry.registry import Registry

log = logging.getLogger("unitctl.api")
DEFAULT_PORT = 8379


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The server's certificate and key, and the CA of client certificates ("": none)."""

    cert: str = ""
    key: str = ""
    client_ca: str = ""

    def context(self) -> ssl.SSLContext | None:
        if not self.cert and not self.key:
            if self.client_ca:
                raise ConfigError("--client-ca needs --tls-cert and --tls-key")
            return None
        if not self.cert or not self.key:
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert, self.key)
            if self.client_ca:
                context.load_verify_locations(self.client_ca)
                context.verify_mode = ssl.CERT_OPTIONAL
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS files: {exc}") from exc
        return context


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What ``unitctl serve`` was told."""

    etcd: EtcdConfig
    prefix: str = DEFAULT_PREFIX
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: TlsFiles = field(default_factory=TlsFiles)
    auth: AuthSettings = field(default_factory=AuthSettings)
    static_dir: str = ""
    agent_timeout: float = 10.0


def check_listen(host: str, tls: bool) -> None:
    """Refuse a non-loopback address without TLS (ConfigError)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not tls:
        raise ConfigError(f"refusing to listen on {host} without TLS: give --tls-cert and "
                          "--tls-key (tokens would cross the network in clear text)")


@contextlib.asynccontextmanager
async def listening(context: ServerContext, host: str, port: int,
                    tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Serve ``context``'s application on host:port (0: any free port); yield its URL."""
    app = make_app(context, dashboard.ROUTES)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        bound = sockets[0].getsockname()[1] if sockets else port
        shown = f"[{host}]" if ":" in host else host
        yield f"{'https' if tls else 'http'}://{shown}:{bound}"
    finally:
        await runner.cleanup()


async def run(cfg: ServeConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``)."""
    tls = cfg.tls.context()
    check_listen(cfg.host, tls is not None)
    registry = Registry(await EtcdKV.connect(cfg.etcd), cfg.prefix)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await registry.ensure_schema()
        with tempfile.TemporaryDirectory(prefix="unitctl-serve-") as empty:
            context = ServerContext(registry, cfg.auth, cfg.static_dir, cfg.agent_timeout,
                                    empty_dir=empty)
            async with listening(context, cfg.host, cfg.port, tls) as url:
                log.warning("unitctl API listening on %s", url)
                await stop.wait()
    finally:
        await registry.close()
