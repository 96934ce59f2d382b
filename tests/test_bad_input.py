"""Hostile and mistaken input across the public API: each case raises a clear typed error that
names the value and why, and leaves the kernel exactly as it was (snapshot before and after).
Plus property-based tests (hypothesis) for the validators and IPAM."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshots import snapshot

from netns_kit import Bridge, Namespace, Route, Transaction, VethPair
from netns_kit.errors import (
    AlreadyExistsError,
    NetnsKitError,
    NotFoundError,
    StateError,
    ValidationError,
)
from netns_kit.model import validate_ifname, validate_netns_name
from netns_kit.modes import ContainerMode, Endpoint
from netns_kit.nat import NatRule, PublishedPort
from netns_kit.network import Network


@dataclass
class Env:
    host: Namespace
    net: Network
    ns: Namespace
    ep1: Namespace
    ep1_ip: str


@pytest.fixture
def env(host: Namespace) -> Iterator[Env]:
    net = Network("bi", subnet="10.70.0.0/24").create()
    ns = Namespace("bi-ns").create()
    ep1 = Namespace("bi-ep1").create()
    conn = net.connect(ep1, publish=["8080:80"])
    yield Env(host, net, ns, ep1, str(conn.address.ip))
    net.remove(force=True)
    ns.remove()
    ep1.remove()


def _gone_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _removed_ns(e: Env) -> None:
    ns = Namespace("bi-gone").create()
    ns.remove()
    ns.add_address("lo", "10.1.1.1/32")


def _removed_bridge(e: Env) -> None:
    br = Bridge("br-gone").create()
    br.remove()
    e.host.add_address("br-gone", "10.1.1.1/32")


def _removed_network(e: Env) -> None:
    net = Network("bi-gone", subnet="10.73.0.0/24").create()
    net.remove()
    net.connect(e.ns)


def _tx_twice(e: Env) -> None:
    tx = Transaction()
    with tx, tx:
        pass


def _container_self(e: Env) -> None:
    Endpoint("bi-self", mode=ContainerMode("bi-self")).create()


def _container_removed(e: Env) -> None:
    target = Endpoint("bi-tgt", mode="none").create()
    target.remove()
    Endpoint("bi-user", mode=ContainerMode(target)).create()


def _publish(spec: str) -> Callable[[Env], Any]:
    return lambda e: PublishedPort.parse(spec, container_ip="10.70.0.9", bridge=e.net.bridge)


# (id, call, expected error, text the message must contain)
CASES: list[tuple[str, Callable[[Env], Any], type[BaseException], str]] = [
    # names
    ("netns-too-long", lambda e: Namespace("a" * 256).create(), ValidationError, "aaaa"),
    ("netns-slash", lambda e: Namespace("a/b").create(), ValidationError, "a/b"),
    ("netns-dotdot", lambda e: Namespace("..").create(), ValidationError, ".."),
    ("netns-escape", lambda e: Namespace("../../etc/passwd").create(), ValidationError, "../../etc/passwd"),
    ("netns-space", lambda e: Namespace("my ns").create(), ValidationError, "my ns"),
    ("netns-newline", lambda e: Namespace("ns\n").create(), ValidationError, "ns\\n"),
    ("netns-option", lambda e: Namespace("-rf").create(), ValidationError, "-rf"),
    ("netns-empty", lambda e: Namespace("").create(), ValidationError, "''"),
    ("netns-exists", lambda e: Namespace("bi-ns").create(), AlreadyExistsError, "bi-ns"),
    ("ifname-too-long", lambda e: Bridge("b" * 16).create(), ValidationError, "bbbbbbbbbbbbbbbb"),
    ("ifname-slash", lambda e: Bridge("br/0").create(), ValidationError, "br/0"),
    ("ifname-space", lambda e: Bridge("br 0").create(), ValidationError, "br 0"),
    ("ifname-tab", lambda e: Bridge("br\t0").create(), ValidationError, "br\\t0"),
    ("ifname-dot", lambda e: Bridge(".").create(), ValidationError, "'.'"),
    ("ifname-colon", lambda e: VethPair("v-ok", "eth0:1", peer_namespace=e.ns).create(), ValidationError,
     "eth0:1"),
    ("veth-same-ends", lambda e: VethPair("v1", "v1").create(), ValidationError, "v1"),
    ("ifname-exists", lambda e: Bridge(e.net.bridge).create(), AlreadyExistsError, "already exists"),
    ("mtu-too-small", lambda e: Bridge("br-mtu", mtu=67).create(), ValidationError, "67"),
    ("mac-multicast", lambda e: Bridge("br-mac", mac="01:00:5e:00:00:01").create(), ValidationError,
     "01:00:5e:00:00:01"),
    # addresses, subnets, routes
    ("address-octet", lambda e: Bridge("br-a", addresses=["10.0.0.300/24"]).create(), ValidationError,
     "10.0.0.300/24"),
    ("address-prefix", lambda e: e.ns.add_address("lo", "10.0.0.1/33"), ValidationError, "10.0.0.1/33"),
    ("address-garbage", lambda e: e.ns.add_address("lo", "fe80::zz/64"), ValidationError, "fe80::zz/64"),
    ("address-no-link", lambda e: e.ns.add_address("nope0", "10.0.0.1/24"), NotFoundError, "nope0"),
    ("route-prefix", lambda e: Route(dst="10.0.0.0/33", dev="lo"), ValidationError, "10.0.0.0/33"),
    ("route-host-bits", lambda e: Route(dst="10.0.0.1/24", dev="lo"), ValidationError, "10.0.0.1/24"),
    ("route-family", lambda e: Route(dst="10.0.0.0/8", gateway="fd00::1"), ValidationError, "fd00::1"),
    ("route-nowhere", lambda e: Route(dst="10.0.0.0/8"), ValidationError, "10.0.0.0/8"),
    ("gateway-unreachable", lambda e: e.ep1.add_route(Route(dst="10.80.0.0/16", gateway="192.168.99.1")),
     ValidationError, "192.168.99.1"),
    ("subnet-prefix", lambda e: Network("n2", subnet="10.71.0.0/33"), ValidationError, "10.71.0.0/33"),
    ("subnet-host-bits", lambda e: Network("n2", subnet="10.71.0.1/24"), ValidationError, "10.71.0.1/24"),
    ("subnet-overlap", lambda e: Network("n2", subnet="10.70.0.0/25").create(), AlreadyExistsError,
     "10.70.0.0/25"),
    ("gateway-outside", lambda e: Network("n2", subnet="10.71.0.0/24", gateway="10.72.0.1"), ValidationError,
     "10.72.0.1"),
    ("gateway-network-addr", lambda e: Network("n2", subnet="10.71.0.0/24", gateway="10.71.0.0"),
     ValidationError, "10.71.0.0"),
    ("gateway-broadcast", lambda e: Network("n2", subnet="10.71.0.0/24", gateway="10.71.0.255"),
     ValidationError, "10.71.0.255"),
    ("ip-range-outside", lambda e: Network("n2", subnet="10.71.0.0/24", ip_range="10.72.0.0/25"),
     ValidationError, "10.72.0.0/25"),
    ("ip-outside-subnet", lambda e: e.net.connect(e.ns, ip="10.99.0.5"), ValidationError, "10.99.0.5"),
    ("ip-network-addr", lambda e: e.net.connect(e.ns, ip="10.70.0.0"), ValidationError, "10.70.0.0"),
    ("ip-broadcast", lambda e: e.net.connect(e.ns, ip="10.70.0.255"), ValidationError, "10.70.0.255"),
    ("ip-is-gateway", lambda e: e.net.connect(e.ns, ip="10.70.0.1"), NetnsKitError, "10.70.0.1"),
    ("ip-taken", lambda e: e.net.connect(e.ns, ip=e.ep1_ip), AlreadyExistsError, "10.70.0."),
    # ports
    ("port-zero", _publish("0:80"), ValidationError, "0"),
    ("port-65536", _publish("65536:80"), ValidationError, "65536"),
    ("container-port-zero", _publish("8081:0"), ValidationError, "container port 0"),
    ("port-range-reversed", _publish("9000-8990:80-90"), ValidationError, "9000-8990"),
    ("port-range-lengths", _publish("8000-8010:80-85"), ValidationError, "8000-8010"),
    ("port-proto", _publish("8082:80/icmp"), ValidationError, "icmp"),
    ("port-garbage", _publish("http:80"), ValidationError, "http:80"),
    ("port-conflict", lambda e: e.net.connect(e.ns, publish=["8080:80"]), AlreadyExistsError, "8080"),
    ("dnat-incomplete", lambda e: NatRule.dnat("8083:80"), ValidationError, "8083:80"),
    # modes, processes, objects used after removal
    ("container-self", _container_self, NetnsKitError, "bi-self"),
    ("container-removed", _container_removed, NetnsKitError, "bi-tgt"),
    ("pid-gone", lambda e: Namespace.from_pid(_gone_pid()), NotFoundError, "pid:"),
    ("pid-zero", lambda e: Namespace.from_pid(0), ValidationError, "0"),
    ("ns-after-remove", _removed_ns, StateError, "bi-gone"),
    ("bridge-after-remove", _removed_bridge, NotFoundError, "br-gone"),
    ("network-after-remove", _removed_network, StateError, "bi-gone"),
    ("transaction-twice", _tx_twice, StateError, "already active"),
    ("sysctl-escape", lambda e: e.ns.write_sysctl("net/../../kernel/panic", "1"), ValidationError,
     "net/../../kernel/panic"),
    ("run-shell-string", lambda e: e.ns.run("ls -l"), ValidationError, "ls -l"),
]


def _kernel(e: Env) -> dict[str, object]:
    """Host snapshot (IPv6 link-local left out: it appears on the kernel's own schedule) and the
    addresses and routes of the namespaces the cases aim at."""
    snap = snapshot(e.host)
    snap["addresses"] = [a for a in snap["addresses"] if not a[1].startswith("fe80:")]  # type: ignore[attr-defined]
    snap["routes"] = [r for r in snap["routes"] if not r[0].startswith("fe80:")]  # type: ignore[attr-defined]
    for key, ns in (("bi-ns", e.ns), ("bi-ep1", e.ep1)):
        snap[key] = sorted((a.ifname, str(a.interface)) for a in ns.addresses() if a.interface.version == 4)
        snap[key + "-routes"] = sorted((str(r.dst), str(r.gateway)) for r in ns.routes(4))
    return snap


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("call", "exc", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(
        env: Env, call: Callable[[Env], Any], exc: type[BaseException], needle: str) -> None:
    before = _kernel(env)
    with pytest.raises(exc) as info:
        call(env)
    assert isinstance(info.value, NetnsKitError), f"{type(info.value).__name__} is not a netns_kit error"
    assert needle in str(info.value), f"{needle!r} not named in: {info.value}"
    assert _kernel(env) == before


# -- property-based: the validators ---------------------------------------------------------------

@given(st.text(max_size=300))
def test_netns_names_are_accepted_only_if_safe(name: str) -> None:
    try:
        validate_netns_name(name)
    except ValidationError as exc:
        assert repr(name) in str(exc)
        return
    # accepted: a plain file name directly under /run/netns, never an option
    assert os.path.dirname(os.path.join("/run/netns", name)) == "/run/netns"
    assert os.path.normpath(os.path.join("/run/netns", name)) == os.path.join("/run/netns", name)
    assert name not in (".", "..") and not name.startswith("-")
    assert all(ch.isascii() and ch.isprintable() and not ch.isspace() for ch in name)
    assert 1 <= len(name.encode()) <= 255


@given(st.text(max_size=40))
def test_ifnames_are_accepted_only_if_the_kernel_would(name: str) -> None:
    try:
        validate_ifname(name)
    except ValidationError:
        return
    raw = name.encode("utf-8", "surrogateescape")
    assert 1 <= len(raw) <= 15
    assert name not in (".", "..")
    assert not any(ch in "/:" or ch.isspace() or not ch.isprintable() for ch in name)


@given(st.one_of(st.text(max_size=50), st.integers(), st.none(), st.binary(max_size=10)))
def test_route_parser_raises_only_validation_errors(dst: Any) -> None:
    with contextlib.suppress(ValidationError):
        Route(dst=dst, dev="lo")


@given(st.text(alphabet="0123456789-:/tcpudsxy.[]", max_size=25))
def test_port_spec_parser_raises_only_validation_errors(spec: str) -> None:
    try:
        p = PublishedPort.parse(spec, container_ip="10.0.0.2", bridge="br0")
    except ValidationError:
        return
    assert 1 <= p.host_port <= 65535 and 1 <= p.container_port <= 65535
    end = p.host_port_end if p.host_port_end is not None else p.host_port
    assert p.host_port <= end <= 65535


# -- property-based: IPAM -------------------------------------------------------------------------

@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=60)
@given(prefix=st.integers(min_value=22, max_value=30), base=st.integers(min_value=0, max_value=255),
       ops=st.lists(st.booleans(), max_size=80), seed=st.randoms())
def test_ipam_never_hands_out_one_address_twice(prefix: int, base: int, ops: list[bool], seed: Any) -> None:
    from netns_kit.ipam import AddressAllocator, SubnetPlan

    subnet = ipaddress.ip_network(f"10.{base}.0.0/{prefix}", strict=False)
    plan = SubnetPlan(subnet)
    alloc = AddressAllocator(plan)
    held: list[Any] = []
    for take in ops:
        if take or not held:
            try:
                a = alloc.allocate()
            except NetnsKitError:
                assert len(held) >= subnet.num_addresses - 3  # full: network, gateway, broadcast
                continue
            assert a not in held
            assert a in subnet and a != subnet.network_address and a != subnet.broadcast_address
            assert a != alloc.gateway
            held.append(a)
        else:
            alloc.release(held.pop(seed.randrange(len(held))))
