"""unitctl's own metrics and text format read as prometheus_client wrote them.

The agent serves ``/metrics`` without prometheus_client (its package import loads
an HTTP server, urllib and email: ~2 MiB of an idle agent). These tests build the
same metrics both ways and compare the pages line by line (``_created`` values
are times), and parse ours with prometheus_client's own parser (test only).
"""

from __future__ import annotations

import re

import prometheus_client as pc
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from unitctl.metrics import instruments as ours
from unitctl.metrics.textformat import CONTENT_TYPE, render

BUCKETS = (0.001, 0.01, 0.5, 1.0, 2.5)
HELP = 'Help with a \\ backslash and a\nnewline.'


def _feed(counter: object, labelled: object, gauge: object, hist: object,
          lhist: object) -> None:
    counter.inc(3)  # type: ignore[attr-defined]
    labelled.labels("get", 'a"b\\c\nd').inc()  # type: ignore[attr-defined]
    labelled.labels("put", "x").inc(2.5)  # type: ignore[attr-defined]
    gauge.set(1234567890.5)  # type: ignore[attr-defined]
    for v in (0.0005, 0.01, 0.7, 3.0, 1e9):
        hist.observe(v)  # type: ignore[attr-defined]
    lhist.labels("txn").observe(0.02)  # type: ignore[attr-defined]


def _pages() -> tuple[str, str]:
    theirs = pc.CollectorRegistry(auto_describe=True)
    mine = ours.Registry()
    for lib, reg in ((pc, theirs), (ours, mine)):
        _feed(lib.Counter("t_counter", HELP, registry=reg),
              lib.Counter("t_errors", "Errors.", ["op", "error"], registry=reg),
              lib.Gauge("t_gauge", "A gauge.", registry=reg),
              lib.Histogram("t_seconds", "Latency.", registry=reg, buckets=BUCKETS),
              lib.Histogram("t_op_seconds", "By op.", ["op"], registry=reg, buckets=BUCKETS))
        lib.Counter("t_unused", "Never labelled.", ["op"], registry=reg)
    return pc.generate_latest(theirs).decode(), render(mine.collect()).decode()


def _no_times(page: str) -> str:
    return re.sub(r"^(\S+_created(\{[^}]*\})?) \S+$", r"\1 T", page, flags=re.M)


def test_the_page_is_prometheus_clients_page() -> None:
    theirs, mine = _pages()
    assert _no_times(mine) == _no_times(theirs)
    assert CONTENT_TYPE == pc.CONTENT_TYPE_LATEST


def test_prometheus_parses_our_page() -> None:
    _, mine = _pages()
    fams = {f.name: f for f in text_string_to_metric_families(mine)}
    assert fams["t_counter"].type == "counter"
    assert fams["t_seconds"].type == "histogram"
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in fams.values() for s in f.samples}
    assert got[("t_errors_total", (("error", 'a"b\\c\nd'), ("op", "get")))] == 1.0
    assert got[("t_seconds_bucket", (("le", "+Inf"),))] == 5.0
    assert got[("t_seconds_bucket", (("le", "0.01"),))] == 2.0
    assert got[("t_seconds_count", ())] == 5.0


def test_scrape_time_families_match_prometheus_clients() -> None:
    class Theirs:
        def collect(self) -> object:
            yield GaugeMetricFamily("g", "G.", value=2.0)
            c = CounterMetricFamily("c", "C.", labels=["event"])
            c.add_metric(["fenced"], 4)
            yield c
            h = GaugeMetricFamily("h", "H.", labels=["unit", "result"])
            h.add_metric(["a.service", "ok"], 1.0)
            yield h

    class Mine:
        def collect(self) -> object:
            yield ours.gauge_family("g", "G.", value=2.0)
            c = ours.counter_family("c", "C.", labels=["event"])
            c.add_metric(["fenced"], 4)
            yield c
            h = ours.gauge_family("h", "H.", labels=["unit", "result"])
            h.add_metric(["a.service", "ok"], 1.0)
            yield h
    theirs = pc.CollectorRegistry()
    theirs.register(Theirs())  # type: ignore[arg-type]
    mine = ours.Registry()
    mine.register(Mine())  # type: ignore[arg-type]
    assert render(mine.collect()).decode() == pc.generate_latest(theirs).decode()
    assert mine.get_sample_value("c_total", {"event": "fenced"}) == 4.0
    assert mine.get_sample_value("c_total", {"event": "lifted"}) is None


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_values_are_written_as_prometheus_client_writes_them(value: float) -> None:
    assert ours.format_value(value) == floatToGoString(value)  # type: ignore[no-untyped-call]
