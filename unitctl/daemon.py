"""unitctl-agent: the composition root that wires real adapters together.

Reads the configuration (file, ``UNITCTL_*`` environment, flags), connects to
etcd, drives the local systemd over D-Bus and runs the :class:`Agent` (with
its engine) until SIGTERM, when it unloads its units and leaves at once so
they move immediately. SIGHUP (``systemctl reload unitctl-agent``) re-executes
the agent in place instead: units keep running, and the new process adopts
them and the machine's lease (upgrades without disruption). A crash restart
(``Restart=always``) adopts them the same way. It speaks ``sd_notify``: READY once registered and
reconciled, STATUS on changes, WATCHDOG while the event loop is healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn

from unitctl import __version__
from unitctl.agent.agent import Agent
from unitctl.agent.commands import ProcessCommands
from unitctl.agent.engine_runner import EngineFactory
from unitctl.agent.measure import measure
from unitctl.agent.options import AgentOptions
from unitctl.agent.portenv import PortDropins
from unitctl.agent.volumes import LocalVolumes
from unitctl.config import DEFAULT_CONFIG_FILE, AgentConfig, load_config
from unitctl.daemonargs import FLAGS, Exit, parse
from unitctl.engine.engine import Engine
from unitctl.errors import RegistryError, UnitctlError, report
from unitctl.machine_id import MACHINE_ID_FILE, read_machine_id
from unitctl.model import Machine
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.gateway import Endpoint, GatewayKV
from unitctl.registry.kv import KV
from unitctl.registry.registry import Registry
from unitctl.systemd.manager import SystemdUnitManager

if TYPE_CHECKING:
    from unitctl.agent.template_host import LocalHost

__all__ = ["FLAGS", "LEASE_FILE", "MACHINE_ID_FILE", "cli", "connect", "detect_public_ip",
           "engine_factory", "main", "read_machine_id", "run_agent"]

log = logging.getLogger("unitctl.daemon")

#: Outside units_directory on purpose: the agent owns every file in that one.
LEASE_FILE = "/run/unitctl/agent.lease"


def detect_public_ip(etcd_servers: tuple[str, ...]) -> str:
    """The address peers and ssh should use, as fleet chose it.

    The source address towards etcd, unless that is loopback (etcd on this
    host): then the source address of the default route. A UDP connect()
    only looks up a route; no packet is sent.
    """
    first = Endpoint.parse(etcd_servers[0] if etcd_servers else "")
    for target in ((first.host, first.port), ("192.0.2.1", 9)):  # TEST-NET-1: a route lookup only
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET,
                                                         socket.SOCK_DGRAM) as s:
            s.connect(target)
            ip = str(s.getsockname()[0])
            if not ip.startswith("127."):
                return ip
    log.warning("public_ip: no non-loopback address found; set public_ip in the config")
    return "127.0.0.1"


def make_notifier() -> Callable[[str], None]:
    """sd_notify through sdnotify when run by systemd, else a no-op."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return lambda _msg: None
    import sdnotify

    notifier = sdnotify.SystemdNotifier()
    return lambda msg: notifier.notify(msg)


async def connect(cfg: AgentConfig,
                  adapter: Callable[[EtcdConfig], Awaitable[KV]] = GatewayKV.connect) -> Registry:
    """Connect to etcd; an etcd that is down at boot is waited for, not fatal.

    The agent speaks etcd's JSON gateway (:class:`~unitctl.registry.gateway.GatewayKV`,
    as the CLI does: one adapter, no grpcio in the agent's memory). Requests are
    metered for ``/metrics`` only when it is served (prometheus_client stays
    unloaded otherwise). ``adapter`` is for benchmarks that compare adapters.
    """
    kv = await adapter(cfg.etcd)
    if cfg.metrics_address is not None:
        from unitctl.metrics.kv import MeteredKV  # only where /metrics is served

        kv = MeteredKV(kv)
    registry = Registry(kv, cfg.etcd_key_prefix)
    while True:
        try:
            await registry.ensure_schema()
            return registry
        except RegistryError as exc:
            log.warning("waiting for etcd: %s", exc)
            await asyncio.sleep(1)


async def watchdog(notify: Callable[[str], None]) -> None:
    """Ping systemd's watchdog at half its interval while the loop runs."""
    usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
    if usec <= 0:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(usec / 2e6)


def agent_options(cfg: AgentConfig) -> AgentOptions:
    """The agent's switches from the configuration."""
    return AgentOptions(ttl=cfg.ttl_seconds, peer_port=cfg.peer_port,
                        engine=not cfg.disable_engine, engine_resync=cfg.engine_resync,
                        lease_file=LEASE_FILE, stop_budget=cfg.stop_budget,
                        template_dirs=cfg.template_dirs)


def template_host(cfg: AgentConfig) -> LocalHost | None:
    """The host the config templates are written on; None without ``template_dirs``
    (the agent renders none then), so that such an agent never imports the
    template modules (issue 12 item 5, the idle footprint)."""
    if not cfg.template_dirs:
        return None
    from unitctl.agent.template_host import LocalHost

    return LocalHost()


def engine_factory(registry: Registry, machine_id: str, opts: AgentOptions,
                   metered: bool = True) -> EngineFactory | None:
    """The engine this machine runs for each of its leases (None when disabled);
    its rounds are observed for ``/metrics`` when ``metered``."""
    if not opts.engine:
        return None
    observer = None
    if metered:
        from unitctl.metrics.rounds import RoundObserver  # only where /metrics is served

        observer = RoundObserver()
    return lambda: Engine(registry, machine_id, resync=opts.engine_resync,
                          grace=float(opts.ttl), on_round=observer)


def this_machine(cfg: AgentConfig) -> Machine:
    """This host as the registry sees it: machine id, public IP, metadata, version, and
    its capacity for units (:mod:`unitctl.agent.measure`)."""
    mid = read_machine_id()
    ip = cfg.public_ip or detect_public_ip(cfg.etcd_servers)
    capacity = measure(cfg.reserved_cpu_milli, cfg.reserved_memory, cfg.port_range)
    return Machine(mid, ip, dict(cfg.metadata), __version__, capacity)


def handle_signals(agent: Agent, stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT: leave (units move at once); SIGHUP: stop without leaving, re-exec."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reexec() -> None:
        agent.leave_on_stop = False
        stop.set()
    loop.add_signal_handler(signal.SIGHUP, reexec)


async def announce_ready(agent: Agent, notify: Callable[[str], None]) -> None:
    """READY=1 once the agent is registered and has reconciled; start-up is over,
    and what it made is frozen (:func:`freeze_startup_heap`)."""
    await agent.ready.wait()
    m = agent.machine
    notify(f"READY=1\nSTATUS=machine {m.id[:8]} ({m.public_ip}) running")
    freeze_startup_heap()
    log.info("agent ready: machine %s ip %s metadata %s", m.id, m.public_ip,
             dict(m.metadata))


@contextlib.asynccontextmanager
async def metrics(cfg: AgentConfig, agent: Agent) -> AsyncIterator[None]:
    """Serve the agent's /metrics on ``metrics_address`` (nothing when it is off).

    A taken address is logged, not fatal: the agent's units matter more.
    """
    if cfg.metrics_address is None:
        yield
        return
    from unitctl.metrics import catalog  # prometheus_client: only where /metrics is served
    from unitctl.metrics.agentview import AgentCollector
    from unitctl.metrics.exposition import serving

    collector = AgentCollector(agent)
    catalog.register(collector)
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(serving(cfg.metrics_address, catalog.REGISTRY))
            except OSError as exc:
                log.error("metrics: cannot listen on %s:%d: %s", *cfg.metrics_address, exc)
            yield
    finally:
        catalog.unregister(collector)


@contextlib.asynccontextmanager
async def service_dns(cfg: AgentConfig, registry: Registry) -> AsyncIterator[None]:
    """Answer DNS for ``dns_domain`` on ``dns_address`` (nothing when it is off)."""
    if cfg.dns_address is None:
        yield
        return
    from unitctl.agent.dns import serving as dns_serving  # only where DNS is on
    from unitctl.agent.dnslabels import parse_domain_text

    async with dns_serving(registry, parse_domain_text(cfg.dns_domain), cfg.dns_address):
        yield


def freeze_startup_heap() -> None:
    """Move every object start-up made (modules, clients, configuration, the first
    view of the cluster) into the collector's permanent generation: most live as long
    as the process, and no full collection walks them again (the CLI does the same,
    :mod:`unitctl.cli.startup`; the e2e benchmark's workers once their agents are up)."""
    gc.collect()
    gc.freeze()


async def run_agent(cfg: AgentConfig) -> None:
    """Compose registry, systemd, agent and engine; run until a signal stops the agent."""
    notify = make_notifier()
    machine = this_machine(cfg)
    notify("STATUS=connecting to etcd")
    registry = await connect(cfg)
    opts = agent_options(cfg)
    agent = Agent(registry, SystemdUnitManager(cfg.units_directory), machine, opts,
                  notify=notify,
                  engine=engine_factory(registry, machine.id, opts,
                                        metered=cfg.metrics_address is not None),
                  commands=ProcessCommands(), template_host=template_host(cfg))
    agent.executor.port_dropins = PortDropins()
    agent.executor.volumes = LocalVolumes.of(registry.volumes, machine)
    stop = asyncio.Event()
    handle_signals(agent, stop)
    helpers = [asyncio.create_task(watchdog(notify)),
               asyncio.create_task(announce_ready(agent, notify))]
    try:
        async with metrics(cfg, agent), service_dns(cfg, registry):
            await agent.run(stop)
    finally:
        notify("STOPPING=1" if agent.leave_on_stop else "RELOADING=1")
        for helper in helpers:
            helper.cancel()
        await registry.close()
    if not agent.leave_on_stop:
        log.info("re-executing (SIGHUP): units keep running and are adopted")
        os.execv(sys.executable, [sys.executable, "-m", "unitctl.daemon", *sys.argv[1:]])


def program_name() -> str:
    """The name usage lines show: the script's, or ``python -m <module>`` (as click did)."""
    main_module = sys.modules["__main__"]
    path = sys.argv[0]
    if getattr(main_module, "__package__", None) in {None, ""}:
        return os.path.basename(path)
    module = str(main_module.__package__)
    name = os.path.splitext(os.path.basename(path))[0]
    if name != "__main__":
        module = f"{module}.{name}"
    return f"python -m {module.lstrip('.')}"


def _terminal_columns() -> int:
    """What :func:`shutil.get_terminal_size` says (``COLUMNS``, the terminal, else 80),
    without importing shutil (and its bz2 and lzma) into every agent."""
    with contextlib.suppress(KeyError, ValueError):
        columns = int(os.environ["COLUMNS"])
        if columns > 0:
            return columns
    with contextlib.suppress(AttributeError, ValueError, OSError):
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        if columns > 0:
            return columns
    return 80


def cli(argv: list[str] | None = None) -> None:
    """Run the unitctl agent on this machine (and the engine when elected).

    Flags, help and errors: :mod:`unitctl.daemonargs`.
    """
    width = max(min(_terminal_columns(), 80) - 2, 50)
    got = parse(sys.argv[1:] if argv is None else argv, program_name(), __version__,
                DEFAULT_CONFIG_FILE, width)
    if isinstance(got, Exit):
        sys.stdout.write(got.out)
        sys.stderr.write(got.err)
        sys.stdout.flush()
        sys.exit(got.code)
    try:
        cfg = load_config(got.config_file, flags=got.flags)
    except UnitctlError as exc:
        fail(exc)
    logging.basicConfig(level=logging.DEBUG if cfg.verbosity > 0 else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        asyncio.run(run_agent(cfg))
    except UnitctlError as exc:
        fail(exc)


def fail(exc: UnitctlError) -> NoReturn:
    """One line on stderr and the error's exit code (:func:`unitctl.errors.report`)."""
    message, code = report(exc)
    print(f"unitctl-agent: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
