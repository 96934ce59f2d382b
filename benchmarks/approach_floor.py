"""The tuned floor: every known trick, with pyroute2's ``IPRoute`` doing the netlink work.

- a namespace is made by a short-lived thread that calls ``unshare(CLONE_NEWNET)``,
  pins the namespace with a bind mount and opens a netlink socket while still inside
  (no fork); ``IPRoute(fileno=...)`` wraps that socket;
- the veth peer is born inside the namespace as ``eth0``, with master and state of the
  host end in the same request;
- a published port is one element of an nft dnat map.
Teardown unmounts and unlinks each namespace file, then empties the map in one call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading

import nftables
from pyroute2 import IPRoute

from benchmarks._common import BRIDGE, BRIDGE_IP, PREFIXLEN, endpoint_ip
from benchmarks.approach_pyroute2 import TABLE, nat_table_script, nft_json, port_element

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _new_namespace(path: str) -> socket.socket:
    """From a thread: unshare, bind-mount the new namespace at ``path``, return a netlink socket in it."""
    box: list[socket.socket | BaseException] = []

    def body() -> None:
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            with open(path, "x"):
                pass
            me = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            if _libc.mount(me, path.encode(), None, MS_BIND, None) != 0:
                raise OSError(ctypes.get_errno(), "mount")
            box.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE))
        except BaseException as exc:  # handed to the caller
            box.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


class TunedFloor:
    prefix = "bfl"
    note = "thread unshare/setns, peer born in namespace, nft map element"

    def __init__(self, n: int) -> None:
        self.n = n
        self.nft = nftables.Nftables()
        self.ipr = IPRoute()
        self.bridge = 0

    def prepare(self) -> None:
        os.makedirs(RUN_DIR, exist_ok=True)
        rc, _, err = self.nft.cmd(nat_table_script(TABLE))
        if rc != 0:
            raise RuntimeError(err)
        self.ipr.link("add", ifname=BRIDGE, kind="bridge")
        self.bridge = self.ipr.link_lookup(ifname=BRIDGE)[0]
        self.ipr.addr("add", index=self.bridge, address=BRIDGE_IP, prefixlen=PREFIXLEN)
        self.ipr.link("set", index=self.bridge, state="up")

    def setup(self) -> None:
        for i in range(1, self.n + 1):
            path = f"{RUN_DIR}/{self.prefix}{i}"
            inside = IPRoute(fileno=_new_namespace(path).detach())
            fd = os.open(path, os.O_RDONLY)
            try:
                eth0 = self.wire(i, fd, inside)
            finally:
                os.close(fd)
            inside.addr("add", index=eth0, address=endpoint_ip(i), prefixlen=PREFIXLEN)
            inside.route("add", dst="0.0.0.0/0", gateway=BRIDGE_IP)
            inside.close()
            nft_json(self.nft, [{"add": {"element": {"family": "ip", "table": TABLE, "name": "ports",
                                                     "elem": [port_element(i)]}}}])

    def wire(self, i: int, ns_fd: int, inside: IPRoute) -> int:
        """The veth pair, its peer born in the namespace, everything up; returns eth0's index."""
        self.ipr.link("add", ifname=f"h{self.prefix}{i}", kind="veth", master=self.bridge, state="up",
                      peer={"ifname": "eth0", "net_ns_fd": ns_fd})
        eth0: int = inside.link_lookup(ifname="eth0")[0]
        inside.link("set", index=1, state="up")
        inside.link("set", index=eth0, state="up")
        return eth0

    def teardown(self) -> None:
        for i in range(1, self.n + 1):
            path = f"{RUN_DIR}/{self.prefix}{i}"
            _libc.umount2(path.encode(), MNT_DETACH)
            os.unlink(path)
        nft_json(self.nft, [{"flush": {"map": {"family": "ip", "table": TABLE, "name": "ports"}}}])

    def cleanup(self) -> None:
        self.ipr.link("del", index=self.bridge)
        self.ipr.close()
        nft_json(self.nft, [{"delete": {"table": {"family": "ip", "name": TABLE}}}])


def make(n: int) -> TunedFloor:
    return TunedFloor(n)
