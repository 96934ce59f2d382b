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

from netns_kit import (
    Attachment,
    Bridge,
    Container,
    CustomMode,
    Engine,
    Firewall,
    Masquerade,
    NameService,
    Namespace,
    NetworkConfig,
    NetworkMode,
    NetworkPolicy,
    Route,
    Topology,
    Transaction,
    VethPair,
    attach,
    default_network,
    endpoints,
    mac_from_seed,
    observe,
    recover,
    rollback_failures,
)
from netns_kit.errors import (
    AlreadyExistsError,
    NetnsKitError,
    NotFoundError,
    StateError,
    ValidationError,
)
from netns_kit.ipam import AddressPool, SubnetPlan
from netns_kit.model import validate_ifname, validate_netns_name
from netns_kit.modes import ContainerMode, Endpoint
from netns_kit.nat import NatRule, PublishedPort
from netns_kit.network import Network
from netns_kit.overlay import OverlayNetwork, OverlayPeer
from netns_kit.ports import PortSpec


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


# -- wrong types, argument by argument, across the public API -------------------------------------
#
# Each public entry point (everything in netns_kit.__all__ that takes arguments, and the public
# methods of those classes) gets, one argument at a time, values of the wrong type: None, a str
# where a list is expected, a list where a str is, an int for a str, bytes, objects of another
# class. Every one must be a ValidationError whose message names the argument, with the kernel
# unchanged. (Left out: what the library returns rather than takes: AddressInfo, LinkInfo,
# RouteInfo, RecoveryReport, Connection; the error classes.)

class _Other:
    def __repr__(self) -> str:
        return "<_Other>"


OTHER = _Other()
OVERLAY: dict[str, Any] = {"vni": 42, "subnet": "10.72.0.0/16", "share": "10.72.1.0/24", "local": "10.9.0.1",
                           "peers": {"192.0.2.2": "10.72.2.0/24"}}
STR = [None, 7, b"x", ["x"], OTHER]              # a required str
OPT_STR = [7, b"x", ["x"], OTHER]                # an optional str
NS = ["bi-ns", 7, b"bi-ns", OTHER]               # an optional Namespace
REQ_NS = [None, *NS]                             # a required Namespace
STRS = ["10.9.0.1/24", b"10.9.0.1/24", 7, None, [7], [None], OTHER]  # a list of str
INT = ["1500", 1500.0, True, b"1", OTHER]        # an optional int
BOOL = ["yes", None, 1, OTHER]                   # a bool
OPT_BOOL = ["yes", 1, OTHER]                     # an optional bool

# (entry point, argument, hostile values, call with the value)
Call = Callable[[Env, Any], Any]
TYPE_CASES: list[tuple[str, str, list[Any], Call]] = [
    # Namespace
    ("Namespace", "name", STR, lambda e, v: Namespace(v).create()),
    ("Namespace.open", "name", STR, lambda e, v: Namespace.open(v)),
    ("Namespace.from_pid", "pid", ["1", 1.0, True, None, OTHER], lambda e, v: Namespace.from_pid(v)),
    ("Namespace.from_path", "path", STR, lambda e, v: Namespace.from_path(v)),
    ("Namespace.add_address", "ifname", STR, lambda e, v: e.ns.add_address(v, "10.9.0.1/24")),
    ("Namespace.add_address", "address", STR, lambda e, v: e.ns.add_address("lo", v)),
    ("Namespace.add_address", "nodad", BOOL, lambda e, v: e.ns.add_address("lo", "10.9.0.1/24", nodad=v)),
    ("Namespace.delete_address", "ifname", STR, lambda e, v: e.ns.delete_address(v, "10.9.0.1/24")),
    ("Namespace.delete_address", "address", STR, lambda e, v: e.ns.delete_address("lo", v)),
    ("Namespace.add_route", "route", ["default", None, 7, OTHER], lambda e, v: e.ns.add_route(v)),
    ("Namespace.delete_route", "route", ["default", None, 7, OTHER], lambda e, v: e.ns.delete_route(v)),
    ("Namespace.set_link", "ifname", STR, lambda e, v: e.ns.set_link(v, up=True)),
    ("Namespace.set_link", "up", OPT_BOOL, lambda e, v: e.ns.set_link("lo", up=v)),
    ("Namespace.set_link", "mtu", INT, lambda e, v: e.ns.set_link("lo", mtu=v)),
    ("Namespace.set_link", "mac", OPT_STR, lambda e, v: e.ns.set_link("lo", mac=v)),
    ("Namespace.set_link", "master", OPT_STR, lambda e, v: e.ns.set_link("lo", master=v)),
    ("Namespace.set_link", "nomaster", BOOL, lambda e, v: e.ns.set_link("lo", nomaster=v)),
    ("Namespace.read_sysctl", "key", STR, lambda e, v: e.ns.read_sysctl(v)),
    ("Namespace.write_sysctl", "key", STR, lambda e, v: e.ns.write_sysctl(v, "1")),
    ("Namespace.write_sysctl", "value", [None, 1, b"1", ["1"], OTHER],
     lambda e, v: e.ns.write_sysctl("net.ipv4.ip_forward", v)),
    ("Namespace.run", "argv", ["true", b"true", None, 7, ["true", 7], OTHER], lambda e, v: e.ns.run(v)),
    ("Namespace.run", "check", BOOL, lambda e, v: e.ns.run(["true"], check=v)),
    ("Namespace.run", "input", [7, b"x", ["x"], OTHER], lambda e, v: e.ns.run(["true"], input=v)),
    ("Namespace.run", "timeout", ["5", True, OTHER], lambda e, v: e.ns.run(["true"], timeout=v)),
    ("Namespace.run", "env", ["A=1", ["A=1"], {"A": 1}, OTHER], lambda e, v: e.ns.run(["true"], env=v)),
    ("Namespace.run", "cwd", [7, b"/", ["/"], OTHER], lambda e, v: e.ns.run(["true"], cwd=v)),
    ("Namespace.popen", "argv", ["true", b"true", None, 7, ["true", 7]], lambda e, v: e.ns.popen(v)),
    ("Namespace.link", "name", STR, lambda e, v: e.ns.link(v)),
    ("Namespace.has_link", "name", STR, lambda e, v: e.ns.has_link(v)),
    ("Namespace.addresses", "ifname", OPT_STR, lambda e, v: e.ns.addresses(v)),
    ("Namespace.routes", "family", ["4", 5, True, OTHER], lambda e, v: e.ns.routes(v)),
    ("Namespace.same_as", "other", NS, lambda e, v: e.ns.same_as(v)),
    # Bridge and VethPair
    ("Bridge", "name", STR, lambda e, v: Bridge(v).create()),
    ("Bridge", "namespace", NS, lambda e, v: Bridge("br-t", namespace=v).create()),
    ("Bridge", "addresses", STRS, lambda e, v: Bridge("br-t", addresses=v).create()),
    ("Bridge", "mtu", INT, lambda e, v: Bridge("br-t", mtu=v).create()),
    ("Bridge", "mac", OPT_STR, lambda e, v: Bridge("br-t", mac=v).create()),
    ("Bridge", "up", BOOL, lambda e, v: Bridge("br-t", up=v).create()),
    ("Bridge.open", "name", STR, lambda e, v: Bridge.open(v)),
    ("Bridge.open", "namespace", NS, lambda e, v: Bridge.open(e.net.bridge, namespace=v)),
    ("VethPair", "name", STR, lambda e, v: VethPair(v, "eth9", peer_namespace=e.ns).create()),
    ("VethPair", "peer", STR, lambda e, v: VethPair("vt-a", v, peer_namespace=e.ns).create()),
    ("VethPair", "namespace", NS, lambda e, v: VethPair("vt-a", "eth9", namespace=v).create()),
    ("VethPair", "peer_namespace", NS, lambda e, v: VethPair("vt-a", "eth9", peer_namespace=v).create()),
    ("VethPair", "master", [7, b"x", ["x"], OTHER],
     lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, master=v).create()),
    ("VethPair", "mtu", INT, lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, mtu=v).create()),
    ("VethPair", "mac", OPT_STR, lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, mac=v).create()),
    ("VethPair", "peer_mac", OPT_STR,
     lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, peer_mac=v).create()),
    ("VethPair", "up", BOOL, lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, up=v).create()),
    ("VethPair", "peer_up", BOOL, lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, peer_up=v).create()),
    ("VethPair", "ipv6_link_local", BOOL,
     lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, ipv6_link_local=v).create()),
    ("VethPair", "hairpin", BOOL,
     lambda e, v: VethPair("vt-a", "eth9", peer_namespace=e.ns, master=e.net.bridge, hairpin=v).create()),
    # Route
    ("Route", "dst", STR, lambda e, v: e.ns.add_route(Route(dst=v, dev="lo"))),
    ("Route", "gateway", OPT_STR, lambda e, v: e.ns.add_route(Route(gateway=v))),
    ("Route", "dev", OPT_STR, lambda e, v: e.ns.add_route(Route(dst="10.9.0.0/24", dev=v))),
    ("Route", "metric", INT, lambda e, v: e.ns.add_route(Route(dst="10.9.0.0/24", dev="lo", metric=v))),
    ("Route", "table", ["254", True, None, OTHER],
     lambda e, v: e.ns.add_route(Route(dst="10.9.0.0/24", dev="lo", table=v))),
    # OverlayNetwork, OverlayPeer
    ("OverlayPeer", "address", STR, lambda e, v: OverlayPeer(v, "10.72.2.0/24")),
    ("OverlayPeer", "share", STR, lambda e, v: OverlayPeer("192.0.2.2", v)),
    *[("OverlayNetwork", arg, vals,
       (lambda a: lambda e, v: OverlayNetwork("ov2", **{**OVERLAY, a: v}).create())(arg))
      for arg, vals in (("vni", ["42", 42.0, None, OTHER]), ("subnet", STR), ("share", STR), ("local", STR),
                        ("peers", [7, "192.0.2.2", [7], OTHER]), ("port", ["4789", 4789.0, None, OTHER]),
                        ("mtu", INT), ("internal", BOOL))],
    # Network, NetworkConfig
    ("Network", "name", STR, lambda e, v: Network(v, subnet="10.71.0.0/24").create()),
    *[("Network", arg, [7, b"10.71.0.0/24", ["10.71.0.0/24"], OTHER],
       (lambda a: lambda e, v: Network("n2", **{a: v}).create())(arg))
      for arg in ("subnet", "subnet6")],
    *[("Network", arg, [7, b"x", ["x"], OTHER],
       (lambda a, s: lambda e, v: Network("n2", **{s: ("10.71.0.0/24" if s == "subnet" else "fd71::/64"),
                                                 a: v}).create())(arg, sub))
      for arg, sub in (("gateway", "subnet"), ("ip_range", "subnet"), ("gateway6", "subnet6"),
                       ("ip_range6", "subnet6"))],
    ("Network", "bridge", OPT_STR, lambda e, v: Network("n2", subnet="10.71.0.0/24", bridge=v).create()),
    ("Network", "mtu", INT, lambda e, v: Network("n2", subnet="10.71.0.0/24", mtu=v).create()),
    *[("Network", arg, BOOL, (lambda a: lambda e, v: Network("n2", subnet="10.71.0.0/24", **{a: v}).create())(arg))
      for arg in ("internal", "icc", "masquerade", "resolve_names")],
    ("Network", "pools", ["172.17.0.0/16", [7], None, 7, OTHER], lambda e, v: Network("n2", pools=v).create()),
    ("Network", "host", NS, lambda e, v: Network("n2", subnet="10.71.0.0/24", host=v).create()),
    ("NetworkConfig", "name", STR, lambda e, v: NetworkConfig(v)),
    ("NetworkConfig", "subnet", [7, b"10.71.0.0/24", ["10.71.0.0/24"], OTHER],
     lambda e, v: NetworkConfig("n2", subnet=v)),
    ("NetworkConfig", "pools", ["172.17.0.0/16", [7], None, 7], lambda e, v: NetworkConfig("n2", pools=v)),
    ("Network.open", "name", STR, lambda e, v: Network.open(v)),
    ("Network.open", "host", NS, lambda e, v: Network.open("bi", host=v)),
    ("Network.connect", "namespace", REQ_NS, lambda e, v: e.net.connect(v)),
    ("Network.connect", "ip", [7, b"x", ["10.70.0.5"], OTHER], lambda e, v: e.net.connect(e.ns, ip=v)),
    ("Network.connect", "ip6", [7, b"x", ["fd00::5"], OTHER], lambda e, v: e.net.connect(e.ns, ip6=v)),
    ("Network.connect", "ifname", OPT_STR, lambda e, v: e.net.connect(e.ns, ifname=v)),
    ("Network.connect", "name", OPT_STR, lambda e, v: e.net.connect(e.ns, name=v)),
    ("Network.connect", "aliases", ["web", b"web", 7, None, [7]], lambda e, v: e.net.connect(e.ns, aliases=v)),
    ("Network.connect", "mac", OPT_STR, lambda e, v: e.net.connect(e.ns, mac=v)),
    ("Network.connect", "publish", ["8081:80", b"8081:80", 8081, None, [8081]],
     lambda e, v: e.net.connect(e.ns, publish=v)),
    ("Network.connect", "default_route", OPT_BOOL, lambda e, v: e.net.connect(e.ns, default_route=v)),
    ("Network.disconnect", "namespace", REQ_NS, lambda e, v: e.net.disconnect(v)),
    ("Network.resolve", "name", STR, lambda e, v: e.net.resolve(v)),
    ("Network.remove", "force", BOOL, lambda e, v: e.net.remove(force=v)),
    # Endpoint and the modes
    ("Endpoint", "name", STR, lambda e, v: Endpoint(v, mode="none").create()),
    ("Endpoint", "mode", [7, None, b"none", ["none"], OTHER], lambda e, v: Endpoint("bi-e", mode=v).create()),
    ("Endpoint", "publish", ["8081:80", b"8081:80", 8081, None, [8081]],
     lambda e, v: Endpoint("bi-e", mode="bi", publish=v).create()),
    ("Endpoint", "ip", [7, b"x", ["10.70.0.5"], OTHER], lambda e, v: Endpoint("bi-e", mode="bi", ip=v).create()),
    ("Endpoint", "ip6", [7, b"x", ["fd00::5"], OTHER], lambda e, v: Endpoint("bi-e", mode="bi", ip6=v).create()),
    ("Endpoint", "aliases", ["web", b"web", 7, None, [7]],
     lambda e, v: Endpoint("bi-e", mode="bi", aliases=v).create()),
    ("Endpoint", "mac", OPT_STR, lambda e, v: Endpoint("bi-e", mode="bi", mac=v).create()),
    ("Endpoint", "host", NS, lambda e, v: Endpoint("bi-e", mode="bi", host=v).create()),
    ("Endpoint.connect", "network", ["bi", None, 7, OTHER],
     lambda e, v: Endpoint("bi-e", mode="none").connect(v)),
    ("ContainerMode", "target", [7, None, b"x", OTHER], lambda e, v: Endpoint("bi-e", mode=ContainerMode(v)).create()),
    ("CustomMode", "network", [7, None, b"x", OTHER], lambda e, v: Endpoint("bi-e", mode=CustomMode(v)).create()),
    ("NetworkMode.parse", "value", [7, None, b"x", OTHER], lambda e, v: NetworkMode.parse(v)),
    # NAT, ports, firewall
    ("NatRule", "entry", ["8080:80", 7, None, OTHER], lambda e, v: NatRule(v).create()),
    ("NatRule", "namespace", NS, lambda e, v: NatRule(Masquerade(ipaddress.ip_network("10.9.0.0/24")),
                                                      namespace=v).create()),
    ("NatRule.masquerade", "subnet", [7, None, ["10.9.0.0/24"], b"x", OTHER],
     lambda e, v: NatRule.masquerade(v).create()),
    ("NatRule.masquerade", "bridge", OPT_STR, lambda e, v: NatRule.masquerade("10.9.0.0/24", bridge=v).create()),
    ("NatRule.dnat", "port", [8080, None, ["8080:80"], b"8080:80", OTHER],
     lambda e, v: NatRule.dnat(v, container_ip="10.70.0.9", bridge=e.net.bridge).create()),
    ("NatRule.dnat", "container_ip", OPT_STR,
     lambda e, v: NatRule.dnat("8085:80", container_ip=v, bridge=e.net.bridge).create()),
    ("NatRule.dnat", "bridge", OPT_STR, lambda e, v: NatRule.dnat("8085:80", container_ip="10.70.0.9",
                                                                   bridge=v).create()),
    ("Masquerade", "subnet", [7, None, ["10.9.0.0/24"], OTHER], lambda e, v: NatRule(Masquerade(v)).create()),
    ("Masquerade", "bridge", OPT_STR,
     lambda e, v: NatRule(Masquerade(ipaddress.ip_network("10.9.0.0/24"), bridge=v)).create()),
    ("PublishedPort", "host_port", ["8085", True, None, OTHER],
     lambda e, v: NatRule(PublishedPort(v, "10.70.0.9", 80, e.net.bridge)).create()),
    ("PublishedPort", "container_ip", STR,
     lambda e, v: NatRule(PublishedPort(8085, v, 80, e.net.bridge)).create()),
    ("PublishedPort", "container_port", ["80", True, None, OTHER],
     lambda e, v: NatRule(PublishedPort(8085, "10.70.0.9", v, e.net.bridge)).create()),
    ("PublishedPort", "bridge", STR, lambda e, v: NatRule(PublishedPort(8085, "10.70.0.9", 80, v)).create()),
    ("PublishedPort", "host_ip", OPT_STR,
     lambda e, v: NatRule(PublishedPort(8085, "10.70.0.9", 80, e.net.bridge, host_ip=v)).create()),
    ("PublishedPort", "proto", STR,
     lambda e, v: NatRule(PublishedPort(8085, "10.70.0.9", 80, e.net.bridge, proto=v)).create()),
    ("PortSpec.parse", "spec", [8085, None, ["8085:80"], b"8085:80", OTHER], lambda e, v: PortSpec.parse(v)),
    ("endpoints", "host", ["bi-ns", 7, OTHER], lambda e, v: endpoints(v)),
    ("PublishedPort.parse", "spec", [8085, None, ["8085:80"], b"8085:80", OTHER],
     lambda e, v: PublishedPort.parse(v, container_ip="10.70.0.9", bridge=e.net.bridge)),
    ("Firewall", "ns", [None, "bi-ns", 7, OTHER], lambda e, v: Firewall(v).publish(
        PublishedPort(8085, "10.70.0.9", 80, e.net.bridge))),
    ("Firewall.for_namespace", "ns", ["bi-ns", 7, OTHER], lambda e, v: Firewall.for_namespace(v)),
    ("NameService.of", "host", ["bi-ns", 7, OTHER], lambda e, v: NameService.of(v)),
    ("Firewall.publish", "ports", ["8085:80", 7, None, OTHER], lambda e, v: Firewall.for_namespace().publish(v)),
    ("Firewall.unpublish", "ports", ["8080:80", 7, None, OTHER],
     lambda e, v: Firewall.for_namespace().unpublish(v)),
    ("Firewall.add_masquerade", "subnet", [7, None, ["10.9.0.0/24"], OTHER],
     lambda e, v: Firewall.for_namespace().add_masquerade(v)),
    ("Firewall.add_masquerade", "bridge", OPT_STR,
     lambda e, v: Firewall.for_namespace().add_masquerade("10.9.0.0/24", bridge=v)),
    ("Firewall.remove_masquerade", "subnet", [7, None, ["10.9.0.0/24"], OTHER],
     lambda e, v: Firewall.for_namespace().remove_masquerade(v)),
    ("Firewall.attach_network", "policy", ["br-x", None, 7, OTHER],
     lambda e, v: Firewall.for_namespace().attach_network(v)),
    ("Firewall.detach_network", "bridge", STR, lambda e, v: Firewall.for_namespace().detach_network(v)),
    ("NetworkPolicy", "bridge", STR, lambda e, v: Firewall.for_namespace().attach_network(NetworkPolicy(v))),
    ("NetworkPolicy", "subnets", ["10.9.0.0/24", [7], None, OTHER],
     lambda e, v: Firewall.for_namespace().attach_network(NetworkPolicy("br-x", v))),
    *[("NetworkPolicy", arg, BOOL, (lambda a: lambda e, v: Firewall.for_namespace().attach_network(
        NetworkPolicy("br-x", **{a: v})))(arg)) for arg in ("internal", "icc", "masquerade")],
    # pipework
    ("Attachment", "target", [7.5, None, b"x", ["bi-ns"], OTHER],
     lambda e, v: Attachment(v, bridge=e.net.bridge, address="10.70.0.50/24").create()),
    ("Attachment", "bridge", [7, b"x", ["x"], OTHER],
     lambda e, v: Attachment(e.ns, bridge=v, address="10.70.0.50/24").create()),
    ("Attachment", "macvlan", [7, b"x", ["x"], OTHER],
     lambda e, v: Attachment(e.ns, macvlan=v, address="10.70.0.50/24").create()),
    ("Attachment", "macvlan_mode", STR,
     lambda e, v: Attachment(e.ns, macvlan="lo", macvlan_mode=v, address="10.70.0.50/24").create()),
    ("Attachment", "vlan", ["5", True, 5.0, OTHER],
     lambda e, v: Attachment(e.ns, macvlan="lo", vlan=v, address="10.70.0.50/24").create()),
    ("Attachment", "address", [7, b"x", ["10.70.0.50/24"], OTHER],
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address=v).create()),
    ("Attachment", "gateway", [7, b"x", ["10.70.0.1"], OTHER],
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", gateway=v).create()),
    ("Attachment", "ipv6", ["fd70::5/64", b"x", 7, None, [7], OTHER],
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", ipv6=v).create()),
    ("Attachment", "gateway6", OPT_STR,
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, ipv6=["fd70::5/64"], gateway6=v).create()),
    ("Attachment", "routes", [Route(dev="eth0"), "default", [7], None, OTHER],
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", routes=v).create()),
    ("Attachment", "mac", OPT_STR,
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", mac=v).create()),
    ("Attachment", "mac_seed", [7, ["x"], OTHER],
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", mac_seed=v).create()),
    ("Attachment", "ifname", STR,
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", ifname=v).create()),
    ("Attachment", "host_ifname", OPT_STR,
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", host_ifname=v).create()),
    ("Attachment", "mtu", INT,
     lambda e, v: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24", mtu=v).create()),
    *[("Attachment", arg, BOOL, (lambda a: lambda e, v: Attachment(
        e.ns, bridge="br-new", address="10.9.0.50/24",
        **dict[str, Any]({"create_bridge": True} | {a: v})).create())(arg))
      for arg in ("create_bridge", "announce")],
    ("Attachment", "host", NS,
     lambda e, v: Attachment(e.ns, bridge="br-new", create_bridge=True, address="10.9.0.50/24", host=v).create()),
    ("attach", "target", [7.5, None, b"x", OTHER], lambda e, v: attach(v, e.net.bridge, "10.70.0.50/24")),
    ("attach", "bridge", [7, b"x", ["x"], OTHER], lambda e, v: attach(e.ns, v, "10.70.0.50/24")),
    ("attach", "address", [7, b"x", ["10.70.0.50/24"], OTHER], lambda e, v: attach(e.ns, e.net.bridge, v)),
    ("Container", "ref", [7, None, b"x", ["x"], OTHER], lambda e, v: Container(v).namespace()),
    ("Container", "engine", ["podman", 7, OTHER], lambda e, v: Container("c1", engine=v).namespace()),
    ("Engine", "name", [7, None, b"podman", OTHER], lambda e, v: Engine(v).container_pid("c1")),
    ("Engine", "options", ["--x", [7], None, OTHER], lambda e, v: Engine("podman", options=v).container_pid("c1")),
    ("Engine", "executable", [7, b"x", ["x"], OTHER],
     lambda e, v: Engine("podman", executable=v).container_pid("c1")),
    ("Engine", "timeout", ["5", True, None, OTHER], lambda e, v: Engine("podman", timeout=v).container_pid("c1")),
    ("Engine.container_pid", "ref", [7, None, b"x", ["x"], OTHER], lambda e, v: Engine.podman().container_pid(v)),
    # Topology's builders
    ("Topology", "title", [7, None, b"x", ["x"], OTHER], lambda e, v: Topology(v).namespace("bi-t").create()),
    ("Topology.namespace", "name", STR, lambda e, v: Topology().namespace(v).create()),
    ("Topology.bridge", "name", STR, lambda e, v: Topology().bridge(v).create()),
    ("Topology.bridge", "addresses", STRS, lambda e, v: Topology().bridge("br-t", addresses=v).create()),
    ("Topology.bridge", "mtu", INT, lambda e, v: Topology().bridge("br-t", mtu=v).create()),
    *[("Topology.bridge", arg, BOOL, (lambda a: lambda e, v: Topology().bridge(
        "br-t", addresses=["10.9.0.1/24"], **{a: v}).create())(arg)) for arg in ("nat", "masquerade", "icc")],
    ("Topology.endpoint", "namespace", STR, lambda e, v: Topology().bridge("br-t").endpoint(
        v, bridge="br-t", address="10.9.0.2/24").create()),
    ("Topology.endpoint", "bridge", STR, lambda e, v: Topology().bridge("br-t").endpoint(
        "bi-t", bridge=v, address="10.9.0.2/24").create()),
    ("Topology.endpoint", "address", [7, None, b"x", [7], OTHER], lambda e, v: Topology().bridge("br-t").endpoint(
        "bi-t", bridge="br-t", address=v).create()),
    *[("Topology.endpoint", arg, OPT_STR, (lambda a: lambda e, v: Topology().bridge("br-t").endpoint(
        "bi-t", bridge="br-t", address="10.9.0.2/24", **{a: v}).create())(arg))
      for arg in ("gateway", "host_ifname", "mac")],
    ("Topology.endpoint", "ifname", STR, lambda e, v: Topology().bridge("br-t").endpoint(
        "bi-t", bridge="br-t", address="10.9.0.2/24", ifname=v).create()),
    ("Topology.endpoint", "publish", ["8085:80", b"8085:80", 8085, None, [8085]],
     lambda e, v: Topology().bridge("br-t", addresses=["10.9.0.1/24"], nat=True).endpoint(
         "bi-t", bridge="br-t", address="10.9.0.2/24", publish=v).create()),
    ("Topology.endpoint", "ipv6_link_local", OPT_BOOL, lambda e, v: Topology().bridge("br-t").endpoint(
        "bi-t", bridge="br-t", address="10.9.0.2/24", ipv6_link_local=v).create()),
    # undo, recovery, inspection, helpers
    ("Transaction", "keep", BOOL, lambda e, v: Transaction(keep=v)),
    ("Transaction.record", "description", [7, None, b"x", OTHER],
     lambda e, v: Transaction().record(v, lambda: None)),
    ("Transaction.record", "undo", ["x", None, 7], lambda e, v: Transaction().record("x", v)),
    ("observe", "namespaces", ["bi-ns", 7, None, [7], OTHER], lambda e, v: observe(v)),
    ("observe", "host", NS, lambda e, v: observe(host=v)),
    ("observe", "title", [7, None, b"x", OTHER], lambda e, v: observe(title=v)),
    ("recover", "firewall", BOOL, lambda e, v: recover(firewall=v)),
    ("mac_from_seed", "seed", [7, None, ["x"], OTHER], lambda e, v: mac_from_seed(v)),
    ("default_network", "host", NS, lambda e, v: default_network(host=v)),
    ("rollback_failures", "exc", [7, None, "x", OTHER], lambda e, v: rollback_failures(v)),
]


def test_type_cases_cover_the_public_api() -> None:
    import inspect

    import netns_kit as nk

    covered = {c[0].split(".")[0] for c in TYPE_CASES}
    outputs = {"AddressInfo", "LinkInfo", "RouteInfo", "RecoveryReport", "Connection", "RemovalBatch",
               "BridgeMode", "HostMode", "NoneMode", "removal_batch", "EndpointInfo", "PortBinding",
               "RemovalReport", "TopologySpec"}  # returned by the library (TopologySpec: by the topology
    # file readers, whose bad input tests/test_topofile.py covers), or no arguments
    errors = {n for n in nk.__all__ if inspect.isclass(getattr(nk, n)) and issubclass(getattr(nk, n), BaseException)}
    assert set(nk.__all__) - errors - outputs <= covered, set(nk.__all__) - errors - outputs - covered
    assert len(TYPE_CASES) >= 150


@pytest.mark.parametrize(("where", "arg", "values", "call"), TYPE_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TYPE_CASES])
def test_wrong_types_are_refused_naming_the_argument(env: Env, where: str, arg: str, values: list[Any],
                                                     call: Call) -> None:
    before = _kernel(env)
    wrong = []
    for value in values:
        try:
            call(env, value)
        except ValidationError as exc:
            if arg not in str(exc):
                wrong.append(f"{value!r}: message does not name {arg!r}: {exc}")
        except Exception as exc:  # every other kind is reported
            wrong.append(f"{value!r}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{value!r}: accepted")
        if _kernel(env) != before:
            wrong.append(f"{value!r}: the kernel changed")
            break
    assert not wrong, f"{where}({arg}=...):\n  " + "\n  ".join(wrong)


# -- subnets that cannot serve a bridge network ---------------------------------------------------

UNUSABLE = [("127.0.0.0/8", "loopback"), ("127.1.0.0/24", "loopback"), ("224.0.0.0/24", "multicast"),
            ("239.1.0.0/16", "multicast"), ("169.254.0.0/16", "link-local"), ("0.0.0.0/8", "unspecified"),
            ("0.0.0.0/0", "unspecified"), ("255.255.255.252/30", "broadcast")]
UNUSABLE6 = [("fe80::/64", "link-local"), ("ff02::/64", "multicast"), ("::/120", "unspecified"),
             ("::/127", "unspecified")]


def _host_in(subnet: str, n: int = 1) -> str:
    net = ipaddress.ip_network(subnet)
    return f"{net.network_address + n}/{net.prefixlen}"


SUBNET_CASES: list[tuple[str, Callable[[Env], Any], str]] = [
    *[(f"network-{s}", (lambda x: lambda e: Network("n3", subnet=x).create())(s), k) for s, k in UNUSABLE],
    *[(f"network6-{s}", (lambda x: lambda e: Network("n3", subnet="10.71.0.0/24", subnet6=x).create())(s), k)
      for s, k in UNUSABLE6],
    ("config-127", lambda e: NetworkConfig("n3", subnet="127.0.0.0/8"), "loopback"),
    ("pool-127", lambda e: Network("n3", pools=[AddressPool(ipaddress.ip_network("127.0.0.0/8"), 24)]).create(),
     "loopback"),
    ("pool-multicast", lambda e: AddressPool(ipaddress.ip_network("224.0.0.0/8"), 24), "multicast"),
    ("plan-link-local", lambda e: SubnetPlan("169.254.0.0/16"), "link-local"),
    *[(f"attach-{s}", (lambda x: lambda e: Attachment(e.ns, bridge=e.net.bridge, address=_host_in(x, 5)).create())(s),
       k) for s, k in UNUSABLE[:5]],
    *[(f"attach6-{s}", (lambda x: lambda e: Attachment(e.ns, bridge=e.net.bridge, address="10.70.0.50/24",
                                                        ipv6=[_host_in(x, 5)]).create())(s), k)
      for s, k in UNUSABLE6[:2]],
    ("attach-gateway-link-local", lambda e: Attachment(e.ns, bridge=e.net.bridge, address="169.254.3.5/16",
                                                       gateway="169.254.3.1").create(), "link-local"),
    *[(f"topology-bridge-{s}", (lambda x: lambda e: Topology().bridge("br-t", addresses=[_host_in(x)]).create())(s),
       k) for s, k in UNUSABLE[:5] + UNUSABLE6[:2]],
    *[(f"topology-endpoint-{s}", (lambda x: lambda e: Topology().bridge("br-t", addresses=["10.9.0.1/24"]).endpoint(
        "bi-t", bridge="br-t", address=_host_in(x, 2)).create())(s), k) for s, k in UNUSABLE[:5] + UNUSABLE6[:2]],
]


@pytest.mark.parametrize(("call", "kind"), [c[1:] for c in SUBNET_CASES], ids=[c[0] for c in SUBNET_CASES])
def test_unusable_subnets_are_refused(env: Env, call: Callable[[Env], Any], kind: str) -> None:
    before = _kernel(env)
    with pytest.raises(ValidationError, match=kind):
        call(env)
    assert _kernel(env) == before
    assert not env.host.has_link("br-t") and not os.path.exists("/run/netns/bi-t")


# -- Topology: conflicts found at the builder call, before any change -----------------------------

def _topo() -> Topology:
    return Topology().bridge("br-t", addresses=["10.9.0.1/24"], nat=True).endpoint(
        "bi-t1", bridge="br-t", address="10.9.0.2/24", mac="02:00:00:00:00:02", publish=["8086:80"])


TOPOLOGY_CONFLICTS: list[tuple[str, Callable[[], Topology], str]] = [
    ("same-address", lambda: _topo().endpoint("bi-t2", bridge="br-t", address="10.9.0.2/24"), "10.9.0.2"),
    ("address-is-gateway", lambda: _topo().endpoint("bi-t2", bridge="br-t", address="10.9.0.1/24"), "10.9.0.1"),
    ("same-mac", lambda: _topo().endpoint("bi-t2", bridge="br-t", address="10.9.0.3/24", mac="02:00:00:00:00:02"),
     "02:00:00:00:00:02"),
    ("same-host-port", lambda: _topo().endpoint("bi-t2", bridge="br-t", address="10.9.0.3/24",
                                                 publish=["8086:81"]), "8086"),
    ("host-port-in-range", lambda: _topo().endpoint("bi-t2", bridge="br-t", address="10.9.0.3/24",
                                                     publish=["8080-8090:80-90"]), "8080-8090"),
    ("same-port-one-list", lambda: Topology().bridge("br-t", addresses=["10.9.0.1/24"], nat=True).endpoint(
        "bi-t2", bridge="br-t", address="10.9.0.3/24", publish=["8087:80", "8087:81"]), "8087"),
    ("host-name-is-bridge", lambda: _topo().bridge("br-u").endpoint("bi-t2", bridge="br-t", address="10.9.0.3/24",
                                                                    host_ifname="br-u"), "br-u"),
    ("same-host-name", lambda: _topo().endpoint("bi-t2", bridge="br-t", address="10.9.0.3/24",
                                                host_ifname="vbi-t1"), "vbi-t1"),
    ("same-interface", lambda: _topo().endpoint("bi-t1", bridge="br-t", address="10.9.0.3/24",
                                                host_ifname="vx"), "eth0"),
]


@pytest.mark.parametrize(("build", "needle"), [c[1:] for c in TOPOLOGY_CONFLICTS],
                         ids=[c[0] for c in TOPOLOGY_CONFLICTS])
def test_topology_conflicts_are_refused_before_any_change(env: Env, build: Callable[[], Topology],
                                                          needle: str) -> None:
    before = _kernel(env)
    with pytest.raises(ValidationError, match=needle):
        build().create()
    assert _kernel(env) == before
    assert not env.host.has_link("br-t") and not os.path.exists("/run/netns/bi-t1")


def test_topology_allows_what_does_not_conflict(env: Env) -> None:
    """The positive control: another address, another protocol or host address for the same port,
    and the same address on another bridge are fine."""
    topo = _topo().bridge("br-u", addresses=["10.9.1.1/24"], nat=True)
    topo.endpoint("bi-t2", bridge="br-t", address="10.9.0.3/24", publish=["8086:80/udp", "127.0.0.1:8088:80"])
    topo.endpoint("bi-t3", bridge="br-u", address="10.9.1.2/24", publish=["127.0.0.2:8088:80"])
    assert len(topo.plan()) > 0


# -- sysctl values -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "needle"), [("1\n0", "newline"), ("1\nnet.ipv4.ip_forward=0", "newline"),
                                               ("yes", "numbers"), ("1;0", "plain"), ("", "plain"),
                                               ("1  2", "plain")])
def test_sysctl_values_are_checked_before_the_kernel(env: Env, value: str, needle: str) -> None:
    old = env.ns.read_sysctl("net.ipv4.ip_default_ttl")
    with pytest.raises(ValidationError, match=needle) as info:
        env.ns.write_sysctl("net.ipv4.ip_default_ttl", value)
    assert "net.ipv4.ip_default_ttl" in str(info.value)
    assert env.ns.read_sysctl("net.ipv4.ip_default_ttl") == old


def _pending_journal_ops() -> list[str]:
    """The operations this process's on-disk journal still holds (neither done nor kept)."""
    import json
    from pathlib import Path

    from netns_kit import _state

    path = Path(_state.journal_dir()) / f"{_state.owner_id()}.jsonl"
    entries: dict[int, str] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        if "i" in rec:
            entries[rec["i"]] = rec["op"]
        for k in ("done", "keep"):
            entries.pop(rec.get(k, -1), None)
    return list(entries.values())


def test_kernel_refusal_of_a_sysctl_is_a_kernel_error_naming_the_key(env: Env) -> None:
    from netns_kit import KernelError

    old = env.ns.read_sysctl("net.ipv4.ip_default_ttl")
    with pytest.raises(KernelError, match=r"net\.ipv4\.ip_default_ttl") as info:
        env.ns.write_sysctl("net.ipv4.ip_default_ttl", "0")  # the kernel's minimum is 1: EINVAL
    assert info.value.errno == 22 and not isinstance(info.value, ValidationError)
    assert env.ns.read_sysctl("net.ipv4.ip_default_ttl") == old
    assert "sysctl" not in _pending_journal_ops()  # nothing changed, so nothing left to undo either
    with Transaction(keep=False):  # a refused write records no undo; a good one is undone
        env.ns.write_sysctl("net.ipv4.ip_default_ttl", "33")
        assert env.ns.read_sysctl("net.ipv4.ip_default_ttl") == "33"
    assert env.ns.read_sysctl("net.ipv4.ip_default_ttl") == old


def test_every_sysctl_write_goes_through_the_one_checked_writer() -> None:
    """Namespace.write_sysctl, the firewall's sysctls and recovery all call _sys.write_sysctl (which
    checks the value and maps refusals to KernelError): no other module opens /proc/sys for writing."""
    import pathlib

    import netns_kit

    pkg = pathlib.Path(netns_kit.__file__).parent
    writers = {p.name for p in pkg.glob("*.py") if "/proc/sys" in p.read_text() and p.name != "_sys.py"
               and ('"w"' in p.read_text() or "O_WRONLY" in p.read_text())}
    assert not writers, writers
    callers = {p.name for p in pkg.glob("*.py") if "_sys.write_sysctl(" in p.read_text()}
    assert {"namespace.py", "firewall.py", "_recovery.py"} <= callers, callers
