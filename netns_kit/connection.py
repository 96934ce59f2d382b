"""One namespace's connection to one user-defined network: :class:`Connection` (re-exported by
:mod:`netns_kit.network` and the package root).

:meth:`Network.connect <netns_kit.network.Network.connect>` checks its arguments into a
:class:`ConnectRequest`, takes the addresses from the network's leases and makes a
:class:`Connection`, whose :meth:`Connection.apply` changes the kernel: one veth pair through the
bridge driver (:mod:`netns_kit._wiring`) with the addresses and routes, then the published ports
as elements of the host firewall's dnat map (one nft batch). :meth:`Connection.disconnect` undoes
it in reverse. What a connection needs of its network beyond the network's public face (the bridge
device, the address leases, the network's books and hosts files) it is handed at construction as
a :class:`NetworkSide`, so this module uses none of :class:`~netns_kit.network.Network`'s private
state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _batch, _wiring
from ._leases import NetworkAddresses
from ._registry import HostRegistry, Identity, host_state
from .errors import Failures
from .firewall import Firewall
from .links import Bridge, VethPair
from .model import IPAddr, IPInterface, Route
from .namespace import Namespace
from .nat import PublishedPort
from .ports import PortBinding, PortSpec

if TYPE_CHECKING:
    from .network import Network

__all__ = ["ConnectRequest", "Connection", "NetworkSide", "bind_ports"]

log = logging.getLogger("netns_kit")


def bind_ports(specs: Sequence[PortSpec], addresses: dict[int, IPAddr], bridge: str,
               fw: Firewall) -> list[PublishedPort]:
    """``specs`` (checked by :func:`parse_ports`) for the endpoint's ``addresses`` (family -> address)
    on ``bridge``: one publication per family each spec applies to, host ports left open picked
    by ``fw`` (the caller holds :meth:`Firewall.locked` until they are published)."""
    fams = frozenset(addresses)
    wants = [(s.proto, frozenset(s.families(fams)), s.host_ip) for s in specs if s.host_port is None]
    picked = iter(fw.pick_host_ports(wants, avoid=[slot for s in specs for slot in s.slots()]) if wants else ())
    out: list[PublishedPort] = []
    for s in specs:
        out += s.bind(addresses, bridge=bridge, host_port=next(picked) if s.host_port is None else None)
    return out


@dataclass(frozen=True)
class NetworkSide:
    """What a :class:`Connection` needs of its network besides the network's public face, handed
    over by the network when it makes the connection."""

    bridge: Bridge | str
    """The network's bridge device (the veth's host end is enslaved to it)."""
    addresses: Callable[[], NetworkAddresses | None]
    """The network's address leases now (None once the network is gone)."""
    forget: Callable[[HostRegistry, Connection], None]
    """Take a disconnected connection out of the network's and the host's books."""
    hosts_changed: Callable[[HostRegistry, Connection], None]
    """Update the hosts files and the name service after a connection left."""
    default_route: Route
    """The default route through the network's gateway (built once per network)."""
    default_route6: Route | None
    """The IPv6 default route through the network's IPv6 gateway, on a dual-stack network."""


@dataclass(frozen=True)
class ConnectRequest:
    """The checked arguments of one :meth:`Network.connect`."""

    namespace: Namespace
    identity: Identity
    names: tuple[str, ...]
    ip: IPAddr | None
    ip6: IPAddr | None
    ifname: str | None
    mac: str | None
    ports: tuple[PortSpec, ...]
    default_route: bool | None


class Connection:
    """One namespace connected to one network: its interface, addresses, names and published ports.

    Made by :meth:`Network.connect`; :meth:`disconnect` deletes the veth pair (by the index
    recorded at creation), withdraws the published ports, gives the addresses back to IPAM,
    updates the hosts files, and moves the default route to another network of the namespace if
    this one carried it. Idempotent.
    """

    def __init__(self, network: Network, namespace: Namespace, *, ifname: str, names: tuple[str, ...],
                 address: IPInterface, address6: IPInterface | None, side: NetworkSide,
                 host_ifname: str | None = None) -> None:
        self.network = network
        self._side = side
        self.namespace = namespace
        self.ifname = ifname
        self.names = names
        self.address = address
        self.address6 = address6
        self.host_ifname = host_ifname or _wiring.new_host_ifname()
        self.published: tuple[PublishedPort, ...] = ()
        self.has_default_route = False
        self.has_default_route6 = False
        self.identity: Identity = namespace.identity
        self._veth: VethPair | None = None
        self._gone = False
        self.already_gone: tuple[str, ...] = ()
        """After :meth:`disconnect`: what had vanished before it (namespace deleted behind netns_kit's back)."""

    @property
    def ip(self) -> IPAddr:
        """The IPv4 address (no prefix)."""
        return self.address.ip

    @property
    def ips(self) -> list[IPAddr]:
        return [self.address.ip] + ([self.address6.ip] if self.address6 is not None else [])

    @property
    def connected(self) -> bool:
        return not self._gone

    @property
    def ports(self) -> list[PortBinding]:
        """This endpoint's published ports as the kernel has them (host address and port, picked ones
        included): what ``docker port`` answers. Read from the dnat maps, not from this object."""
        if self._gone:
            return []
        return [b for ip in self.ips for b in self.network.ports(ip)]

    def inspect(self) -> dict[str, Any]:
        """This connection as Docker's EndpointSettings (one entry of ``docker inspect``'s
        ``.NetworkSettings.Networks``), MAC address read from the link. Changes nothing."""
        from ._dockerjson import endpoint_settings

        return endpoint_settings(self)

    @staticmethod
    def new_host_ifname() -> str:
        """A fresh name for the host end of a connection's veth pair (``vnk`` + 8 hex digits)."""
        return _wiring.new_host_ifname()

    def __repr__(self) -> str:
        six = f" {self.address6}" if self.address6 is not None else ""
        name = self.names[0] if self.names else self.namespace.label
        ports = f" publish {','.join(p.spec for p in self.published)}" if self.published else ""
        return f"{name}: {self.ifname} {self.address}{six} (host end {self.host_ifname}){ports}"

    def apply(self, req: ConnectRequest) -> None:
        """Make the connection in the kernel (called once, by :meth:`Network.connect`, in an atomic
        step): the veth pair with addresses and routes through the bridge driver, then the
        published ports in one nft batch. Undo: :meth:`disconnect`."""
        net = self.network
        ns = self.namespace
        routes: list[Route] = []
        if not net.config.internal or req.default_route:
            if req.default_route or (req.default_route is None and not _has_default(ns, 4)):
                routes.append(self._side.default_route)
                self.has_default_route = True
            if net.gateway6 is not None and self.address6 is not None and (
                    req.default_route or (req.default_route is None and not _has_default(ns, 6))):
                assert self._side.default_route6 is not None
                routes.append(self._side.default_route6)
                self.has_default_route6 = True
        addresses: dict[int, IPAddr] = {4: self.address.ip}
        if self.address6 is not None:
            addresses[6] = self.address6.ip
        # IPv4-only network: no IPv6 link-local on either end (as Docker does since 26.0.1 for
        # --ipv6=false networks), so the endpoint sends nothing the bridge floods to every port.
        # Hairpin mode on the bridge port lets the endpoint reach itself through its published ports.
        port = _wiring.BridgePort(
            self._side.bridge, self.ifname, self.host_ifname,
            addresses=(self.address,) + ((self.address6,) if self.address6 is not None else ()),
            routes=tuple(routes), mac=req.mac, mtu=net.config.mtu, ipv6_link_local=net.config.subnet6 is not None,
            hairpin=bool(req.ports))
        self._veth = _wiring.plug(net.host, ns, port)
        if req.ports:
            fw = Firewall.for_namespace(net.host)
            if not net.owned:  # the owner's policy is in the shared table: use it, never add or remove it
                fw.join_network(net.policy())
            # host ports to pick: picked and published under one hold of the host's lock (publish
            # takes the lock by itself when every host port is given)
            picking = any(spec.host_port is None for spec in req.ports)
            with fw.locked() if picking else contextlib.nullcontext():
                ports = bind_ports(req.ports, addresses, net.bridge, fw)
                fw.publish(*ports)  # one nft batch
            self.published = tuple(ports)

    def disconnect(self) -> None:
        """Undo :meth:`Network.connect` (see the class docstring). Idempotent.

        If the namespace was deleted behind netns_kit's back (``ip netns del``), everything the
        connection owned outside it still goes (published ports, the host end of the veth if it
        survived, the address lease, the hosts files); :attr:`already_gone` then says what had
        vanished, and a warning is logged.
        """
        if self._gone:
            return
        net = self.network
        st = host_state(net.host)
        failures = Failures()
        with st.lock:
            self._gone = True
            if not self.namespace.exists:
                self._note_vanished()
            if self.published:
                with failures.step():
                    Firewall.for_namespace(net.host).unpublish(*reversed(self.published))  # one nft batch
            if self._veth is not None:
                with failures.step():
                    _wiring.unplug(self._veth)
            addresses = self._side.addresses()
            addr6 = self.address6.ip if self.address6 is not None else None

            def give_back() -> None:
                if addresses is not None:
                    with st.lock:
                        addresses.give_back(self.address.ip, addr6)

            pending = _batch.current()
            if pending is not None:  # only once the veth is really gone: never one address twice
                pending.after(f"giving {self.address.ip} back to network {net.name}", give_back)
            else:
                with failures.step():
                    give_back()
            self._side.forget(st, self)
            with failures.step():
                self._move_default_route(st)
            with failures.step(OSError):
                self._side.hosts_changed(st, self)
        failures.raise_first()

    def _note_vanished(self) -> None:
        """Record (and log) what vanished with the namespace before this disconnect."""
        gone = [f"namespace {self.namespace.label} (deleted outside netns_kit), and {self.ifname} in it"]
        veth = self._veth
        if veth is not None:
            info = self.network.host.rtnl().get_link(index=veth.index)
            if info is None or info.name != self.host_ifname:
                gone.append(f"host end {self.host_ifname} (went with the namespace)")
        self.already_gone = tuple(gone)
        log.warning("endpoint %s on network %s: %s was already gone; removed what it owned outside it "
                    "(published ports, host end, address lease, hosts files)", self.names[0] if self.names
                    else self.namespace.label, self.network.name, "; ".join(gone))

    def _move_default_route(self, st: HostRegistry) -> None:
        """If this connection carried the namespace's default route, hand it to another network."""
        if not (self.has_default_route or self.has_default_route6):
            return
        others = [c for c in st.connections_of(self.identity)
                  if not c._gone and not c.network.config.internal and c._veth is not None]
        if not others or not self.namespace.exists:
            return
        other = others[0]
        assert other._veth is not None
        if self.has_default_route and not other.has_default_route and not _has_default(self.namespace, 4):
            _wiring.add_route(self.namespace, other._veth, Route("default", gateway=str(other.network.gateway)))
            other.has_default_route = True
        gw6 = other.network.gateway6
        if self.has_default_route6 and gw6 is not None and not _has_default(self.namespace, 6):
            _wiring.add_route(self.namespace, other._veth, Route("default6", gateway=str(gw6)))
            other.has_default_route6 = True


def _has_default(ns: Namespace, family: int) -> bool:
    return any(r.is_default for r in ns.routes(family))
