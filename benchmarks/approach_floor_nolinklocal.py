"""The tuned floor with the same IPv4-only setting netns_kit's benchmark uses: no IPv6 link-local.

Identical to :mod:`benchmarks.approach_floor` except that each veth end gets the IPv6 address
generation mode "none" before it comes up: the pair is created down, the host end's mode is set,
the peer's mode and state go in one request (it comes up first, with no carrier yet), then the
host end comes up. Two requests more than the floor, and none of the IPv6 chatter the bridge
floods to every port. This row shows netns_kit against a floor doing the same kernel work.
"""

from __future__ import annotations

import os

from pyroute2 import IPRoute

from benchmarks._common import BRIDGE_IP, PREFIXLEN, endpoint_ip
from benchmarks.approach_floor import RUN_DIR, TunedFloor, _new_namespace
from benchmarks.approach_pyroute2 import TABLE, nft_json, port_element

_NO_LINK_LOCAL = {"attrs": [("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", 1)]})]}


class TunedFloorNoLinkLocal(TunedFloor):
    prefix = "bfn"
    note = "as the tuned floor, veth ends with IPv6 address generation mode none (2 more requests)"

    def setup(self) -> None:
        for i in range(1, self.n + 1):
            path = f"{RUN_DIR}/{self.prefix}{i}"
            inside = IPRoute(fileno=_new_namespace(path).detach())
            fd = os.open(path, os.O_RDONLY)
            try:
                self.ipr.link("add", ifname=f"h{self.prefix}{i}", kind="veth", master=self.bridge,
                              peer={"ifname": "eth0", "net_ns_fd": fd})
            finally:
                os.close(fd)
            host_end = self.ipr.link_lookup(ifname=f"h{self.prefix}{i}")[0]
            self.ipr.link("set", index=host_end, IFLA_AF_SPEC=_NO_LINK_LOCAL)
            eth0 = inside.link_lookup(ifname="eth0")[0]
            inside.link("set", index=1, state="up")
            inside.link("set", index=eth0, state="up", IFLA_AF_SPEC=_NO_LINK_LOCAL)
            self.ipr.link("set", index=host_end, state="up")
            inside.addr("add", index=eth0, address=endpoint_ip(i), prefixlen=PREFIXLEN)
            inside.route("add", dst="0.0.0.0/0", gateway=BRIDGE_IP)
            inside.close()
            nft_json(self.nft, [{"add": {"element": {"family": "ip", "table": TABLE, "name": "ports",
                                                     "elem": [port_element(i)]}}}])


def make(n: int) -> TunedFloorNoLinkLocal:
    return TunedFloorNoLinkLocal(n)
