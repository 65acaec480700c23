"""Config templates rendered on the machines (confd done right): the pure core.

:mod:`.resource` (the record and its validation), :mod:`.functions` (confd's
functions over a snapshot, the ``min_entries`` guard), :mod:`.render`
(sandboxed jinja2), :mod:`.plan` (where a template applies, allowed
destinations, the per-machine status). The agent's shell is
:mod:`unitctl.agent.templates`; the store is :mod:`unitctl.registry.templates`.
This package imports nothing at load time: import the submodule you need
(the CLI must not pay for jinja2).
"""
