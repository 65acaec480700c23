"""Which names are DNS names in the cluster domain: labels and the domain itself. Pure.

Kept apart from :mod:`.dnszone` (which builds answers with dnspython) so that the
agent checks its ``dns_domain`` at start and binds its DNS sockets without loading
dnspython: the library is imported by the first query (:mod:`.dns`).

A label is letters, digits, ``-`` and ``_`` (lower case, at most 63, not starting
or ending with ``-``); :func:`parse_domain_text` turns ``unitctl``, ``unitctl.`` or
``Cluster.Example`` into the absolute, lower-case ``cluster.example.`` (ValueError
otherwise); :func:`service_labels` gives a service's owner names as labels.
"""

from __future__ import annotations

import re

LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def parse_domain_text(text: str) -> str:
    """``unitctl`` or ``unitctl.`` or ``cluster.example.`` → ``"cluster.example."`` (ValueError)."""
    labels = text.strip().strip(".").lower().split(".")
    if not all(LABEL.match(label) for label in labels):
        raise ValueError(f"{text!r} is not a DNS domain such as unitctl or cluster.example")
    return ".".join(labels) + "."


def service_labels(service: str) -> tuple[tuple[str, ...], ...]:
    """The owner names (as labels, most specific first) of a service: ``testdb`` →
    ``(("testdb",),)``; ``web@1`` → ``(("1", "web"), ("web",))``; () when not DNS-safe."""
    name = service.lower()
    template, at, instance = name.partition("@")
    if not LABEL.match(template) or (at and not LABEL.match(instance)):
        return ()
    return ((instance, template), (template,)) if at else ((template,),)
