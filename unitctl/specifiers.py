"""Unit-name specifiers (pure): the one expansion of ``%n %i ...`` for one unit name.

The one place specifiers are expanded, for ``[X-Fleet]`` values
(:mod:`unitctl.xfleet`) and for dependency names (``After=db@%i.service``).

Only the specifiers that depend on the unit's name alone are expanded here
(:data:`NAME_SPECIFIERS`): fleet's ``unitPrintf`` (``%n %N %p %i``) and
systemd's other name specifiers (``%P %I %f %j %J``, the unescaped forms), and
``%%``. Machine-dependent ones (``%H`` the host name, ``%m`` the machine id,
``%b``, ``%l`` ...) belong to the machine the unit runs on, which placement
has not chosen yet; :func:`machine_specifiers` finds them, so that
``[X-Fleet]`` values can refuse them (systemd still expands them in the unit's
other sections on its machine). :func:`expand` leaves them as written, as
fleet did.

Of the name specifiers, :data:`INSTANCE_SPECIFIERS` change with the instance:
a template's value that uses one is only checked for each instance.
"""

from __future__ import annotations

import re

from unitctl.names import name_without_suffix, unit_instance, unit_prefix

__all__ = [
    "INSTANCE_SPECIFIERS",
    "NAME_SPECIFIERS",
    "expand",
    "instance_dependent",
    "machine_specifiers",
]

#: Specifiers derived from the unit's name (and ``%%``), expanded by :func:`expand`.
NAME_SPECIFIERS = frozenset("nNpPiIfjJ%")
#: The name specifiers whose value differs between instances of one template.
INSTANCE_SPECIFIERS = frozenset("nNiIf")

_SPECIFIER = re.compile(r"%(.)", re.DOTALL)
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape(text: str) -> str:
    """systemd's unit-name unescaping: ``-`` is ``/``, ``\\xNN`` is that byte."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text.replace("-", "/"))


def _table(name: str) -> dict[str, str]:
    prefix, instance = unit_prefix(name), unit_instance(name)
    final = prefix.rpartition("-")[2]
    return {
        "n": name,
        "N": name_without_suffix(name),
        "p": prefix,
        "P": unescape(prefix),
        "i": instance,
        "I": unescape(instance),
        "f": "/" + unescape(instance or prefix).lstrip("/"),
        "j": final,
        "J": unescape(final),
        "%": "%",
    }


def expand(name: str, value: str) -> str:
    """``value`` with the name specifiers of unit ``name`` replaced (others kept)."""
    if "%" not in value:
        return value
    table = _table(name)
    return _SPECIFIER.sub(lambda m: table.get(m.group(1), m.group(0)), value)


def _used(value: str) -> list[str]:
    return [m.group(1) for m in _SPECIFIER.finditer(value)]


def instance_dependent(value: str) -> bool:
    """Tell whether ``value`` uses a specifier that differs between instances."""
    return any(spec in INSTANCE_SPECIFIERS for spec in _used(value))


def machine_specifiers(value: str) -> list[str]:
    """The specifiers of ``value`` that :func:`expand` does not know (``%H``, ``%m`` ...)."""
    return list(dict.fromkeys(f"%{spec}" for spec in _used(value)
                              if spec not in NAME_SPECIFIERS))
