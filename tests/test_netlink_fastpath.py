"""The fast readers of the netlink seam give exactly what pyroute2's generic decoder gives."""

from __future__ import annotations

import ipaddress
from typing import Any

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
            # link-local addresses come and go while IPv6 configures the new links: compare the rest
            assert [a for a in sock.interfaces() if not a[1].is_link_local] == \
                [a for a in _decoded_addrs(where) if not getattr(a[1], "is_link_local", False)]
            for link in where.links():
                assert sock.get_link(name=link.name) == link
                assert sock.get_link(index=link.index) == link
            v4 = sock.interfaces(family=4)
            assert v4 and all(i.version == 4 for _, i in v4)
            assert all(i.version == 6 for _, i in sock.interfaces(family=6))
        eth0 = ns.link("eth0")
        mine = {i for _, i in ns.rtnl().interfaces(eth0.index) if not i.is_link_local}
        assert mine == {ipaddress.ip_interface("10.9.0.2/24"), ipaddress.ip_interface("fd00:9::2/64")}


def _pyroute2_body(msg: object) -> bytes:
    msg.encode()  # type: ignore[attr-defined]
    return bytes(msg.data)[16:]  # type: ignore[attr-defined]


def test_fast_writer_matches_pyroute2() -> None:
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    from netns_kit._netlink import OWNER_PROTO, RTPROT_STATIC, RtnlSocket, _fast_body
    from netns_kit.model import Route

    def link(**fields: object) -> object:
        m = ifinfmsg()
        for k, v in fields.items():
            m[k] = v
        return m

    peer = {"attrs": [("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1400), ("IFLA_ADDRESS", "02:00:00:00:00:01"),
                      ("IFLA_NET_NS_FD", 7), ("IFLA_GROUP", 0x6e6b)]}
    msgs: list[object] = [
        link(),
        link(index=5),
        link(attrs=[("IFLA_IFNAME", "br-x")]),
        link(index=9, flags=1, change=1, attrs=[("IFLA_IFALIAS", "netns_kit:123:456"), ("IFLA_GROUP", 0),
                                                ("IFLA_MTU", 9000), ("IFLA_ADDRESS", "0a:0b:0c:0d:0e:0f"),
                                                ("IFLA_MASTER", 3), ("IFLA_NET_NS_FD", 12),
                                                ("IFLA_IFNAME", "dev-ü")]),
        link(flags=1, change=1, attrs=[("IFLA_IFNAME", "v1"), ("IFLA_MASTER", 4), (
            "IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"),
                                        ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]})]})]),
        link(attrs=[("IFLA_IFNAME", "br0"), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})]),
        link(index=7, flags=1, change=1, attrs=[("IFLA_IFALIAS", "a"), ("IFLA_AF_SPEC", {"attrs": [
            ("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", 1)]})]})]),
        link(attrs=[("IFLA_IFNAME", "mv0"), ("IFLA_LINK", 2),
                    ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "macvlan")]})]),
        link(index=8, flags=1, change=1, attrs=[("IFLA_IFALIAS", "a"), ("IFLA_GROUP", 0), ("IFLA_LINKINFO", {
            "attrs": [("IFLA_INFO_SLAVE_KIND", "bridge"),
                      ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1)]})]})]),
    ]
    sock = RtnlSocket.__new__(RtnlSocket)
    for iface in ("10.1.2.3/24", "10.1.2.3/31", "10.1.2.3/32", "fd00::5/64"):
        msgs.append(sock._addr_msg(4, ipaddress.ip_interface(iface), nodad=True))
        msgs.append(sock._addr_msg(4, ipaddress.ip_interface(iface), nodad=False))
        msgs.append(sock._addr_msg(4, ipaddress.ip_interface(iface), nodad=True, proto=OWNER_PROTO))  # add_address
    msgs.append(ifaddrmsg())
    for route, oif in ((Route(gateway="10.0.0.1"), None), (Route("10.5.0.0/16", dev="eth0", metric=50), 3),
                       (Route("fd00:1::/64", gateway="fd00::1", table=1000), 2), (Route(gateway="fd00::1"), None)):
        msgs.append(sock._route_msg(route, oif))
        msgs.append(sock._route_msg(route, oif, RTPROT_STATIC))
    for m in msgs:
        fast = _fast_body(m)
        assert fast is not None, m
        assert fast == _pyroute2_body(m), m
    marked = sock._addr_msg(4, ipaddress.ip_interface("10.1.2.3/24"), nodad=True, proto=OWNER_PROTO)
    assert ("IFA_PROTO", OWNER_PROTO) in marked["attrs"]
    assert sock._route_msg(Route(gateway="10.0.0.1"), None)["proto"] == OWNER_PROTO
    # other link kinds' data stay with pyroute2
    vx = link(attrs=[("IFLA_IFNAME", "vx"), ("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_VXLAN_ID", 5)]})]})])
    assert _fast_body(vx) is None
    assert _fast_body(rtmsg()) is None


def test_addresses_and_routes_carry_the_owner_mark_in_the_kernel(host: Namespace) -> None:
    """Every address and route netns_kit adds carries its mark (IFA_PROTO, the route's protocol) as the
    kernel reports it back, by the fast reader and by pyroute2's decoder alike; `ip` adds none."""
    import subprocess

    from pyroute2.netlink.rtnl import RTM_GETROUTE
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    from netns_kit import Route
    from netns_kit._netlink import OWNER_PROTO

    with Bridge("br-mark", addresses=["10.9.0.1/24", "fd00:9::1/64"]), Namespace("t-mark") as ns, \
            VethPair("v-mark", "eth0", peer_namespace=ns, master="br-mark"):
        ns.add_address("eth0", "10.9.0.2/24")
        ns.add_route(Route(gateway="10.9.0.1"))
        ns.add_route(Route("10.10.0.0/24", dev="eth0"))
        subprocess.run(["ip", "addr", "add", "10.9.0.3/24", "dev", "br-mark"], check=True)
        sock, nsock = host.rtnl(), ns.rtnl()
        br, eth0 = host.link("br-mark").index, ns.link("eth0").index
        assert sock.address_protocol(br, ipaddress.ip_interface("10.9.0.1/24")) == OWNER_PROTO
        assert sock.address_protocol(br, ipaddress.ip_interface("fd00:9::1/64")) == OWNER_PROTO
        assert nsock.address_protocol(eth0, ipaddress.ip_interface("10.9.0.2/24")) == OWNER_PROTO
        assert sock.address_protocol(br, ipaddress.ip_interface("10.9.0.3/24")) == 0  # someone else's
        assert sock.address_protocol(br, ipaddress.ip_interface("10.9.0.4/24")) is None
        res = host.rtnl()._request(ifaddrmsg(), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="test")
        decoded = {(m["index"], m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")): m.get_attr("IFA_PROTO")
                   for m in res}
        assert decoded[(br, "10.9.0.1")] == OWNER_PROTO and decoded[(br, "10.9.0.3")] is None
        protos = {str(r.dst): r.protocol for r in ns.routes(4)}
        assert protos == {"0.0.0.0/0": OWNER_PROTO, "10.10.0.0/24": OWNER_PROTO, "10.9.0.0/24": 2}  # 2: kernel's
        msg = rtmsg()
        msg["family"] = 2
        res = nsock._request(msg, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, obj=None, step="test")
        assert {m["proto"] for m in res if m.get_attr("RTA_DST") == "10.10.0.0"} == {OWNER_PROTO}
        # delete_route takes only a route with the mark, never a same-looking one of someone else's
        assert ns.delete_route(Route("10.10.0.0/24", dev="eth0"))
        subprocess.run(["ip", "-n", "t-mark", "route", "add", "10.10.0.0/24", "dev", "eth0"], check=True)
        assert not ns.delete_route(Route("10.10.0.0/24", dev="eth0"))
        assert [r.protocol for r in ns.routes(4) if str(r.dst) == "10.10.0.0/24"] == [3]  # boot: ip's own


def test_veth_with_a_taken_name_changes_nothing_and_says_which(host: Namespace) -> None:
    import pytest

    import netns_kit as nk

    with Namespace("t-taken") as ns, Bridge("br-taken"), VethPair("v-taken", "eth0", peer_namespace=ns):
        before = (host.links(), ns.links())
        with nk.Transaction() as tx:
            for name, peer, taken in (("v-taken", "eth9", "v-taken"), ("v-new", "eth0", "eth0")):
                with pytest.raises(nk.AlreadyExistsError, match=f"interface '{taken}' already exists"):
                    VethPair(name, peer, peer_namespace=ns, master="br-taken").create()
                with pytest.raises(nk.AlreadyExistsError, match=f"interface '{taken}' already exists"):
                    VethPair(name, peer, peer_namespace=ns, master="no-such-bridge").create()
            assert tx.undo_steps == []
        assert (host.links(), ns.links()) == before


def test_direct_packers_match_the_fast_writer() -> None:
    """The hot requests' bodies, packed without a pyroute2 message, equal what _fast_body makes of
    the equivalent message (which test_fast_writer_matches_pyroute2 checks against pyroute2)."""
    from netns_kit._netlink import IN6_ADDR_GEN_MODE_NONE, OWNER_PROTO, RtnlSocket, _addr_body, _fast_body, _link_body

    sock = RtnlSocket.__new__(RtnlSocket)
    set_forms: list[dict[str, object]] = [
        {}, {"up": True}, {"up": False}, {"alias": "netns-kit:1.2", "group": 0},
        {"alias": "netns-kit:1.2", "group": 0, "addr_gen_mode": IN6_ADDR_GEN_MODE_NONE, "up": True},
        {"alias": "netns-kit:1.2", "group": 0, "hairpin": True}, {"hairpin": False, "name": "eth1"},
        {"mtu": 1400, "mac": "02:00:00:00:00:01", "master": 3, "ns_fd": 9, "name": "dev-ü"}, {"master": 0},
    ]
    for form in set_forms:
        up = form.get("up")
        msg = ifinfmsg()
        msg["index"] = 7
        if up is not None:
            msg["flags"] = 1 if up else 0
            msg["change"] = 1
        attrs = RtnlSocket._link_attrs(mtu=form.get("mtu"), mac=form.get("mac"), master=form.get("master"),  # type: ignore[arg-type]
                                       ns_fd=form.get("ns_fd"), alias=form.get("alias"), group=form.get("group"),  # type: ignore[arg-type]
                                       addr_gen_mode=form.get("addr_gen_mode"))  # type: ignore[arg-type]
        if form.get("name") is not None:
            attrs.append(("IFLA_IFNAME", form["name"]))
        if form.get("hairpin") is not None:
            from netns_kit._netlink import _brport_linkinfo
            attrs.append(_brport_linkinfo(bool(form["hairpin"])))
        msg["attrs"] = attrs
        packed = _link_body(7, 1 if up else 0, 0 if up is None else 1,
                            **{k: v for k, v in form.items() if k != "up"})  # type: ignore[arg-type]
        assert packed == _fast_body(msg), form
    peer = {"name": "eth0", "ns_fd": 11, "mtu": 1400, "mac": "02:00:00:00:00:02", "group": 0x4e6b0001}
    forms: tuple[tuple[str, bool, dict[str, Any] | None, dict[str, Any]], ...] = (
        ("veth", False, peer, {"master": 3, "group": 0x4e6b0001}),
        ("veth", True, {"name": "v2"}, {}), ("bridge", False, None, {"mtu": 9000}))
    for kind, up, p, extra in forms:
        msg = RtnlSocket._link_msg("x0", kind, up=up, mtu=extra.get("mtu"), mac=None, master=extra.get("master"),
                                   link=None, info_data=None, peer=p, ns_fd=None, group=extra.get("group"))
        packed = _link_body(0, 1 if up else 0, 1 if up else 0, name="x0", kind=kind, peer=p, **extra)
        assert packed == _fast_body(msg), (kind, p)
        assert _fast_body(msg) == _pyroute2_body(msg), (kind, p)
    from netns_kit._netlink import RTPROT_STATIC, _route_body
    from netns_kit.model import Route
    for route, oif in ((Route(gateway="10.0.0.1"), None), (Route("10.5.0.0/16", dev="eth0", metric=50), 3),
                       (Route("fd00:1::/64", gateway="fd00::1", table=1000), 2), (Route(gateway="fd00::1"), None),
                       (Route("10.6.0.0/24", gateway="10.0.0.1", table=7), None)):
        for rproto in (OWNER_PROTO, RTPROT_STATIC):
            assert _route_body(route, oif, rproto) == _fast_body(sock._route_msg(route, oif, rproto)), route
    for iface in ("10.1.2.3/24", "10.1.2.3/31", "10.1.2.3/32", "fd00::5/64"):
        for nodad in (True, False):
            for proto in (None, OWNER_PROTO):
                ip = ipaddress.ip_interface(iface)
                assert _addr_body(4, ip, nodad=nodad, proto=proto) == \
                    _fast_body(sock._addr_msg(4, ip, nodad=nodad, proto=proto)), (iface, nodad, proto)
