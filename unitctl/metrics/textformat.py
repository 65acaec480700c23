"""The Prometheus text exposition format of metric families. Pure.

:func:`render` writes, for each :class:`~unitctl.metrics.instruments.Family`,
``# HELP`` (backslash and newline escaped), ``# TYPE`` and one line per sample:
``name{label="value",...} value``, label names sorted, label values with
backslash, newline and double quote escaped, values as Go writes floats
(``+Inf``, ``NaN``, ``1e+09``). A counter's HELP and TYPE name it
``<name>_total``, as prometheus_client does: the page reads the same as the
one prometheus_client's ``generate_latest`` wrote before, under the same
content type (:data:`CONTENT_TYPE`, prometheus_client 0.26's ``CONTENT_TYPE_LATEST``).
"""

from __future__ import annotations

from collections.abc import Iterable

from unitctl.metrics.instruments import Family, Sample, format_value

CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def sample_line(sample: Sample) -> str:
    labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(sample.labels.items()))
    braces = f"{{{labels}}}" if labels else ""
    return f"{sample.name}{braces} {format_value(sample.value)}\n"


def render(families: Iterable[Family]) -> bytes:
    """The whole page of ``families``, UTF-8."""
    out: list[str] = []
    for fam in families:
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        out.append(f"# HELP {name} {_escape_help(fam.documentation)}\n")
        out.append(f"# TYPE {name} {fam.type}\n")
        out.extend(sample_line(s) for s in fam.samples)
    return "".join(out).encode("utf-8")
