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


def tenth_means(durations: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last tenth of ``durations`` (seconds; at least one value each).

    Used for flatness: in a run that builds endpoints one after the other, the first tenth were
    built while there were few, the last tenth while there were almost N.
    """
    if not durations:
        return 0.0, 0.0
    k = max(1, len(durations) // 10)
    return sum(durations[:k]) / k, sum(durations[-k:]) / k


def flatness_extra(setup: list[float], teardown: list[float], how: str) -> dict[str, float | str]:
    """The per-endpoint first/last-tenth figures an approach reports through its ``extra``.

    ``setup`` and ``teardown`` are per-endpoint durations in the order the endpoints were built
    and removed; ``how`` says what a teardown duration covers.
    """
    s_first, s_last = tenth_means(setup)
    t_first, t_last = tenth_means(teardown)
    return {"setup_first_tenth_s": s_first, "setup_last_tenth_s": s_last,
            "teardown_first_tenth_s": t_first, "teardown_last_tenth_s": t_last, "teardown_tenths_how": how}
