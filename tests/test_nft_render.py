"""Pure tests (no root, no kernel): PublishedPort parsing and the nft JSON/script netns_kit renders."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from netns_kit import (
    AlreadyExistsError,
    KernelError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedError,
    ValidationError,
)
from netns_kit import _nft_render as render
from netns_kit._nft import map_error
from netns_kit.firewall import NetworkPolicy
from netns_kit.nat import NatRule, PublishedPort


def pp(spec: str, ip: str = "10.0.0.2") -> PublishedPort:
    return PublishedPort.parse(spec, container_ip=ip, bridge="br0")


@pytest.mark.parametrize(("spec", "host_ip", "hp", "hpe", "cp", "proto"), [
    ("8080:80", None, 8080, None, 80, "tcp"),
    ("127.0.0.1:8080:80/udp", "127.0.0.1", 8080, None, 80, "udp"),
    ("0.0.0.0:8080:80", None, 8080, None, 80, "tcp"),
    ("8000-8009:9000-9009/sctp", None, 8000, 8009, 9000, "sctp"),
    ("203.0.113.1:1:1", "203.0.113.1", 1, None, 1, "tcp"),
    ("8080-8080:80-80", None, 8080, None, 80, "tcp"),
])
def test_parse(spec: str, host_ip: str | None, hp: int, hpe: int | None, cp: int, proto: str) -> None:
    p = pp(spec)
    assert (p.host_ip, p.host_port, p.host_port_end, p.container_port, p.proto) == (host_ip, hp, hpe, cp, proto)
    assert p.family == 4


def test_parse_ipv6_and_spec_round_trip() -> None:
    p = PublishedPort.parse("[2001:db8::1]:8080:80", container_ip="fd00::2", bridge="br0")
    assert p.host_ip == "2001:db8::1" and p.family == 6
    assert p.spec == "[2001:db8::1]:8080->[fd00::2]:80/tcp"
    assert pp("8000-8002:9000-9002").pairs() == [(8000, 9000), (8001, 9001), (8002, 9002)]
    assert pp("8000-8002:9000-9002").container_port_end == 9002
    assert pp("127.0.0.1:1:2").loopback_only and not pp("1:2").loopback_only


@pytest.mark.parametrize("spec", [
    "80", "127.0.0.1::80", "8080:80/icmp", "0:80", "8080:70000", "8000-8010:80-81", "8010-8000:80-90",
    "[::1]:8080:80", "10.0.0.1:8080:80 ; drop", "a:b", "8080:80/tcp/udp", "[fd00::1]:8080:80",
])
def test_parse_refuses(spec: str) -> None:
    with pytest.raises(ValidationError):
        pp(spec)


@pytest.mark.parametrize("kw", [
    {"container_ip": "127.0.0.1"}, {"container_ip": "0.0.0.0"}, {"container_ip": "not-an-ip"},
    {"bridge": "bad name"}, {"bridge": "x" * 16}, {"bridge_port": "a/b"}, {"proto": "icmp"},
    {"host_port": 0}, {"host_port": True}, {"host_ip": "224.0.0.1"}, {"host_port_end": 10},
])
def test_published_port_validation(kw: dict[str, object]) -> None:
    args: dict[str, object] = {"host_port": 8080, "container_ip": "10.0.0.2", "container_port": 80,
                               "bridge": "br0", **kw}
    with pytest.raises(ValidationError):
        PublishedPort(**args)  # type: ignore[arg-type]


def test_network_policy_validation() -> None:
    pol = NetworkPolicy("br0", ("10.0.0.0/24", "fd00::/64"))  # type: ignore[arg-type]
    assert pol.subnets == (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64"))
    assert pol.families() == {4, 6} and pol.masquerades
    assert not NetworkPolicy("br0", (), internal=True).masquerades
    for bad in [("10.0.0.0/24", "10.0.0.0/16"), ("10.0.0.1/24",), "10.0.0.0/24"]:
        with pytest.raises(ValidationError):
            NetworkPolicy("br0", bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        NetworkPolicy("br 0", ())
    with pytest.raises(ValidationError):
        NetworkPolicy("br0", (), icc="no")  # type: ignore[arg-type]


def test_nat_rule_builders_validate_without_kernel() -> None:
    rule = NatRule.dnat("8080:80", container_ip="10.0.0.2", bridge="br0")
    assert rule.kind == "dnat" and not rule.active
    assert NatRule.masquerade("10.0.0.0/24", bridge="br0").kind == "masquerade"
    with pytest.raises(ValidationError):
        NatRule.dnat("8080:80")
    with pytest.raises(ValidationError):
        NatRule.masquerade("10.0.0.1/24")
    rule.remove()  # never created: nothing to do


def test_network_elements() -> None:
    nets = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")]
    els = render.network_elements("br0", nets, internal=False, icc=True, masquerade=True)
    assert els == {
        "bridges": ["br0"],
        "icc": [{"concat": ["br0", "br0"]}],
        "masq4": [{"prefix": {"addr": "10.0.0.0", "len": 24}}],
        "masq4_skip": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 24}}, "br0"]}],
        "masq6": [{"prefix": {"addr": "fd00::", "len": 64}}],
        "masq6_skip": [{"concat": [{"prefix": {"addr": "fd00::", "len": 64}}, "br0"]}],
    }
    internal = render.network_elements("br0", nets, internal=True, icc=False, masquerade=True)
    assert internal == {"bridges": ["br0"], "internal": ["br0"]}
    assert render.network_elements("br0", nets, internal=False, icc=True, masquerade=False) == {
        "bridges": ["br0"], "icc": [{"concat": ["br0", "br0"]}]}


def test_port_elements_one_per_host_port() -> None:
    assert render.port_elements(pp("8000-8001:80-81/udp")) == {"dnat4": [
        [{"concat": ["udp", 8000]}, {"concat": ["10.0.0.2", 80]}],
        [{"concat": ["udp", 8001]}, {"concat": ["10.0.0.2", 81]}],
    ]}
    assert render.port_elements(pp("127.0.0.1:8080:80")) == {"dnat4_addr": [
        [{"concat": ["127.0.0.1", "tcp", 8080]}, {"concat": ["10.0.0.2", 80]}]]}
    v6 = PublishedPort.parse("8080:80", container_ip="fd00::2", bridge="br0")
    assert list(render.port_elements(v6)) == ["dnat6"]
    assert render.hairpin_elements("10.0.0.2") == {"hairpin4": [{"concat": ["10.0.0.2", "10.0.0.2"]}]}


def test_element_commands_are_one_per_set_and_scoped_to_our_table() -> None:
    cmds = render.element_cmds("create", render.merged([render.port_elements(pp("8080:80")),
                                                       render.hairpin_elements("10.0.0.2")]))
    assert [next(iter(c)) for c in cmds] == ["create", "create"]
    for c in cmds:
        el = c["create"]["element"]
        assert (el["family"], el["table"]) == ("inet", "netns_kit")
    assert render.element_cmds("delete", {"bridges": []}) == []
    assert render.delete_table() == {"delete": {"table": {"family": "inet", "name": "netns_kit"}}}


def test_the_ipv6_part_is_separate_and_refused_when_made() -> None:
    v4, v6 = render.skeleton_text(), render.skeleton6_text()
    for name in render.V6_SETS:
        assert f" {name} " not in v4 and f" {name} {{" in v6
    assert "ip6" not in v4
    assert v6.startswith("create map inet netns_kit dnat6 ")  # EEXIST when made already: nothing added
    assert v6 == render.skeleton6_text() and "flush" not in v6
    rules = [line for line in v6.splitlines() if line.startswith("add rule")]
    assert len(rules) == 7 and all(" ip6 " in r for r in rules)  # never matches an IPv4 packet


def test_skeleton_is_constant_and_owned() -> None:
    text = render.skeleton_text()
    assert text == render.skeleton_text()
    assert text.startswith("table inet netns_kit {") and render.TABLE_COMMENT in text
    assert "flush" not in text
    # the rules never mention a port, address or bridge name: all of that is in sets and maps
    for needle in ("dnat ip to meta l4proto . th dport map @dnat4", "ip daddr != 127.0.0.0/8",
                   "priority -100", "ip saddr . ip daddr @hairpin4 masquerade", "@masq4_skip return",
                   f"meta mark | {render.ACCEPT_MARK:#010x}"):
        assert needle in text
    # nft 1.0.6 quirks: no `dstnat` keyword on the output hook; no map statement right before `}`
    assert "hook output priority dstnat" not in text
    assert "fwd" not in text.split() and "chain raw" not in text


def test_added_elements_carry_the_owner_mark_deletes_go_by_key() -> None:
    els = render.merged([render.port_elements(pp("8080:80")), {"bridges": ["br0"]}])
    add = render.element_cmds("create", els, comment="netns-kit:1.2")
    assert add[0]["create"]["element"]["elem"] == [
        [{"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "netns-kit:1.2"}}, {"concat": ["10.0.0.2", 80]}]]
    assert add[1]["create"]["element"]["elem"] == [{"elem": {"val": "br0", "comment": "netns-kit:1.2"}}]
    delete = render.element_cmds("delete", els, comment="ignored")
    assert delete[1]["delete"]["element"]["elem"] == ["br0"]
    # listed elements come back in the tagged shape: key and comment
    assert render.element_key("map", add[0]["create"]["element"]["elem"][0]) == (
        {"concat": ["tcp", 8080]}, "netns-kit:1.2")
    assert render.element_key("set", "br0") == ("br0", None)


@pytest.mark.parametrize(("text", "cls", "errno"), [
    ("internal:0:0-0: Error: Could not process rule: File exists\n", AlreadyExistsError, 17),
    ("internal:0:0-0: Error: No such file or directory\n", NotFoundError, 2),
    ("Error: Could not process rule: Operation not permitted\n", PermissionDeniedError, 1),
    ("Error: Could not process rule: Operation not supported\n", UnsupportedError, 95),
    ("Error: syntax error, unexpected '}'\n", ValidationError, None),
    ("Error: something else\n", KernelError, None),
])
def test_libnftables_errors_map_to_netns_kit_errors(text: str, cls: type[Exception], errno: int | None) -> None:
    err = map_error(text, obj="published port 8080->10.0.0.2:80/tcp", namespace="host", step="publish port")
    assert type(err) is cls and err.errno == errno
    assert "publish port" in str(err) and "8080" in str(err) and "host" in str(err)


def test_one_spelling_of_a_published_port_json_text_and_back() -> None:
    for spec, ip in (("8080:80", "10.0.0.2"), ("127.0.0.1:8000-8001:90-91/udp", "10.0.0.2"),
                     ("[2001:db8::1]:443:8443", "2001:db8:1::2")):
        port = pp(spec, ip)
        elements = render.port_elements(port)
        (name, elems), = elements.items()
        # as libnftables lists them: the key wrapped with its comment
        listed = [[{"elem": {"val": k, "comment": "netns-kit:1.2"}}, v] for k, v in elems]
        back = [render.parse_port_element(name, e) for e in listed]
        assert [(b.host_ip, b.proto, b.host_port, b.container_ip, b.container_port) for b in back if b] == [
            (port.host_ip, port.proto, hp, port.container_ip, cp) for hp, cp in port.pairs()]
        assert render.element_keys(elements) == {name: [k for k, _ in elems]}
        assert render.port_slots(port) == [(port.family, port.proto, hp) for hp, _ in port.pairs()]
    assert render.port_text(pp("8080:80")) == [
        "nft add element inet netns_kit dnat4 '{ tcp . 8080 : 10.0.0.2 . 80 }'"]
    assert render.port_text(pp("127.0.0.1:8000-8001:90-91/udp")) == [
        "nft add element inet netns_kit dnat4_addr "
        "'{ 127.0.0.1 . udp . 8000 : 10.0.0.2 . 90, 127.0.0.1 . udp . 8001 : 10.0.0.2 . 91 }'"]
    assert render.parse_port_element("bridges", "br0") is None
    assert render.parse_port_element("dnat4", [{"concat": ["tcp"]}, {"concat": ["10.0.0.2", 80]}]) is None


def test_listed_elements_and_their_text() -> None:
    objs: list[dict[str, Any]] = [{"table": {"name": "netns_kit"}},
            {"set": {"name": "masq4", "elem": [{"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 24}},
                                                          "comment": "netns-kit:1.2"}}]}},
            {"set": {"name": "icc", "elem": [{"concat": ["br0", "br0"]}]}},
            {"map": {"name": "dnat4"}}]
    sets = render.listed_elements(objs)
    assert sets == {"masq4": objs[1]["set"]["elem"], "icc": [{"concat": ["br0", "br0"]}], "dnat4": []}
    assert render.value_text(sets["masq4"][0]) == "10.0.0.0/24"
    assert render.value_text(sets["icc"][0]) == "br0 . br0"
    assert render.value_text({"range": [1000, 2000]}) == "1000-2000"
    assert render.element_text({"bridges": ["br0"], "icc": [], "masq4": [{"prefix": {"addr": "10.0.0.0", "len": 24}}]},
                               "delete") == ["nft delete element inet netns_kit bridges '{ br0 }'",
                                             "nft delete element inet netns_kit masq4 '{ 10.0.0.0/24 }'"]
