"""The physical floor: the common endpoint built with no netlink library, from Python.

Every rtnetlink request is a ``struct``-packed message written to a raw ``AF_NETLINK`` socket:
one request per ``send``, each asking for an acknowledgement (``NLM_F_ACK``) that is read and
checked before the next request goes out (a non-zero error code raises ``OSError``). Nothing is
batched and nothing is skipped, so this is what the kernel costs for the work, plus Python's loop.
The same kernel work as the project's shared ``raw_floor`` anchor, written for this harness:

- netns: one long-lived thread makes every namespace: it calls ``unshare(CLONE_NEWNET)`` (which
  moves only that thread into a fresh namespace), pins it with a bind mount of its own
  ``/proc/self/task/TID/ns/net`` on ``/run/netns/NAME`` and opens a NETLINK_ROUTE socket while
  inside (the socket stays bound to that namespace). No thread or process is started per endpoint;
- veth: one request in the host namespace creates the pair: the host end on the bridge
  (``IFLA_MASTER``) and up, the peer born inside the namespace as ``eth0`` (``VETH_INFO_PEER``
  carrying ``IFLA_NET_NS_FD``). ``NLM_F_ECHO`` makes the kernel send the new host end back; its
  ``IFLA_LINK`` is eth0's index in the namespace ("eth0 index": parsing that echo, no request);
- link up: ``lo`` and ``eth0`` (two requests on the namespace's socket);
- addr: the endpoint's /16 on eth0; route: default via the bridge address;
- nft: one element (host port : address . 80) added to the dnat map through libnftables JSON.

:mod:`benchmarks.approach_raw_floor_nolinklocal` also switches IPv6 address generation off on
both veth ends before they come up ("ll off"), as netns_kit does for IPv4-only endpoints: the
like-for-like floor for netns_kit.

Teardown: each namespace is unmounted (``MNT_DETACH``) and its file unlinked (the kernel reclaims
the veth pair with the namespace, in the background), then the dnat map is flushed in one call,
as the tuned floor does. Deleting the bridge and the table is cleanup, as for every approach.

Besides the totals, the run reports the time of each kind of step (mean per endpoint over all
endpoints, over the first tenth and over the last tenth built), so it shows which steps the kernel
itself makes slower as N grows, and per-endpoint setup and teardown times of the first and last
tenth (teardown: one unmount + unlink each).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import queue
import socket
import struct
import threading
import time
from typing import Any

import nftables

from benchmarks._common import (
    BRIDGE,
    BRIDGE_IP,
    CONTAINER_PORT,
    PREFIXLEN,
    SUBNET,
    endpoint_ip,
    flatness_extra,
    host_port,
    tenth_means,
)

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
RUN_DIR = "/run/netns"
TABLE = "bench_raw"

# linux/netlink.h
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ECHO, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x8, 0x200, 0x400
NLMSG_ERROR = 2
# linux/rtnetlink.h, linux/if_link.h, linux/veth.h, linux/if_addr.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 18, 20, 24
IFF_UP = 0x1
IFLA_IFNAME, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_NET_NS_FD = 3, 5, 10, 18, 26, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 8, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HDR = struct.Struct("=IHHII")       # nlmsghdr: length, type, flags, sequence, port id
_ATTR = struct.Struct("=HH")         # nlattr: length, type
_IFINFO = struct.Struct("=BxHiII")   # ifinfomsg: family, pad, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")    # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_U32 = struct.Struct("=I")
_ERRNO = struct.Struct("=i")

#: kinds of setup step, timed per endpoint ("ll off" only in the no-link-local variant)
STEPS = ("netns", "veth", "eth0 index", "ll off", "link up", "addr", "route", "nft")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = _ATTR.size + len(payload)
    return _ATTR.pack(size, kind) + payload + bytes(-size % 4)


def name_attr(name: str) -> bytes:
    return attr(IFLA_IFNAME, name.encode() + b"\0")


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


#: IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE = none } }
ADDR_GEN_NONE = attr(IFLA_AF_SPEC, attr(socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE,
                                                              bytes([IN6_ADDR_GEN_MODE_NONE]))))


def find_attr(msg: bytes, offset: int, kind: int) -> bytes | None:
    """Payload of the first attribute of type ``kind`` in ``msg`` from ``offset`` on."""
    while offset + _ATTR.size <= len(msg):
        size, t = _ATTR.unpack_from(msg, offset)
        if size < _ATTR.size:
            return None
        if t & 0x3FFF == kind:  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
            return msg[offset + _ATTR.size:offset + size]
        offset += (size + 3) & ~3
    return None


class Rtnl:
    """A NETLINK_ROUTE socket. :meth:`request` sends one message and waits for its ACK."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seq = 0
        self.buf = bytearray(1 << 16)

    def request(self, kind: int, flags: int, body: bytes, what: str) -> list[bytes]:
        """Send one request (``NLM_F_REQUEST | NLM_F_ACK | flags``) and read up to its ACK.

        Returns the messages that came before the ACK (e.g. the echo of a created link);
        raises ``OSError`` with the kernel's errno if the request failed."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0) + body)
        replies: list[bytes] = []
        buf = self.buf
        while True:
            n = self.sock.recv_into(buf)
            offset = 0
            while offset + _HDR.size <= n:
                size, t, _, rseq, _ = _HDR.unpack_from(buf, offset)
                if rseq != seq:
                    raise RuntimeError(f"{what}: reply to request {rseq}, expected {seq}")
                if t == NLMSG_ERROR:
                    err = _ERRNO.unpack_from(buf, offset + _HDR.size)[0]
                    if err:
                        raise OSError(-err, f"{what}: {os.strerror(-err)}")
                    return replies
                replies.append(bytes(buf[offset:offset + size]))
                offset += (size + 3) & ~3

    def set_link(self, index: int, what: str, *, up: bool = False, extra: bytes = b"") -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, IFF_UP if up else 0, IFF_UP if up else 0) + extra, what)

    def close(self) -> None:
        self.sock.close()


def _rtnl_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


class NamespaceThread:
    """A long-lived thread that makes named namespaces on request.

    Each ``unshare(CLONE_NEWNET)`` moves the thread alone into a fresh namespace; the bind mount
    and the socket opened there keep it alive after the thread has moved on to the next one."""

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[socket.socket | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="raw-floor-netns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (path := self._todo.get()) is not None:
            try:
                self._done.put(self._make(path))
            except BaseException as exc:  # handed over to the caller
                self._done.put(exc)

    @staticmethod
    def _make(path: str) -> socket.socket:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare: {os.strerror(err)}")
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
        mine = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        if _libc.mount(mine, path.encode(), None, MS_BIND, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"bind mount on {path}: {os.strerror(err)}")
        return _rtnl_socket()

    def make(self, path: str) -> socket.socket:
        """A new namespace pinned at ``path``; returns a NETLINK_ROUTE socket inside it."""
        self._todo.put(path)
        out = self._done.get()
        if isinstance(out, BaseException):
            raise out
        return out

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join()


def _nft(nft: Any, commands: list[dict[str, Any]], what: str) -> None:
    rc, _, err = nft.cmd(json.dumps({"nftables": commands}))
    if rc != 0:
        raise RuntimeError(f"nft {what}: {err}")


class RawFloor:
    prefix = "brw"
    note = ("struct-packed rtnetlink on raw sockets, one acked request per send; one long-lived thread "
            "unshares each namespace; veth created up with NLM_F_ECHO (no lookup); nft map element")
    no_link_local = False

    def __init__(self, n: int) -> None:
        self.n = n
        self.nft = nftables.Nftables()
        self.host = Rtnl(_rtnl_socket())
        self.bridge = 0
        self.extra: dict[str, Any] = {}
        self._setup_times: list[float] = []

    def prepare(self) -> None:
        os.makedirs(RUN_DIR, exist_ok=True)
        rc, _, err = self.nft.cmd(
            f"table ip {TABLE} {{\n"
            "  map ports { type inet_service : ipv4_addr . inet_service; }\n"
            "  chain prerouting { type nat hook prerouting priority -100; dnat ip to tcp dport map @ports; }\n"
            "  chain postrouting { type nat hook postrouting priority 100;\n"
            f'    ip saddr {SUBNET} oifname != "{BRIDGE}" masquerade; }}\n'
            "}\n")
        if rc != 0:
            raise RuntimeError(err)
        self.nft.set_json_output(True)  # libnftables then reads its input as JSON too
        echo = self.host.request(
            RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            ifinfo() + name_attr(BRIDGE) + attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge")), "bridge")
        self.bridge = _IFINFO.unpack_from(echo[0], _HDR.size)[2]
        addr = socket.inet_aton(BRIDGE_IP)
        self.host.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                          _IFADDR.pack(socket.AF_INET, PREFIXLEN, 0, RT_SCOPE_UNIVERSE, self.bridge)
                          + attr(IFA_LOCAL, addr) + attr(IFA_ADDRESS, addr), "bridge address")
        self.host.set_link(self.bridge, "bridge up", up=True)

    def setup(self) -> None:
        clock = time.perf_counter
        n_steps = len(STEPS)
        steps = [[0.0] * n_steps for _ in range(self.n)]
        totals = [0.0] * self.n
        maker = NamespaceThread()
        master = attr(IFLA_MASTER, _U32.pack(self.bridge))
        head_state = 0 if self.no_link_local else IFF_UP
        veth_head = ifinfo(0, head_state, head_state)
        default_route = (_RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                                     RTN_UNICAST, 0) + attr(RTA_GATEWAY, socket.inet_aton(BRIDGE_IP)))
        element = '{"nftables":[{"add":{"element":{"family":"ip","table":"%s","name":"ports","elem":[[%d,' \
                  '{"concat":["%s",%d]}]]}}}]}'
        for i in range(1, self.n + 1):
            st = steps[i - 1]
            path = f"{RUN_DIR}/{self.prefix}{i}"
            ip = endpoint_ip(i)
            t0 = clock()
            inside = Rtnl(maker.make(path))
            fd = os.open(path, os.O_RDONLY)
            t1 = clock()
            try:
                peer = ifinfo() + name_attr("eth0") + attr(IFLA_NET_NS_FD, _U32.pack(fd))
                echo = self.host.request(
                    RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
                    veth_head + name_attr(f"h{self.prefix}{i}") + master
                    + attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"veth")
                           + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))), "veth")
            finally:
                os.close(fd)
            t2 = clock()
            host_end = _IFINFO.unpack_from(echo[0], _HDR.size)[2]
            link = find_attr(echo[0], _HDR.size + _IFINFO.size, IFLA_LINK)
            if link is None:
                raise RuntimeError("veth echo without IFLA_LINK")
            eth0 = _U32.unpack(link)[0]
            t3 = clock()
            if self.no_link_local:
                self.host.set_link(host_end, "host end addr_gen_mode", extra=ADDR_GEN_NONE)
                inside.set_link(eth0, "eth0 addr_gen_mode", extra=ADDR_GEN_NONE)
            t4 = clock()
            inside.set_link(1, "lo up", up=True)
            inside.set_link(eth0, "eth0 up", up=True)
            if self.no_link_local:
                self.host.set_link(host_end, "host end up", up=True)
            t5 = clock()
            packed = socket.inet_aton(ip)
            inside.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                           _IFADDR.pack(socket.AF_INET, PREFIXLEN, 0, RT_SCOPE_UNIVERSE, eth0)
                           + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed), "address")
            t6 = clock()
            inside.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, default_route, "default route")
            inside.close()
            t7 = clock()
            rc, _, err = self.nft.cmd(element % (TABLE, host_port(i), ip, CONTAINER_PORT))
            if rc != 0:
                raise RuntimeError(f"nft element {i}: {err}")
            t8 = clock()
            st[:] = [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7]
            totals[i - 1] = t8 - t0
        maker.close()
        per_step: dict[str, list[float]] = {}
        for j, label in enumerate(STEPS):
            if label == "ll off" and not self.no_link_local:
                continue
            col = [s[j] for s in steps]
            first, last = tenth_means(col)
            per_step[label] = [sum(col) / len(col) * 1e6, first * 1e6, last * 1e6]
        self.extra["steps_us"] = per_step
        self._setup_times = totals

    def teardown(self) -> None:
        clock = time.perf_counter
        times = [0.0] * self.n
        for i in range(1, self.n + 1):
            t = clock()
            path = f"{RUN_DIR}/{self.prefix}{i}"
            if _libc.umount2(path.encode(), MNT_DETACH) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"umount {path}: {os.strerror(err)}")
            os.unlink(path)
            times[i - 1] = clock() - t
        _nft(self.nft, [{"flush": {"map": {"family": "ip", "table": TABLE, "name": "ports"}}}], "flush map")
        self.extra.update(flatness_extra(self._setup_times, times, "one namespace unmount + unlink"))

    def cleanup(self) -> None:
        self.host.request(RTM_DELLINK, 0, ifinfo(self.bridge), "bridge delete")
        self.host.close()
        _nft(self.nft, [{"delete": {"table": {"family": "ip", "name": TABLE}}}], "delete table")


def make(n: int) -> RawFloor:
    return RawFloor(n)
