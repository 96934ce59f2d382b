"""Seam for rtnetlink: the only module that imports pyroute2.

Requests go over a plain ``NETLINK_ROUTE`` socket of our own, bound to the namespace it was
opened in. This avoids pyroute2's per-request machinery (and its refusal to run inside an
asyncio loop), and it never forks. Errors from the kernel map to the most specific netns_kit
error, raised ``from`` the original ``OSError``.

The messages netns_kit sends most are packed here directly (the fast writer at the end) and the
replies it reads most are parsed directly (the fast readers); pyroute2's message classes encode
and decode everything else. pyroute2 is imported only then (:func:`_pyroute2`): importing it
costs ~300 ms, which a short-lived process (the CNI plugin, :mod:`netns_kit.cni`) must not pay
for requests it never sends.
"""

from __future__ import annotations

import errno as _errno
import functools
import ipaddress
import logging
import os
import random as _random
import re
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import _sys
from .errors import KernelError, NotFoundError, UnsupportedError, error_for_errno
from .model import AddressInfo, IPInterface, LinkInfo, Route, RouteInfo

Label = str | Callable[[], str] | None
"""How a request names its object in errors: text, or a function making it (only called on an
error, so a hot path formats nothing)."""

_log = logging.getLogger("netns_kit.netlink")  # one debug line per kernel change

# netlink and rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/pkt_sched.h)
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ECHO = 0x1, 0x4, 0x8
NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP, NLM_F_APPEND = 0x200, 0x400, 0x300, 0x800
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC, RTM_NEWTCLASS = 36, 37, 38, 40
TC_H_ROOT = 0xFFFFFFFF


class _Msg(dict[str, Any]):
    """A request being built: header fields and ``attrs`` as pyroute2's message class of the same
    name takes them. :func:`_fast_body` packs it; anything it does not know goes to pyroute2."""


class ifinfmsg(_Msg):  # named after the kernel struct, as pyroute2's classes are
    pass


class ifaddrmsg(_Msg):
    pass


class rtmsg(_Msg):
    pass


class tcmsg(_Msg):
    pass


class ndmsg(_Msg):
    pass


def _pyroute2(name: str) -> Any:
    """pyroute2's message class ``name`` (ifinfmsg, ifaddrmsg, rtmsg, tcmsg, ndmsg), imported on first use."""
    import importlib

    return getattr(importlib.import_module(f"pyroute2.netlink.rtnl.{name}"), name)


def _encodable(msg: Any) -> Any:
    """``msg`` as a pyroute2 message (a :class:`_Msg` is copied into one)."""
    if not isinstance(msg, _Msg):
        return msg
    out = _pyroute2(type(msg).__name__)()
    for key, value in msg.items():
        out[key] = value
    return out


_DECODERS: dict[int, str] = {RTM_NEWLINK: "ifinfmsg", RTM_NEWADDR: "ifaddrmsg", RTM_NEWROUTE: "rtmsg",
                             RTM_NEWQDISC: "tcmsg", RTM_NEWNEIGH: "ndmsg"}

IFF_UP = 0x1
IN6_ADDR_GEN_MODE_NONE = 1  # no IPv6 link-local address on the link
IFA_F_NODAD = 0x02
NETLINK_EXT_ACK = 11
SOL_NETLINK = 270
NLMSGERR_ATTR_MSG = 1
NLM_F_ACK_TLVS = 0x200
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTPROT_BOOT = 3
RTPROT_STATIC = 4
OWNER_PROTO = 107
"""The owner mark in the kernel on every address and route netns_kit adds: the address's IFA_PROTO
(Linux 6.1+) and the route's protocol number. The kernel interprets neither above its own values
(addresses 0-3, routes 0-4; route protocols above RTPROT_STATIC are free for administrators to
assign); 107 (0x6b, "k") is none of Linux's RTPROT_* constants nor a name in iproute2's rt_protos.
``ip addr`` / ``ip route`` show it as ``proto 107``. Recovery deletes an address or route of a dead
process only if it carries this mark (see :mod:`netns_kit._recovery`)."""
RTN_UNICAST = 1
AF_BRIDGE = 7
NTF_SELF = 0x02
NUD_PERMANENT = 0x80
ZERO_MAC = "00:00:00:00:00:00"



@functools.cache
def address_marks_kept() -> bool:
    """True if the kernel keeps an address's IFA_PROTO (Linux 6.1+; older kernels ignore it)."""
    try:
        major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return False
    return (major, minor) >= (6, 1)





def _brport_linkinfo(hairpin: bool) -> tuple[str, dict[str, Any]]:
    """IFLA_LINKINFO carrying a bridge port's hairpin mode (slave data of kind "bridge")."""
    return ("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_SLAVE_KIND", "bridge"),
        ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1 if hairpin else 0)]}),
    ]})

class RtnlSocket:
    """One rtnetlink socket, bound to the namespace it was opened in. Thread-safe."""

    def __init__(self, sock: socket.socket, label: str) -> None:
        self._sock = sock
        self.label = label
        self._seq = 0
        self._lock = threading.Lock()
        self.closed = False

    @classmethod
    def open(cls, ns_fd: int | None, *, label: str) -> RtnlSocket:
        """Open a socket in namespace ``ns_fd`` (None: the calling thread's namespace)."""
        if ns_fd is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        else:
            with _sys.entered(ns_fd, label=label):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                     socket.NETLINK_ROUTE)
        # No bind: the kernel binds the socket to a port of its own on the first send. No larger
        # receive buffer either: replies to our requests are read as they come (a dump waits for
        # the reader), and the socket joins no multicast group that could overflow it.
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            sock.close()
            raise
        return cls(sock, label)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sock.close()

    # -- transport ---------------------------------------------------------------------------------

    def _request(self, msg: Any, msg_type: int, flags: int, *, obj: Label, step: str,
                 raw: bool = False) -> list[Any]:
        """Send ``msg`` (a pyroute2 message, or the ``bytes`` of a body packed by the fast writers
        below) and collect the replies: decoded pyroute2 messages, or with ``raw`` the undecoded
        ``bytes`` of each reply (parsed by the fast readers below, which skip pyroute2's generic
        decoder on hot paths)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            body = msg if type(msg) is bytes else _fast_body(msg)
            if body is not None:
                self._sock.send(struct.pack("=IHHII", 16 + len(body), msg_type, flags, seq, 0) + body)
            else:
                msg = _encodable(msg)
                msg["header"]["type"] = msg_type
                msg["header"]["flags"] = flags
                msg["header"]["sequence_number"] = seq
                msg.encode()
                self._sock.send(msg.data)
            out: list[Any] = []
            while True:
                data = self._sock.recv(1 << 18)
                off = 0
                done = False
                while off + 16 <= len(data):
                    length, mtype, mflags, mseq = struct.unpack_from("=IHHI", data, off)
                    if length < 16:
                        break
                    if mseq != seq:
                        off += (length + 3) & ~3
                        continue
                    if mtype == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", data, off + 16)[0]
                        if err:
                            text = self._ext_ack_text(data[off:off + length], mflags)
                            raise error_for_errno(err, text, obj=obj() if callable(obj) else obj,
                                                  namespace=self.label, step=step) from OSError(
                                err, os.strerror(err))
                        done = True
                    elif mtype == NLMSG_DONE:
                        done = True
                    else:
                        if raw:
                            out.append(data[off:off + length])
                        else:
                            name = _DECODERS.get(mtype)
                            if name is not None:
                                m = _pyroute2(name)(data[off:off + length])
                                m.decode()
                                out.append(m)
                        if not flags & (NLM_F_DUMP | NLM_F_ACK):
                            done = True
                    off += (length + 3) & ~3
                if done:
                    return out

    @staticmethod
    def _ext_ack_text(chunk: bytes, flags: int) -> str:
        if not flags & NLM_F_ACK_TLVS:
            return ""
        # nlmsghdr(16) + error(4) + original request header (16, or the whole request without CAP_ACK)
        orig_len = struct.unpack_from("=I", chunk, 20)[0]
        off = 20 + (orig_len if orig_len >= 16 else 16)
        off = (off + 3) & ~3
        while off + 4 <= len(chunk):
            alen, atype = struct.unpack_from("=HH", chunk, off)
            if alen < 4:
                break
            if atype == NLMSGERR_ATTR_MSG:
                return chunk[off + 4:off + alen].split(b"\0", 1)[0].decode("utf-8", "replace")
            off += (alen + 3) & ~3
        return ""

    def _ack(self, msg: Any, msg_type: int, flags: int, *, obj: Label, step: str) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("netlink: %s %s in %s", step, (obj() if callable(obj) else obj) or "", self.label)
        self._request(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, obj=obj, step=step)

    # -- links ---------------------------------------------------------------------------------------

    @staticmethod
    def _link_attrs(*, mtu: int | None, mac: str | None, master: int | None, ns_fd: int | None,
                    alias: str | None = None, group: int | None = None,
                    addr_gen_mode: int | None = None) -> list[Any]:
        attrs: list[Any] = []
        if alias is not None:
            attrs.append(("IFLA_IFALIAS", alias))
        if group is not None:
            attrs.append(("IFLA_GROUP", group))
        if mtu is not None:
            attrs.append(("IFLA_MTU", mtu))
        if mac is not None:
            attrs.append(("IFLA_ADDRESS", mac))
        if master is not None:
            attrs.append(("IFLA_MASTER", master))
        if ns_fd is not None:
            attrs.append(("IFLA_NET_NS_FD", ns_fd))
        if addr_gen_mode is not None:
            attrs.append(("IFLA_AF_SPEC", {"attrs": [("AF_INET6", {"attrs": [
                ("IFLA_INET6_ADDR_GEN_MODE", addr_gen_mode)]})]}))
        return attrs

    def create_link(
        self,
        name: str,
        kind: str,
        *,
        up: bool = False,
        mtu: int | None = None,
        mac: str | None = None,
        master: int | None = None,
        link: int | None = None,
        info_data: list[tuple[str, Any]] | None = None,
        peer: dict[str, Any] | None = None,
        ns_fd: int | None = None,
        group: int | None = None,
        echo: bool = False,
    ) -> tuple[int, int | None] | None:
        """RTM_NEWLINK with NLM_F_EXCL. ``peer`` (veth): keys name, ns_fd, mtu, mac, group.

        With ``echo`` the kernel sends the new link back in the same exchange (NLM_F_ECHO, Linux
        6.3+): returns its ``(ifindex, IFLA_LINK)`` (for a veth, IFLA_LINK is the peer's ifindex in
        the peer's namespace), or None if the kernel did not echo (ask with :meth:`get_link`).

        ``group`` (IFLA_GROUP) is the one ownership tag the kernel takes in a creating request
        (it ignores IFLA_IFALIAS there); netns_kit then swaps it for an alias with :meth:`set_link`.

        ``link`` is the lower device (macvlan, vxlan). Undo: :meth:`delete_link`.
        """
        msg: Any
        if info_data is None and link is None:
            msg = _link_body(0, IFF_UP if up else 0, IFF_UP if up else 0, name=name, mtu=mtu, mac=mac,
                             master=master, ns_fd=ns_fd, group=group, kind=kind, peer=peer)
        else:
            msg = self._link_msg(name, kind, up=up, mtu=mtu, mac=mac, master=master, link=link,
                                 info_data=info_data, peer=peer, ns_fd=ns_fd, group=group)
        step = f"create {kind} link"
        if not echo:
            self._ack(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, obj=name, step=step)
            return None
        _log.debug("netlink: %s %s in %s", step, name, self.label)
        res = self._request(msg, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
                            obj=name, step=step, raw=True)
        want = name.encode("utf-8") + b"\0"
        for chunk in res:
            if struct.unpack_from("=H", chunk, 4)[0] != RTM_NEWLINK:
                continue
            end = min(struct.unpack_from("=I", chunk, 0)[0], len(chunk))
            # the kernel puts IFLA_IFNAME first; then only IFLA_LINK (the peer's index) is looked for
            alen, atype = _NLA_HDR.unpack_from(chunk, 32)
            if atype & _NLA_TYPE_MASK == IFLA_IFNAME and chunk[36:36 + len(want)] == want and alen == 4 + len(want):
                at = _find_attr(chunk, 32 + ((alen + 3) & ~3), end, IFLA_LINK)
            else:
                a = _attrs(chunk, 32, end, (IFLA_IFNAME, IFLA_LINK))
                if _asciiz(a.get(IFLA_IFNAME)) != name:
                    continue
                at = _find_attr(chunk, 32, end, IFLA_LINK)
            return _link_index_raw(chunk), (struct.unpack_from("=I", chunk, at + 4)[0]
                                            if at >= 0 and _NLA_HDR.unpack_from(chunk, at)[0] >= 8 else None)
        return None

    @classmethod
    def _link_msg(cls, name: str, kind: str, *, up: bool, mtu: int | None, mac: str | None, master: int | None,
                  link: int | None, info_data: list[tuple[str, Any]] | None, peer: dict[str, Any] | None,
                  ns_fd: int | None, group: int | None) -> Any:
        """The creating RTM_NEWLINK as a pyroute2 message (for kinds with IFLA_INFO_DATA of their own)."""
        msg = ifinfmsg()
        if up:
            msg["flags"] = IFF_UP
            msg["change"] = IFF_UP
        attrs: list[Any] = [("IFLA_IFNAME", name)]
        attrs += cls._link_attrs(mtu=mtu, mac=mac, master=master, ns_fd=ns_fd, group=group)
        if link is not None:
            attrs.append(("IFLA_LINK", link))
        data: list[Any] = list(info_data or [])
        if peer is not None:
            pattrs: list[Any] = [("IFLA_IFNAME", peer["name"])]
            pattrs += cls._link_attrs(mtu=peer.get("mtu"), mac=peer.get("mac"), master=None,
                                      ns_fd=peer.get("ns_fd"), group=peer.get("group"))
            # The peer cannot be brought up in this request (veth_open needs a registered peer).
            data.append(("VETH_INFO_PEER", {"attrs": pattrs}))
        linkinfo: list[Any] = [("IFLA_INFO_KIND", kind)]
        if data:
            linkinfo.append(("IFLA_INFO_DATA", {"attrs": data}))
        attrs.append(("IFLA_LINKINFO", {"attrs": linkinfo}))
        msg["attrs"] = attrs
        return msg

    def set_link(
        self,
        index: int,
        *,
        up: bool | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        master: int | None = None,
        name: str | None = None,
        ns_fd: int | None = None,
        obj: str | None = None,
        alias: str | None = None,
        group: int | None = None,
        addr_gen_mode: int | None = None,
        hairpin: bool | None = None,
    ) -> None:
        """Change link settings in one RTM_NEWLINK request. ``master=0`` detaches from a bridge.

        ``addr_gen_mode`` is the link's IPv6 address generation mode (``IN6_ADDR_GEN_MODE_NONE``:
        no link-local address, so no DAD, MLD reports or router solicitations from it).
        ``hairpin``: the bridge-port hairpin mode of an enslaved link, in the same request (see
        :meth:`set_bridge_port`).
        """
        body = _link_body(index, IFF_UP if up else 0, 0 if up is None else IFF_UP, mtu=mtu, mac=mac, master=master,
                          ns_fd=ns_fd, alias=alias, group=group, addr_gen_mode=addr_gen_mode, name=name,
                          hairpin=hairpin)
        self._ack(body, RTM_NEWLINK, 0, obj=obj or f"ifindex {index}", step="set link")

    def set_bridge_port(self, index: int, *, hairpin: bool, obj: str | None = None) -> None:
        """Set bridge-port options of an enslaved link (``ip link set X type bridge_slave hairpin on``)."""
        msg = ifinfmsg()
        msg["index"] = index
        msg["attrs"] = [_brport_linkinfo(hairpin)]
        self._ack(msg, RTM_NEWLINK, 0, obj=obj or f"ifindex {index}", step="set bridge port")

    def delete_link(self, index: int, *, obj: str | None = None) -> bool:
        """RTM_DELLINK by index. Returns False if the link was already gone."""
        msg = ifinfmsg()
        msg["index"] = index
        try:
            self._ack(msg, RTM_DELLINK, 0, obj=obj or f"ifindex {index}", step="delete link")
        except NotFoundError:
            return False
        return True

    def delete_links(self, indexes: Sequence[int], *, obj: str | None = None) -> None:
        """Delete many links at once: the kernel unregisters them together, waiting for RCU once
        instead of once per link (~30-40 ms each for veths).

        Each link gets an interface group no link of this namespace has (one RTM_NEWLINK each),
        then one RTM_DELLINK for that group deletes exactly them. Links already gone are skipped.
        If the kernel refuses a group deletion, they are deleted one by one.
        """
        if len(indexes) <= 1:
            for index in indexes:
                self.delete_link(index, obj=obj)
            return
        used = self._groups()
        group = 0
        while group in used or group == 0:
            group = _random.randrange(1 << 24, 1 << 31)
        tagged = []
        for index in indexes:
            try:
                self.set_link(index, group=group, obj=obj or f"ifindex {index}")
            except NotFoundError:
                continue
            tagged.append(index)
        if not tagged:
            return
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_GROUP", group)]
        try:
            self._ack(msg, RTM_DELLINK, 0, obj=obj or f"{len(tagged)} links", step="delete links")
        except NotFoundError:
            return
        except KernelError:
            for index in tagged:
                self.delete_link(index, obj=obj)

    def _groups(self) -> set[int | None]:
        """The interface group of every link in the namespace (one dump; only IFLA_GROUP is read)."""
        res = self._request(_IFINFO.pack(0, 0, 0, 0, 0) + _SKIP_STATS, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP,
                            obj=None, step="list links", raw=True)
        return {_u32(_attrs(m, 32, min(struct.unpack_from("=I", m, 0)[0], len(m)), (IFLA_GROUP,)).get(IFLA_GROUP))
                for m in res}

    def get_link(self, *, name: str | None = None, index: int | None = None) -> LinkInfo | None:
        """One link by name or index, or None if absent."""
        res = self._get_link(name, index)
        return _link_info_raw(res[0]) if res else None

    def link_index(self, name: str) -> int | None:
        """The index of the link called ``name``, or None if absent (one request, nothing else parsed)."""
        res = self._get_link(name, None)
        return _link_index_raw(res[0]) if res else None

    def _get_link(self, name: str | None, index: int | None) -> list[bytes]:
        # the kernel leaves the link's counters out of the reply (RTEXT_FILTER_SKIP_STATS): nothing reads them
        body = _IFINFO.pack(0, 0, index or 0, 0, 0) + _SKIP_STATS + (_nla_z(IFLA_IFNAME, name) if name is not None
                                                                         else b"")
        try:
            return self._request(body, RTM_GETLINK, NLM_F_REQUEST, obj=name or f"ifindex {index}", step="get link",
                                 raw=True)
        except NotFoundError:
            return []

    def links(self) -> list[LinkInfo]:
        res = self._request(_IFINFO.pack(0, 0, 0, 0, 0) + _SKIP_STATS, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP,
                            obj=None, step="list links", raw=True)
        return [_link_info_raw(m) for m in res]

    def create_vxlan(self, name: str, *, vni: int, local: str, port: int, learning: bool = True,
                     mtu: int | None = None, group: int | None = None) -> None:
        """RTM_NEWLINK (exclusive) of a VXLAN device (``ip link add NAME type vxlan id VNI local
        LOCAL dstport PORT [nolearning]``), down, without a multicast group: its flood list is the
        all-zero FDB entries added with :meth:`fdb_append`. Undo: :meth:`delete_link`."""
        data: list[tuple[str, Any]] = [("IFLA_VXLAN_ID", vni), ("IFLA_VXLAN_LOCAL", local),
                                       ("IFLA_VXLAN_PORT", port), ("IFLA_VXLAN_LEARNING", 1 if learning else 0)]
        self.create_link(name, "vxlan", mtu=mtu, info_data=data, group=group)

    def _fdb_msg(self, index: int, mac: str, dst: str) -> Any:
        msg = ndmsg()
        msg["family"] = AF_BRIDGE
        msg["ifindex"] = index
        msg["state"] = NUD_PERMANENT
        msg["flags"] = NTF_SELF
        msg["attrs"] = [("NDA_LLADDR", mac), ("NDA_DST", dst)]
        return msg

    def fdb_append(self, index: int, dst: str, *, mac: str = ZERO_MAC, obj: str | None = None) -> None:
        """Append a forwarding entry to VXLAN device ``index`` (``bridge fdb append MAC dev DEV dst
        DST``): with the all-zero MAC, one more remote that floods (broadcast, unknown unicast,
        multicast) are copied to. Undo: :meth:`fdb_delete` (or the device's deletion)."""
        self._ack(self._fdb_msg(index, mac, dst), RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, obj=obj or dst,
                  step="append fdb entry")

    def fdb_delete(self, index: int, dst: str, *, mac: str = ZERO_MAC, obj: str | None = None) -> bool:
        """Delete one forwarding entry (MAC, dst) of VXLAN device ``index``. Idempotent: False only if
        the kernel reported it missing (for a flood entry it may also accept the request silently)."""
        try:
            self._ack(self._fdb_msg(index, mac, dst), RTM_DELNEIGH, 0, obj=obj or dst, step="delete fdb entry")
        except NotFoundError:
            return False
        return True

    def fdb(self, index: int) -> list[tuple[str, str | None, bool]]:
        """The forwarding entries of device ``index`` as ``(mac, dst, permanent)`` (dst: the remote
        underlay address of a VXLAN entry, None for others)."""
        msg = ndmsg()
        msg["family"] = AF_BRIDGE
        out: list[tuple[str, str | None, bool]] = []
        for m in self._request(msg, RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="list fdb"):
            if m["ifindex"] != index:
                continue
            mac = m.get_attr("NDA_LLADDR")
            if mac is None:
                continue
            out.append((str(mac), m.get_attr("NDA_DST"), bool(m["state"] & NUD_PERMANENT)))
        return out

    # -- addresses ---------------------------------------------------------------------------------

    def _addr_msg(self, index: int, iface: IPInterface, *, nodad: bool, proto: int | None = None) -> Any:
        msg = ifaddrmsg()
        msg["family"] = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        msg["prefixlen"] = iface.network.prefixlen
        msg["index"] = index
        attrs: list[Any] = [("IFA_LOCAL", str(iface.ip)), ("IFA_ADDRESS", str(iface.ip))]
        if iface.version == 4 and iface.network.prefixlen < 31:
            attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
        if nodad and iface.version == 6:
            msg["flags"] = IFA_F_NODAD
            attrs.append(("IFA_FLAGS", IFA_F_NODAD))
        if proto is not None:
            attrs.append(("IFA_PROTO", proto))
        msg["attrs"] = attrs
        return msg

    def add_address(self, index: int, iface: IPInterface, *, nodad: bool = True, obj: Label = None) -> None:
        """RTM_NEWADDR (exclusive), carrying netns_kit's mark (IFA_PROTO = :data:`OWNER_PROTO`).
        IPv6 addresses skip duplicate detection unless ``nodad=False``. ``obj`` names it in errors
        (default: the address)."""
        self._ack(_addr_body(index, iface, nodad=nodad, proto=OWNER_PROTO), RTM_NEWADDR,
                  NLM_F_CREATE | NLM_F_EXCL,
                  obj=obj if obj is not None else iface.__str__, step="add address")

    def delete_address(self, index: int, iface: IPInterface, *, obj: str | None = None) -> bool:
        try:
            self._ack(_addr_body(index, iface, nodad=False), RTM_DELADDR, 0, obj=obj or str(iface),
                      step="delete address")
        except NotFoundError:
            return False
        return True

    def address_protocol(self, index: int, iface: IPInterface) -> int | None:
        """The IFA_PROTO of address ``iface`` on link ``index`` (0 if it has none), or None if absent."""
        msg = ifaddrmsg()
        msg["family"] = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        res = self._request(msg, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, obj=str(iface), step="list addresses",
                            raw=True)
        for chunk in res:
            item = _addr_raw(chunk)
            if item is not None and item[0] == index and item[1] == iface:
                return _addr_proto_raw(chunk)
        return None

    def addresses(self, index: int | None = None) -> list[AddressInfo]:
        names = {link.index: link.name for link in self.links()}
        return [AddressInfo(index=i, ifname=names.get(i, "?"), interface=iface)
                for i, iface in self.interfaces(index)]

    def interfaces(self, index: int | None = None, family: int | None = None) -> list[tuple[int, IPInterface]]:
        """``(ifindex, ADDR/PREFIX)`` of the addresses (of one link; of IPv4 or IPv6 only).

        One dump (of one address family if ``family`` is 4 or 6), no interface names: the
        cheap form of :meth:`addresses` for checks on hot paths.
        """
        msg = ifaddrmsg()
        if family is not None:
            msg["family"] = socket.AF_INET if family == 4 else socket.AF_INET6
        res = self._request(msg, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="list addresses",
                            raw=True)
        out: list[tuple[int, IPInterface]] = []
        for chunk in res:
            item = _addr_raw(chunk)
            if item is not None and (index is None or item[0] == index):
                out.append(item)
        return out

    # -- routes ------------------------------------------------------------------------------------

    def _route_msg(self, route: Route, oif: int | None, proto: int = OWNER_PROTO) -> Any:
        msg = rtmsg()
        net = route.network
        msg["family"] = socket.AF_INET if net.version == 4 else socket.AF_INET6
        msg["dst_len"] = net.prefixlen
        msg["table"] = route.table if route.table < 256 else 252
        msg["proto"] = proto
        msg["type"] = RTN_UNICAST
        msg["scope"] = RT_SCOPE_UNIVERSE if route.gateway_ip is not None else RT_SCOPE_LINK
        attrs: list[Any] = []
        if net.prefixlen:
            attrs.append(("RTA_DST", str(net.network_address)))
        if route.gateway_ip is not None:
            attrs.append(("RTA_GATEWAY", str(route.gateway_ip)))
        if oif is not None:
            attrs.append(("RTA_OIF", oif))
        if route.metric is not None:
            attrs.append(("RTA_PRIORITY", route.metric))
        if route.table >= 256:
            attrs.append(("RTA_TABLE", route.table))
        msg["attrs"] = attrs
        return msg

    def add_route(self, route: Route, oif: int | None) -> None:
        """RTM_NEWROUTE (exclusive), with netns_kit's mark as its protocol (:data:`OWNER_PROTO`):
        fails with AlreadyExistsError if the same route exists."""
        self._ack(_route_body(route, oif, OWNER_PROTO), RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                  obj=f"route {route.dst}", step="add route")

    def delete_route(self, route: Route, oif: int | None, *, proto: int = OWNER_PROTO) -> bool:
        """RTM_DELROUTE of the route with protocol ``proto`` (the kernel matches it: by default only a
        route netns_kit added is deleted, never a same-looking one of someone else); False if none."""
        try:
            self._ack(_route_body(route, oif, proto), RTM_DELROUTE, 0, obj=f"route {route.dst}",
                      step="delete route")
        except NotFoundError:
            return False
        return True

    def routes(self, family: int | None = None, table: int | None = 254) -> list[RouteInfo]:
        names = {link.index: link.name for link in self.links()}
        out: list[RouteInfo] = []
        for fam in (socket.AF_INET, socket.AF_INET6):
            if family is not None and family != (4 if fam == socket.AF_INET else 6):
                continue
            msg = rtmsg()
            msg["family"] = fam
            for chunk in self._request(msg, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="list routes",
                                       raw=True):
                info = _route_raw(chunk, names)
                if info is None or (table is not None and info.table != table):
                    continue
                out.append(info)
        return out

    # -- traffic control (qdiscs and classes) ------------------------------------------------------

    @staticmethod
    def _tc_msg(index: int, kind: str | None, handle: int, parent: int, options: dict[str, Any] | None,
                *, cls: bool = False) -> Any:
        msg = tcmsg()
        msg["index"] = index
        msg["handle"] = handle
        msg["parent"] = parent
        attrs: list[Any] = []
        if kind is not None:
            attrs.append(("TCA_KIND", kind))
            if options is not None:
                from pyroute2.netlink.rtnl.tcmsg import plugins

                plugin = plugins[kind]
                getter = plugin.get_class_parameters if cls else plugin.get_parameters
                attrs.append(("TCA_OPTIONS", getter(dict(options))))
        msg["attrs"] = attrs
        return msg

    def add_qdisc(self, index: int, kind: str, *, handle: int = 0, parent: int = TC_H_ROOT,
                  options: dict[str, Any] | None = None, obj: str | None = None) -> None:
        """RTM_NEWQDISC (exclusive). ``options`` are pyroute2's tc plugin parameters for ``kind``.

        A kind the kernel does not know (its sch_ module is missing) raises UnsupportedError.
        Undo: :meth:`delete_qdisc`.
        """
        msg = self._tc_msg(index, kind, handle, parent, options)
        try:
            self._ack(msg, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, obj=obj, step=f"add {kind} qdisc")
        except NotFoundError as exc:
            if exc.errno != _errno.ENOENT:
                raise
            raise UnsupportedError(f"this kernel has no {kind} qdisc (module sch_{kind} is missing)",
                                   obj=obj, namespace=self.label, step=f"add {kind} qdisc",
                                   errno=exc.errno) from exc

    def add_tclass(self, index: int, kind: str, *, handle: int, parent: int, options: dict[str, Any],
                   obj: str | None = None) -> None:
        """RTM_NEWTCLASS (exclusive): a class of a classful qdisc (e.g. htb). Goes with its qdisc."""
        msg = self._tc_msg(index, kind, handle, parent, options, cls=True)
        self._ack(msg, RTM_NEWTCLASS, NLM_F_CREATE | NLM_F_EXCL, obj=obj, step=f"add {kind} class")

    def delete_qdisc(self, index: int, *, handle: int = 0, parent: int = TC_H_ROOT,
                     obj: str | None = None) -> bool:
        """RTM_DELQDISC; False if there was none (or the link is gone)."""
        try:
            self._ack(self._tc_msg(index, None, handle, parent, None), RTM_DELQDISC, 0, obj=obj,
                      step="delete qdisc")
        except NotFoundError:
            return False
        return True

    def qdiscs(self, index: int | None = None) -> list[tuple[int, str, int, int]]:
        """Qdiscs as (ifindex, kind, handle, parent), of one link if ``index`` is given."""
        res = self._request(tcmsg(), RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="list qdiscs")
        return [(m["index"], m.get_attr("TCA_KIND"), m["handle"], m["parent"]) for m in res
                if index is None or m["index"] == index]


def _link_info(m: Any) -> LinkInfo:
    linkinfo = m.get_attr("IFLA_LINKINFO")
    kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo is not None else None
    link = m.get_attr("IFLA_LINK")
    return LinkInfo(
        index=m["index"],
        name=m.get_attr("IFLA_IFNAME"),
        kind=kind,
        mtu=m.get_attr("IFLA_MTU") or 0,
        mac=m.get_attr("IFLA_ADDRESS"),
        up=bool(m["flags"] & IFF_UP),
        master=m.get_attr("IFLA_MASTER") or None,
        peer_index=link if kind == "veth" else None,
        namespace_id=m.get_attr("IFLA_LINK_NETNSID"),
        alias=m.get_attr("IFLA_IFALIAS"),
        group=m.get_attr("IFLA_GROUP"),
    )


# -- fast readers: the few fields netns_kit uses, straight from the reply bytes ------------------------
# nlmsghdr is 16 bytes; ifinfomsg and ifaddrmsg follow it, then the attributes (struct nlattr:
# u16 length, u16 type; payload padded to 4 bytes). Nested attributes may carry NLA_F_NESTED.

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_IFALIAS = 20
IFLA_GROUP = 27
IFLA_LINK_NETNSID = 37
IFLA_INFO_KIND = 1
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_PROTO = 11
_NLA_TYPE_MASK = 0x3FFF
_NLA_HDR = struct.Struct("=HH")


def _attrs(data: bytes, off: int, end: int, only: tuple[int, ...] = ()) -> dict[int, bytes]:
    """Top-level attributes in ``data[off:end]``, by type (the first of each type wins); with
    ``only``, just those types, read until each was seen once."""
    out: dict[int, bytes] = {}
    unpack = _NLA_HDR.unpack_from
    while off + 4 <= end:
        alen, atype = unpack(data, off)
        if alen < 4:
            break
        atype &= _NLA_TYPE_MASK
        if not only:
            out.setdefault(atype, data[off + 4:off + alen])
        elif atype in only and atype not in out:
            out[atype] = data[off + 4:off + alen]
            if len(out) == len(only):
                break
        off += (alen + 3) & ~3
    return out


def _find_attr(data: bytes, off: int, end: int, want: int) -> int:
    """The offset of the first top-level attribute of type ``want`` in ``data[off:end]``, or -1 (the
    lean walk of a hot path: one lookup, nothing kept)."""
    unpack = _NLA_HDR.unpack_from
    while off + 4 <= end:
        alen, atype = unpack(data, off)
        if atype & _NLA_TYPE_MASK == want:
            return off if off + alen <= end else -1
        if alen < 4:
            return -1
        off += (alen + 3) & ~3
    return -1


def _asciiz(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(value: bytes | None) -> int | None:
    return struct.unpack_from("=I", value)[0] if value is not None and len(value) >= 4 else None


def _link_info_raw(data: bytes) -> LinkInfo:
    """LinkInfo from one RTM_NEWLINK reply; the same fields as :func:`_link_info`, without pyroute2."""
    length = struct.unpack_from("=I", data, 0)[0]
    index, flags = struct.unpack_from("=iI", data, 20)
    a = _attrs(data, 32, min(length, len(data)))
    kind = None
    linkinfo = a.get(IFLA_LINKINFO)
    if linkinfo is not None:
        kind = _asciiz(_attrs(linkinfo, 0, len(linkinfo)).get(IFLA_INFO_KIND))
    mac = a.get(IFLA_ADDRESS)
    netnsid = a.get(IFLA_LINK_NETNSID)
    link = _u32(a.get(IFLA_LINK))
    return LinkInfo(
        index=index,
        name=_asciiz(a.get(IFLA_IFNAME)) or "",
        kind=kind,
        mtu=_u32(a.get(IFLA_MTU)) or 0,
        mac=":".join(f"{b:02x}" for b in mac) if mac is not None else None,
        up=bool(flags & IFF_UP),
        master=_u32(a.get(IFLA_MASTER)) or None,
        peer_index=link if kind == "veth" else None,
        namespace_id=struct.unpack_from("=i", netnsid)[0] if netnsid is not None and len(netnsid) >= 4 else None,
        alias=_asciiz(a.get(IFLA_IFALIAS)),
        group=_u32(a.get(IFLA_GROUP)),
    )


RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_TABLE = 15


def _route_raw(data: bytes, names: dict[int, str]) -> RouteInfo | None:
    """RouteInfo from one RTM_NEWROUTE reply (None unless a unicast route); what pyroute2's rtmsg gives."""
    length = struct.unpack_from("=I", data, 0)[0]
    family, dst_len, _src, _tos, tbl, proto, scope, rtype = struct.unpack_from("=8B", data, 16)
    if rtype != RTN_UNICAST or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    a = _attrs(data, 28, min(length, len(data)))
    table = _u32(a.get(RTA_TABLE)) or tbl
    dst, gw = a.get(RTA_DST), a.get(RTA_GATEWAY)
    zero = bytes(4 if family == socket.AF_INET else 16)
    oif = _u32(a.get(RTA_OIF))
    return RouteInfo(
        dst=ipaddress.ip_network((dst or zero, dst_len), strict=False),
        gateway=ipaddress.ip_address(gw) if gw else None,
        oif=oif,
        ifname=names.get(oif) if oif is not None else None,
        table=table,
        metric=_u32(a.get(RTA_PRIORITY)),
        scope=scope,
        protocol=proto,
    )


def _link_index_raw(data: bytes) -> int:
    return int(struct.unpack_from("=i", data, 20)[0])


def _addr_raw(data: bytes) -> tuple[int, IPInterface] | None:
    """(ifindex, ADDR/PREFIX) from one RTM_NEWADDR reply (IFA_LOCAL, else IFA_ADDRESS)."""
    length = struct.unpack_from("=I", data, 0)[0]
    family, prefixlen, _flags, _scope, index = struct.unpack_from("=BBBBi", data, 16)
    a = _attrs(data, 24, min(length, len(data)))
    ip = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
    if ip is None:
        return None
    if family == socket.AF_INET and len(ip) == 4:
        return index, ipaddress.IPv4Interface((ip, prefixlen))
    if family == socket.AF_INET6 and len(ip) == 16:
        return index, ipaddress.IPv6Interface((ip, prefixlen))
    return None


def _addr_proto_raw(data: bytes) -> int:
    """The IFA_PROTO (u8) of one RTM_NEWADDR reply; 0 when the kernel sends none (unset)."""
    length = struct.unpack_from("=I", data, 0)[0]
    proto = _attrs(data, 24, min(length, len(data))).get(IFA_PROTO)
    return proto[0] if proto else 0


# -- fast writer: the same bytes pyroute2's encoder produces, for the messages on hot paths ----------
# pyroute2's generic encoder costs ~0.1-0.2 ms per message (most of the Python time of a request).
# The messages netns_kit sends most (link get/set/create of veth and bridge, address and route
# add/delete) use a handful of attributes; they are packed here directly. Anything else (other
# attributes, other link kinds' IFLA_INFO_DATA, tc messages) goes through pyroute2 as before.
# tests/test_netlink_fastpath.py checks that both produce identical bytes.


class _Unsupported(Exception):
    pass


def _nla(atype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * (-n & 3)


def _enc_value(kind: str, value: Any, family: int) -> bytes:
    if kind == "u32":
        return struct.pack("=I", value)
    if kind == "u8":
        return struct.pack("=B", value)
    if kind == "z":
        return value.encode("utf-8") + b"\0"  # type: ignore[no-any-return]
    if kind == "l2":
        return bytes.fromhex(value.replace(":", ""))
    if kind == "ip":
        return socket.inet_pton(family, value)
    raise _Unsupported(kind)


_IFLA: dict[str, tuple[int, str]] = {
    "IFLA_ADDRESS": (1, "l2"), "IFLA_IFNAME": (3, "z"), "IFLA_MTU": (4, "u32"), "IFLA_LINK": (5, "u32"),
    "IFLA_MASTER": (10, "u32"), "IFLA_LINKINFO": (18, "linkinfo"), "IFLA_IFALIAS": (20, "z"),
    "IFLA_GROUP": (27, "u32"), "IFLA_NET_NS_FD": (28, "u32"), "IFLA_AF_SPEC": (26, "afspec"),
}
_LINKINFO: dict[str, tuple[int, str]] = {"IFLA_INFO_KIND": (1, "z"), "IFLA_INFO_DATA": (2, "data"),
                                         "IFLA_INFO_SLAVE_KIND": (4, "z"), "IFLA_INFO_SLAVE_DATA": (5, "slave")}
_IFA: dict[str, tuple[int, str]] = {"IFA_ADDRESS": (1, "ip"), "IFA_LOCAL": (2, "ip"), "IFA_BROADCAST": (4, "ip"),
                                    "IFA_FLAGS": (8, "u32"), "IFA_PROTO": (11, "u8")}
_RTA: dict[str, tuple[int, str]] = {"RTA_DST": (1, "ip"), "RTA_OIF": (4, "u32"), "RTA_GATEWAY": (5, "ip"),
                                    "RTA_PRIORITY": (6, "u32"), "RTA_TABLE": (15, "u32")}


def _attr_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.get("attrs", ()))
    raise _Unsupported("nested value")


def _ifla_attrs(attrs: Any) -> bytes:
    out = b""
    for name, value in attrs:
        atype, kind = _IFLA.get(name, (0, ""))
        if kind == "linkinfo":
            out += _nla(atype, _linkinfo(_attr_list(value)))
        elif kind == "afspec":
            out += _nla(atype, _af_spec(_attr_list(value)))
        elif kind:
            out += _nla(atype, _enc_value(kind, value, 0))
        else:
            raise _Unsupported(name)
    return out


def _af_spec(attrs: list[Any]) -> bytes:
    """IFLA_AF_SPEC holding only AF_INET6's IFLA_INET6_ADDR_GEN_MODE (a u8): what set_link sends."""
    out = b""
    for name, value in attrs:
        inner = _attr_list(value)
        if name != "AF_INET6" or [n for n, _ in inner] != ["IFLA_INET6_ADDR_GEN_MODE"]:
            raise _Unsupported(name)
        out += _nla(socket.AF_INET6, _nla(8, struct.pack("=B", inner[0][1])))
    return out


def _linkinfo(attrs: list[Any]) -> bytes:
    out = b""
    kinds = [v for n, v in attrs if n == "IFLA_INFO_KIND"]
    for name, value in attrs:
        atype, kind = _LINKINFO.get(name, (0, ""))
        if kind == "data":
            if kinds != ["veth"]:
                raise _Unsupported("IFLA_INFO_DATA")
            data = b""
            for dname, dvalue in _attr_list(value):
                if dname != "VETH_INFO_PEER" or set(dvalue) - {"attrs"}:
                    raise _Unsupported(dname)
                data += _nla(1, bytes(16) + _ifla_attrs(_attr_list(dvalue)))
            out += _nla(atype, data)
        elif kind == "slave":  # a bridge port's hairpin mode (IFLA_BRPORT_MODE, a u8): what set_link sends
            inner = _attr_list(value)
            if [v for n, v in attrs if n == "IFLA_INFO_SLAVE_KIND"] != ["bridge"] or \
                    [n for n, _ in inner] != ["IFLA_BRPORT_MODE"]:
                raise _Unsupported("IFLA_INFO_SLAVE_DATA")
            out += _nla(atype, _nla(4, struct.pack("=B", inner[0][1])))
        elif kind:
            out += _nla(atype, _enc_value(kind, value, 0))
        else:
            raise _Unsupported(name)
    return out


def _fast_body(msg: Any) -> bytes | None:
    """The request body (everything after nlmsghdr) of ``msg``, or None to let pyroute2 encode it."""
    get = dict.get
    try:
        kind = type(msg).__name__  # ours or pyroute2's class of that name
        if kind == "ifinfmsg":
            head = struct.pack("=BxHiII", get(msg, "family", 0) or 0, get(msg, "ifi_type", 0) or 0,
                               get(msg, "index", 0) or 0, get(msg, "flags", 0) or 0, get(msg, "change", 0) or 0)
            return head + _ifla_attrs(get(msg, "attrs", ()))
        if kind == "ifaddrmsg":
            family = get(msg, "family", 0) or 0
            table = _IFA
            head = struct.pack("=BBBBI", family, get(msg, "prefixlen", 0) or 0, get(msg, "flags", 0) or 0,
                               get(msg, "scope", 0) or 0, get(msg, "index", 0) or 0)
        elif kind == "rtmsg":
            if "family" not in msg:  # pyroute2 fills in a default family of its own
                return None
            family = get(msg, "family", 0) or 0
            table = _RTA
            head = struct.pack("=BBBBBBBBI", family, *(get(msg, f, 0) or 0 for f in (
                "dst_len", "src_len", "tos", "table", "proto", "scope", "type")), get(msg, "flags", 0) or 0)
        else:
            return None
        out = head
        for name, value in get(msg, "attrs", ()):
            atype, kind = table.get(name, (0, ""))
            if not kind:
                raise _Unsupported(name)
            out += _nla(atype, _enc_value(kind, value, family))
        return out
    except (_Unsupported, ValueError, TypeError, OSError, struct.error, AttributeError):
        return None


# -- direct packers: the bodies of the hottest requests, built without a pyroute2 message ----------
# The same bytes :func:`_fast_body` makes from the equivalent pyroute2 message (attributes in the
# same order); tests/test_netlink_fastpath.py checks that for every form these functions send.

_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_NLA_U32 = struct.Struct("=HHI")
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
_SKIP_STATS = _NLA_U32.pack(8, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)


def _nla_u32(atype: int, value: int) -> bytes:
    return _NLA_U32.pack(8, atype, value)


def _nla_z(atype: int, value: str) -> bytes:
    return _nla(atype, value.encode("utf-8") + b"\0")


@functools.lru_cache(maxsize=256)  # a handful of forms (the ownership mark, group 0, no link-local) repeat
def _link_attrs_body(*, mtu: int | None = None, mac: str | None = None, master: int | None = None,
                     ns_fd: int | None = None, alias: str | None = None, group: int | None = None,
                     addr_gen_mode: int | None = None) -> bytes:
    """The attributes of :meth:`RtnlSocket._link_attrs`, packed, in the same order."""
    out = b""
    if alias is not None:
        out += _nla_z(20, alias)
    if group is not None:
        out += _nla_u32(27, group)
    if mtu is not None:
        out += _nla_u32(4, mtu)
    if mac is not None:
        out += _nla(1, bytes.fromhex(mac.replace(":", "")))
    if master is not None:
        out += _nla_u32(10, master)
    if ns_fd is not None:
        out += _nla_u32(28, ns_fd)
    if addr_gen_mode is not None:
        out += _nla(26, _nla(socket.AF_INET6, _nla(8, struct.pack("=B", addr_gen_mode))))
    return out


def _link_body(index: int, flags: int, change: int, *, name: str | None = None, mtu: int | None = None,
               mac: str | None = None, master: int | None = None, ns_fd: int | None = None,
               alias: str | None = None, group: int | None = None, addr_gen_mode: int | None = None,
               hairpin: bool | None = None, kind: str | None = None, peer: dict[str, Any] | None = None) -> bytes:
    """An RTM_NEWLINK body: :meth:`RtnlSocket.set_link`'s (``kind`` None) or a creating request's
    (``kind``, and for a veth its ``peer``: keys name, ns_fd, mtu, mac, group)."""
    head = _IFINFO.pack(0, 0, index, flags, change)
    if kind is None:
        out = head + _link_attrs_body(mtu=mtu, mac=mac, master=master, ns_fd=ns_fd, alias=alias, group=group,
                                      addr_gen_mode=addr_gen_mode)
        if name is not None:
            out += _nla_z(IFLA_IFNAME, name)
        if hairpin is not None:
            out += _nla(IFLA_LINKINFO, _nla_z(4, "bridge") + _nla(5, _nla(4, struct.pack("=B", 1 if hairpin else 0))))
        return out
    assert name is not None
    out = head + _nla_z(IFLA_IFNAME, name) + _link_attrs_body(mtu=mtu, mac=mac, master=master, ns_fd=ns_fd,
                                                              group=group)
    info = _nla_z(1, kind)
    if peer is not None:
        pbody = _IFINFO.pack(0, 0, 0, 0, 0) + _nla_z(IFLA_IFNAME, peer["name"]) + _link_attrs_body(
            mtu=peer.get("mtu"), mac=peer.get("mac"), ns_fd=peer.get("ns_fd"), group=peer.get("group"))
        info += _nla(2, _nla(1, pbody))
    return out + _nla(IFLA_LINKINFO, info)


def _addr_body(index: int, iface: IPInterface, *, nodad: bool, proto: int | None = None) -> bytes:
    """The body of :meth:`RtnlSocket._addr_msg`'s message, packed directly."""
    v4 = iface.version == 4
    prefixlen = iface.network.prefixlen
    ip = iface.ip.packed
    flags = IFA_F_NODAD if nodad and not v4 else 0
    out = _IFADDR.pack(socket.AF_INET if v4 else socket.AF_INET6, prefixlen, flags, 0, index)
    out += _nla(IFA_LOCAL, ip) + _nla(IFA_ADDRESS, ip)
    if v4 and prefixlen < 31:
        out += _nla(4, iface.network.broadcast_address.packed)
    if flags:
        out += _nla_u32(8, IFA_F_NODAD)
    if proto is not None:
        out += _nla(IFA_PROTO, struct.pack("=B", proto))
    return out


_RTMSG = struct.Struct("=BBBBBBBBI")


def _route_body(route: Route, oif: int | None, proto: int) -> bytes:
    """The body of :meth:`RtnlSocket._route_msg`'s message, packed directly."""
    net = route.network
    v4 = net.version == 4
    gw = route.gateway_ip
    out = _RTMSG.pack(socket.AF_INET if v4 else socket.AF_INET6, net.prefixlen, 0, 0,
                      route.table if route.table < 256 else 252, proto, RT_SCOPE_UNIVERSE if gw is not None
                      else RT_SCOPE_LINK, RTN_UNICAST, 0)
    if net.prefixlen:
        out += _nla(1, net.network_address.packed)
    if gw is not None:
        out += _nla(5, gw.packed)
    if oif is not None:
        out += _nla_u32(4, oif)
    if route.metric is not None:
        out += _nla_u32(6, route.metric)
    if route.table >= 256:
        out += _nla_u32(15, route.table)
    return out
