"""What the engine reads from stored unit bodies: each unit's requirements and its
failure policy (pure).

A body is parsed once however many units share it: 10,000 instances of one
template share one body, and the engine parsed it twice per instance (once for
the requirements, once for the policy). What depends on the unit's name (its
``[X-Fleet]`` rules, whose specifiers expand per instance) is still computed
per unit, from the one parse.
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.errors import InvalidUnitError
from unitctl.failover import DEFAULT_POLICY, FailurePolicy
from unitctl.failover import parse_policy as parse_failure_policy
from unitctl.model import Needs, Requirements
from unitctl.record import replace
from unitctl.resources import needs
from unitctl.unitfile import UnitFile
from unitctl.xfleet import requirements


class ParsedBodies:
    """Bodies by hash, each parsed on first use and kept for the object's life."""

    def __init__(self, bodies: Mapping[str, str]) -> None:
        self._bodies = bodies
        self._units: dict[str, UnitFile | str] = {}
        self._needs: dict[str, Needs | str] = {}
        self._policies: dict[str, FailurePolicy] = {}

    def unit(self, sha: str) -> UnitFile | str:
        """Body ``sha`` parsed, or a one-line error."""
        if sha not in self._units:
            body = self._bodies.get(sha)
            try:
                self._units[sha] = "body not found" if body is None else UnitFile.parse(body)
            except InvalidUnitError as exc:
                self._units[sha] = str(exc)
        return self._units[sha]

    def _needs_of(self, sha: str, unit: UnitFile) -> Needs | str:
        if sha not in self._needs:
            try:
                self._needs[sha] = needs(unit)
            except InvalidUnitError as exc:
                self._needs[sha] = str(exc)
        return self._needs[sha]

    def requirements(self, name: str, sha: str) -> Requirements | str:
        """The requirements of unit ``name`` with body ``sha``, resource needs included,
        or a one-line error."""
        unit = self.unit(sha)
        if isinstance(unit, str):
            return unit
        try:
            rules = requirements(name, unit)
        except InvalidUnitError as exc:
            return str(exc)
        unit_needs = self._needs_of(sha, unit)
        return unit_needs if isinstance(unit_needs, str) else replace(rules, needs=unit_needs)

    def policy(self, sha: str) -> FailurePolicy:
        """The failure policy of body ``sha`` (the default when it does not parse)."""
        if sha not in self._policies:
            unit = self.unit(sha)
            try:
                self._policies[sha] = (DEFAULT_POLICY if isinstance(unit, str)
                                       else parse_failure_policy(unit))
            except InvalidUnitError:
                self._policies[sha] = DEFAULT_POLICY
        return self._policies[sha]


def parse_requirements(name: str, body: str | None) -> Requirements | str:
    """Requirements of a stored body, its resource needs included, or a one-line error."""
    return ParsedBodies({} if body is None else {"": body}).requirements(name, "")


def parse_policy(body: str | None) -> FailurePolicy:
    """The failure policy of a stored body (the default when it does not parse)."""
    return ParsedBodies({} if body is None else {"": body}).policy("")
