"""Overlay networks across hosts, on the real kernel: three simulated hosts (each its own network
+ mount namespace, state directory and netns_kit process; see tests/overlay_hosts.py) joined by an
underlay bridge. Traffic decides: TCP, UDP and ICMP between endpoints on different hosts, isolation
of another VNI, icc and internal across hosts, a peer cut off and re-added, don't-fragment pings at
the MTU, outbound and published ports on the endpoint's own host, a crash and recover() on one
host while the others keep working. The configuration checks at the end need no kernel."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from overlay_hosts import OUTSIDE, RemoteError, SimHost, overlay_code, start_underlay
from traffic import connect, serve

from netns_kit import Namespace, OverlayNetwork, OverlayPeer
from netns_kit._overlayconfig import OverlayConfig, endpoint_mac
from netns_kit.errors import ValidationError

SUBNET = "10.60.0.0/16"
SUBNET2 = "10.61.0.0/16"


@pytest.fixture
def hosts(host: Namespace) -> Iterator[list[SimHost]]:
    start_underlay()
    made = [SimHost(n, i) for i, n in enumerate(("a", "b", "c"), 1)]
    try:
        for h in made:
            h.start()
            h.call("tx = enter(nk.Transaction())")  # everything after it is undone by recover() after a crash
        yield made
    finally:
        for h in made:
            h.stop()


def shares_of(hosts: list[SimHost], second: int = 60) -> dict[SimHost, str]:
    return {h: f"10.{second}.{h.index}.0/24" for h in hosts}


def build(hosts: list[SimHost], var: str = "ov", *, vni: int = 42, subnet: str = SUBNET, second: int = 60,
          ep: str = "1", **options: object) -> dict[SimHost, str]:
    """Each host's side of one overlay and one endpoint on it (named host name + ``ep``); their addresses."""
    shares = shares_of(hosts, second)
    ips = {}
    for h in hosts:
        h.call(overlay_code(var, name=f"ov{vni}", vni=vni, subnet=subnet, shares=shares, me=h, **options))
        name = f"{h.name}{ep}"
        ips[h] = h.call(f"{name} = nk.Namespace({name!r}).create(); c_{name} = {var}.connect({name})",
                        f"str(c_{name}.ip)")
    return ips


def test_endpoints_on_three_hosts_talk_by_tcp_udp_and_icmp(hosts: list[SimHost]) -> None:
    a, b, c = hosts
    ips = build(hosts)
    assert [ipaddress.ip_address(ips[h]) in ipaddress.ip_network(f"10.60.{h.index}.0/24") for h in hosts] == [True] * 3
    b.call("srv_t = enter(serve(b1, port=7000)); srv_u = enter(serve(b1, port=7001, proto='udp'))")
    assert a.call("", f"connect(a1, {ips[b]!r}, 7000)") == "hello from b1\n"
    assert c.call("", f"connect(c1, {ips[b]!r}, 7001, proto='udp')") == "hello from b1\n"
    # one L2 segment: no NAT between hosts, the server saw the endpoints' own addresses
    assert {p[0] for p in b.call("", "srv_t.peers + srv_u.peers")} == {ips[a], ips[c]}
    assert a.ping("a1", ips[c]) and c.ping("c1", ips[a])
    # the MAC follows the address (what makes a rebuilt host's endpoints known at once)
    assert b.call("", "b1.link('eth0').mac") == endpoint_mac(ipaddress.ip_address(ips[b]))
    # head-end replication: one flood entry per peer, no multicast group on the device
    floods = {dst for mac, dst in a.call("", "ov.forwarding()") if mac == "00:00:00:00:00:00"}
    assert floods == {b.address, c.address}
    assert "group" not in a.sh("ip -d link show nkvx42").stdout.split("vxlan id 42", 1)[1].split("dstport")[0]


def test_mtu_leaves_room_for_the_vxlan_header(hosts: list[SimHost]) -> None:
    a, b, _ = hosts
    ips = build(hosts)
    assert a.call("", "ov.config.mtu") == 1450 and a.call("", "a1.link('eth0').mtu") == 1450
    assert a.ping("a1", ips[b], size=1450 - 28, df=True)  # the largest unfragmented ICMP echo passes
    assert not a.ping("a1", ips[b], size=1450 - 28 + 1, df=True)  # one byte more does not
    with pytest.raises(RemoteError, match="no room for the 50-byte VXLAN header"):
        b.call(overlay_code("big", name="big", vni=50, subnet=SUBNET2, shares=shares_of(hosts, 61), me=b, mtu=1460))


def test_another_vni_is_isolated(hosts: list[SimHost]) -> None:
    a, b, c = hosts
    ips = build(hosts)
    ips2 = build([a, b], "ov2", vni=43, subnet=SUBNET2, second=61, ep="2")
    b.call("s1 = enter(serve(b1, port=7000)); s2 = enter(serve(b2, port=7000))")
    assert a.call("", f"connect(a2, {ips2[b]!r}, 7000)") == "hello from b2\n"  # inside overlay 43
    assert a.call("", f"connect(a1, {ips[b]!r}, 7000)") == "hello from b1\n"  # inside overlay 42
    assert a.call("", f"connect(a1, {ips2[b]!r}, 7000, timeout=1)") is None  # across: no way
    assert a.call("", f"connect(a2, {ips[b]!r}, 7000, timeout=1)") is None
    assert not c.ping("c1", ips2[a])


def test_icc_off_and_internal_hold_across_hosts(hosts: list[SimHost], host: Namespace) -> None:
    a, b, _ = hosts
    quiet = build([a, b], "q", vni=44, subnet=SUBNET, icc=False)
    closed = build([a, b], "i", vni=45, subnet=SUBNET2, second=61, ep="2", internal=True)
    b.call("s1 = enter(serve(b1, port=7000)); s2 = enter(serve(b2, port=7000))")
    with serve(host, OUTSIDE, 9000):
        assert a.call("", f"connect(a1, {quiet[b]!r}, 7000, timeout=1)") is None  # icc off: not even across hosts
        assert a.call("", f"connect(a1, {OUTSIDE!r}, 9000)") is not None  # the way out stays open
        assert a.call("", f"connect(a2, {closed[b]!r}, 7000)") == "hello from b2\n"  # internal: inside is fine
        assert a.call("", f"connect(a2, {OUTSIDE!r}, 9000, timeout=1)") is None  # ... and there is no way out


def test_outbound_and_published_ports_use_the_endpoints_own_host(hosts: list[SimHost], host: Namespace) -> None:
    a, b, _ = hosts
    build(hosts)
    with serve(host, OUTSIDE, 9000) as srv:
        assert a.call("", f"connect(a1, {OUTSIDE!r}, 9000)") is not None
        assert b.call("", f"connect(b1, {OUTSIDE!r}, 9000)") is not None
        assert [p[0] for p in srv.peers] == [a.address, b.address]  # each masqueraded by its own host
    b.call("pb = nk.Namespace('pb').create(); c_pb = ov.connect(pb, publish=['8080:7000']); "
           "sp = enter(serve(pb, port=7000))")
    assert connect(host, b.address, 8080) == "hello from pb\n"  # published on the host that runs it
    assert connect(host, a.address, 8080, timeout=1) is None  # not on the others


def test_removed_peer_is_cut_off_both_ways_and_stays_cut_off(hosts: list[SimHost]) -> None:
    a, b, c = hosts
    ips = build(hosts)
    for h in hosts:
        h.call(f"srv = enter(serve({h.name}1, port=7000))")
    assert a.call("", f"connect(a1, {ips[b]!r}, 7000)") == "hello from b1\n"
    for h in (a, c):
        h.call(f"ov.remove_peer({b.address!r})")
    assert a.call("", f"connect(a1, {ips[b]!r}, 7000, timeout=1)") is None
    assert b.call("", f"connect(b1, {ips[a]!r}, 7000, timeout=1)") is None
    # b keeps talking (ARP and ICMP floods to a and c) for longer than the ~3 s relearn window
    flood = b.sh(f"sh -c 'ping -q -i 0.2 -c 30 {ips[a]} & ping -q -i 0.2 -c 30 {ips[c]} & wait'", ns="b1")
    assert "0 received" in flood.stdout and flood.stdout.count("0 received") == 2
    assert all(dst != b.address for _, dst in a.call("", "ov.forwarding()"))  # nothing of b learned again
    assert all(dst != b.address for _, dst in c.call("", "ov.forwarding()"))
    assert a.call("", f"connect(a1, {ips[b]!r}, 7000, timeout=1)") is None
    assert c.call("", f"connect(c1, {ips[b]!r}, 7000, timeout=1)") is None
    assert a.call("", f"connect(a1, {ips[c]!r}, 7000)") == "hello from c1\n"  # the others are untouched
    # b's share is free again; b comes back with it
    for h in (a, c):
        h.call(f"ov.add_peer({b.address!r}, '10.60.2.0/24')")
    assert a.call("", f"connect(a1, {ips[b]!r}, 7000)") == "hello from b1\n"
    assert b.call("", f"connect(b1, {ips[c]!r}, 7000)") == "hello from c1\n"


def test_crash_recover_and_rebuild_one_host(hosts: list[SimHost]) -> None:
    a, b, c = hosts
    ips = build(hosts)
    assert a.ping("a1", ips[b]) and a.ping("a1", ips[c])  # a's neighbour cache now holds b1's MAC
    b.crash()
    b.start_worker()
    report = b.call("rep = nk.recover()", "rep.undone")
    text = "\n".join(report)
    assert "deleted vxlan nkvx42" in text and "deleted bridge nk-ov42" in text
    assert "deleted nft table inet netns_kit_vxlan_42" in text and "removed namespace b1" in text
    assert [ln.split()[0].split("@")[0] for ln in b.sh("ip -br link").stdout.splitlines()] == ["lo", "eth0"]
    assert b.sh("nft list tables").stdout.strip() == ""
    assert b.sh("ls /run/netns").stdout.strip() == ""
    # the other hosts' sides are intact and still carry traffic
    assert "nkvx42" in a.sh("ip -br link").stdout and "nkvx42" in c.sh("ip -br link").stdout
    assert a.ping("a1", ips[c])
    # rebuilt: same share, so the same first address and the same MAC; a's cache is right at once
    b.call("tx = enter(nk.Transaction())")
    b.call(overlay_code("ov", name="ov42", vni=42, subnet=SUBNET, shares=shares_of(hosts), me=b))
    assert b.call("b1 = nk.Namespace('b1').create(); c_b1 = ov.connect(b1)", "str(c_b1.ip)") == ips[b]
    assert a.ping("a1", ips[b])  # the first ping, no retry
    neigh = a.sh(f"ip neigh show {ips[b]}", ns="a1").stdout
    assert endpoint_mac(ipaddress.ip_address(ips[b])) in neigh


def test_overlapping_shares_are_refused_when_a_host_joins(hosts: list[SimHost]) -> None:
    a, b, c = hosts
    build([a, b])
    before = (c.sh("ip -br link").stdout, c.sh("nft list ruleset").stdout, c.sh("ls -R /run").stdout)
    bad = {a: "10.60.1.0/24", b: "10.60.2.0/24", c: "10.60.2.128/25"}  # c's share overlaps b's
    with pytest.raises(RemoteError, match=r"share 10.60.2.0/24 of peer 192.168.77.2 overlaps this host's share "
                                          r"10.60.2.128/25") as err:
        c.call(overlay_code("ov", name="ov42", vni=42, subnet=SUBNET, shares=bad, me=c))
    assert err.value.kind == "ValidationError"
    assert (c.sh("ip -br link").stdout, c.sh("nft list ruleset").stdout, c.sh("ls -R /run").stdout) == before
    # a running host refuses the newcomer's overlapping share too, and changes nothing
    with pytest.raises(RemoteError, match="overlaps"):
        a.call("ov.add_peer('192.168.77.3', '10.60.1.0/25')")
    assert sorted(dst for mac, dst in a.call("", "ov.forwarding()") if mac == "00:00:00:00:00:00") == [b.address]
    # and a fixed address in another host's share
    with pytest.raises(RemoteError, match=r"share 10\.60\.2\.0/24 of peer 192\.168\.77\.2"):
        a.call("x = nk.Namespace('ax').create(); ov.connect(x, ip='10.60.2.77')")


# -- configuration checks (no kernel) -----------------------------------------------------------------


@pytest.mark.pure
def test_config_refuses_bad_settings_before_anything() -> None:
    ok: dict[str, Any] = {"vni": 42, "subnet": SUBNET, "share": "10.60.1.0/24", "local": "192.0.2.1"}
    cfg = OverlayConfig(**ok, peers=(OverlayPeer("192.0.2.2", "10.60.2.0/24"),))
    assert str(cfg.gateway) == "10.60.1.0" and cfg.owner_of(ipaddress.ip_address("10.60.2.9")) is not None
    first = OverlayConfig(**{**ok, "share": "10.60.0.0/24"})
    assert str(first.gateway) == "10.60.0.1"  # never the subnet's own network address
    bads: list[tuple[dict[str, Any], str]] = [
        ({"vni": 0}, "VNI 0"), ({"vni": 1 << 24}, "VNI"), ({"share": "10.61.0.0/24"}, "inside the overlay subnet"),
        ({"local": "2001:db8::1"}, "must be IPv4"), ({"subnet": "fd00::/64"}, "must be IPv4"),
        ({"local": "224.0.0.1"}, "unicast"), ({"port": 0}, "VXLAN port"),
    ]
    for bad, match in bads:
        with pytest.raises(ValidationError, match=match):
            OverlayConfig(**{**ok, **bad})
    for peers, match in [
        ((OverlayPeer("192.0.2.1", "10.60.2.0/24"),), "own underlay address"),
        ((OverlayPeer("192.0.2.2", "10.60.2.0/24"), OverlayPeer("192.0.2.2", "10.60.3.0/24")), "listed twice"),
        ((OverlayPeer("192.0.2.2", "10.60.0.0/16"),), "overlaps this host's share"),
        ((OverlayPeer("192.0.2.2", "10.60.2.0/24"), OverlayPeer("192.0.2.3", "10.60.2.64/26")),
         "overlaps share 10.60.2.64/26 of peer 192.0.2.3"),
        ((OverlayPeer("192.0.2.2", "10.70.2.0/24"),), "outside the overlay subnet"),
    ]:
        with pytest.raises(ValidationError, match=match):
            OverlayConfig(**ok, peers=peers)
    with pytest.raises(ValidationError, match="mapping"):
        OverlayNetwork("x", vni=1, subnet=SUBNET, share="10.60.1.0/24", local="192.0.2.1",
                       peers="192.0.2.2")  # type: ignore[arg-type]
    assert endpoint_mac(ipaddress.ip_address("10.60.2.1")) == "02:6b:0a:3c:02:01"


def test_rollback_undoes_a_host_side_and_its_peer_changes(host: Namespace) -> None:
    import subprocess

    from netns_kit import Transaction

    subprocess.run(["ip", "link", "add", "ulx", "type", "veth", "peer", "name", "uly"], check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/24", "dev", "ulx"], check=True)
    subprocess.run(["ip", "link", "set", "ulx", "up"], check=True)
    with pytest.raises(RuntimeError), Transaction():
        ov = OverlayNetwork("rb", vni=7, subnet=SUBNET, share="10.60.1.0/24", local="192.0.2.1",
                            peers={"192.0.2.2": "10.60.2.0/24"}).create()
        ov.add_peer("192.0.2.3", "10.60.3.0/24")
        assert {d for _, d in ov.forwarding()} == {"192.0.2.2", "192.0.2.3"}
        raise RuntimeError("boom")
    assert sorted(link.name for link in host.links()) == ["lo", "ulx", "uly"]
    assert subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.strip() == ""
    with OverlayNetwork("rb", vni=7, subnet=SUBNET, share="10.60.1.0/24", local="192.0.2.1") as ov:
        ov.add_peer("192.0.2.2", "10.60.2.0/24")
        with pytest.raises(RuntimeError), Transaction():
            ov.remove_peer("192.0.2.2")
            raise RuntimeError("boom")
        assert [p.address for p in ov.peers] == [ipaddress.ip_address("192.0.2.2")]  # put back by the rollback
        assert ("00:00:00:00:00:00", "192.0.2.2") in ov.forwarding()
    assert sorted(link.name for link in host.links()) == ["lo", "ulx", "uly"]


def test_benchmark_runs_and_leaves_nothing(host: Namespace) -> None:
    import pathlib
    import sys

    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "overlay.py"
    res = host.run([sys.executable, str(script), "3", "0.2"], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OverlayNetwork   connect median" in res.stdout and "overlay/underlay" in res.stdout
    assert [link.name for link in host.links()] == ["lo"]
