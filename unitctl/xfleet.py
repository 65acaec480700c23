"""The ``[X-Fleet]`` section: placement requirements of a unit (pure, no I/O).

Also the relations between two units' requirements (Conflicts, Replaces;
patterns are Go globs, :mod:`unitctl.glob`). ``parse_metadata`` and
``format_metadata`` are re-exported from :mod:`unitctl.metadata`.

Semantics follow fleet (``job/job.go``, ``unit/unit.go``, ``api/units.go``):

* a value that starts *and* ends with ``"`` holds several items separated by
  spaces outside quotes (``MachineMetadata="a=1" "b=2"``); quotes are removed and
  empty items dropped; ``Key=""`` is an empty assignment;
* repeated keys accumulate; an empty assignment (``Key=``) resets the list;
* the name specifiers of :mod:`unitctl.specifiers` (fleet's ``%n %N %p %i``,
  systemd's ``%P %I %f %j %J``, and ``%%``) are expanded in every value; a
  machine-dependent one (``%H``, ``%m`` ...) is refused by :func:`validate`;
* a template's values that change with the instance (``%i`` ...) are checked
  for each instance, when it is submitted, loaded or started, not for the
  template itself (fleet's behaviour);
* legacy ``X-Condition*`` / ``X-Conflicts`` names are merged into the modern ones.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping

from unitctl.errors import InvalidOptionsError, InvalidUnitNameError
from unitctl.glob import compile_glob, matches_glob
from unitctl.graphs import shortest_cycle
from unitctl.metadata import format_metadata, parse_metadata
from unitctl.model import Requirements
from unitctl.names import is_template, validate_name
from unitctl.resources import OPTIONS as RESOURCE_OPTIONS
from unitctl.resources import problems as resource_problems
from unitctl.specifiers import expand, instance_dependent, machine_specifiers
from unitctl.unitfile import UnitFile
from unitctl.volumes import MOVE_OPTION, move_problems, parse_move, store_needs
from unitctl.volumes import OPTION as VOLUME_OPTION
from unitctl.volumes import problems as volume_problems

__all__ = [
    "LEGACY",
    "OPTIONS",
    "SECTION",
    "conflicts_between",
    "format_metadata",
    "matches_glob",
    "option_values",
    "parse_metadata",
    "replace_cycle",
    "replaces",
    "requirements",
    "validate",
]

#: The unit-file section fleet reads.
SECTION = "X-Fleet"

#: The modern option names.
OPTIONS: tuple[str, ...] = (
    "Conflicts",
    "Global",
    "MachineID",
    "MachineMetadata",
    "MachineOf",
    "Replaces",
)

#: Deprecated (fleet < 0.8) option names -> the modern option they feed.
LEGACY: Mapping[str, str] = {
    "X-ConditionMachineID": "MachineID",
    "X-ConditionMachineBootID": "MachineID",
    "X-ConditionMachineOf": "MachineOf",
    "X-ConditionMachineMetadata": "MachineMetadata",
    "X-Conflicts": "Conflicts",
}

#: fleet's ``isTruthyValue`` (job/job.go), case-insensitive.
_TRUTHY = frozenset({"true", "yes", "1", "on", "t"})
#: Their negations. fleet read any other value as false (``Global=maybe`` too);
#: :func:`validate` refuses every value that is in neither set.
_FALSY = frozenset({"false", "no", "0", "off", "f"})
_MACHINE_ID = re.compile(r"[0-9a-f]{8}|[0-9a-f]{32}")


# -- values -----------------------------------------------------------------


def _split_quoted(value: str) -> list[str]:
    """fleet's parseMultivalueLine: split on spaces outside quotes, drop quotes."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item]


def _raw_values(unit: UnitFile, key: str) -> list[str]:
    """The items of ``[X-Fleet] key`` as written (quotes split, resets applied)."""
    result: list[str] = []
    for option in unit.options:
        if option.section != SECTION or option.name != key:
            continue
        raw = option.value
        if raw in ("", '""'):
            result.clear()
            continue
        result.extend(_split_quoted(raw) if len(raw) >= 2 and raw[0] == raw[-1] == '"'
                      else [raw])
    return result


def option_values(name: str, unit: UnitFile, key: str) -> list[str]:
    """The items of ``[X-Fleet] key`` for unit ``name``, specifiers expanded."""
    return [expand(name, item) for item in _raw_values(unit, key)]


def _aliases(key: str) -> list[str]:
    """A modern option followed by the legacy names that feed it."""
    return [key, *(legacy for legacy, modern in LEGACY.items()
                   if modern == key and legacy != "X-ConditionMachineBootID")]


def _merged(name: str, unit: UnitFile, key: str) -> list[str]:
    """Values of a modern option followed by those of its legacy aliases."""
    return [value for alias in _aliases(key) for value in option_values(name, unit, alias)]


def _checkable(name: str, unit: UnitFile, key: str, merged: bool = True) -> list[str]:
    """The expanded items of ``key`` that can be checked for unit ``name``: all of
    them for a unit, only those that do not change with the instance for a template
    (each instance is checked with its own name when it is submitted or started)."""
    template = is_template(name)
    return [expand(name, raw) for alias in (_aliases(key) if merged else [key])
            for raw in _raw_values(unit, alias)
            if not (template and instance_dependent(raw))]


def _raw_machine_id(unit: UnitFile) -> str | None:
    """The MachineID value as written (the legacy names only when it is absent)."""
    for key in ("MachineID", "X-ConditionMachineID", "X-ConditionMachineBootID"):
        values = _raw_values(unit, key)
        if values:
            return values[-1]
    return None


def _machine_id(name: str, unit: UnitFile) -> str | None:
    raw = _raw_machine_id(unit)
    return None if raw is None else expand(name, raw).lower()


def _metadata_pair(item: str) -> tuple[str, str] | None:
    key, sep, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        return None
    return key, value


def requirements(name: str, unit: UnitFile) -> Requirements:
    """The placement rules of unit ``name`` (malformed metadata is skipped)."""
    metadata: dict[str, set[str]] = {}
    for item in _merged(name, unit, "MachineMetadata"):
        pair = _metadata_pair(item)
        if pair is not None:
            metadata.setdefault(pair[0], set()).add(pair[1])
    conflicts = [p for item in _merged(name, unit, "Conflicts") for p in item.split()]
    global_values = option_values(name, unit, "Global")
    return Requirements(
        machine_id=_machine_id(name, unit),
        metadata={k: frozenset(v) for k, v in metadata.items()},
        machine_of=tuple(_merged(name, unit, "MachineOf")),
        conflicts=tuple(conflicts),
        replaces=tuple(option_values(name, unit, "Replaces")),
        is_global=bool(global_values) and global_values[-1].lower() in _TRUTHY,
        stores=store_needs(option_values(name, unit, VOLUME_OPTION)),
        moves_without_volume=_moves_without_volume(name, unit),
    )


def _moves_without_volume(name: str, unit: UnitFile) -> bool:
    """``MoveWithoutVolume=`` (a bad value reads as no: :func:`validate` names it)."""
    try:
        return parse_move(option_values(name, unit, MOVE_OPTION))
    except ValueError:
        return False


# -- validation -------------------------------------------------------------


def validate(name: str, unit: UnitFile) -> list[str]:
    """fleet's ValidateName + ValidateOptions + ValidateRequirements.

    Returns:
        Warnings: unknown ``[X-Fleet]`` keys and deprecated legacy names.

    Raises:
        InvalidUnitNameError: ``name`` itself is not a valid unit name.
        InvalidOptionsError: ``"<name>: problem; problem"`` listing every problem.
    """
    validate_name(name)
    req = requirements(name, unit)
    problems = [*_combination_problems(req), *_specifier_problems(unit),
                *_value_problems(name, unit, req), *_machine_of_problems(name, unit),
                *resource_problems(name, unit),
                *volume_problems(option_values(name, unit, VOLUME_OPTION)),
                *move_problems(option_values(name, unit, MOVE_OPTION))]
    if problems:
        raise InvalidOptionsError(f"{name}: " + "; ".join(problems))
    return _option_warnings(unit)


def _combination_problems(req: Requirements) -> list[str]:
    """Options fleet refuses to combine."""
    combos: list[tuple[str, bool, str, bool]] = [
        ("MachineID", req.machine_id is not None, "MachineOf", bool(req.machine_of)),
        ("MachineID", req.machine_id is not None, "Conflicts", bool(req.conflicts)),
        ("MachineID", req.machine_id is not None, "Global", req.is_global),
        ("MachineID", req.machine_id is not None, "Replaces", bool(req.replaces)),
        ("MachineOf", bool(req.machine_of), "Global", req.is_global),
        ("Global", req.is_global, "Replaces", bool(req.replaces)),
        ("Conflicts", bool(req.conflicts), "Replaces", bool(req.replaces)),
        ("Global", req.is_global, "a shared Volume=", bool(req.stores)),
    ]
    return [f"{first} cannot be combined with {second}"
            for first, has_first, second, has_second in combos if has_first and has_second]


def _value_problems(name: str, unit: UnitFile, req: Requirements) -> list[str]:
    """Malformed values: the machine id, metadata pairs, glob patterns, booleans
    (of a template, only the values that do not change with the instance)."""
    problems: list[str] = [
        f"Global {value!r} is not a boolean (true/yes/1/on/t or false/no/0/off/f)"
        for value in _checkable(name, unit, "Global", merged=False)
        if value.lower() not in _TRUTHY | _FALSY]
    raw_id = _raw_machine_id(unit)
    if raw_id is not None and not (is_template(name) and instance_dependent(raw_id)):
        machine_id = expand(name, raw_id).lower()
        if not _MACHINE_ID.fullmatch(machine_id):
            problems.append(
                f"MachineID {machine_id!r} is not a machine id (8 or 32 hex characters)")
    for item in _checkable(name, unit, "MachineMetadata"):
        if _metadata_pair(item) is None:
            problems.append(f"MachineMetadata {item!r} is not of the form key=value")
    for option, patterns in _checkable_globs(name, unit):
        for pattern in patterns:
            if compile_glob(pattern) is None:
                problems.append(f"{option} pattern {pattern!r} is malformed")
    return problems


def _checkable_globs(name: str, unit: UnitFile) -> list[tuple[str, list[str]]]:
    conflicts = [p for item in _checkable(name, unit, "Conflicts") for p in item.split()]
    return [("Conflicts", conflicts), ("Replaces", _checkable(name, unit, "Replaces", False))]


def _specifier_problems(unit: UnitFile) -> list[str]:
    """Values that use a machine-dependent specifier (``%H`` ...): placement chooses
    the machine, so a rule cannot depend on it."""
    return [f"{option.name} {option.value!r} uses {', '.join(found)}, which depends on the "
            f"machine the unit runs on and is not known when it is placed (to choose a "
            f"machine by name, make it the instance: MachineMetadata=hostname=%i)"
            for option in unit.options
            if option.section == SECTION and (found := machine_specifiers(option.value))]


def _machine_of_problems(name: str, unit: UnitFile) -> list[str]:
    """MachineOf peers that are invalid, the unit itself, or excluded by its own globs."""
    problems: list[str] = []
    globs = _checkable_globs(name, unit)
    for peer in _checkable(name, unit, "MachineOf"):
        if peer == name:
            problems.append(f"MachineOf {peer!r} names the unit itself")
        try:
            validate_name(peer)
        except InvalidUnitNameError as exc:
            problems.append(f"MachineOf: {exc}")
        for option, patterns in globs:
            problems += [f"unresolvable requirements: MachineOf {peer!r} matches "
                         f"{option} pattern {pattern!r}"
                         for pattern in patterns if matches_glob(pattern, peer)]
    return problems


def _option_warnings(unit: UnitFile) -> list[str]:
    """One warning per deprecated or unknown ``[X-Fleet]`` key, in order of appearance."""
    warnings: list[str] = []
    seen: set[str] = set()
    for entry in unit.options:
        key = entry.name
        if entry.section != SECTION or key in seen or key in OPTIONS \
                or key in RESOURCE_OPTIONS or key in (VOLUME_OPTION, MOVE_OPTION):
            continue
        seen.add(key)
        if key in LEGACY:
            warnings.append(f"{key} is deprecated, use {LEGACY[key]}")
            continue
        suggestion = _suggest(key)
        hint = f" (did you mean {suggestion}?)" if suggestion else ""
        warnings.append(f"unknown [{SECTION}] option {key!r}{hint}")
    return warnings


def _suggest(key: str) -> str | None:
    """The modern option ``key`` is probably a misspelling of, if any."""
    import difflib  # by the first misspelling only: an idle agent never loads it

    lowered = {option.lower(): option for option in OPTIONS}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1)
    return lowered[close[0]] if close else None


# -- relations between units --------------------------------------------


def _any_match(patterns: tuple[str, ...], name: str) -> bool:
    return any(matches_glob(p, name) for p in patterns)


def conflicts_between(a_name: str, a_req: Requirements, b_name: str, b_req: Requirements) -> bool:
    """Whether a and b may not share a machine (either's Conflicts match the other)."""
    if a_name == b_name:
        return False
    return _any_match(a_req.conflicts, b_name) or _any_match(b_req.conflicts, a_name)


def replaces(a_name: str, a_req: Requirements, b_name: str, b_req: Requirements) -> bool:
    """Whether a evicts b: a's Replaces match b and b's do not match a."""
    if a_name == b_name:
        return False
    return _any_match(a_req.replaces, b_name) and not _any_match(b_req.replaces, a_name)


def _replace_targets(name: str, req: Requirements, names: list[str]) -> list[str]:
    if req.is_global or not req.replaces:
        return []
    return [other for other in names if other != name and _any_match(req.replaces, other)]


def replace_cycle(units: Mapping[str, Requirements],
                  new: Collection[str]) -> list[tuple[str, str]] | None:
    """The shortest circular Replaces through a unit of ``new``, or None.

    Args:
        units: every unit that can run (templates left out) -> its requirements,
            the submitted ones with their new text; global units never replace.
        new: the submitted names; a cycle among stored units only is not reported
            (the scheduler resolves it: :mod:`unitctl.scheduler.rules`).

    Returns:
        The cycle as ``(unit, the Replaces pattern that matches the next unit)``
        steps, starting at the first submitted unit (by name) on a cycle.
    """
    names = sorted(n for n, req in units.items() if not req.is_global)
    graph = {n: _replace_targets(n, units[n], names) for n in names}
    for start in sorted(set(new) & set(names)):
        path = shortest_cycle(graph, start)
        if path is not None:
            return [(unit, next(p for p in units[unit].replaces if matches_glob(p, nxt)))
                    for unit, nxt in itertools.pairwise(path)]
    return None
