"""The Vagrant cluster recipe: Vagrantfile, contrib/vagrant/provision.sh, TLS.

VMs cannot boot on the CI host (no boxes can be downloaded), so:

* ``test_vagrantfile_validates`` runs Debian's vagrant (installed with apt
  when missing, together with the vagrant-libvirt provider plugin, so that
  ``vagrant validate``/``status`` work offline) on the real Vagrantfile and on
  broken copies of it;
* ``test_gen_certs`` makes the TLS material with contrib/etcd-tls/gen-certs.sh
  and has a host etcd with ``--client-cert-auth`` accept it;
* ``test_provision_script_in_nspawn_machine`` runs provision.sh for real, as
  root inside one systemd-nspawn machine of the shared harness
  (unitctl_testing/cluster.py): single etcd member with client/peer TLS, no
  docker, pip from a host wheelhouse, apt skipped (etcd-server, etcd-client
  and openssl .debs are downloaded on the host and dpkg-installed in the
  machine first, as apt would on a VM).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real import require_nspawn, require_root, require_tool

REPO = Path(__file__).resolve().parents[2]
PROVISION = "contrib/vagrant/provision.sh"
GEN_CERTS = "contrib/etcd-tls/gen-certs.sh"
SRC_IN_MACHINE = "/opt/unitctl/src"  # where the harness binds the checkout (read-only)
TLS = "/etc/unitctl/tls"


def run(argv: list[str], timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        check=False, **kw)


def ensure_apt_packages(*packages: str) -> None:
    missing = [p for p in packages
               if "ok installed" not in run(["dpkg-query", "-W", "-f=${Status}", p]).stdout]
    if not missing:
        return
    require_root(f"{' '.join(missing)} not installed, and apt-get install needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    p = run(["apt-get", "install", "-y", "-q", *missing], timeout=900, env=env)
    if p.returncode != 0:  # stale lists: update once and retry
        run(["apt-get", "update", "-q"], timeout=600, env=env)
        p = run(["apt-get", "install", "-y", "-q", *missing], timeout=900, env=env)
    assert p.returncode == 0, f"apt-get install {missing} failed:\n{p.stdout[-2000:]}{p.stderr}"


# --------------------------------------------------------------------------- shell scripts

@pytest.mark.parametrize("script", [PROVISION, GEN_CERTS])
def test_shell_scripts_lint(script: str) -> None:
    path = REPO / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    p = run(["bash", "-n", str(path)])
    assert p.returncode == 0, p.stderr
    shellcheck = require_tool("shellcheck", "shellcheck is not installed (scripts/install-deps.sh)")
    p = run([shellcheck, str(path)])
    assert p.returncode == 0, p.stdout + p.stderr


# --------------------------------------------------------------------------- Vagrantfile

@pytest.fixture(scope="module")
def vagrant_env() -> Iterator[dict[str, str]]:
    """Environment for an offline vagrant: own VAGRANT_HOME/dotfile dir, libvirt provider.

    VirtualBox is not installable here; the vagrant-libvirt plugin only needs
    libvirt for ``up``, so ``validate`` (with provider config) and ``status``
    work without a hypervisor.
    """
    ensure_apt_packages("vagrant", "vagrant-libvirt")
    with tempfile.TemporaryDirectory(prefix="unitctl-vagrant-") as tmp:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VAGRANT_", "UNITCTL_"))}
        env.update(VAGRANT_HOME=f"{tmp}/home", VAGRANT_DOTFILE_PATH=f"{tmp}/dotfile",
                   VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_DEFAULT_PROVIDER="libvirt",
                   VAGRANT_NO_COLOR="1")
        yield env


def vagrant(env: dict[str, str], cwd: Path, *args: str,
            **extra: str) -> subprocess.CompletedProcess[str]:
    return run(["vagrant", *args], timeout=180, cwd=str(cwd), env={**env, **extra})


def copy_recipe(dest: Path) -> Path:
    """The Vagrantfile and the files it references, in a scratch directory."""
    for rel in ("Vagrantfile", PROVISION, GEN_CERTS):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    return dest


@pytest.mark.slow
def test_vagrantfile_validates(vagrant_env: dict[str, str], tmp_path: Path) -> None:
    p = vagrant(vagrant_env, REPO, "validate")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "validated successfully" in p.stdout

    # machines core-01..core-NN (status needs no hypervisor for "not created")
    for n in (1, 5):
        p = vagrant(vagrant_env, REPO, "status", "--machine-readable", UNITCTL_VMS=str(n))
        assert p.returncode == 0, p.stdout + p.stderr
        names = sorted({line.split(",")[1] for line in p.stdout.splitlines()
                        if line.count(",") >= 3 and line.split(",")[2] == "state"})
        assert names == [f"core-{i:02d}" for i in range(1, n + 1)], p.stdout

    # the checks can fail: a copy validates, broken copies do not
    good = copy_recipe(tmp_path / "good")
    assert vagrant(vagrant_env, good, "validate").returncode == 0

    syntax = copy_recipe(tmp_path / "syntax")
    (syntax / "Vagrantfile").write_text((syntax / "Vagrantfile").read_text() + "\nend\n")
    p = vagrant(vagrant_env, syntax, "validate")
    assert p.returncode != 0 and "syntax error" in p.stdout + p.stderr, p.stdout + p.stderr

    no_script = copy_recipe(tmp_path / "no_script")
    (no_script / PROVISION).unlink()
    p = vagrant(vagrant_env, no_script, "validate")
    assert p.returncode != 0 and "provision.sh" in p.stdout + p.stderr, p.stdout + p.stderr

    p = vagrant(vagrant_env, good, "validate", UNITCTL_VMS="0")
    assert p.returncode != 0 and "UNITCTL_VMS" in p.stdout + p.stderr, p.stdout + p.stderr


# --------------------------------------------------------------------------- TLS

@pytest.mark.etcd
def test_gen_certs(tmp_path: Path) -> None:
    """Certificates work with etcd --client-cert-auth; re-running keeps them."""
    etcd, etcdctl = require_tool("etcd"), require_tool("etcdctl")
    require_tool("openssl")
    from unitctl_testing.etcd import free_port

    certs = tmp_path / "certs"
    gen = [str(REPO / GEN_CERTS), str(certs), "127.0.0.1", "IP:10.9.8.7", "core-01"]
    p = run(gen)
    assert p.returncode == 0, p.stderr
    for f in ("ca.pem", "server.pem", "client.pem"):
        assert (certs / f).stat().st_mode & 0o777 == 0o644
    for f in ("ca-key.pem", "server-key.pem", "client-key.pem"):
        assert (certs / f).stat().st_mode & 0o777 == 0o600
    text = run(["openssl", "x509", "-in", str(certs / "server.pem"), "-noout", "-text"]).stdout
    for san in ("IP Address:127.0.0.1", "IP Address:10.9.8.7", "DNS:core-01", "DNS:localhost"):
        assert san in text

    before = {f.name: f.read_bytes() for f in certs.glob("*.pem")}
    assert run(gen).returncode == 0
    assert before == {f.name: f.read_bytes() for f in certs.glob("*.pem")}, "not idempotent"
    p = run([str(REPO / GEN_CERTS), str(certs), "bad;name"])
    assert p.returncode != 0 and "not a DNS name" in p.stderr

    cport, pport = free_port(), free_port()
    url = f"https://127.0.0.1:{cport}"
    with open(tmp_path / "etcd.log", "wb") as elog:
        proc = subprocess.Popen(
            [etcd, "--name", "t", "--data-dir", str(tmp_path / "data"), "--unsafe-no-fsync",
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"https://127.0.0.1:{pport}",
             "--initial-advertise-peer-urls", f"https://127.0.0.1:{pport}",
             "--initial-cluster", f"t=https://127.0.0.1:{pport}",
             "--client-cert-auth", "--trusted-ca-file", str(certs / "ca.pem"),
             "--cert-file", str(certs / "server.pem"), "--key-file", str(certs / "server-key.pem"),
             "--peer-client-cert-auth", "--peer-trusted-ca-file", str(certs / "ca.pem"),
             "--peer-cert-file", str(certs / "server.pem"),
             "--peer-key-file", str(certs / "server-key.pem")],
            stdout=subprocess.DEVNULL, stderr=elog)
    try:
        ctl = [etcdctl, "--endpoints", url, "--cacert", str(certs / "ca.pem"),
               "--dial-timeout=2s", "endpoint", "health"]
        auth = ["--cert", str(certs / "client.pem"), "--key", str(certs / "client-key.pem")]
        deadline = time.monotonic() + 30
        while (p := run([*ctl, *auth], env={**os.environ, "ETCDCTL_API": "3"})).returncode:
            assert time.monotonic() < deadline, p.stderr + (tmp_path / "etcd.log").read_text()
            time.sleep(0.3)
        assert "is healthy" in p.stdout + p.stderr
        p = run(ctl, env={**os.environ, "ETCDCTL_API": "3"})  # no client certificate
        assert p.returncode != 0
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- provision.sh

def _cache_dir() -> Path:
    from unitctl_testing import rootfs
    return rootfs.cache_dir()


def provision_wheelhouse() -> Path:
    """unitctl's pinned dependencies + the build backend (setuptools, wheel).

    provision.sh builds unitctl from the checkout with pip's build isolation,
    offline, so setuptools and wheel must be in the wheelhouse too.
    """
    from unitctl_testing import rootfs

    base = rootfs.wheelhouse(rootfs.runtime_pins())
    dest = _cache_dir() / f"{base.name}-provision"
    if not (dest / ".complete").exists():
        tmp = Path(tempfile.mkdtemp(prefix="wheels.", dir=_cache_dir()))
        try:
            for whl in base.glob("*.whl"):
                shutil.copy2(whl, tmp)
            p = run([sys.executable, "-m", "pip", "download", "-q",
                     "--only-binary=:all:", "-d", str(tmp), "setuptools>=61", "wheel"],
                    env=rootfs.host_pip_env())
            assert p.returncode == 0, p.stderr
            (tmp / ".complete").touch()
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def provision_debs(machine_root: str) -> Path:
    """.debs of etcd-server, etcd-client, openssl and whatever of their
    dependencies the machine's rootfs lacks (resolved by the host's apt
    against the rootfs' dpkg status: the machines have no apt network)."""
    dest = _cache_dir() / "provision-debs"
    if not (dest / ".complete").exists():
        (dest / "partial").mkdir(parents=True, exist_ok=True)
        p = run(["apt-get", "install", "-y", "-q", "--download-only", "--no-install-recommends",
                 "-o", f"Dir::State::status={machine_root}/var/lib/dpkg/status",
                 "-o", f"Dir::Cache::archives={dest}",
                 "etcd-server", "etcd-client", "openssl"], timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr
        assert list(dest.glob("etcd-server_*.deb")), p.stdout
        (dest / ".complete").touch()
    return dest


def _boot(**kwargs: object) -> Iterator[object]:
    require_nspawn()
    from unitctl_testing.cluster import Cluster

    c = Cluster(start_agent=False, **kwargs)  # type: ignore[arg-type]
    c.up()
    try:
        yield c
    finally:
        try:
            logs = os.environ.get("UNITCTL_CLUSTER_LOGS", "/tmp/unitctl-cluster-logs")
            c.collect_logs(os.path.join(logs, f"test_vagrant-{c.tag}"))
        finally:
            c.down()


# own tags/bridges/subnets: coexist with the cluster fixtures' default network
@pytest.fixture(scope="module")
def one_machine() -> Iterator[object]:
    yield from _boot(n_machines=1, tag="vg", bridge="br-unitctl-vg", subnet="10.231.99")


@pytest.fixture(scope="module")
def three_machines() -> Iterator[object]:
    yield from _boot(n_machines=3, tag="vh", bridge="br-unitctl-vh", subnet="10.231.96")


def _put_into(c: object, name: str, src: Path, dest_in_machine: str) -> None:
    """Copy host files into the running machine through its overlay root."""
    root = Path(c.machine(name).root)  # type: ignore[attr-defined]
    target = root / dest_in_machine.lstrip("/")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy2(f, target / f.name)


def _wait(pred: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


def _preinstall(c: object, name: str) -> None:
    """What apt-get install does on a VM (the machines have no network)."""
    root = c.machine(name).root  # type: ignore[attr-defined]
    _put_into(c, name, provision_debs(root), "/var/cache/unitctl-debs")
    _put_into(c, name, provision_wheelhouse(), "/var/cache/unitctl-wheels")
    p = c.exec(name, "sh", "-c", "dpkg -i /var/cache/unitctl-debs/*.deb",  # type: ignore[attr-defined]
               check=False, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr


def _provision(c: object, name: str, index: int, total: int, metadata: str,
               *env: str) -> subprocess.CompletedProcess[str]:
    argv = ["env", "UNITCTL_PROVISION_SKIP_APT=1", "UNITCTL_PROVISION_SKIP_DOCKER=1",
            f"UNITCTL_PROVISION_SRC={SRC_IN_MACHINE}",
            "UNITCTL_PROVISION_PIP_ARGS=--no-index --find-links /var/cache/unitctl-wheels",
            "UNITCTL_PROVISION_AGENT_TTL=5s", "UNITCTL_PROVISION_WAIT=90", *env,
            "bash", f"{SRC_IN_MACHINE}/{PROVISION}", str(index), str(total),
            c.ip(name), metadata]  # type: ignore[attr-defined]
    return c.exec(name, *argv, check=False, timeout=600)  # type: ignore[attr-defined,no-any-return]


def _agent_active(c: object, name: str) -> bool:
    p = c.exec(name, "systemctl", "is-active", "unitctl-agent", check=False)  # type: ignore[attr-defined]
    return bool(p.stdout.strip() == "active")


def _agent_journal(c: object, name: str) -> str:
    return str(c.exec(name, "journalctl", "-u", "unitctl-agent", "--no-pager",  # type: ignore[attr-defined]
                      "-n", "40", check=False).stdout)


def _list_machines(c: object, name: str, ips: list[str], timeout: float = 30) -> None:
    """``unitctl list-machines`` from a login shell (profile.d env) shows ``ips``."""
    def listed() -> bool:
        r = c.exec(name, "bash", "-lc", "unitctl list-machines", check=False)  # type: ignore[attr-defined]
        return r.returncode == 0 and all(ip in r.stdout for ip in ips)
    if not _wait(listed, timeout):
        r = c.exec(name, "bash", "-lc", "unitctl list-machines", check=False)  # type: ignore[attr-defined]
        pytest.fail(f"unitctl list-machines on {name} does not list {ips}:\n{r.stdout}{r.stderr}")


TLS_ARGS = [f"--cacert={TLS}/ca.pem", f"--cert={TLS}/client.pem", f"--key={TLS}/client-key.pem"]


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_provision_script_in_nspawn_machine(one_machine: object) -> None:
    c, name = one_machine, "m1"
    ex = c.exec  # type: ignore[attr-defined]
    ip = c.ip(name)  # type: ignore[attr-defined]
    _preinstall(c, name)

    first = _provision(c, name, 1, 1, "region=test,disk=ssd", "UNITCTL_PROVISION_ETCD_MEMBERS=1")
    out = first.stdout + first.stderr
    # the read-only checkout cannot hold the shared certs: made locally instead
    assert "not writable" in out, out[-4000:]

    # etcd inside: TLS with the generated client certificate, and only with it
    health = ["env", "ETCDCTL_API=3", "etcdctl", f"--endpoints=https://{ip}:2379",
              "--dial-timeout=3s", "endpoint", "health"]
    p = ex(name, *health, *TLS_ARGS, check=False)
    assert p.returncode == 0 and "is healthy" in p.stdout + p.stderr, \
        f"etcd: {p.stdout}{p.stderr}\nprovision:\n{out[-4000:]}"
    p = ex(name, *health, f"--cacert={TLS}/ca.pem", check=False)
    assert p.returncode != 0, "etcd accepted a client without a certificate"
    p = ex(name, "systemctl", "show", "-p", "ExecStart", "etcd.service")
    assert "--client-cert-auth" in p.stdout and "--peer-client-cert-auth" in p.stdout

    # installed entry points and config
    for exe in ("unitctl", "unitctl-agent", "docker-run"):
        p = ex(name, "readlink", f"/usr/local/bin/{exe}", check=False)
        assert p.stdout.strip() == f"/opt/unitctl/venv/bin/{exe}", (exe, p.stdout, out[-3000:])
    conf = ex(name, "cat", "/etc/unitctl/unitctl.conf").stdout
    assert f"etcd_servers = https://{ip}:2379" in conf and f"public_ip = {ip}" in conf
    assert "metadata = region=test,disk=ssd" in conf

    # the agent (the production unit) is up
    _wait(lambda: _agent_active(c, name), 60)
    assert first.returncode == 0, f"provision.sh failed:\n{out[-6000:]}\n{_agent_journal(c, name)}"
    assert _agent_active(c, name), f"unitctl-agent not active:\n{_agent_journal(c, name)}"
    p = ex(name, "systemctl", "show", "-p", "FragmentPath", "unitctl-agent")
    assert p.stdout.strip() == "FragmentPath=/etc/systemd/system/unitctl-agent.service"
    _list_machines(c, name, [ip])

    # idempotent: a second run succeeds and restarts neither etcd nor the agent
    def invocations() -> str:
        return str(ex(name, "systemctl", "show", "-p", "InvocationID", "etcd.service",
                      "unitctl-agent.service").stdout)
    before = invocations()
    again = _provision(c, name, 1, 1, "region=test,disk=ssd", "UNITCTL_PROVISION_ETCD_MEMBERS=1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "wrote " not in again.stderr, again.stderr
    assert invocations() == before, "re-provisioning restarted etcd or the agent"


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_provision_three_etcd_members(three_machines: object, tmp_path: Path) -> None:
    """The Vagrant topology: certificates made on the host (the Vagrantfile's
    trigger), machines provisioned one after the other, 3 etcd members with
    peer TLS; machine 1 finishes before its etcd has a quorum."""
    c = three_machines
    names = c.names  # type: ignore[attr-defined]
    ips = [c.ip(n) for n in names]  # type: ignore[attr-defined]
    certs = tmp_path / "certs"
    p = run([str(REPO / GEN_CERTS), str(certs), *ips])
    assert p.returncode == 0, p.stderr
    for i, name in enumerate(names, 1):
        _preinstall(c, name)
        _put_into(c, name, certs, "/srv/unitctl-certs")
        r = _provision(c, name, i, 3, f"region={'eu' if i % 2 else 'us'}",
                       "UNITCTL_PROVISION_CERTS_DIR=/srv/unitctl-certs")
        out = r.stdout + r.stderr
        assert r.returncode == 0, f"provision {name}:\n{out[-5000:]}\n{_agent_journal(c, name)}"
        if i == 1:
            assert "no quorum before machine 2" in out, out[-3000:]
    p = c.exec(names[2], "bash", "-lc", "etcdctl member list", check=False)  # type: ignore[attr-defined]
    assert p.returncode == 0 and p.stdout.count(", started, ") == 3, p.stdout + p.stderr
    for name in names:
        assert _wait(lambda n=name: _agent_active(c, n), 60), _agent_journal(c, name)
    _list_machines(c, names[0], ips)
