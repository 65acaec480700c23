"""etcd TLS (with client certificates) and auth, through the real CLI and KV."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from unitctl.registry.connection import EtcdConfig
from unitctl_testing.etcd import free_port

pytestmark = pytest.mark.etcd
REPO = Path(__file__).resolve().parents[2]


def _unitctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "unitctl", "--request-timeout", "2", *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=str(REPO))


def _start_etcd(tmp: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    peer = free_port()
    scheme = "https" if "--cert-file" in extra else "http"
    proc = subprocess.Popen(
        ["etcd", "--data-dir", str(tmp / "data"), "--name", "s",
         "--listen-client-urls", f"{scheme}://127.0.0.1:{port}",
         "--advertise-client-urls", f"{scheme}://127.0.0.1:{port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"s=http://127.0.0.1:{peer}", "--log-level", "warn",
         "--logger", "zap", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc


def _wait_ok(*args: str) -> subprocess.CompletedProcess[str]:
    for _ in range(60):
        r = _unitctl(*args)
        if r.returncode == 0:
            return r
        time.sleep(0.2)
    return r


@contextlib.contextmanager
def started_tls_etcd(prefix: str = "unitctl-tls-") -> Iterator[tuple[str, Path]]:
    """A one-member etcd serving TLS and asking for client certificates (made by
    contrib/etcd-tls/gen-certs.sh): its endpoint and the certificates' directory."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    certs = tmp / "certs"
    subprocess.run(["bash", str(REPO / "contrib/etcd-tls/gen-certs.sh"), str(certs),
                    "IP:127.0.0.1"], check=True, capture_output=True)
    port = free_port()
    proc = _start_etcd(tmp, port, "--cert-file", str(certs / "server.pem"), "--key-file",
                       str(certs / "server-key.pem"), "--trusted-ca-file",
                       str(certs / "ca.pem"), "--client-cert-auth")
    try:
        yield f"https://127.0.0.1:{port}", certs
    finally:
        proc.kill()
        proc.wait()
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp)], check=False)


def tls_config(endpoint: str, certs: Path, timeout: float = 3) -> EtcdConfig:
    """The client's configuration for :func:`started_tls_etcd`'s etcd."""
    return EtcdConfig(endpoints=(endpoint,), ca_file=str(certs / "ca.pem"),
                      cert_file=str(certs / "client.pem"),
                      key_file=str(certs / "client-key.pem"), timeout=timeout)


@pytest.fixture
def tls_etcd() -> Iterator[tuple[str, Path]]:
    with started_tls_etcd() as started:
        yield started


def test_tls_with_client_certificates(tls_etcd: tuple[str, Path]) -> None:
    endpoint, certs = tls_etcd
    tls = ["--endpoint", endpoint, "--ca-file", str(certs / "ca.pem"), "--cert-file",
           str(certs / "client.pem"), "--key-file", str(certs / "client-key.pem")]
    r = _wait_ok(*tls, "list-machines")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["MACHINE", "IP", "METADATA"]
    # no client certificate: refused by etcd, one clear line, no traceback
    r = _unitctl("--endpoint", endpoint, "--ca-file", str(certs / "ca.pem"), "list-machines")
    assert r.returncode == 5 and r.stderr.startswith("Error:") and "Traceback" not in r.stderr
    # a missing certificate file is named
    r = _unitctl(*tls[:-2], "--key-file", "/nonexistent/key.pem", "list-machines")
    assert r.returncode != 0 and "/nonexistent/key.pem" in r.stderr


def test_username_and_password(tmp_path: Path) -> None:
    port = free_port()
    proc = _start_etcd(tmp_path, port)
    ep = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            ok = subprocess.run(["etcdctl", "--endpoints", ep, "endpoint", "health"],
                                capture_output=True).returncode == 0
            if ok:
                break
            time.sleep(0.1)
        for cmd in (["user", "add", "root:s3cret"], ["auth", "enable"]):
            subprocess.run(["etcdctl", "--endpoints", ep, *cmd], check=True,
                           capture_output=True)
        r = _unitctl("--endpoint", ep, "--username", "root", "--password", "s3cret",
                     "list-units")
        assert r.returncode == 0, r.stderr
        env_r = subprocess.run(
            [sys.executable, "-m", "unitctl", "--endpoint", ep, "list-units"],
            capture_output=True, text=True, timeout=60, cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO), "UNITCTL_USERNAME": "root",
                 "UNITCTL_PASSWORD": "s3cret"})
        assert env_r.returncode == 0, env_r.stderr
        r = _unitctl("--endpoint", ep, "--username", "root", "--password", "wrong",
                     "list-units")
        assert r.returncode == 5 and "Traceback" not in r.stderr
        assert r.stderr.startswith("Error:")
    finally:
        proc.kill()
        proc.wait()
