"""Overlay networks across hosts: a :class:`~netns_kit.Network` whose bridge has a VXLAN port.

Each host runs netns_kit and creates its side of the same overlay with :class:`OverlayNetwork`:
the VXLAN network identifier (VNI), its own underlay address, the other hosts (their underlay
addresses and their shares of the subnet), the subnet and its own share. Endpoints connected on
any host are on one L2 segment; everything a local :class:`~netns_kit.Network` does (IPAM, the
firewall policy with isolation, ``internal``, ``icc``, masquerade, published ports, hosts files,
rollback) applies unchanged, because it is one: the overlay adds, in the host namespace,

1. a VXLAN device ``nkvx<VNI>`` (``local`` underlay address, UDP port 4789, learning on, no
   multicast group) enslaved to the network's bridge, MTU that of the bridge;
2. head-end replication: one all-zero forwarding entry per peer (``bridge fdb append
   00:00:00:00:00:00 dev nkvx<VNI> dst PEER``): broadcast and unknown traffic is copied to every
   peer by unicast;
3. a peer filter: an nft table ``inet netns_kit_vxlan_<VNI>`` of its own with a set of the
   peers' underlay addresses and two rules that drop VXLAN packets of this VNI from (input) and
   to (output) any other address. Removing a peer deletes it from that set first, which cuts it
   off in both directions in one kernel transaction; nothing it still floods reaches the VXLAN
   device, so nothing of it is learned again. Its flood entry and the entries learned for its
   MACs are deleted next. The rules carry the owner mark as their comment (what
   :func:`~netns_kit.recover` looks for).

Addresses: each host allocates only from its share (the network's ``ip_range``); its bridge takes
the share's first host address as this host's gateway, so endpoints leave through their own host
(masqueraded there) and each host publishes the ports of its own endpoints. A fixed address in
another host's declared share is refused. Endpoint MACs derive from their address
(:func:`~netns_kit._overlayconfig.endpoint_mac`), so a host rebuilt after a crash answers with the
MACs the other hosts' caches already hold. The MTU defaults to the underlay interface's minus 50.

Undo: :meth:`OverlayNetwork.remove` (the network, then the VXLAN device and the filter table);
both are journaled on disk, so :func:`~netns_kit.recover` removes them after a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from . import _nft, _state
from ._journal import atomic_step, intent, record
from ._netconfig import RemovalReport
from ._netlink import IN6_ADDR_GEN_MODE_NONE
from ._overlayconfig import VXLAN_OVERHEAD, VXLAN_PORT, OverlayConfig, OverlayPeer, endpoint_mac, peer_list, vxlan_name
from ._progress import ProgressArg
from ._registry import host_state
from .errors import (
    AlreadyExistsError,
    Failures,
    NotFoundError,
    OwnershipError,
    StateError,
    ValidationError,
    attach_rollback_failures,
)
from .links import Bridge, _OwnedLink
from .model import ADDR_TYPES, IPAddr, check_args, parse_ip
from .namespace import Namespace, journal_ref
from .network import Network

__all__ = ["OverlayNetwork", "OverlayPeer"]

log = logging.getLogger("netns_kit")

FILTER_FAMILY = "inet"
FILTER_PRIORITY = -10


def filter_table(vni: int) -> str:
    """The nft table of one overlay's peer filter: ``netns_kit_vxlan_<VNI>``."""
    return f"netns_kit_vxlan_{vni}"


def _rule(table: str, chain: str, field: str, vni: int, port: int, mark: str) -> dict[str, Any]:
    """``udp dport PORT @th,96,24 VNI ip FIELD != @peers drop comment MARK``: the VNI is the 24 bits
    at offset 4 of the VXLAN header, which follows the 8-byte UDP header. The comment is the owner
    mark recovery looks for."""
    return {"add": {"rule": {"family": FILTER_FAMILY, "table": table, "chain": chain, "comment": mark, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": port}},
        {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": vni}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": field}}, "right": "@peers"}},
        {"drop": None}]}}}


def filter_commands(vni: int, port: int, peers: Iterable[str], mark: str) -> list[dict[str, Any]]:
    """One batch creating the peer filter of overlay ``vni`` (its rules carry the owner ``mark``)."""
    t = filter_table(vni)
    base = {"family": FILTER_FAMILY, "table": t}
    cmds: list[dict[str, Any]] = [
        {"create": {"table": {"family": FILTER_FAMILY, "name": t}}},
        {"add": {"set": {**base, "name": "peers", "type": "ipv4_addr"}}},
    ]
    elems = list(peers)
    if elems:
        cmds.append({"add": {"element": {**base, "name": "peers", "elem": elems}}})
    for chain, hook, field in (("input", "input", "saddr"), ("output", "output", "daddr")):
        cmds.append({"add": {"chain": {**base, "name": chain, "type": "filter", "hook": hook,
                                       "prio": FILTER_PRIORITY, "policy": "accept"}}})
        cmds.append(_rule(t, chain, field, vni, port, mark))
    return cmds


def _peer_element(cmd: str, vni: int, address: str) -> dict[str, Any]:
    return {cmd: {"element": {"family": FILTER_FAMILY, "table": filter_table(vni), "name": "peers",
                              "elem": [address]}}}


class _VxlanLink(_OwnedLink):
    """The overlay's VXLAN device, a port of its bridge. Undo: deleted by its recorded index."""

    _kind = "vxlan"

    def __init__(self, name: str, namespace: Namespace, *, vni: int, local: str, port: int, mtu: int | None,
                 bridge: Bridge) -> None:
        self.name = name
        self.namespace = namespace
        self.vni, self.local, self.port, self.mtu, self.bridge = vni, local, port, mtu, bridge
        self._init_state()

    def create(self) -> _VxlanLink:
        """Create the device (owner-tagged, journaled), enslave it to the bridge without an IPv6
        link-local address; it stays down until :meth:`up`."""
        self._check_new()
        ns = self.namespace
        sock = ns.rtnl()
        with atomic_step():
            with intent(f"delete vxlan {self.name} in {ns.label}", self._undo_create,
                        durable=("link", {"ns": journal_ref(ns), "name": self.name, "kind": "vxlan"})):
                sock.create_vxlan(self.name, vni=self.vni, local=self.local, port=self.port, mtu=self.mtu,
                                  group=_state.tag())
            info = sock.get_link(name=self.name)
            assert info is not None
            self._index = info.index
            self._owned, self._removed = True, False
            sock.set_link(info.index, alias=_state.mark(), group=0, master=self.bridge.index,
                          addr_gen_mode=IN6_ADDR_GEN_MODE_NONE, obj=self.name)
        record(f"delete vxlan {self.name} in {ns.label}", self.remove)
        return self

    def up(self) -> None:
        self.namespace.rtnl().set_link(self.index, up=True, obj=self.name)


class OverlayNetwork(Network):
    """One host's side of a network spanning hosts over VXLAN (see the module docstring).

    ``OverlayNetwork("ov", vni=42, subnet="10.60.0.0/16", share="10.60.1.0/24",
    local="192.0.2.1", peers={"192.0.2.2": "10.60.2.0/24"})``. ``peers``: a mapping of each
    other host's underlay address to its share (or :class:`OverlayPeer` objects). Every check
    (shares disjoint and inside the subnet, the local address present on the host, the VXLAN
    device name, the filter table and the MTU) runs before the first change; a refused request
    changes nothing. ``mtu`` defaults to the underlay interface's MTU minus 50; a larger one is
    refused. The other options are :class:`~netns_kit.Network`'s (IPv4 only).
    """

    def __init__(
        self,
        name: str,
        *,
        vni: int,
        subnet: ipaddress.IPv4Network | str,
        share: ipaddress.IPv4Network | str,
        local: ipaddress.IPv4Address | str,
        peers: Mapping[str, str] | Iterable[OverlayPeer] = (),
        port: int = VXLAN_PORT,
        bridge: str | None = None,
        mtu: int | None = None,
        internal: bool = False,
        icc: bool = True,
        masquerade: bool = True,
        resolve_names: bool = True,
        host: Namespace | None = None,
    ) -> None:
        self.overlay = OverlayConfig(vni, subnet, share, local, peer_list(peers), port)
        ov = self.overlay
        super().__init__(name, subnet=ov.subnet_net, gateway=ov.gateway, ip_range=ov.share_net, bridge=bridge,
                         mtu=mtu, internal=internal, icc=icc, masquerade=masquerade, resolve_names=resolve_names,
                         host=host)
        self._peers: dict[ipaddress.IPv4Address, OverlayPeer] = {p.ip: p for p in ov.peers}
        self._vxlan: _VxlanLink | None = None
        self._filter = False

    # -- read-only views ----------------------------------------------------------------------------

    @property
    def vni(self) -> int:
        return self.overlay.vni

    @property
    def vxlan(self) -> str:
        """The VXLAN device's name in the host namespace (``nkvx<VNI>``)."""
        return vxlan_name(self.overlay.vni)

    @property
    def share(self) -> ipaddress.IPv4Network:
        """This host's share of the subnet: the addresses it hands out."""
        return self.overlay.share_net

    @property
    def peers(self) -> tuple[OverlayPeer, ...]:
        """The other hosts now, in the order they were added."""
        return tuple(self._peers.values())

    def forwarding(self) -> list[tuple[str, str]]:
        """The VXLAN device's forwarding entries as ``(MAC, peer underlay address)``: the flood
        entries (all-zero MAC, one per peer) and the MACs learned from each peer. Changes nothing."""
        vx = self._live_vxlan("list forwarding entries")
        return [(mac, dst) for mac, dst, _ in self.host.rtnl().fdb(vx.index) if dst is not None]

    def describe(self) -> str:
        peers = ", ".join(f"{p.ip} ({p.net})" for p in self._peers.values()) or "none"
        return (super().describe() + f"\n  overlay: vni {self.vni} via {self.vxlan}, local {self.overlay.local} "
                f"(share {self.share}), peers {peers}")

    def __repr__(self) -> str:
        return f"OverlayNetwork({self.name!r}, vni={self.vni}, bridge={self.bridge!r})"

    def _live_vxlan(self, step: str) -> _VxlanLink:
        self._check_live(step)
        if self._vxlan is None:
            raise StateError(f"overlay {self.name!r} has no VXLAN device", obj=self.name, namespace=self.host.label,
                             step=step)
        return self._vxlan

    def _endpoint_mac(self, ip: IPAddr) -> str | None:
        return endpoint_mac(ip)

    # -- lifecycle -------------------------------------------------------------------------------------

    def _underlay_mtu(self, step: str) -> int:
        local = self.overlay.local_ip
        for a in self.host.addresses():
            if a.interface.ip == local:
                return self.host.link(a.ifname).mtu
        raise ValidationError(f"local underlay address {local} is not an address of {self.host.label}",
                              obj=self.name, namespace=self.host.label, step=step)

    def create(self) -> OverlayNetwork:
        """Create this host's side: the network (bridge, firewall policy, state), the peer filter,
        the VXLAN device on the bridge with one flood entry per peer, then bring it up.

        Undo: :meth:`remove`. On a failure halfway everything made so far is removed again."""
        step = "create overlay network"
        if self.created:
            raise StateError(f"network {self.name!r} was already created", obj=self.name, step=step)
        ov = self.overlay
        host = self.host
        limit = self._underlay_mtu(step) - VXLAN_OVERHEAD
        if self.config.mtu is None:
            self.config = dataclasses.replace(self.config, mtu=limit)
        elif self.config.mtu > limit:
            raise ValidationError(f"MTU {self.config.mtu} leaves no room for the {VXLAN_OVERHEAD}-byte VXLAN header "
                                  f"on the underlay (at most {limit})", obj=self.name, namespace=host.label, step=step)
        if host.has_link(self.vxlan):
            raise AlreadyExistsError(f"interface {self.vxlan!r} already exists (another overlay with VNI {ov.vni}?)",
                                     obj=self.name, namespace=host.label, step=step)
        ctx = _nft.context_for(host)
        if ctx.list_table(FILTER_FAMILY, filter_table(ov.vni), step=step) is not None:
            raise AlreadyExistsError(f"table {FILTER_FAMILY} {filter_table(ov.vni)} already exists (another overlay "
                                     f"with VNI {ov.vni}?)", obj=self.name, namespace=host.label, step=step)
        super().create()
        try:
            with atomic_step():
                self._install_filter(ctx)
                assert self._bridge is not None
                vx = _VxlanLink(self.vxlan, host, vni=ov.vni, local=str(ov.local), port=ov.port, mtu=self.config.mtu,
                                bridge=self._bridge)
                vx.create()
                sock = host.rtnl()
                for p in self._peers.values():
                    sock.fdb_append(vx.index, str(p.ip), obj=f"flood entry of peer {p.ip} on {self.vxlan}")
                vx.up()
                self._vxlan = vx
        except BaseException as exc:
            try:
                super().remove(force=True)
            except Exception as undo_exc:
                attach_rollback_failures(exc, [undo_exc])
            raise
        return self

    def _install_filter(self, ctx: _nft.NftContext) -> None:
        ov = self.overlay
        table = filter_table(ov.vni)
        with intent(f"delete table {FILTER_FAMILY} {table} in {self.host.label}", self._remove_filter,
                    durable=("nft_table", {"ns": journal_ref(self.host), "family": FILTER_FAMILY, "table": table})):
            ctx.run_json(filter_commands(ov.vni, ov.port, [str(p) for p in self._peers], _state.mark()),
                         obj=table, step="create overlay peer filter")
            self._filter = True

    def _remove_filter(self) -> None:
        if not self._filter or not self.host.exists:
            self._filter = False
            return
        table = filter_table(self.overlay.vni)
        ctx = _nft.context_for(self.host)
        with contextlib.suppress(NotFoundError):
            ctx.run_json([{"delete": {"table": {"family": FILTER_FAMILY, "name": table}}}], obj=table,
                         step="delete overlay peer filter")
        self._filter = False

    def remove(self, *, force: bool = False, progress: ProgressArg = None) -> RemovalReport:
        """Remove this host's side: the network (endpoints only with ``force``; ``progress`` as for
        :meth:`Network.remove`), then the VXLAN device and the peer filter. The other hosts' sides
        are not touched (remove this host from their peers with :meth:`remove_peer`). Idempotent."""
        check_args("OverlayNetwork.remove", force=(force, bool))
        if not self._created or self._removed:
            return RemovalReport(self.name)
        if not self._owned:
            raise OwnershipError(f"overlay {self.name!r} was opened, not created, by this process", obj=self.name,
                                 namespace=self.host.label, step="remove overlay network")
        failures = Failures()
        report = RemovalReport(self.name)
        try:
            report = super().remove(force=force, progress=progress)
        except StateError:
            raise  # endpoints remain (without force): nothing was changed
        except BaseException as exc:
            failures.append(exc)
        if self._vxlan is not None:
            with failures.step():
                self._vxlan.remove()
            self._vxlan = None
        with failures.step():
            self._remove_filter()
        failures.raise_first()
        return report

    # -- peers -----------------------------------------------------------------------------------------

    def add_peer(self, address: ipaddress.IPv4Address | str, share: ipaddress.IPv4Network | str) -> OverlayPeer:
        """Add a host to the overlay while endpoints run: a flood entry for it on the VXLAN device
        and its address in the peer filter. Its share is checked first (inside the subnet, disjoint
        from this host's and every other peer's). Undo: :meth:`remove_peer`."""
        step = "add overlay peer"
        peer = OverlayPeer(address, share)
        st = host_state(self.host)
        with st.lock:
            vx = self._live_vxlan(step)
            if peer.ip in self._peers:
                raise AlreadyExistsError(f"{peer.ip} is already a peer of overlay {self.name!r}", obj=str(peer.ip),
                                         namespace=self.host.label, step=step)
            if peer.ip == self.overlay.local_ip:
                raise ValidationError(f"{peer.ip} is this host's own underlay address", obj=str(peer.ip),
                                      namespace=self.host.label, step=step)
            self.overlay.check_share(peer, self._peers.values())
            with atomic_step():
                sock = self.host.rtnl()
                with intent(f"delete flood entry of {peer.ip}", lambda: sock.fdb_delete(vx.index, str(peer.ip))):
                    sock.fdb_append(vx.index, str(peer.ip), obj=f"flood entry of peer {peer.ip} on {self.vxlan}")
                _nft.context_for(self.host).run_json([_peer_element("add", self.vni, str(peer.ip))],
                                                     obj=str(peer.ip), step=step)
            self._peers[peer.ip] = peer
        record(f"remove peer {peer.ip} from overlay {self.name}", lambda: self.remove_peer(peer.ip))
        return peer

    def remove_peer(self, address: ipaddress.IPv4Address | str) -> OverlayPeer:
        """Cut a host off the overlay while endpoints run, in both directions at once: its address
        leaves the peer filter (one nft transaction: from then on no VXLAN packet of this VNI goes
        to it or is accepted from it, so nothing of it is learned again), then its flood entry and
        every forwarding entry learned for its MACs are deleted. Its share is free again.
        Undo: :meth:`add_peer`."""
        step = "remove overlay peer"
        check_args("OverlayNetwork.remove_peer", address=(address, str, *ADDR_TYPES))
        ip = parse_ip(address, what="peer underlay address")
        st = host_state(self.host)
        with st.lock:
            vx = self._live_vxlan(step)
            peer = self._peers.get(ip)  # type: ignore[arg-type]
            if peer is None:
                raise NotFoundError(f"{ip} is not a peer of overlay {self.name!r}", obj=str(ip),
                                    namespace=self.host.label, step=step)
            _nft.context_for(self.host).run_json([_peer_element("delete", self.vni, str(ip))], obj=str(ip), step=step)
            del self._peers[peer.ip]
            sock = self.host.rtnl()
            for mac, dst, _ in sock.fdb(vx.index):
                if dst == str(ip):
                    sock.fdb_delete(vx.index, dst, mac=mac, obj=f"entry {mac} of peer {ip} on {self.vxlan}")
        record(f"add peer {ip} back to overlay {self.name}", lambda: self.add_peer(peer.address, peer.share))
        return peer

    # -- endpoints -------------------------------------------------------------------------------------

    def _check_fixed(self, want: IPAddr) -> None:
        """A fixed address inside another host's declared share is refused: that host may hand it
        out (connect hands out addresses from this host's share, with MACs derived from them)."""
        owner = next((p for p in self._peers.values() if want in p.net), None)
        if owner is not None:
            raise ValidationError(f"address {want} is in share {owner.net} of peer {owner.ip} on overlay "
                                  f"{self.name!r}: only that host may hand it out", obj=str(want),
                                  namespace=self.host.label, step="connect")

    def __enter__(self) -> OverlayNetwork:
        super().__enter__()
        return self

    @classmethod
    def open(cls, name: str, *, host: Namespace | None = None) -> Network:
        """Not available for overlays: ``Network.open(name)`` opens the bridge side (connect and
        disconnect work); peers are managed by the process that created the overlay."""
        raise OwnershipError(f"an overlay network is managed by the process that created it; Network.open({name!r}) "
                             "opens its bridge side", obj=name, step="open overlay network")
