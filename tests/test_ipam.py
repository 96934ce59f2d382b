"""IPAM: pure tests, no root, no kernel."""

from __future__ import annotations

import ipaddress

import pytest

from netns_kit import AlreadyExistsError, ValidationError
from netns_kit.ipam import (
    DEFAULT_POOLS,
    AddressAllocator,
    AddressPool,
    ExhaustedError,
    SubnetPlan,
    pick_subnet,
)

N = ipaddress.ip_network
A = ipaddress.ip_address


def test_default_pools_match_docker() -> None:
    cands = [str(n) for p in DEFAULT_POOLS for n in p.subnets()]
    assert cands[:2] == ["172.17.0.0/16", "172.18.0.0/16"]
    assert cands[14] == "172.31.0.0/16"
    assert cands[15:17] == ["192.168.0.0/20", "192.168.16.0/20"]
    assert cands[-1] == "192.168.240.0/20"
    assert len(cands) == 15 + 16


def test_pick_subnet_skips_overlaps() -> None:
    assert pick_subnet([]) == N("172.17.0.0/16")
    # an address on the host inside 172.17/16, a route covering 172.18-19
    used = [N("172.17.5.0/24"), N("172.18.0.0/15"), N("10.0.0.0/8")]
    assert pick_subnet(used) == N("172.20.0.0/16")
    # a wide route over all of 172.16/12 sends us to 192.168/16 in /20s
    assert pick_subnet([N("172.16.0.0/12"), N("192.168.0.0/24")]) == N("192.168.16.0/20")
    # IPv6 entries do not block IPv4 candidates
    assert pick_subnet([N("2001:db8::/32")]) == N("172.17.0.0/16")


def test_pick_subnet_exhausted_and_custom_pools() -> None:
    with pytest.raises(ExhaustedError, match="no free IPv4 subnet"):
        pick_subnet([N("0.0.0.0/1"), N("128.0.0.0/1")])
    pools = [AddressPool("10.10.0.0/23", 24)]
    assert pick_subnet([N("10.10.0.0/24")], pools=pools) == N("10.10.1.0/24")
    assert pick_subnet([], pools=[AddressPool("fd00:1::/48", 64)], version=6) == N("fd00:1::/64")
    with pytest.raises(ValidationError):
        AddressPool("10.0.0.0/16", 8)
    with pytest.raises(ValidationError):
        AddressPool("10.0.0.1/16", 24)  # host bits set


def test_plan_validation() -> None:
    plan = SubnetPlan("10.1.0.0/24")
    assert plan.gateway_ip == A("10.1.0.1") and plan.range == N("10.1.0.0/24")
    assert str(plan.gateway_interface()) == "10.1.0.1/24"
    with pytest.raises(ValidationError, match="not inside subnet"):
        SubnetPlan("10.1.0.0/24", gateway="10.2.0.1")
    with pytest.raises(ValidationError, match="network or broadcast"):
        SubnetPlan("10.1.0.0/24", gateway="10.1.0.255")
    with pytest.raises(ValidationError, match="ip_range"):
        SubnetPlan("10.1.0.0/24", ip_range="10.1.1.0/25")
    with pytest.raises(ValidationError, match="too small"):
        SubnetPlan("10.1.0.0/32")
    with pytest.raises(ValidationError, match="not inside subnet"):
        SubnetPlan("10.1.0.0/24", gateway="fd00::1")
    # the blog's typo: gateway 192.168.1.1 for 192.168.0.123/24
    with pytest.raises(ValidationError, match=r"192\.168\.1\.1 is not inside subnet 192\.168\.0\.0/24"):
        SubnetPlan("192.168.0.0/24", gateway="192.168.1.1")


def test_never_network_broadcast_or_gateway() -> None:
    alloc = AddressAllocator(SubnetPlan("10.0.0.0/29"))  # .0 net, .1 gw, .7 broadcast
    got = [alloc.allocate() for _ in range(5)]
    assert got == [A(f"10.0.0.{i}") for i in range(2, 7)]
    assert len(set(got)) == 5
    with pytest.raises(ExhaustedError, match="no free address"):
        alloc.allocate()


def test_gateway_in_the_middle_is_skipped() -> None:
    alloc = AddressAllocator(SubnetPlan("10.0.0.0/29", gateway="10.0.0.3"))
    got = {alloc.allocate() for _ in range(5)}
    assert A("10.0.0.3") not in got and A("10.0.0.1") in got
    assert alloc.available == 0


def test_fixed_addresses() -> None:
    alloc = AddressAllocator(SubnetPlan("192.168.0.0/24"))
    assert alloc.allocate("192.168.0.123") == A("192.168.0.123")
    with pytest.raises(AlreadyExistsError, match="already in use"):
        alloc.allocate("192.168.0.123")
    with pytest.raises(ValidationError, match="outside subnet"):
        alloc.allocate("192.168.1.5")
    with pytest.raises(ValidationError, match="network or broadcast"):
        alloc.allocate("192.168.0.255")
    with pytest.raises(ValidationError, match="network or broadcast"):
        alloc.allocate("192.168.0.0")
    with pytest.raises(AlreadyExistsError, match="gateway"):
        alloc.allocate("192.168.0.1")
    with pytest.raises(ValidationError):
        alloc.allocate("not-an-ip")
    # a failed request took nothing
    assert alloc.in_use == frozenset({A("192.168.0.123")})
    # automatic allocation steps around a fixed address
    alloc2 = AddressAllocator(SubnetPlan("10.0.0.0/24"))
    alloc2.allocate("10.0.0.2")
    assert alloc2.allocate() == A("10.0.0.3")


def test_released_addresses_come_back() -> None:
    alloc = AddressAllocator(SubnetPlan("10.0.0.0/29"))
    got = [alloc.allocate() for _ in range(5)]
    assert alloc.release(got[1]) is True
    assert alloc.release(got[1]) is False  # idempotent
    assert alloc.allocate() == got[1]  # the only free one
    alloc.release(got[0])
    alloc.release(got[3])
    assert alloc.available == 2
    # round-robin: the search goes on from the last address handed out, then wraps
    assert alloc.allocate() == got[3]
    assert alloc.allocate() == got[0]
    assert alloc.available == 0


def test_round_robin_avoids_immediate_reuse() -> None:
    alloc = AddressAllocator(SubnetPlan("10.0.0.0/24"))
    a = alloc.allocate()
    alloc.release(a)
    b = alloc.allocate()
    assert b != a and b == A("10.0.0.3")
    # a fixed request for a released address is fine at once
    assert alloc.allocate(a) == a


def test_ip_range_restricts_automatic_only() -> None:
    alloc = AddressAllocator(SubnetPlan("10.5.0.0/24", ip_range="10.5.0.128/30"))
    got = [alloc.allocate() for _ in range(4)]
    assert got == [A(f"10.5.0.{i}") for i in (128, 129, 130, 131)]
    with pytest.raises(ExhaustedError):
        alloc.allocate()
    # fixed addresses may sit anywhere in the subnet, as in Docker
    assert alloc.allocate("10.5.0.10") == A("10.5.0.10")


def test_ipv6() -> None:
    alloc = AddressAllocator(SubnetPlan("fd00:10::/64"))
    assert alloc.gateway == A("fd00:10::1")
    assert alloc.allocate() == A("fd00:10::2")
    assert str(alloc.interface(A("fd00:10::2"))) == "fd00:10::2/64"
    with pytest.raises(ValidationError, match="outside subnet"):
        alloc.allocate("fd00:11::5")
    with pytest.raises(ValidationError, match="outside subnet"):
        alloc.allocate("10.0.0.5")
    assert alloc.allocate("fd00:10::ffff") == A("fd00:10::ffff")
