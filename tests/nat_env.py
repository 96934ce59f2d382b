"""A small world for NAT tests: the host, an "outside" namespace, bridges with containers.

Built only from the foundation primitives (Namespace, Bridge, VethPair, addresses, routes), inside
the per-test ``host`` namespace, so everything vanishes with the test.

    outside (203.0.113.2/24, 2001:db8:1::2/64) --veth-- host (203.0.113.1, 2001:db8:1::1)
    host: bridge brN (10.N.0.1/24, fd00:N::1/64) -- containers cN1 .2, cN2 .3 ...
The outside namespace has no route to the container subnets: only masquerade or DNAT lets
traffic through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from netns_kit import Bridge, Namespace, Route, VethPair

HOST4, OUT4 = "203.0.113.1", "203.0.113.2"
HOST6, OUT6 = "2001:db8:1::1", "2001:db8:1::2"


@dataclass
class Net:
    bridge: str
    subnet4: str
    gateway4: str
    subnet6: str
    gateway6: str
    containers: dict[str, Namespace] = field(default_factory=dict)
    ips4: dict[str, str] = field(default_factory=dict)
    ips6: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    host: Namespace
    outside: Namespace
    stack: ExitStack
    nets: dict[str, Net] = field(default_factory=dict)

    def add_net(self, n: int, containers: int = 2, *, v6: bool = False) -> Net:
        br = f"br{n}"
        net = Net(br, f"10.{n}.0.0/24", f"10.{n}.0.1", f"fd00:{n}::/64", f"fd00:{n}::1")
        addrs = [f"{net.gateway4}/24"] + ([f"{net.gateway6}/64"] if v6 else [])
        self.stack.enter_context(Bridge(br, addresses=addrs))
        for i in range(1, containers + 1):
            name = f"c{n}{i}"
            ns = self.stack.enter_context(Namespace(f"nk-{name}-{id(self) % 10000}"))
            self.stack.enter_context(VethPair(f"v{name}", "eth0", peer_namespace=ns, master=br))
            ip4 = f"10.{n}.0.{i + 1}"
            ns.add_address("eth0", f"{ip4}/24")
            ns.add_route(Route(gateway=net.gateway4))
            net.ips4[name] = ip4
            if v6:
                ip6 = f"fd00:{n}::{i + 1:x}"
                ns.add_address("eth0", f"{ip6}/64")
                ns.add_route(Route(dst="default6", gateway=net.gateway6))
                net.ips6[name] = ip6
            net.containers[name] = ns
        self.nets[br] = net
        return net


@contextmanager
def world(host: Namespace) -> Iterator[World]:
    with ExitStack() as stack:
        outside = stack.enter_context(Namespace(f"nk-outside-{id(stack) % 10000}"))
        stack.enter_context(VethPair("vout", "eth0", peer_namespace=outside))
        host.add_address("vout", f"{HOST4}/24")
        host.add_address("vout", f"{HOST6}/64")
        outside.add_address("eth0", f"{OUT4}/24")
        outside.add_address("eth0", f"{OUT6}/64")
        yield World(host, outside, stack)
