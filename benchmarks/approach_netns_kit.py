"""netns_kit through its public API: Namespace, Bridge, VethPair, addresses, routes, published ports.

Each endpoint is built the way a user would write it. Teardown removes, per endpoint, the
published port and the namespace (its veth pair goes with it).
"""

from __future__ import annotations

from typing import Any

import netns_kit as nk
from benchmarks._common import BRIDGE, BRIDGE_IP, PREFIXLEN, endpoint_ip
from benchmarks.approach_pyroute2 import TABLE, nat_table_script, nft_json, port_element

try:  # the firewall API (issue 3) may not have landed yet
    from netns_kit import Firewall, PublishedPort  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the checkout
    Firewall = PublishedPort = None


class Endpoint:
    __slots__ = ("ns", "port", "veth")

    def __init__(self, ns: nk.Namespace, veth: nk.VethPair, port: Any) -> None:
        self.ns = ns
        self.veth = veth
        self.port = port


class NetnsKit:
    prefix = "bnk"
    note = "public API, one call per object"

    def __init__(self, n: int) -> None:
        self.n = n
        self.endpoints: list[Endpoint] = []
        self.host = nk.Namespace.current()
        self.bridge = nk.Bridge(BRIDGE, namespace=self.host, addresses=[f"{BRIDGE_IP}/{PREFIXLEN}"])
        self.route = nk.Route(gateway=BRIDGE_IP)
        self.nft: Any = None

    def prepare(self) -> None:
        self.bridge.create()
        import nftables

        self.nft = nftables.Nftables()
        rc, _, err = self.nft.cmd(nat_table_script(TABLE))
        if rc != 0:
            raise RuntimeError(err)
        self.note += "; ports via libnftables (Firewall not available yet)"

    def build_one(self, i: int) -> Endpoint:
        ns = nk.Namespace(f"{self.prefix}{i}").create()
        veth = nk.VethPair(f"h{self.prefix}{i}", "eth0", namespace=self.host, peer_namespace=ns,
                           master=self.bridge).create()
        ns.add_address("eth0", f"{endpoint_ip(i)}/{PREFIXLEN}")
        ns.add_route(self.route)
        nft_json(self.nft, [{"add": {"element": {"family": "ip", "table": TABLE, "name": "ports",
                                                 "elem": [port_element(i)]}}}])
        return Endpoint(ns, veth, i)

    def setup(self) -> None:
        for i in range(1, self.n + 1):
            self.endpoints.append(self.build_one(i))

    def teardown(self) -> None:
        for ep in self.endpoints:
            nft_json(self.nft, [{"delete": {"element": {"family": "ip", "table": TABLE, "name": "ports",
                                                        "elem": [port_element(ep.port)[0]]}}}])
            ep.ns.remove()
        self.endpoints.clear()

    def cleanup(self) -> None:
        self.bridge.remove()
        nft_json(self.nft, [{"delete": {"table": {"family": "ip", "name": TABLE}}}])


def make(n: int) -> NetnsKit:
    return NetnsKit(n)
