"""unitctl: run systemd units across a cluster of Linux machines.

The package is split into a pure core (``unitfile``, ``names``, ``xfleet``,
``model``, ``scheduler``, ``agent.reconcile``) and adapters at the edges
(``registry.etcd`` for etcd, ``systemd`` for D-Bus, ``docker`` for containers).
"""

__version__ = "0.1.0"
