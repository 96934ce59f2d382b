"""VethPair(ipv6_link_local=False) and IPv4-only networks: no IPv6 link-local address on either
end, so nothing is flooded across the bridge; explicit IPv6 addresses still carry traffic."""

from __future__ import annotations

import json
import time

from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace


def _link_local(ns: Namespace, ifname: str) -> list[str]:
    return [str(a.interface) for a in ns.addresses(ifname) if a.address.version == 6 and a.address.is_link_local]


def _rx_packets(ns: Namespace, ifname: str) -> int:
    out = ns.run(["ip", "-j", "-s", "link", "show", "dev", ifname], check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def _build(host: Namespace, count: int, *, link_local: bool) -> tuple[nk.Bridge, list[Namespace]]:
    br = nk.Bridge("br6", namespace=host).create()
    spaces = []
    for i in range(count):
        ns = nk.Namespace(f"ll{i}").create()
        nk.VethPair(f"hll{i}", "eth0", namespace=host, peer_namespace=ns, master=br,
                    ipv6_link_local=link_local).create()
        spaces.append(ns)
    return br, spaces


def _wait_carrier(ns: Namespace, ifname: str) -> None:
    for _ in range(200):
        if json.loads(ns.run(["ip", "-j", "link", "show", "dev", ifname], check=True).stdout)[0]["operstate"] == "UP":
            return
        time.sleep(0.01)


def test_without_link_local_nothing_is_flooded_and_no_fe80_appears(host: Namespace) -> None:
    br, spaces = _build(host, 6, link_local=False)
    try:
        for ns in spaces:
            _wait_carrier(ns, "eth0")
        before = _rx_packets(host, "br6")
        time.sleep(2.5)  # DAD, MLD reports and router solicitations would all have gone by now
        assert _rx_packets(host, "br6") == before
        for i, ns in enumerate(spaces):
            assert _link_local(ns, "eth0") == []
            assert _link_local(host, f"hll{i}") == []
    finally:
        for ns in spaces:
            ns.remove()
        br.remove()


def test_with_link_local_the_bridge_sees_the_endpoints_ipv6_chatter(host: Namespace) -> None:
    """The control for the test above: by default each end gets fe80:: and the bridge hears it."""
    br, spaces = _build(host, 3, link_local=True)
    try:
        before = _rx_packets(host, "br6")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(_link_local(ns, "eth0") for ns in spaces):
            time.sleep(0.05)
        assert all(_link_local(ns, "eth0") for ns in spaces)
        while time.monotonic() < deadline and _rx_packets(host, "br6") == before:
            time.sleep(0.05)
        assert _rx_packets(host, "br6") > before
    finally:
        for ns in spaces:
            ns.remove()
        br.remove()


def test_explicit_ipv6_addresses_work_without_link_local(host: Namespace) -> None:
    br, (a, b) = _build(host, 2, link_local=False)
    try:
        a.add_address("eth0", "fd00:6::2/64")
        b.add_address("eth0", "fd00:6::3/64")
        with serve(b, "fd00:6::3", 8080) as srv:
            assert connect(a, "fd00:6::3", 8080) == "hello from " + b.label + "\n"
        assert srv.peers[0][0] == "fd00:6::2"
        assert _link_local(a, "eth0") == [] and _link_local(b, "eth0") == []
    finally:
        a.remove()
        b.remove()
        br.remove()


def test_ipv4_only_network_endpoints_have_no_link_local_dual_stack_ones_do(host: Namespace) -> None:
    with nk.Network("v4only", subnet="10.60.0.0/24") as v4, \
            nk.Network("dual", subnet="10.61.0.0/24", subnet6="fd00:61::/64") as dual:
        e4 = nk.Endpoint("e4", v4.name).create()
        e6 = nk.Endpoint("e6", dual.name).create()
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not _link_local(e6.namespace, "eth0"):
                time.sleep(0.05)
            assert _link_local(e6.namespace, "eth0")  # dual stack: link-local as usual
            assert _link_local(e4.namespace, "eth0") == []
            assert e4.address is not None
            with serve(e4.namespace, "0.0.0.0", 8080):
                assert connect(host, str(e4.address), 8080) == "hello from e4\n"  # IPv4 unaffected
        finally:
            e4.remove()
            e6.remove()
