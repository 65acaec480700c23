"""The agent's :class:`~unitctl.agent.ports.UnitManager` over systemd's D-Bus API.

The only package that imports dbus-fast (in :mod:`unitctl.systemd.bus` only).
Its modules, one concept each:

* :mod:`~unitctl.systemd.api` -- systemd's D-Bus names and the object-path escaping (pure);
* :mod:`~unitctl.systemd.bus` -- the connection: calls, error mapping, signals, a lost bus;
* :mod:`~unitctl.systemd.unitdir` -- the owned unit directory: paths, files, content hashes;
* :mod:`~unitctl.systemd.states` -- the pure state tracker fed with signal bodies;
* :mod:`~unitctl.systemd.manager` -- :class:`SystemdUnitManager`, the facade.

The package itself imports nothing, so its pure modules stay pure to import.
"""
