"""pyroute2 used the way its documentation shows: ``netns.create``, ``IPRoute(netns=...)``.

Host-side work goes through one ``IPRoute``; every namespace is reached with
``IPRoute(netns=name)`` (pyroute2 forks a helper for that) and created with
``pyroute2.netns.create`` (also a fork). Published ports are elements of an nft dnat map,
added with libnftables JSON, one call per endpoint; teardown removes the namespaces with
``netns.remove`` and then empties the map in one call.
"""

from __future__ import annotations

from typing import Any

import nftables
from pyroute2 import IPRoute, netns

from benchmarks._common import BRIDGE, BRIDGE_IP, CONTAINER_PORT, PREFIXLEN, SUBNET, endpoint_ip, host_port

TABLE = "bench_nat"


def nat_table_script(table: str) -> str:
    """An nft table whose prerouting chain DNATs through map ``ports`` (shared by the map-based approaches)."""
    return (
        f"table ip {table} {{\n"
        "  map ports { type inet_service : ipv4_addr . inet_service; }\n"
        "  chain prerouting { type nat hook prerouting priority -100; dnat ip to tcp dport map @ports; }\n"
        "  chain postrouting { type nat hook postrouting priority 100;\n"
        f'    ip saddr {SUBNET} oifname != "{BRIDGE}" masquerade; }}\n'
        "}\n"
    )


def nft_json(nft: Any, commands: list[dict[str, Any]]) -> None:
    rc, _, err = nft.json_cmd({"nftables": commands})
    if rc != 0:
        raise RuntimeError(f"nft: {err}")


def port_element(i: int) -> list[Any]:
    return [host_port(i), {"concat": [endpoint_ip(i), CONTAINER_PORT]}]


class Pyroute2Idiomatic:
    prefix = "bpr"
    note = "netns.create + IPRoute(netns=) (forks per namespace); ports as nft map elements"

    def __init__(self, n: int) -> None:
        self.n = n
        self.nft = nftables.Nftables()
        self.ipr = IPRoute()
        self.bridge = 0

    def prepare(self) -> None:
        ipr = self.ipr
        ipr.link("add", ifname=BRIDGE, kind="bridge")
        self.bridge = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.addr("add", index=self.bridge, address=BRIDGE_IP, prefixlen=PREFIXLEN)
        ipr.link("set", index=self.bridge, state="up")
        rc, _, err = self.nft.cmd(nat_table_script(TABLE))
        if rc != 0:
            raise RuntimeError(err)

    def setup(self) -> None:
        ipr = self.ipr
        for i in range(1, self.n + 1):
            name = f"{self.prefix}{i}"
            host_end = f"h{self.prefix}{i}"
            netns.create(name)
            ipr.link("add", ifname=host_end, kind="veth", peer={"ifname": "eth0", "net_ns_fd": name})
            index = ipr.link_lookup(ifname=host_end)[0]
            ipr.link("set", index=index, master=self.bridge, state="up")
            with IPRoute(netns=name) as inside:
                eth0 = inside.link_lookup(ifname="eth0")[0]
                inside.link("set", index=eth0, state="up")
                inside.link("set", index=inside.link_lookup(ifname="lo")[0], state="up")
                inside.addr("add", index=eth0, address=endpoint_ip(i), prefixlen=PREFIXLEN)
                inside.route("add", dst="0.0.0.0/0", gateway=BRIDGE_IP)
            nft_json(self.nft, [{"add": {"element": {"family": "ip", "table": TABLE, "name": "ports",
                                                     "elem": [port_element(i)]}}}])

    def teardown(self) -> None:
        for i in range(1, self.n + 1):
            netns.remove(f"{self.prefix}{i}")
        nft_json(self.nft, [{"flush": {"map": {"family": "ip", "table": TABLE, "name": "ports"}}}])

    def cleanup(self) -> None:
        self.ipr.link("del", index=self.bridge)
        self.ipr.close()
        nft_json(self.nft, [{"delete": {"table": {"family": "ip", "name": TABLE}}}])


def make(n: int) -> Pyroute2Idiomatic:
    return Pyroute2Idiomatic(n)
