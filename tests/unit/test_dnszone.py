"""The cluster domain's records and answers (pure, dnspython messages)."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.agent.dnszone import build_zone, parse_domain, respond, service_labels
from unitctl.registry.services import ServiceRecord, query_matches, service_name

DOMAIN = parse_domain("unitctl")
MID = "ab" * 16


def ask(zone_records: list[ServiceRecord], name: str, rdtype: str = "A") -> dns.message.Message:
    zone = build_zone(DOMAIN, zone_records)
    wire = respond(dns.message.make_query(name, rdtype).to_wire(), zone)
    assert wire is not None
    return dns.message.from_wire(wire)


def texts(msg: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in msg.answer for rd in rrset}


def test_a_srv_instances_and_templates() -> None:
    recs = [ServiceRecord("testdb.service", MID, "10.0.0.2", {"PORT": 31000}),
            ServiceRecord("web@1.service", "cd" * 16, "10.0.0.3", {}),
            ServiceRecord("web@2.service", "ef" * 16, "10.0.0.4", {})]
    assert texts(ask(recs, "testdb.unitctl.")) == {"10.0.0.2"}
    assert texts(ask(recs, "TESTDB.unitctl.")) == {"10.0.0.2"}
    srv = ask(recs, "_port._tcp.testdb.unitctl.", "SRV")
    assert texts(srv) == {f"0 0 31000 m-{MID}.unitctl."}
    assert {rd.to_text() for rrset in srv.additional for rd in rrset} == {"10.0.0.2"}
    assert texts(ask(recs, "1.web.unitctl.")) == {"10.0.0.3"}
    assert texts(ask(recs, "web.unitctl.")) == {"10.0.0.3", "10.0.0.4"}
    assert ask(recs, "nope.unitctl.").rcode() == dns.rcode.NXDOMAIN
    assert ask(recs, "testdb.unitctl.", "AAAA").rcode() == dns.rcode.NOERROR
    assert ask(recs, "example.com.").rcode() == dns.rcode.REFUSED


def test_not_a_query_or_garbage_gets_no_answer() -> None:
    zone = build_zone(DOMAIN, [])
    assert respond(b"\x00\x01garbage", zone) is None
    reply = dns.message.make_response(dns.message.make_query("a.unitctl.", "A"))
    assert respond(reply.to_wire(), zone) is None


def test_names_that_are_not_dns_labels_have_no_dns_name() -> None:
    assert service_labels("my:unit") == ()
    assert service_labels("web@1") == (("1", "web"), ("web",))
    assert service_name("x.socket") == ""


def test_resolve_names_match_instances_and_units() -> None:
    assert query_matches("web", "web@1") and query_matches("web@", "web@1")
    assert query_matches("web@1.service", "web@1") and not query_matches("web@1", "web@2")
    assert not query_matches("we", "web")


@pytest.mark.parametrize("bad", ["", "a..b", "-x", "a b"])
def test_bad_domains_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_domain(bad)


LABELS = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)


@given(st.dictionaries(LABELS, st.tuples(st.integers(1, 250), st.integers(1, 65535)),
                       max_size=8))
def test_every_published_service_answers_with_its_address_and_port(
        services: dict[str, tuple[int, int]]) -> None:
    recs = [ServiceRecord(f"{name}.service", f"{octet:032x}", f"10.1.0.{octet}", {"PORT": port})
            for name, (octet, port) in services.items()]
    for rec in recs:
        assert rec.address in texts(ask(recs, f"{rec.service}.unitctl."))
        srv = ask(recs, f"_port._tcp.{rec.service}.unitctl.", "SRV")
        assert {int(t.split()[2]) for t in texts(srv)} == {rec.ports["PORT"]}
