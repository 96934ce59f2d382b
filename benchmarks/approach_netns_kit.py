"""netns_kit through its public API: Namespace, Bridge, VethPair, addresses, routes, Firewall.

Each endpoint is built the way a user would write it: a named namespace, a veth pair whose
peer is born in it as ``eth0`` on the bridge, an address, a default route, and a port
published with ``Firewall.publish`` (an element of the firewall's dnat map, plus its hairpin
element). Each veth pair is made with ``ipv6_link_local=False``: the endpoints are IPv4-only,
and without it every endpoint's IPv6 link-local chatter is flooded to every bridge port (what
netns_kit's own networks do for IPv4-only networks, as Docker does).
Teardown: ``Namespace.remove(wait=False)`` per endpoint, like the floor (the kernel reclaims
the veth pair with the namespace, in the background), then one ``Firewall.unpublish`` call
with every port (one nft batch, as the other approaches empty their map or chain in one call).
Detaching the network (which deletes the firewall table) and removing the bridge are cleanup,
as the floor's table and bridge deletion are.
Flatness: each endpoint's build and each ``Namespace.remove`` are timed on their own (the first
and last tenth are reported); the one ``unpublish`` batch is in the teardown total only.
"""

from __future__ import annotations

import time
from typing import Any

import netns_kit as nk
from benchmarks._common import (
    BRIDGE,
    BRIDGE_IP,
    CONTAINER_PORT,
    PREFIXLEN,
    SUBNET,
    endpoint_ip,
    flatness_extra,
    host_port,
)


class Endpoint:
    __slots__ = ("ns", "port", "veth")

    def __init__(self, ns: nk.Namespace, veth: nk.VethPair, port: nk.PublishedPort) -> None:
        self.ns = ns
        self.veth = veth
        self.port = port


class NetnsKit:
    prefix = "bnk"
    note = ("public API, one call per object; ports via Firewall.publish (dnat map + hairpin element); "
            "veths without IPv6 link-local")

    def __init__(self, n: int) -> None:
        self.n = n
        self.endpoints: list[Endpoint] = []
        self.host = nk.Namespace.current()
        self.bridge = nk.Bridge(BRIDGE, namespace=self.host, addresses=[f"{BRIDGE_IP}/{PREFIXLEN}"])
        self.route = nk.Route(gateway=BRIDGE_IP)
        self.firewall = nk.Firewall.for_namespace(self.host)
        self.extra: dict[str, Any] = {}
        self._setup_times: list[float] = []

    def prepare(self) -> None:
        self.bridge.create()
        self.firewall.attach_network(nk.NetworkPolicy(bridge=BRIDGE, subnets=(SUBNET,)))  # type: ignore[arg-type]

    def build_one(self, i: int) -> Endpoint:
        ns = nk.Namespace(f"{self.prefix}{i}").create()
        veth = nk.VethPair(f"h{self.prefix}{i}", "eth0", namespace=self.host, peer_namespace=ns,
                           master=self.bridge, ipv6_link_local=False).create()
        ip = endpoint_ip(i)
        ns.add_address("eth0", f"{ip}/{PREFIXLEN}")
        ns.add_route(self.route)
        port = nk.PublishedPort(host_port=host_port(i), container_ip=ip, container_port=CONTAINER_PORT,
                                bridge=BRIDGE)
        self.firewall.publish(port)
        return Endpoint(ns, veth, port)

    def setup(self) -> None:
        clock = time.perf_counter
        for i in range(1, self.n + 1):
            t = clock()
            self.endpoints.append(self.build_one(i))
            self._setup_times.append(clock() - t)

    def teardown(self) -> None:
        clock = time.perf_counter
        times: list[float] = []
        for ep in self.endpoints:
            t = clock()
            ep.ns.remove(wait=False)  # as the floor: the kernel reclaims the veths in the background
            times.append(clock() - t)
        self.firewall.unpublish(*(ep.port for ep in self.endpoints))
        self.extra.update(flatness_extra(self._setup_times, times, "one Namespace.remove(wait=False)"))
        self.endpoints.clear()

    def cleanup(self) -> None:
        if BRIDGE in self.firewall.networks:
            self.firewall.detach_network(BRIDGE)
        self.bridge.remove()


def make(n: int) -> NetnsKit:
    return NetnsKit(n)
