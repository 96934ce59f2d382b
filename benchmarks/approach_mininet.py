"""Mininet from Debian's package (run with Debian's /usr/bin/python3, which has it).

N hosts on one Linux bridge (``LinuxBridge``, no controller), each with a fixed address and a
default route via 10.77.0.1. Mininet has no per-host port publishing, so its figure covers
namespaces, links, addresses and routes only (less work than the other approaches).
Mininet keeps one shell process (and its pty) per host: they count in its teardown.
"""

from __future__ import annotations

from typing import Any

from benchmarks._common import BRIDGE_IP, PREFIXLEN, endpoint_ip


class MininetStar:
    prefix = "bmn"  # Mininet makes no /run/netns entries; its hosts are processes
    note = "no port publishing (Mininet has none); one shell process per host"

    def __init__(self, n: int) -> None:
        self.n = n
        self.net: Any = None

    def prepare(self) -> None:
        from mininet.log import setLogLevel

        setLogLevel("error")

    def setup(self) -> None:
        from mininet.net import Mininet
        from mininet.nodelib import LinuxBridge
        from mininet.topo import Topo

        n = self.n

        class Star(Topo):  # type: ignore[misc]
            def build(self) -> None:
                switch = self.addSwitch("s1")
                for i in range(1, n + 1):
                    host = self.addHost(f"h{i}", ip=f"{endpoint_ip(i)}/{PREFIXLEN}",
                                        defaultRoute=f"via {BRIDGE_IP}")
                    self.addLink(host, switch)

        self.net = Mininet(topo=Star(), switch=LinuxBridge, controller=None, autoSetMacs=False)
        self.net.start()

    def teardown(self) -> None:
        self.net.stop()

    def cleanup(self) -> None:
        pass


def make(n: int) -> MininetStar:
    return MininetStar(n)
