""""The outside world" for mode and network tests: a namespace joined to the test's host by a veth.

Host side ``to-out`` has 203.0.113.1/24 and 2001:db8:1::1/64; the outside namespace has
203.0.113.2/24 and 2001:db8:1::2/64 on ``eth0`` and no route back to any container subnet,
so a reply can only reach a container through the host's masquerade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from netns_kit import Namespace, VethPair

HOST_IP = "203.0.113.1"
OUTSIDE_IP = "203.0.113.2"
HOST_IP6 = "2001:db8:1::1"
OUTSIDE_IP6 = "2001:db8:1::2"


@contextmanager
def outside_world(host: Namespace, name: str = "outside") -> Iterator[Namespace]:
    with Namespace(name) as out, VethPair("to-out", "eth0", namespace=host, peer_namespace=out):
        host.add_address("to-out", f"{HOST_IP}/24")
        host.add_address("to-out", f"{HOST_IP6}/64")
        out.add_address("eth0", f"{OUTSIDE_IP}/24")
        out.add_address("eth0", f"{OUTSIDE_IP6}/64")
        yield out
