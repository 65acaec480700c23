"""Unit-name specifiers (pure): ``%n %N %p %i %%`` expanded for one unit name.

The one place specifiers are expanded, for ``[X-Fleet]`` values
(:mod:`unitctl.xfleet`) and for dependency names (``After=db@%i.service``).
Only the specifiers that depend on the unit's name alone are expanded here;
machine-dependent ones (``%H``, ``%m``) are not known before placement. An
unknown specifier is left as written.
"""

from __future__ import annotations

import re

from unitctl.names import name_without_suffix, unit_instance, unit_prefix

__all__ = ["expand"]

_SPECIFIER = re.compile(r"%([nNpi%])")


def expand(name: str, value: str) -> str:
    """``value`` with the name specifiers of unit ``name`` replaced."""
    table = {
        "n": name,
        "N": name_without_suffix(name),
        "p": unit_prefix(name),
        "i": unit_instance(name),
        "%": "%",
    }
    return _SPECIFIER.sub(lambda m: table[m.group(1)], value)
