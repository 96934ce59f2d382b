"""One way to put a namespace on a bridge (internal): the bridge driver.

:class:`Network` connections, pipework-style :class:`~netns_kit.Attachment` (bridge case) and
:class:`~netns_kit.topology.Topology` endpoints all wire a namespace the same way, through
:func:`plug`: a :class:`BridgePort` says what the namespace gets (interface names, addresses,
routes, MAC, MTU, IPv6 link-local, hairpin; each caller has validated it against its own rules before
any change), and :func:`plug` makes it:

1. one veth pair (:class:`~netns_kit.VethPair`): the host end enslaved to the bridge and up, the
   other end born inside the namespace under its final name (journaled: a rollback or
   ``recover()`` deletes it);
2. the addresses and routes on the namespace end, by its index (no lookups). They live and die
   with that interface, so the veth's undo covers them;
3. hairpin mode on the host end when asked (a container reaching itself through a published
   port), in the request that names and marks that end.

Undo: :func:`unplug` deletes the veth pair by the identity recorded at creation.
Host-side names come from :func:`new_host_ifname` unless the caller names the interface.

The macvlan driver (pipework's ``macvlan`` mode) is the other way in: a :class:`MacvlanPort` says
which host interface is the parent, and :func:`plug_macvlan` makes the macvlan born inside the
namespace under its final name, with its addresses and routes; :meth:`MacvlanLink.remove` deletes it
by the index recorded at creation (a macvlan has no host end).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from ._journal import intent
from .links import Bridge, VethPair
from .model import IPInterface, Route
from .namespace import Namespace

__all__ = ["MACVLAN_MODES", "BridgePort", "MacvlanLink", "MacvlanPort", "host_ifname_for", "new_host_ifname",
           "plug", "plug_macvlan", "unplug"]

#: The kernel's macvlan modes (IFLA_MACVLAN_MODE values) by the names ``ip link`` uses.
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}

HOST_IFNAME_PREFIX = "vnk"


def new_host_ifname() -> str:
    """A fresh name for the host end of a veth pair: ``vnk`` and 8 random hex digits."""
    return HOST_IFNAME_PREFIX + os.urandom(4).hex()


def host_ifname_for(seed: str) -> str:
    """The host end's name for a caller that must know it ahead (the same seed, the same name):
    ``vnk`` and 8 hex digits of a hash of ``seed``."""
    return HOST_IFNAME_PREFIX + hashlib.sha1(seed.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class BridgePort:
    """What one namespace gets on one bridge (a value: nothing is made until :func:`plug`)."""

    bridge: Bridge | str
    ifname: str
    host_ifname: str
    addresses: tuple[IPInterface, ...] = ()
    routes: tuple[Route, ...] = ()
    mac: str | None = None
    mtu: int | None = None
    ipv6_link_local: bool = True
    hairpin: bool = False


def plug(host: Namespace, target: Namespace, port: BridgePort) -> VethPair:
    """Make ``port`` (see the module docstring). Journaled in the active transaction; on a failure
    halfway the veth pair is deleted again before the error propagates."""
    pair = VethPair(port.host_ifname, port.ifname, namespace=host, peer_namespace=target, master=port.bridge,
                    mtu=port.mtu, peer_mac=port.mac, ipv6_link_local=port.ipv6_link_local, hairpin=port.hairpin)
    pair.create()
    try:
        sock = target.rtnl()
        peer = pair.peer_index
        for a in port.addresses:
            sock.add_address(peer, a, obj=_label(a, port.ifname))
        for route in port.routes:
            sock.add_route(route, peer)
    except BaseException:
        pair.remove()
        raise
    return pair


def _label(address: IPInterface, ifname: str) -> Callable[[], str]:
    """How an error names ``address`` on ``ifname`` (formatted only if there is an error)."""
    return lambda: f"{address} on {ifname}"


def add_route(target: Namespace, pair: VethPair, route: Route) -> None:
    """One more route through the namespace end of ``pair`` (it goes with the interface)."""
    target.rtnl().add_route(route, pair.peer_index)


def unplug(pair: VethPair) -> None:
    """Delete the veth pair (its addresses and routes go with it). Idempotent; in a
    :func:`~netns_kit.removal_batch` the deletion is collected."""
    pair.remove()


@dataclass(frozen=True)
class MacvlanPort:
    """What one namespace gets on a macvlan of a host interface (a value: nothing is made until
    :func:`plug_macvlan`). ``parent`` is the host interface's index (or the 802.1Q device under it)."""

    parent: int
    ifname: str
    mode: str = "bridge"
    addresses: tuple[IPInterface, ...] = ()
    routes: tuple[Route, ...] = ()
    mac: str | None = None
    mtu: int | None = None


class MacvlanLink:
    """A macvlan made by :func:`plug_macvlan`; :meth:`remove` deletes it by its recorded index."""

    def __init__(self, target: Namespace, ifname: str) -> None:
        self.target = target
        self.ifname = ifname
        self.index: int | None = None

    def remove(self) -> None:
        """Delete the macvlan (its addresses and routes go with it): by the index recorded at creation,
        or (creation interrupted before the index was read) by name, and only if it is a macvlan.
        Idempotent; a namespace that is gone counts as done."""
        if not self.target.exists:
            return
        sock = self.target.rtnl()
        cur = sock.get_link(index=self.index) if self.index is not None else sock.get_link(name=self.ifname)
        if cur is not None and cur.name == self.ifname and cur.kind == "macvlan":
            sock.delete_link(cur.index, obj=self.ifname)
        self.index = None


def plug_macvlan(host: Namespace, target: Namespace, port: MacvlanPort) -> MacvlanLink:
    """Make ``port``: a macvlan of host interface ``port.parent`` born in ``target`` as ``port.ifname``,
    up, with its addresses and routes. Journaled in the active transaction (a rollback or ``recover()``
    deletes it); on a failure halfway the macvlan is deleted again before the error propagates."""
    link = MacvlanLink(target, port.ifname)
    with intent(f"delete macvlan {port.ifname} in {target.label}", link.remove), target.open_fd() as fd:
        host.rtnl().create_link(port.ifname, "macvlan", up=True, link=port.parent, ns_fd=fd, mtu=port.mtu,
                                mac=port.mac, info_data=[("IFLA_MACVLAN_MODE", MACVLAN_MODES[port.mode])])
    try:
        link.index = target.link(port.ifname).index
        for a in port.addresses:
            target.add_address(port.ifname, a)
        for r in port.routes:
            target.add_route(r)
    except BaseException:
        link.remove()
        raise
    return link
