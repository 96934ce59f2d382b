"""What every approach builds, shared by the approach modules (standard library only).

Each approach module runs under the interpreter it needs (Mininet needs Debian's
/usr/bin/python3), so nothing here imports netns_kit, pyroute2 or nftables.

The work per endpoint is the same everywhere: a network namespace, a veth pair whose
host end is a port of bridge ``br0`` and whose other end is ``eth0`` inside the namespace
(up, with ``lo`` up too), a fixed address ``10.77.X.Y/16``, a default route via the
bridge address 10.77.0.1, and one published TCP port (host port 20000+i to endpoint
port 80). Teardown removes the endpoints and their published ports.
"""

from __future__ import annotations

from typing import Protocol

BRIDGE = "br0"
BRIDGE_IP = "10.77.0.1"
PREFIXLEN = 16
SUBNET = "10.77.0.0/16"
CONTAINER_PORT = 80
HOST_PORT_BASE = 20000


def endpoint_ip(i: int) -> str:
    """Address of endpoint ``i`` (1-based); distinct for i < 62,500."""
    return f"10.77.{i // 250}.{i % 250 + 2}"


def host_port(i: int) -> int:
    return HOST_PORT_BASE + i


class Approach(Protocol):
    """One way of doing the work. Only :meth:`setup` and :meth:`teardown` are timed."""

    #: prefix of every namespace name the approach creates under /run/netns
    prefix: str
    #: what the figure covers, when it differs from the common work (shown next to it)
    note: str

    def prepare(self) -> None:
        """Untimed: the bridge and the NAT table every endpoint shares."""

    def setup(self) -> None:
        """Timed: build all endpoints."""

    def teardown(self) -> None:
        """Timed: remove all endpoints and their published ports."""

    def cleanup(self) -> None:
        """Untimed: remove the bridge and the NAT table."""
