"""Reading a Clusterfile from disk: its text and the files it names (file system).

:func:`load_clusterfile` reads the file, checks it (:mod:`.spec`) and renders
it (:mod:`.render`), reading the ``path:`` sources relative to the
Clusterfile's directory. A file is read as UTF-8 text of at most
:data:`MAX_FILE_BYTES`; any problem is a UsageError naming the file, raised
before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from unitctl.bundle.render import Rendered, render_bundle
from unitctl.bundle.spec import RESERVED_ENV, BundleSpec, EnvValue, parse_bundle
from unitctl.errors import UsageError

#: The largest Clusterfile or source file read (a unit body is at most 1 MiB too).
MAX_FILE_BYTES = 1 << 20


def read_text(path: Path, shown: str) -> str:
    """The UTF-8 text of ``path``; UsageError naming ``shown`` when it cannot be read."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{shown} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{shown} is not UTF-8 text: {exc}") from None


def parse_env(pairs: tuple[str, ...] | list[str]) -> dict[str, EnvValue]:
    """``-e KEY=VALUE`` flags as env values (strings)."""
    env: dict[str, EnvValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier() or key in RESERVED_ENV:
            raise UsageError(f"-e {pair!r}: expected KEY=VALUE, KEY an identifier other "
                             f"than {', '.join(sorted(RESERVED_ENV))}")
        env[key] = value
    return env


def load_spec(path: str) -> BundleSpec:
    """The Clusterfile at ``path``, checked (not rendered)."""
    return parse_bundle(read_text(Path(path), path), path)


def load_clusterfile(path: str, env: Mapping[str, EnvValue] | None = None) -> Rendered:
    """The Clusterfile at ``path`` checked and rendered into its desired units."""
    spec = load_spec(path)
    base = Path(path).parent

    def read(rel: str) -> str:
        return read_text(base / rel, rel)

    return render_bundle(spec, read, env)
