"""The physical floor without IPv6 link-local: the like-for-like reference for netns_kit.

Identical to :mod:`benchmarks.approach_raw_floor` except that both veth ends get the IPv6
address generation mode "none" before they come up, as netns_kit's IPv4-only endpoints do. The
kernel refuses that mode in the request that creates the pair, so the pair is created down, each
end gets the mode in a request of its own ("ll off": host end, then eth0), and the host end comes
up in a request of its own after lo and eth0: three requests more than the default variant.
"""

from __future__ import annotations

from benchmarks.approach_raw_floor import RawFloor


class RawFloorNoLinkLocal(RawFloor):
    prefix = "brn"
    note = ("as the raw floor, both veth ends with IPv6 address generation mode none "
            "(pair created down; 3 more requests)")
    no_link_local = True


def make(n: int) -> RawFloorNoLinkLocal:
    return RawFloorNoLinkLocal(n)
