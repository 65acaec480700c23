"""Generate fleet service units that run one container through ``docker-run``.

Pure: :mod:`~unitctl.generate.spec` reads and validates a spec (the schema,
with the per-value validators of :mod:`~unitctl.generate.values`);
:mod:`~unitctl.generate.render` renders it with the sandboxed Jinja template
``unitctl/templates/service.j2``. Nothing here touches the file system except
the template loader; writing files is the CLI's job (:mod:`unitctl.cli.generate`).
Of the docker package only the pure :mod:`unitctl.docker.argv` is used.
"""

from __future__ import annotations

from unitctl.generate.render import (
    docker_run_argv,
    generate_units,
    render_context,
    render_service,
    systemd_quote,
)
from unitctl.generate.spec import (
    DEFAULT_RESTART,
    ENGINES,
    RESTART_VALUES,
    SPEC_KEYS,
    ServiceSpec,
    parse_spec,
    parse_spec_text,
)
from unitctl.generate.values import (
    DEFAULT_DOCKER_RUN,
    DEFAULT_TIMEOUT_START,
    MIN_MEMORY,
    UNIT_SUFFIXES,
    Link,
    Volume,
    parse_cpu,
    parse_link,
    parse_mem,
    parse_name,
    parse_spec_port,
    parse_unit_ref,
    parse_volume,
)

__all__ = [
    "DEFAULT_DOCKER_RUN", "DEFAULT_RESTART", "DEFAULT_TIMEOUT_START", "ENGINES", "MIN_MEMORY",
    "RESTART_VALUES", "SPEC_KEYS", "UNIT_SUFFIXES", "Link", "ServiceSpec", "Volume",
    "docker_run_argv", "generate_units", "parse_cpu", "parse_link", "parse_mem", "parse_name",
    "parse_spec", "parse_spec_port", "parse_spec_text", "parse_unit_ref", "parse_volume",
    "render_context", "render_service", "systemd_quote",
]  # fmt: skip
