"""netns_kit's bulk path: the same N endpoints described as one Topology, built by one call.

``setup`` is ``Topology.create()`` (everything in one Transaction; every published port in one
nft batch); ``teardown`` is ``Topology.remove()`` (a removal batch: all host-side veths deleted
in one kernel request, then the namespaces unmounted; the bridge and the firewall table go
too): unlike the one-call-per-object run, the
veths are deleted and gone when teardown returns, not left to the kernel's background cleanup.
The endpoints are IPv4-only, so, as a Topology does by default, they have no IPv6 link-local.
"""

from __future__ import annotations

from benchmarks._common import BRIDGE, BRIDGE_IP, CONTAINER_PORT, PREFIXLEN, endpoint_ip, host_port
from netns_kit.topology import Topology


class Bulk:
    prefix = "bbk"
    note = "one Topology: create() builds all, remove() deletes all veths in one request"

    def __init__(self, n: int) -> None:
        self.n = n
        self.topo = Topology("bulk").bridge(BRIDGE, addresses=[f"{BRIDGE_IP}/{PREFIXLEN}"], nat=True)
        for i in range(1, n + 1):
            self.topo.endpoint(f"{self.prefix}{i}", bridge=BRIDGE, address=f"{endpoint_ip(i)}/{PREFIXLEN}",
                               gateway=BRIDGE_IP, host_ifname=f"h{self.prefix}{i}",
                               publish=[f"{host_port(i)}:{CONTAINER_PORT}"])

    def prepare(self) -> None:
        self.topo.plan()  # validation and planning are not part of the timed build

    def setup(self) -> None:
        self.topo.create()

    def teardown(self) -> None:
        self.topo.remove()

    def cleanup(self) -> None:
        pass


def make(n: int) -> Bulk:
    return Bulk(n)
