"""An overlay network's settings: VXLAN identifier, underlay addresses and address shares (pure:
no kernel access).

:class:`OverlayConfig` validates everything ``OverlayNetwork(...)`` is given before anything is
made: the VNI (1 to 2**24-1), this host's underlay address (IPv4), the peers (each an underlay
address and that host's share of the subnet, an :class:`OverlayPeer`), the subnet and this host's
share of it. Shares must lie inside the subnet and must not overlap one another: two hosts that
hand out addresses from overlapping shares could give one address twice, so such a configuration
is refused here, when the host joins, with an error naming both hosts. Used by
:mod:`netns_kit.overlay`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import ValidationError
from .model import ADDR_TYPES, NET_TYPES, IPAddr, check_args, parse_ip, parse_network

__all__ = ["VXLAN_OVERHEAD", "VXLAN_PORT", "OverlayConfig", "OverlayPeer", "endpoint_mac", "vxlan_name"]

VXLAN_PORT = 4789
"""The IANA port for VXLAN (the destination port of every encapsulated packet)."""
VXLAN_OVERHEAD = 50
"""Bytes VXLAN adds over an IPv4 underlay: outer IPv4 (20), UDP (8), VXLAN (8), inner Ethernet (14)."""
MAX_VNI = (1 << 24) - 1


def vxlan_name(vni: int) -> str:
    """The VXLAN device's name in the host namespace: ``nkvx`` and the VNI (at most 12 bytes)."""
    return f"nkvx{vni}"


def endpoint_mac(ip: IPAddr) -> str:
    """The MAC of an overlay endpoint with IPv4 address ``ip``: ``02:6b`` and the four bytes of
    the address (locally administered, unicast). The same address always gets the same MAC, so
    a host rebuilt after a crash gives its endpoints the MACs the other hosts' neighbour caches
    already hold."""
    return "02:6b:" + ":".join(f"{b:02x}" for b in ip.packed[-4:])


def _v4(value: object, what: str) -> ipaddress.IPv4Address:
    ip = parse_ip(value, what=what)
    if not isinstance(ip, ipaddress.IPv4Address):
        raise ValidationError(f"{what} {ip} must be IPv4 (the overlay's underlay is IPv4)", obj=str(ip))
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        raise ValidationError(f"{what} {ip} must be a unicast address of a host", obj=str(ip))
    return ip


@dataclass(frozen=True)
class OverlayPeer:
    """Another host of the overlay: its underlay ``address`` (the VXLAN packets' destination) and
    its ``share`` of the overlay subnet (the addresses it hands out)."""

    address: ipaddress.IPv4Address | str
    share: ipaddress.IPv4Network | str

    def __post_init__(self) -> None:
        check_args("OverlayPeer", address=(self.address, str, *ADDR_TYPES), share=(self.share, str, *NET_TYPES))
        object.__setattr__(self, "address", _v4(self.address, "peer underlay address"))
        share = parse_network(self.share, what="peer share")
        if not isinstance(share, ipaddress.IPv4Network):
            raise ValidationError(f"peer share {share} must be IPv4", obj=str(share))
        object.__setattr__(self, "share", share)

    @property
    def ip(self) -> ipaddress.IPv4Address:
        assert isinstance(self.address, ipaddress.IPv4Address)
        return self.address

    @property
    def net(self) -> ipaddress.IPv4Network:
        assert isinstance(self.share, ipaddress.IPv4Network)
        return self.share


def peer_list(peers: Mapping[str, str] | Iterable[OverlayPeer]) -> tuple[OverlayPeer, ...]:
    """``peers`` as OverlayPeers: a mapping underlay address -> share, or OverlayPeer objects."""
    if isinstance(peers, (str, bytes)) or not isinstance(peers, Iterable):
        raise ValidationError("peers must be a mapping of underlay address to share, or OverlayPeer objects",
                              obj=repr(peers))
    if isinstance(peers, Mapping):
        return tuple(OverlayPeer(a, s) for a, s in peers.items())
    out = tuple(peers)
    for p in out:
        if not isinstance(p, OverlayPeer):
            raise ValidationError(f"peers: {p!r} must be an OverlayPeer (or give a mapping address -> share)",
                                  obj=repr(p))
    return out


@dataclass(frozen=True)
class OverlayConfig:
    """The validated overlay settings of an :class:`~netns_kit.OverlayNetwork` (no kernel access).

    ``subnet``: the whole overlay subnet (the same on every host); ``share``: this host's part of
    it, from which it hands out addresses (its bridge takes the share's first host address as
    this host's gateway, so every host has a gateway of its own and endpoints leave through their
    own host); ``local``: this host's underlay address; ``peers``: the other hosts. Refused
    (ValidationError): a VNI outside 1..16777215, a share outside the subnet, ``local`` among the
    peers, a peer listed twice, two shares that overlap.
    """

    vni: int
    subnet: ipaddress.IPv4Network | str
    share: ipaddress.IPv4Network | str
    local: ipaddress.IPv4Address | str
    peers: tuple[OverlayPeer, ...] = ()
    port: int = VXLAN_PORT

    gateway: ipaddress.IPv4Address = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_args("OverlayConfig", vni=(self.vni, int), subnet=(self.subnet, str, *NET_TYPES),
                   share=(self.share, str, *NET_TYPES), local=(self.local, str, *ADDR_TYPES),
                   peers=(self.peers, [OverlayPeer]), port=(self.port, int))
        if isinstance(self.vni, bool) or not 1 <= self.vni <= MAX_VNI:
            raise ValidationError(f"VNI {self.vni!r} must be an integer from 1 to {MAX_VNI}", obj=repr(self.vni))
        if isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise ValidationError(f"VXLAN port {self.port!r} must be from 1 to 65535", obj=repr(self.port))
        subnet = parse_network(self.subnet, what="overlay subnet")
        if not isinstance(subnet, ipaddress.IPv4Network) or subnet.prefixlen > 29:
            raise ValidationError(f"overlay subnet {subnet} must be IPv4, /29 or larger", obj=str(subnet))
        share = parse_network(self.share, what="share")
        if not isinstance(share, ipaddress.IPv4Network) or not share.subnet_of(subnet):
            raise ValidationError(f"share {share} must be an IPv4 network inside the overlay subnet {subnet}",
                                  obj=str(share))
        object.__setattr__(self, "subnet", subnet)
        object.__setattr__(self, "share", share)
        object.__setattr__(self, "local", _v4(self.local, "local underlay address"))
        peers = tuple(self.peers)
        object.__setattr__(self, "peers", peers)
        seen: set[ipaddress.IPv4Address] = set()
        for p in peers:
            if p.ip == self.local:
                raise ValidationError(f"peer {p.ip} is this host's own underlay address", obj=str(p.ip))
            if p.ip in seen:
                raise ValidationError(f"peer {p.ip} is listed twice", obj=str(p.ip))
            seen.add(p.ip)
            self.check_share(p, peers)
        gw = max(int(share.network_address), int(subnet.network_address) + 1)
        if gw >= int(subnet.broadcast_address) or gw > int(share.broadcast_address) - (share.num_addresses > 1):
            raise ValidationError(f"share {share} is too small for a gateway and an endpoint", obj=str(share))
        object.__setattr__(self, "gateway", ipaddress.IPv4Address(gw))

    @property
    def subnet_net(self) -> ipaddress.IPv4Network:
        assert isinstance(self.subnet, ipaddress.IPv4Network)
        return self.subnet

    @property
    def share_net(self) -> ipaddress.IPv4Network:
        assert isinstance(self.share, ipaddress.IPv4Network)
        return self.share

    @property
    def local_ip(self) -> ipaddress.IPv4Address:
        assert isinstance(self.local, ipaddress.IPv4Address)
        return self.local

    def check_share(self, peer: OverlayPeer, others: Iterable[OverlayPeer]) -> None:
        """Refuse ``peer`` (ValidationError naming both hosts) if its share is outside the subnet or
        overlaps this host's share or another peer's."""
        if not peer.net.subnet_of(self.subnet_net):
            raise ValidationError(f"share {peer.net} of peer {peer.ip} is outside the overlay subnet {self.subnet}",
                                  obj=str(peer.ip), step="check shares")
        if peer.net.overlaps(self.share_net):
            raise ValidationError(f"share {peer.net} of peer {peer.ip} overlaps this host's share {self.share} "
                                  f"(host {self.local}): overlay hosts must hand out addresses from disjoint "
                                  "shares", obj=str(peer.ip), step="check shares")
        for other in others:
            if other.ip != peer.ip and peer.net.overlaps(other.net):
                raise ValidationError(f"share {peer.net} of peer {peer.ip} overlaps share {other.net} of peer "
                                      f"{other.ip}: overlay hosts must hand out addresses from disjoint shares",
                                      obj=str(peer.ip), step="check shares")

    def owner_of(self, ip: IPAddr) -> OverlayPeer | None:
        """The peer whose share holds ``ip`` (None if none does)."""
        return next((p for p in self.peers if ip in p.net), None)
