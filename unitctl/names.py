"""Unit names: fleet's ``ValidateName`` and template/instance helpers (pure, no I/O).

A unit name is ``prefix.suffix`` or, for templates and their instances,
``prefix@.suffix`` / ``prefix@instance.suffix``.

:func:`validate_name` refuses every name fleet refused and every name the
systemd of a machine would refuse, so a name the CLI accepts can always be
written, linked and started: at most 255 characters (systemd's
``UNIT_NAME_MAX`` is 256 bytes with the NUL, and 255 is also the file-name
limit of the unit directory), and only the unit types systemd still has
(``busname`` and ``snapshot`` are gone since systemd 230 and 228).
"""

from __future__ import annotations

import re

from unitctl.errors import InvalidUnitNameError

__all__ = [
    "MAX_NAME_LENGTH",
    "REMOVED_TYPES",
    "TEMPLATE_TYPES",
    "UNIT_TYPES",
    "is_instance",
    "is_template",
    "mangle",
    "name_without_suffix",
    "template_of",
    "unit_instance",
    "unit_prefix",
    "unit_suffix",
    "validate_name",
]

#: The longest unit name systemd accepts (``UNIT_NAME_MAX`` - 1; fleet said 256).
MAX_NAME_LENGTH = 255

#: Every unit type (suffix) fleet knew; :func:`mangle` keeps a name typed with one.
UNIT_TYPES = frozenset(
    {
        "automount", "busname", "device", "mount", "path", "scope", "service",
        "slice", "snapshot", "socket", "swap", "target", "timer",
    }
)

#: Unit types systemd no longer has: a name with one can never be loaded.
REMOVED_TYPES = frozenset({"busname", "snapshot"})

#: The unit types that may be templates (``foo@.service``) or instances.
TEMPLATE_TYPES = frozenset({"path", "service", "socket", "target", "timer"})

_INVALID_CHAR = re.compile(r"[^a-zA-Z0-9:_.@\-\\]")


def _fail(name: str, reason: str) -> InvalidUnitNameError:
    return InvalidUnitNameError(f"invalid unit name {name!r}: {reason}")


def validate_name(name: str) -> None:
    """Check ``name`` against fleet's rules and systemd's.

    Raises:
        InvalidUnitNameError: with the reason and the offending name.
    """
    if not name:
        raise InvalidUnitNameError("invalid unit name '': it is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise _fail(name, f"longer than {MAX_NAME_LENGTH} characters ({len(name)})")
    if "/" in name:
        raise _fail(name, "it must not contain '/'")
    if ".." in name:
        raise _fail(name, "it must not contain '..'")
    bad = _INVALID_CHAR.search(name)
    if bad is not None:
        raise _fail(name, f"invalid character {bad.group()!r}")
    if name[0] in "@.":
        raise _fail(name, f"it must not start with {name[0]!r}")
    dot = name.rfind(".")
    if dot == -1:
        raise _fail(name, "it has no unit type suffix (e.g. '.service')")
    suffix = name[dot + 1 :]
    if not suffix:
        raise _fail(name, "it must not end with '.'")
    if suffix not in UNIT_TYPES:
        raise _fail(name, f"unknown unit type {suffix!r}")
    if suffix in REMOVED_TYPES:
        raise _fail(name, f"systemd no longer has the unit type {suffix!r}")
    stem = name[:dot]
    if "@" in stem:
        prefix = stem.partition("@")[0]
        if not prefix:
            raise _fail(name, "empty prefix before '@'")
        if suffix not in TEMPLATE_TYPES:
            raise _fail(name, f"unit type {suffix!r} cannot be a template or instance")


def name_without_suffix(name: str) -> str:
    """``foo@bar.service`` -> ``foo@bar``; a name without ``.`` is returned as is."""
    dot = name.rfind(".")
    return name if dot == -1 else name[:dot]


def unit_suffix(name: str) -> str:
    """``foo@bar.service`` -> ``service``; ``""`` without a ``.``."""
    dot = name.rfind(".")
    return "" if dot == -1 else name[dot + 1 :]


def unit_prefix(name: str) -> str:
    """``foo@bar.service`` -> ``foo``; ``foo.service`` -> ``foo``."""
    return name_without_suffix(name).partition("@")[0]


def unit_instance(name: str) -> str:
    """``foo@bar.service`` -> ``bar``; ``""`` for templates and plain units."""
    return name_without_suffix(name).partition("@")[2]


def is_template(name: str) -> bool:
    """Whether ``name`` is a template such as ``foo@.service``."""
    stem = name_without_suffix(name)
    return "@" in stem and stem.partition("@")[2] == ""


def is_instance(name: str) -> bool:
    """Whether ``name`` is a template instance such as ``foo@bar.service``."""
    return unit_instance(name) != ""


def template_of(instance: str) -> str:
    """``foo@bar.service`` -> ``foo@.service``.

    Raises:
        InvalidUnitNameError: ``instance`` is not an instance name.
    """
    if not is_instance(instance):
        raise _fail(instance, "it is not a template instance (prefix@instance.type)")
    return f"{unit_prefix(instance)}@.{unit_suffix(instance)}"


def _go_path_base(path: str) -> str:
    if path == "":
        return "."
    path = path.rstrip("/")
    if path == "":
        return "/"
    return path.rpartition("/")[2]


def mangle(arg: str) -> str:
    """fleetctl's ``unitNameMangle``: basename, plus ``.service`` unless typed.

    No validation is done: ``mangle("web")`` is ``web.service``,
    ``mangle("./units/db.socket")`` is ``db.socket``.
    """
    base = _go_path_base(arg)
    dot = base.rfind(".")
    if dot != -1 and base[dot + 1 :] in UNIT_TYPES:
        return base
    return base + ".service"
