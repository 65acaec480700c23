"""The leader-elected engine: places units on machines.

Its modules, one concept each: :mod:`~unitctl.engine.engine` (the election and the
rounds), :mod:`~unitctl.engine.mirror` (the live copy of the keys), and the pure
:mod:`~unitctl.engine.view`, :mod:`~unitctl.engine.planned` and
:mod:`~unitctl.engine.commit`. The package itself imports nothing, so its pure
modules stay pure to import.
"""
