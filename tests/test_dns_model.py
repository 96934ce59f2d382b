"""What the name service answers, without a kernel: scopes, NXDOMAIN across networks, forwarding
decisions, PTR, truncation, resolv.conf parsing and rendering (netns_kit._dnsmodel)."""

from __future__ import annotations

import ipaddress

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename

from netns_kit._dnsmodel import Entry, NameTable, NetInfo, ResolvConf, respond, udp_limit, wire

WEB_NS, DB_NS, API_NS, LAB_NS = (1, 10), (1, 11), (1, 12), (1, 13)


def table() -> NameTable:
    t = NameTable()
    t.set_network(NetInfo("front", "10.30.0.1", (ipaddress.ip_network("10.30.0.0/24"),
                                                 ipaddress.ip_network("fd00:30::/64"))))
    t.set_network(NetInfo("back", "10.31.0.1", (ipaddress.ip_network("10.31.0.0/24"),)))
    t.set_network(NetInfo("lab", "10.32.0.1", (ipaddress.ip_network("10.32.0.0/24"),), internal=True))
    t.add("front", Entry("10.30.0.2", ("web", "www"), WEB_NS, "1.1", "vnk1"))
    t.add("front", Entry("fd00:30::2", ("web", "www"), WEB_NS, "1.1", "vnk1"))
    t.add("back", Entry("10.31.0.2", ("db",), DB_NS))
    t.add("front", Entry("10.30.0.3", ("api",), API_NS))
    t.add("back", Entry("10.31.0.3", ("api",), API_NS))
    t.add("lab", Entry("10.32.0.2", ("probe",), LAB_NS))
    return t


def q(name: str, rdtype: str = "A") -> dns.message.Message:
    if rdtype == "PTR":
        return dns.message.make_query(dns.reversename.from_address(name), rdtype)
    return dns.message.make_query(name, rdtype)


def answers(msg: dns.message.Message | None) -> list[str]:
    assert msg is not None
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset)


def test_names_aliases_and_qualified_names_in_scope() -> None:
    t = table()
    assert answers(respond(q("www"), t, "10.30.0.3")) == ["10.30.0.2"]
    assert answers(respond(q("WEB.front."), t, "10.30.0.3")) == ["10.30.0.2"]
    assert answers(respond(q("web", "AAAA"), t, "10.30.0.3")) == ["fd00:30::2"]
    msg = respond(q("api", "AAAA"), t, "10.30.0.2")
    assert msg is not None and msg.rcode() == dns.rcode.NOERROR and not msg.answer  # no IPv6: NODATA
    assert msg.flags & dns.flags.AA
    assert all(rrset.ttl == 0 for rrset in respond(q("web"), t, "10.30.0.3").answer)  # type: ignore[union-attr]


def test_scope_is_every_network_of_the_asking_namespace() -> None:
    t = table()
    assert respond(q("db"), t, "10.30.0.2").rcode() == dns.rcode.NXDOMAIN  # type: ignore[union-attr]
    assert answers(respond(q("db"), t, "10.30.0.3")) == ["10.31.0.2"]  # api is on front and back
    assert answers(respond(q("web"), t, "10.31.0.3")) == ["10.30.0.2"]  # ... from either address
    assert t.scope("10.31.0.2") == frozenset({"back"})
    assert t.scope("10.30.0.1", "10.30.0.1") == frozenset({"front"})  # the host, through a gateway
    assert respond(q("web"), t, "192.0.2.1").rcode() == dns.rcode.REFUSED  # type: ignore[union-attr]


def test_unknown_names_are_forwarded_unless_every_network_is_internal() -> None:
    t = table()
    assert respond(q("example.org"), t, "10.30.0.2") is None
    refused = respond(q("example.org"), t, "10.32.0.2")
    assert refused is not None and refused.rcode() == dns.rcode.REFUSED
    assert not refused.flags & dns.flags.RA
    assert answers(respond(q("probe"), t, "10.32.0.2")) == ["10.32.0.2"]


def test_reverse_lookups() -> None:
    t = table()
    assert answers(respond(q("10.30.0.2", "PTR"), t, "10.30.0.3")) == ["web.", "www."]
    assert respond(q("10.31.0.2", "PTR"), t, "10.30.0.2").rcode() == dns.rcode.NXDOMAIN  # type: ignore[union-attr]
    assert respond(q("10.30.0.99", "PTR"), t, "10.30.0.2").rcode() == dns.rcode.NXDOMAIN  # type: ignore[union-attr]
    assert respond(q("192.0.2.1", "PTR"), t, "10.30.0.2") is None  # not ours: upstream


def test_changes_entry_by_entry() -> None:
    t = table()
    t.remove("front", "10.30.0.3")
    t.remove("back", "10.31.0.3")
    assert respond(q("api"), t, "10.30.0.2") is None  # gone everywhere: unknown, forwarded
    assert t.scope("10.30.0.3") is None
    t.add("back", Entry("10.31.0.9", ("web",), DB_NS))  # the same name on another network
    assert answers(respond(q("web"), t, "10.31.0.2")) == ["10.31.0.9"]
    t.drop_network("back")
    assert t.scope("10.31.0.2") is None and "back" not in t.networks
    t.add("nowhere", Entry("10.99.0.2", ("x",)))  # a network not served: ignored
    assert respond(q("x"), t, "10.30.0.2") is None


def test_truncation_over_udp() -> None:
    t = table()
    names = tuple(f"alias-{i:02d}-with-a-rather-long-name" for i in range(30))
    t.add("front", Entry("10.30.0.50", names, (1, 50)))
    query = q("10.30.0.50", "PTR")
    resp = respond(query, t, "10.30.0.2")
    assert resp is not None
    small = dns.message.from_wire(wire(resp, udp_limit(query)))
    assert small.flags & dns.flags.TC and not small.answer
    full = respond(query, t, "10.30.0.2")
    assert full is not None and len(answers(dns.message.from_wire(wire(full, None)))) == 30
    edns = dns.message.make_query(dns.reversename.from_address("10.30.0.50"), "PTR", use_edns=0, payload=4096)
    assert udp_limit(edns) == 4096 and udp_limit(query) == 512


def test_resolv_conf() -> None:
    conf = ResolvConf.parse("# comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\n"
                            "domain a.example\nsearch corp.example lab.example ; trailing\noptions edns0 ndots:2\n")
    assert conf.nameservers == ("127.0.0.53", "fe80::1")
    assert conf.search == ("corp.example", "lab.example")
    text = conf.for_endpoint("10.20.0.1", "# header")
    assert text == ("# header\nnameserver 10.20.0.1\nsearch corp.example lab.example\n"
                    "options ndots:0 edns0\n")
    assert ResolvConf.parse("").for_endpoint("10.20.0.1", "#").splitlines()[1:] == [
        "nameserver 10.20.0.1", "options ndots:0"]
