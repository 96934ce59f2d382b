"""The fast readers of the netlink seam give exactly what pyroute2's generic decoder gives."""

from __future__ import annotations

import ipaddress

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_GETADDR, RTM_GETLINK
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netns_kit import Bridge, Namespace, VethPair
from netns_kit._netlink import _link_info


def _decoded_links(ns: Namespace) -> list[object]:
    res = ns.rtnl()._request(ifinfmsg(), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="test")
    return [_link_info(m) for m in res]


def _decoded_addrs(ns: Namespace) -> list[tuple[int, object]]:
    res = ns.rtnl()._request(ifaddrmsg(), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="test")
    out: list[tuple[int, object]] = []
    for m in res:
        ip = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
        out.append((m["index"], ipaddress.ip_interface(f"{ip}/{m['prefixlen']}")))
    return out


def test_fast_readers_match_pyroute2(host: Namespace) -> None:
    with Bridge("br-fast", addresses=["10.9.0.1/24", "fd00:9::1/64"], mtu=1400), \
            Namespace("t-fast") as ns, \
            VethPair("v-fast", "eth0", peer_namespace=ns, master="br-fast", mac="02:00:00:00:00:09"), \
            VethPair("v-local", "v-local-b"):
        ns.add_address("eth0", "10.9.0.2/24")
        ns.add_address("eth0", "fd00:9::2/64")
        for where in (host, ns):
            assert where.links() == _decoded_links(where)
            sock = where.rtnl()
            assert sock.interfaces() == _decoded_addrs(where)
            for link in where.links():
                assert sock.get_link(name=link.name) == link
                assert sock.get_link(index=link.index) == link
            v4 = sock.interfaces(family=4)
            assert v4 and all(i.version == 4 for _, i in v4)
            assert all(i.version == 6 for _, i in sock.interfaces(family=6))
        eth0 = ns.link("eth0")
        mine = {i for _, i in ns.rtnl().interfaces(eth0.index) if not i.is_link_local}
        assert mine == {ipaddress.ip_interface("10.9.0.2/24"), ipaddress.ip_interface("fd00:9::2/64")}
