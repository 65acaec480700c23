"""`unitctl serve` over TLS (--tls-cert/--tls-key) with client certificates mapped to roles
(--client-ca, --cert-role), on a real etcd; the certificates are made in the test by the
repo's own contrib/etcd-tls/gen-certs.sh (openssl)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.apiharness import kv_factory
from unitctl.api.auth import AuthSettings, parse_cert_role
from unitctl.api.context import ServerContext
from unitctl.api.server import TlsFiles, check_listen, listening
from unitctl.errors import ConfigError
from unitctl.registry.registry import Registry
from unitctl_testing.etcd import EtcdCluster

pytestmark = pytest.mark.etcd
REPO = Path(__file__).resolve().parents[2]


def _gen(out: Path, cn: str) -> Path:
    subprocess.run(["bash", str(REPO / "contrib/etcd-tls/gen-certs.sh"), "-n", cn, str(out),
                    "IP:127.0.0.1"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def certs() -> Iterator[tuple[Path, Path]]:
    """(our CA's directory, another CA's directory), each with server and client files."""
    with tempfile.TemporaryDirectory(prefix="unitctl-api-tls-") as tmp:
        yield _gen(Path(tmp) / "ours", "ops-bot"), _gen(Path(tmp) / "other", "ops-bot")


def fingerprint(pem: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.read_text())).hexdigest()


def client_ssl(ca: Path, cert_dir: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    if cert_dir is not None:
        context.load_cert_chain(str(cert_dir / "client.pem"), str(cert_dir / "client-key.pem"))
    return context


async def _get(url: str, context: ssl.SSLContext, path: str = "/unitctl/v1/whoami",
               method: str = "GET", **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, \
            http.request(method, url + path, ssl=context, **kw) as resp:
        return resp.status, await resp.json()


def serve_tls(etcd: EtcdCluster, prefix: str, ours: Path, roles: list[str], body: Any) -> None:
    async def go() -> None:
        registry = Registry(await kv_factory(etcd)(), prefix)
        await registry.ensure_schema()
        tls = TlsFiles(str(ours / "server.pem"), str(ours / "server-key.pem"),
                       str(ours / "ca.pem")).context()
        auth = AuthSettings(None, dict(parse_cert_role(r) for r in roles))
        try:
            with tempfile.TemporaryDirectory() as empty:
                context = ServerContext(registry, auth, empty_dir=empty)
                async with listening(context, "127.0.0.1", 0, tls) as url:
                    assert url.startswith("https://")
                    await body(url, registry)
        finally:
            await registry.close()
    asyncio.run(asyncio.wait_for(go(), 60))


def test_client_certificate_common_name_maps_to_its_role(
        etcd: EtcdCluster, key_prefix: str, certs: tuple[Path, Path]) -> None:
    ours, _ = certs

    async def body(url: str, registry: Registry) -> None:
        status, who = await _get(url, client_ssl(ours, ours))
        assert (status, who) == (200, {"who": "CN=ops-bot", "role": "operate"})
        status, err = await _get(url, client_ssl(ours, ours), "/unitctl/v1/submit", "POST",
                                 json={"units": [{"name": "a.service",
                                                  "text": "[Service]\nExecStart=/bin/true\n"}]})
        assert status == 403 and "admin" in err["error"]["message"]
        assert await registry.get_unit("a.service") is None
        status, err = await _get(url, client_ssl(ours, None))  # TLS, but no certificate
        assert status == 401 and "authentication required" in err["error"]["message"]
    serve_tls(etcd, key_prefix, ours, ["CN=ops-bot=operate"], body)


def test_certificate_fingerprint_maps_to_its_role(
        etcd: EtcdCluster, key_prefix: str, certs: tuple[Path, Path]) -> None:
    ours, _ = certs

    async def body(url: str, registry: Registry) -> None:
        status, who = await _get(url, client_ssl(ours, ours))
        assert status == 200 and who["role"] == "admin" and who["who"].startswith("sha256:")
    serve_tls(etcd, key_prefix, ours, [f"sha256:{fingerprint(ours / 'client.pem')}=admin",
                                       "CN=ops-bot=read"], body)


def test_certificate_of_another_ca_is_refused(
        etcd: EtcdCluster, key_prefix: str, certs: tuple[Path, Path]) -> None:
    ours, other = certs

    async def body(url: str, registry: Registry) -> None:
        with pytest.raises(aiohttp.ClientError):  # same CN, but not signed by --client-ca
            await _get(url, client_ssl(ours, other))
        with pytest.raises(aiohttp.ClientError):  # a client that trusts another CA
            await _get(url, client_ssl(other, other))
        async with aiohttp.ClientSession() as http:  # plain HTTP to the TLS port
            with pytest.raises(aiohttp.ClientError):
                async with http.get(url.replace("https://", "http://") + "/openapi.json"):
                    pass
    serve_tls(etcd, key_prefix, ours, ["CN=ops-bot=admin"], body)


def test_tls_options_are_checked(certs: tuple[Path, Path], tmp_path: Path) -> None:
    ours, _ = certs
    with pytest.raises(ConfigError, match="both --tls-cert and --tls-key"):
        TlsFiles(str(ours / "server.pem")).context()
    with pytest.raises(ConfigError, match="--client-ca needs"):
        TlsFiles(client_ca=str(ours / "ca.pem")).context()
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        TlsFiles(str(tmp_path / "bad.pem"), str(ours / "server-key.pem")).context()
    with pytest.raises(ConfigError, match="without TLS"):
        check_listen("0.0.0.0", tls=False)
    check_listen("0.0.0.0", tls=True)
