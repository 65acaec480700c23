"""unitctl_testing: throw-away unitctl clusters to test against, shipped with unitctl.

Two kinds of cluster:

* :class:`unitctl_testing.cluster.Cluster`: real systemd machines
  (systemd-nspawn on a host bridge, each running the shipped
  contrib/unitctl-agent.service) and an etcd on the host; root only. Used by
  tests/cluster, the real-systemd contract tests, ``bin/demo`` and
  ``bench/nspawn.py``; also a CLI: ``python -m unitctl_testing up|status|down``.
* :class:`unitctl_testing.inprocess.InProcessCluster`: the real Agent and
  Engine of several machines in one process, over any KV (the in-memory one or
  a real etcd) with the fake UnitManager for systemd. Not a model: the
  pure model of the cluster is :mod:`unitctl.sim`.

Plus :mod:`unitctl_testing.etcd` (throw-away etcd members on free ports) and
:mod:`unitctl_testing.rootfs` (the cached base rootfs of the machines).

Why a package of its own, shipped in the unitctl distribution: the harness is
reusable product code (the demo and the benchmarks drive it), so it must be
importable without ``sys.path`` edits wherever unitctl is installed, and
setuptools extras can add dependencies but not packages. It costs nothing to
ship: everything but ``inprocess`` uses only the standard library (and
unitctl's stdlib-only ``atomicfile``) and the host's tools (systemd-nspawn, ip,
etcd), so ``scripts/setup-cluster.sh`` runs ``python3 -m unitctl_testing.rootfs``
with the system python before any venv exists.

The machines run the source tree this package sits in (a checkout, installed
editable as ``pip install -e .`` does): it is bind-mounted into every machine
at /opt/unitctl/src.
"""
