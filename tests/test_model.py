"""Pure validators and value objects: no root needed."""

from __future__ import annotations

import ipaddress

import pytest

from netns_kit import Route, ValidationError
from netns_kit.model import (
    parse_interface,
    parse_mac,
    parse_network,
    validate_ifname,
    validate_mtu,
    validate_netns_name,
)


@pytest.mark.parametrize("name", ["eth0", "br-x", "a", "v" * 15, "vethé"])
def test_good_ifnames(name: str) -> None:
    assert validate_ifname(name) == name


@pytest.mark.parametrize(
    "name,why",
    [("", "1-15 bytes"), ("x" * 16, "1-15 bytes"), ("a/b", "'/'"), ("a b", "whitespace"),
     ("a:b", "':'"), (".", "reserved"), ("..", "reserved"), ("a\tb", "whitespace"), ("a\x01", "control"),
     ("é" * 8, "1-15 bytes")],
)
def test_bad_ifnames(name: str, why: str) -> None:
    with pytest.raises(ValidationError, match="interface name") as exc:
        validate_ifname(name)
    assert why.strip("'") in str(exc.value) or why in str(exc.value)


def test_ifname_type() -> None:
    with pytest.raises(ValidationError, match="must be a str"):
        validate_ifname(3)


@pytest.mark.parametrize("name", ["web", "c-1", "a.b", "x_y", "n@1"])
def test_good_netns_names(name: str) -> None:
    assert validate_netns_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "-rf", "a b", "x\n", "x" * 256, "/abs"])
def test_bad_netns_names(name: str) -> None:
    with pytest.raises(ValidationError, match="namespace name"):
        validate_netns_name(name)


def test_parse_interface() -> None:
    assert parse_interface("10.0.0.2/24") == ipaddress.IPv4Interface("10.0.0.2/24")
    assert parse_interface("fd00::2/64").version == 6
    with pytest.raises(ValidationError, match="not a valid IP address"):
        parse_interface("10.0.0.300/24")
    with pytest.raises(ValidationError):
        parse_interface("10.0.0.1/33")


def test_parse_network_requires_zero_host_bits() -> None:
    assert str(parse_network("10.1.0.0/16")) == "10.1.0.0/16"
    with pytest.raises(ValidationError, match="host bits"):
        parse_network("10.1.0.1/16")


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "00:00:00:00:00:00", "zz:00:00:00:00:00", "02:00:00:00:00"])
def test_bad_macs(mac: str) -> None:
    with pytest.raises(ValidationError, match="MAC"):
        parse_mac(mac)


def test_mac_normalised() -> None:
    assert parse_mac("02:AB:cd:00:00:01") == "02:ab:cd:00:00:01"


@pytest.mark.parametrize("mtu", [0, 67, 65536, True, "1500"])
def test_bad_mtu(mtu: object) -> None:
    with pytest.raises(ValidationError, match="MTU"):
        validate_mtu(mtu)


def test_route_defaults_and_families() -> None:
    r = Route(gateway="10.0.0.1")
    assert r.network == ipaddress.IPv4Network("0.0.0.0/0") and r.family == 4
    r6 = Route(gateway="fd00::1")
    assert r6.network == ipaddress.IPv6Network("::/0")
    assert Route("10.2.0.0/16", dev="eth0").gateway_ip is None


@pytest.mark.parametrize(
    "kwargs,match",
    [({"dst": "10.0.0.0/8"}, "gateway or a dev"),
     ({"dst": "10.0.0.0/8", "gateway": "fd00::1"}, "cannot go via"),
     ({"gateway": "300.1.1.1"}, "not a valid IP"),
     ({"dst": "10.0.0.1/8", "gateway": "10.0.0.1"}, "host bits"),
     ({"gateway": "10.0.0.1", "dev": "bad/name"}, "route device"),
     ({"gateway": "10.0.0.1", "metric": -1}, "metric")],
)
def test_bad_routes(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Route(**kwargs)  # type: ignore[arg-type]
