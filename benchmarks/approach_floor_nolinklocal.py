"""The tuned floor with the same IPv4-only setting netns_kit's benchmark uses: no IPv6 link-local.

Identical to :mod:`benchmarks.approach_floor` except that each veth end gets the IPv6 address
generation mode "none" before it comes up: the pair is created down, the host end's mode is set,
the peer's mode and state go in one request (it comes up first, with no carrier yet), then the
host end comes up. Three requests more than the floor (the host end's index, its mode, its "up"),
and none of the IPv6 chatter the bridge floods to every port. This row shows netns_kit against a
floor doing the same kernel work.
"""

from __future__ import annotations

from pyroute2 import IPRoute

from benchmarks.approach_floor import TunedFloor

_NO_LINK_LOCAL = {"attrs": [("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", 1)]})]}


class TunedFloorNoLinkLocal(TunedFloor):
    prefix = "bfn"
    note = "as the tuned floor, veth ends with IPv6 address generation mode none (3 more requests)"

    def wire(self, i: int, ns_fd: int, inside: IPRoute) -> int:
        self.ipr.link("add", ifname=f"h{self.prefix}{i}", kind="veth", master=self.bridge,
                      peer={"ifname": "eth0", "net_ns_fd": ns_fd})
        host_end: int = self.ipr.link_lookup(ifname=f"h{self.prefix}{i}")[0]
        self.ipr.link("set", index=host_end, IFLA_AF_SPEC=_NO_LINK_LOCAL)
        eth0: int = inside.link_lookup(ifname="eth0")[0]
        inside.link("set", index=1, state="up")
        inside.link("set", index=eth0, state="up", IFLA_AF_SPEC=_NO_LINK_LOCAL)
        self.ipr.link("set", index=host_end, state="up")
        return eth0


def make(n: int) -> TunedFloorNoLinkLocal:
    return TunedFloorNoLinkLocal(n)
