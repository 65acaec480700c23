"""Counters, gauges and histograms, and the registry a scrape reads: the agent's own.

A small, dependency-free subset of the Prometheus client model, so that an agent
serving ``/metrics`` does not load prometheus_client (whose package import also
loads its HTTP exposition: http.server, urllib, email; ~2 MiB resident):

- :class:`Counter`, :class:`Gauge`, :class:`Histogram`: named metrics, with label
  names or without; ``.labels(*values)`` gives the child of one label set. A
  counter's samples are ``<name>_total`` and ``<name>_created``; a histogram's
  ``_bucket{le}`` (cumulative, ``+Inf`` last), ``_count``, ``_sum``, ``_created``
  (the samples prometheus_client writes for the same metrics).
- :class:`Family`: one metric's samples made at scrape time (what a collector yields).
- :class:`Registry`: metrics and collectors, in registration order;
  :meth:`Registry.collect` is every family, :meth:`Registry.get_sample_value` one value.

Pure, and not thread-safe on purpose: an agent updates and scrapes its metrics on
its one event loop (MeteredKV, the engine's round observer, the ``/metrics``
server all run there). The text format is :mod:`unitctl.metrics.textformat`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(slots=True)
class Family:
    """One metric at scrape time: ``type`` is counter, gauge or histogram."""

    name: str
    documentation: str
    type: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, suffix: str, labels: dict[str, str], value: float) -> None:
        self.samples.append(Sample(self.name + suffix, labels, float(value)))


def gauge_family(name: str, documentation: str, value: float | None = None,
                 labels: Sequence[str] = ()) -> LabelledFamily:
    """A gauge family: one unlabelled ``value``, or label sets added with ``add_metric``."""
    fam = LabelledFamily(name, documentation, "gauge", labelnames=tuple(labels))
    if value is not None:
        fam.add("", {}, value)
    return fam


def counter_family(name: str, documentation: str, labels: Sequence[str] = ()) -> LabelledFamily:
    """A counter family (samples ``<name>_total``), label sets added with ``add_metric``."""
    return LabelledFamily(name, documentation, "counter", labelnames=tuple(labels),
                          suffix="_total")


@dataclass(slots=True)
class LabelledFamily(Family):
    labelnames: tuple[str, ...] = ()
    suffix: str = ""

    def add_metric(self, values: Sequence[str], value: float) -> None:
        self.add(self.suffix, dict(zip(self.labelnames, values, strict=True)), value)


class Collector(Protocol):
    """Anything whose families are read at scrape time."""

    def collect(self) -> Iterable[Family]: ...


class _Child:
    """The value(s) of one label set of a metric."""

    def __init__(self, buckets: Sequence[float] = ()) -> None:
        self.value = 0.0
        self.created = time.time()
        self.bounds = tuple(buckets)
        self.counts = [0.0] * len(self.bounds)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def observe(self, amount: float) -> None:
        self.value += amount
        for i, bound in enumerate(self.bounds):
            if amount <= bound:
                self.counts[i] += 1
                break


class _Metric:
    """A named metric with its children, one per label set (``()`` when unlabelled)."""

    type = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 registry: Registry | None = None, buckets: Sequence[float] = ()) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.buckets = (*sorted(buckets), INF) if buckets else ()
        self.children: dict[tuple[str, ...], _Child] = {}
        if not self.labelnames:
            self.children[()] = _Child(self.buckets)
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = _Child(self.buckets)
        return child

    def _unlabelled(self) -> _Child:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use .labels()")
        return self.children[()]

    def collect(self) -> Iterator[Family]:
        fam = Family(self.name, self.documentation, self.type)
        created = []
        for key, child in list(self.children.items()):
            labels = dict(zip(self.labelnames, key, strict=True))
            self._samples(fam, labels, child)
            created.append(Sample(self.name + "_created", labels, child.created))
        yield fam
        if self.type != "gauge" and created:
            yield Family(self.name + "_created", self.documentation, "gauge", created)

    def _samples(self, fam: Family, labels: dict[str, str], child: _Child) -> None:
        fam.add("", labels, child.value)


class Counter(_Metric):
    type = "counter"

    def inc(self, amount: float = 1.0) -> None:
        self._unlabelled().inc(amount)

    def _samples(self, fam: Family, labels: dict[str, str], child: _Child) -> None:
        fam.add("_total", labels, child.value)


class Gauge(_Metric):
    type = "gauge"

    def set(self, value: float) -> None:
        self._unlabelled().set(value)


class Histogram(_Metric):
    type = "histogram"

    def observe(self, amount: float) -> None:
        self._unlabelled().observe(amount)

    def _samples(self, fam: Family, labels: dict[str, str], child: _Child) -> None:
        total = 0.0
        for bound, count in zip(child.bounds, child.counts, strict=True):
            total += count
            fam.add("_bucket", {**labels, "le": format_value(bound)}, total)
        fam.add("_count", labels, total)
        fam.add("_sum", labels, child.value)


def format_value(value: float) -> str:
    """A sample value or bucket bound as Prometheus (and Go) write it."""
    if value == INF:
        return "+Inf"
    if value == -INF:
        return "-Inf"
    if value != value:
        return "NaN"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


class Registry:
    """Metrics and collectors; a scrape reads them in registration order."""

    def __init__(self) -> None:
        self.collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        if any(c is collector for c in self.collectors):
            raise ValueError(f"{collector!r} is registered already")
        self.collectors.append(collector)

    def unregister(self, collector: Collector) -> None:
        self.collectors = [c for c in self.collectors if c is not collector]

    def collect(self) -> Iterator[Family]:
        for collector in list(self.collectors):
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of the sample ``name{labels}``, or None when there is none."""
        want = labels or {}
        for fam in self.collect():
            for s in fam.samples:
                if s.name == name and s.labels == want:
                    return s.value
        return None
