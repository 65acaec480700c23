"""The cluster domain's records, made from the service records, and the answer to a query.

Names under the domain (default ``unitctl.``), all lower case:

* ``<name>.<domain>`` A: the address of each machine running the unit
  ``<name>.service``;
* ``<instance>.<template>.<domain>`` A for an instance ``<template>@<instance>``,
  and ``<template>.<domain>`` A for all of a template's instances together;
* ``_<port>._tcp.<owner>`` SRV for each allocated port of those owners (the
  port's name lower case: ``PORT`` → ``_port._tcp.testdb.unitctl.``,
  ``PORT_ADMIN`` → ``_port_admin._tcp.…``), priority 0, weight 0, target the
  machine's own name ``m-<machine id>.<domain>`` (A, in the additional section).

A service whose name is not made of DNS labels (letters, digits, ``-``, ``_``,
at most 63 each) has no DNS name (``unitctl resolve`` still shows it). A name
that is not there is NXDOMAIN; a name that is there without the type asked for
gets an empty answer; a name outside the domain is REFUSED (the server is
authoritative for its domain only, and recursion is not offered).

Pure: records in, a :class:`dns.message.Message` out (dnspython, no I/O). Which
names are DNS names is :mod:`.dnslabels` (no dnspython).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from unitctl.registry.services import ServiceRecord

from .dnslabels import LABEL, parse_domain_text, service_labels

RdataType = dns.rdatatype.RdataType

__all__ = ["LABEL", "TTL", "Zone", "answer", "build_zone", "parse_domain", "respond",
           "service_labels"]

TTL = 5


@dataclass(slots=True)
class Zone:
    """owner name → type → record texts (``"10.0.0.2"``, ``"0 0 31000 m-….unitctl."``)."""

    domain: dns.name.Name
    names: dict[dns.name.Name, dict[RdataType, set[str]]] = field(default_factory=dict)

    def add(self, owner: dns.name.Name, rdtype: RdataType, text: str) -> None:
        self.names.setdefault(owner, {}).setdefault(rdtype, set()).add(text)


def parse_domain(text: str) -> dns.name.Name:
    """``unitctl`` or ``unitctl.`` or ``cluster.example.`` → an absolute name (ValueError)."""
    return dns.name.from_text(parse_domain_text(text))


def build_zone(domain: dns.name.Name, records: Iterable[ServiceRecord]) -> Zone:
    """The zone of ``records`` (a record without an address has no A record)."""
    zone = Zone(domain)
    for rec in records:
        if not rec.address or not rec.machine:
            continue
        target = dns.name.Name((f"m-{rec.machine[:32].lower()}",)).concatenate(domain)
        zone.add(target, dns.rdatatype.A, rec.address)
        for labels in service_labels(rec.service):
            owner = dns.name.Name(labels).concatenate(domain)
            zone.add(owner, dns.rdatatype.A, rec.address)
            for port_name, port in sorted(rec.ports.items()):
                srv = dns.name.Name((f"_{port_name.lower()}", "_tcp", *labels))
                zone.add(srv.concatenate(domain), dns.rdatatype.SRV,
                         f"0 0 {port} {target.to_text()}")
    return zone


def _rrset(owner: dns.name.Name, rdtype: RdataType, texts: Iterable[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(owner, TTL, dns.rdataclass.IN, rdtype, sorted(texts))


def answer(query: dns.message.Message, zone: Zone) -> dns.message.Message:
    """The authoritative answer to ``query`` from ``zone``."""
    response = dns.message.make_response(query)
    response.flags &= ~dns.flags.RA
    if len(query.question) != 1 or query.opcode() != 0:
        response.set_rcode(dns.rcode.NOTIMP if query.question else dns.rcode.FORMERR)
        return response
    question = query.question[0]
    qname = question.name.canonicalize()
    if not qname.is_subdomain(zone.domain) or question.rdclass != dns.rdataclass.IN:
        response.set_rcode(dns.rcode.REFUSED)
        return response
    response.flags |= dns.flags.AA
    node = zone.names.get(qname)
    if node is None:
        if qname != zone.domain and not _has_below(zone.names, qname):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response
    wanted = [t for t in node if question.rdtype in (t, dns.rdatatype.ANY)]
    for rdtype in sorted(wanted):
        response.answer.append(_rrset(question.name, rdtype, node[rdtype]))
    if dns.rdatatype.SRV in wanted:
        _add_targets(response, zone, node[dns.rdatatype.SRV])
    return response


def _has_below(names: Mapping[dns.name.Name, object], qname: dns.name.Name) -> bool:
    """An empty non-terminal (``_tcp.testdb.unitctl.``) exists: NODATA, not NXDOMAIN."""
    return any(n.is_subdomain(qname) for n in names)


def _add_targets(response: dns.message.Message, zone: Zone, srvs: Iterable[str]) -> None:
    for target in sorted({text.split()[3] for text in srvs}):
        name = dns.name.from_text(target)
        addresses = zone.names.get(name, {}).get(dns.rdatatype.A)
        if addresses:
            response.additional.append(_rrset(name, dns.rdatatype.A, addresses))


def respond(wire: bytes, zone: Zone, max_size: int = 512) -> bytes | None:
    """A query's bytes → the answer's bytes (None: not a query worth answering).

    An answer over ``max_size`` (512, or the client's EDNS size) is sent
    truncated (TC set, no records), so the client asks again over TCP.
    """
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # dnspython raises many types for bad packets (DNSException, ValueError...)
        return None
    if query.flags & dns.flags.QR:
        return None
    response = answer(query, zone)
    limit = max(max_size, query.payload if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        short = dns.message.make_response(query)
        short.flags |= dns.flags.TC | dns.flags.AA
        return short.to_wire()
