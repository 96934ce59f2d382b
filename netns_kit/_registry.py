"""What netns_kit built in each host namespace, in this process (internal).

One :class:`HostRegistry` per host namespace (keyed by its ``(dev, inode)`` identity): the
networks and endpoints by name, the default ``bridge`` network and its users, and every live
connection by the identity of the namespace it attaches. All of it lives in memory; what other
processes must see (a network's settings and address leases) lives in the state directory.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from . import _sys
from .namespace import Namespace, on_removal

if TYPE_CHECKING:
    from .connection import Connection
    from .modes import Endpoint
    from .network import Network

__all__ = ["HostRegistry", "Identity", "current_host", "forget_host_if_empty", "host_state", "peek_host_state"]

Identity = tuple[int, int]


class HostRegistry:
    """Networks, endpoints and connections of one host namespace. ``lock`` serialises changes."""

    def __init__(self, host: Namespace) -> None:
        self.host = host
        self.lock = threading.RLock()
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.default_network: Network | None = None
        self.default_users = 0
        self.by_ns: dict[Identity, list[Connection]] = {}  # every live connection, by namespace
        self.multihomed: set[Identity] = set()  # namespaces with more than one connection
        self.removed: set[Identity] = set()  # namespaces removed while connected: to prune

    def take_removed(self) -> list[Identity]:
        """Namespaces removed (through their Namespace object) since the last call, that still
        have connections here."""
        with _hosts_lock:
            gone, self.removed = self.removed, set()
        return [ident for ident in gone if ident in self.by_ns]

    def connections_of(self, ident: Identity) -> list[Connection]:
        return list(self.by_ns.get(ident, ()))

    def add_connection(self, conn: Connection) -> None:
        conns = self.by_ns.setdefault(conn.identity, [])
        conns.append(conn)
        if len(conns) > 1:
            self.multihomed.add(conn.identity)

    def drop_connection(self, conn: Connection) -> None:
        conns = self.by_ns.get(conn.identity)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if len(conns) <= 1:
                self.multihomed.discard(conn.identity)
            if not conns:
                del self.by_ns[conn.identity]

    @property
    def empty(self) -> bool:
        return not self.networks and not self.endpoints and self.default_network is None


_hosts: dict[Identity, HostRegistry] = {}
_hosts_lock = threading.Lock()


def host_state(host: Namespace) -> HostRegistry:
    """The registry of ``host`` (made on first use)."""
    with _hosts_lock:
        st = _hosts.get(host.identity)
        if st is None:
            st = _hosts[host.identity] = HostRegistry(host)
        return st


def peek_host_state(host: Namespace) -> HostRegistry | None:
    """The registry of ``host`` if netns_kit has anything there (never creates one)."""
    with _hosts_lock:
        return _hosts.get(host.identity)


def current_host() -> Namespace:
    """The calling thread's namespace, as the host of new networks and endpoints.

    While netns_kit has objects in it, every new object shares one :class:`Namespace` for it
    (``Namespace.current()`` holds a descriptor: one per object would exhaust the fd limit at
    a thousand endpoints).
    """
    ident = _sys.stat_identity(_sys.THREAD_NETNS)
    with _hosts_lock:
        st = _hosts.get(ident)
        if st is not None:
            return st.host
    return Namespace.current()


def forget_host_if_empty(host: Namespace) -> None:
    with _hosts_lock:
        ident = host.identity
        st = _hosts.get(ident)
        if st is not None and st.empty:
            del _hosts[ident]


def _namespace_removed(ident: Identity) -> None:
    with _hosts_lock:
        for st in _hosts.values():
            if ident in st.by_ns:
                st.removed.add(ident)


on_removal(_namespace_removed)
