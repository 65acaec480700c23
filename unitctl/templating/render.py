"""Render one template resource over one snapshot (pure: sandboxed jinja2).

The environment is jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment`
(a template cannot reach Python internals), with ``StrictUndefined`` (a
misspelt name is an error, never an empty string in a config file),
autoescape off (config files are not HTML) and the trailing newline kept.
The globals are confd's functions (:mod:`.functions`). The outcome is one of
three: the bytes to write, held back by a ``min_entries`` guard, or failed
with a one-line reason; nothing here raises for a bad template.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2
import jinja2.sandbox

from unitctl.templating.functions import Functions, HeldBack, Snapshot
from unitctl.templating.resource import TemplateResource


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a render produced: ``data`` to write, or why not (``held`` / ``error``)."""

    data: bytes = b""
    held: str = ""
    error: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.held and not self.error


def environment() -> jinja2.sandbox.SandboxedEnvironment:
    return jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def check_syntax(text: str) -> str:
    """"" when ``text`` compiles, else the error with its line (submit-time check)."""
    try:
        environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return ""


def render(res: TemplateResource, snapshot: Snapshot) -> Rendered:
    """Render ``res`` over ``snapshot``."""
    functions = Functions(snapshot, res.keys, res.units, res.min_entries)
    env = environment()
    env.globals.update(functions.table())
    try:
        text = env.from_string(res.template).render()
    except HeldBack as exc:
        return Rendered(held=str(exc), counts=dict(functions.counts))
    except jinja2.TemplateSyntaxError as exc:
        return Rendered(error=f"line {exc.lineno}: {exc.message}")
    except Exception as exc:  # the template is user input: any error is its failure
        return Rendered(error=f"{type(exc).__name__}: {exc}", counts=dict(functions.counts))
    return Rendered(data=text.encode(), counts=dict(functions.counts))
