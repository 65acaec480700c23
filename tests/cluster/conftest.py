"""Fixtures that boot real systemd machines (unitctl_testing.cluster).

* ``cluster``: module-scoped, 3 machines + 1 etcd member, agent started
  (a module may set ``CLUSTER_KWARGS = {...}`` to shape it).
* ``cluster_factory``: ``cluster_factory(n_machines=..., **Cluster kwargs)``
  boots extra clusters (own tag, bridge and subnet, so they coexist with
  ``cluster``); all are removed at the end of the test.

Skipped (with the reason) only when not root or systemd-nspawn is missing,
and then a failure under ``UNITCTL_REQUIRE_REAL=1`` (tests/real.py).
When a test fails, the clusters it used write their journals, console logs
and etcd logs to ``$UNITCTL_CLUSTER_LOGS`` (default
/tmp/unitctl-cluster-logs/<run>/<test>/) and the path is printed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.real import require_nspawn
from unitctl_testing.cluster import Cluster

LOG_ROOT = os.environ.get("UNITCTL_CLUSTER_LOGS") or os.path.join(
    "/tmp/unitctl-cluster-logs", time.strftime("%Y%m%d-%H%M%S"))
# Test-owned extra clusters: tag, bridge, subnet (distinct from the default).
EXTRA_NETS = [(f"x{i}", f"br-unitctl-x{i}", f"10.231.{80 + i}") for i in range(8)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item (``item.rep_setup``/``rep_call``)."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


def _failed(item: pytest.Item) -> bool:
    return any(getattr(getattr(item, f"rep_{w}", None), "failed", False)
               for w in ("setup", "call"))


# Shown in the terminal summary: log paths of failed tests, boot timings.
_DUMPED: list[str] = []
_TIMINGS: list[str] = []


def _dump(request: pytest.FixtureRequest, c: Cluster) -> None:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
    dest = os.path.join(LOG_ROOT, safe, c.tag or "cluster")
    try:
        c.collect_logs(dest)
        msg = f"cluster logs of failed {request.node.nodeid}: {dest}"
        _DUMPED.append(msg)
    except Exception as e:  # best effort: never mask the real failure
        msg = f"collecting cluster logs failed: {e}"
    request.node.add_report_section("teardown", "cluster logs", msg)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for msg in [*_TIMINGS, *_DUMPED]:
        terminalreporter.write_line(msg)


# The module-scoped ``cluster`` of the module now running.
_MODULE_CLUSTERS: list[Cluster] = []


@pytest.fixture(autouse=True)
def _cluster_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cluster" in request.fixturenames and _MODULE_CLUSTERS and _failed(request.node):
        _dump(request, _MODULE_CLUSTERS[-1])


def _report(request: pytest.FixtureRequest, c: Cluster) -> None:
    t = c.timings
    _TIMINGS.append(f"{request.node.nodeid}: cluster {c.tag or 'default'}: {len(c.machines)} "
                    f"machines up in {t.get('up', 0):.2f}s (rootfs {t.get('rootfs', 0):.2f}s, "
                    f"etcd {t.get('etcd', 0):.2f}s, boot {t.get('boot', 0):.2f}s)")


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """3 booted machines (m1..m3) + 1 etcd member, agents enabled.

    A test module may set ``CLUSTER_KWARGS = {...}`` (Cluster arguments, e.g.
    ``{"start_agent": False}``) to shape its cluster.
    """
    require_nspawn("cluster tests")
    kwargs: dict[str, Any] = {"n_machines": 3, **getattr(request.module, "CLUSTER_KWARGS", {})}
    c = Cluster(**kwargs)
    c.up()
    _report(request, c)
    _MODULE_CLUSTERS.append(c)
    try:
        yield c
    finally:
        _MODULE_CLUSTERS.remove(c)
        c.down()


@pytest.fixture
def cluster_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Cluster]]:
    """``make(n_machines=3, **kwargs) -> Cluster`` (booted; removed after the test)."""
    require_nspawn("cluster tests")
    made: list[Cluster] = []

    def make(n_machines: int = 3, **kwargs: Any) -> Cluster:
        if len(made) >= len(EXTRA_NETS):
            raise RuntimeError("too many clusters in one test")
        tag, bridge, subnet = EXTRA_NETS[len(made)]
        for k, v in (("tag", tag), ("bridge", bridge), ("subnet", subnet)):
            kwargs.setdefault(k, v)
        c = Cluster(n_machines=n_machines, **kwargs)
        made.append(c)
        c.up()
        _report(request, c)
        return c

    try:
        yield make
    finally:
        # runs before the autouse log fixture's teardown: dump here
        if _failed(request.node):
            for c in made:
                _dump(request, c)
        for c in reversed(made):
            c.down()
