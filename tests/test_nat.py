"""NAT on the real kernel, proven by traffic: masquerade, published ports from everywhere, loopback."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from typing import Any

import pytest
from nat_env import HOST4, HOST6, OUT4, OUT6, World, world
from traffic import connect, serve

from netns_kit import AlreadyExistsError, Namespace, Transaction, ValidationError, _nft
from netns_kit.firewall import Firewall, NetworkPolicy, ensure_family6
from netns_kit.nat import NatRule, PublishedPort


def nft(host: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    return host.run(["nft", *args])


def has_table(host: Namespace) -> bool:
    return nft(host, "list", "table", "inet", "netns_kit").returncode == 0


def attach(fw: Firewall, w: World, br: str, **kw: Any) -> NetworkPolicy:
    net = w.nets[br]
    subnets = [ipaddress.ip_network(net.subnet4)]
    if net.ips6:
        subnets.append(ipaddress.ip_network(net.subnet6))
    pol = NetworkPolicy(br, tuple(subnets), **kw)
    fw.attach_network(pol)
    return pol


def test_outbound_is_masqueraded_and_undone(host: Namespace) -> None:
    host.write_sysctl("net.ipv4.ip_forward", "0")
    with world(host) as w:
        net = w.add_net(1)
        c = net.containers["c11"]
        fw = Firewall.for_namespace(host)
        with serve(w.outside, "0.0.0.0", 9000) as srv:
            assert connect(c, OUT4, 9000) is None  # no forwarding, no NAT yet
            attach(fw, w, "br1")
            assert host.read_sysctl("net.ipv4.ip_forward") == "1"
            assert connect(c, OUT4, 9000) == f"hello from {w.outside.label}\n"
            assert srv.peers[-1][0] == HOST4  # the outside saw the host's address
            fw.detach_network("br1")
            assert connect(c, OUT4, 9000) is None
    assert host.read_sysctl("net.ipv4.ip_forward") == "0"
    assert not has_table(host)


def test_masquerade_off_means_no_way_back(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1", masquerade=False)
        with serve(w.outside, "0.0.0.0", 9000) as srv:
            assert connect(net.containers["c11"], OUT4, 9000, timeout=1) is None
            assert srv.peers == [] or srv.peers[-1][0] == net.ips4["c11"]
        fw.detach_network("br1")
    assert not has_table(host)


def test_published_port_reachable_from_outside_host_peer_and_itself(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        c1, c2 = net.containers["c11"], net.containers["c12"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        port = PublishedPort.parse("8080:80", container_ip=net.ips4["c11"], bridge="br1", bridge_port="vc11")
        with serve(c1, "0.0.0.0", 80) as srv, NatRule.dnat(port):
            hello = f"hello from {c1.label}\n"
            # (1) another host: the container sees the real client address
            assert connect(w.outside, HOST4, 8080) == hello
            assert srv.peers[-1][0] == OUT4
            # (2) the host itself, on its addresses and on 127.0.0.1
            assert connect(host, HOST4, 8080) == hello
            assert connect(host, net.gateway4, 8080) == hello
            assert connect(host, "127.0.0.1", 8080) == hello
            # (3) a peer container, and the container itself (hairpin)
            assert connect(c2, HOST4, 8080) == hello
            assert srv.peers[-1][0] == net.ips4["c12"]
            assert connect(c2, net.gateway4, 8080) == hello
            assert connect(c1, HOST4, 8080) == hello
            assert connect(c1, net.gateway4, 8080) == hello
            assert srv.peers[-1][0] == net.gateway4  # masqueraded to its own port
            # a port nobody published is not forwarded
            assert connect(w.outside, HOST4, 8081, timeout=1) is None
        # unpublished: gone from everywhere
        with serve(c1, "0.0.0.0", 80):
            assert connect(w.outside, HOST4, 8080, timeout=1) is None
            assert connect(host, "127.0.0.1", 8080, timeout=1) is None
        fw.detach_network("br1")
    assert not has_table(host)


def test_port_on_loopback_only_is_not_reachable_from_other_hosts(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        c1 = net.containers["c11"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        tcp = PublishedPort.parse("127.0.0.1:8080:80", container_ip=net.ips4["c11"], bridge="br1")
        udp = PublishedPort.parse("127.0.0.1:8080:80/udp", container_ip=net.ips4["c11"], bridge="br1")
        fw.publish(tcp)
        fw.publish(udp)
        with serve(c1, "0.0.0.0", 80) as srv:
            assert connect(host, "127.0.0.1", 8080) == f"hello from {c1.label}\n"
            assert connect(host, HOST4, 8080, timeout=1) is None
            assert connect(w.outside, HOST4, 8080, timeout=1) is None
            assert all(peer[0] != OUT4 for peer in srv.peers)
        # moby#41872: a neighbour sends to 127.0.0.1 through the host's interface. UDP: the
        # server records any datagram that arrives, even if no answer could get back.
        _route_loopback_via_host(w)
        with serve(c1, "0.0.0.0", 80, proto="udp") as usrv:
            assert connect(host, "127.0.0.1", 8080, proto="udp") is not None
            connect(w.outside, "127.0.0.1", 8080, proto="udp", timeout=1)
            assert all(peer[0] != OUT4 for peer in usrv.peers)
        fw.unpublish(tcp)
        fw.unpublish(tcp)  # idempotent
        fw.detach_network("br1")
    assert not has_table(host)


def _route_loopback_via_host(w: World) -> None:
    o = w.outside
    for cmd in (["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
                ["ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
                ["ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"],
                ["ip", "route", "add", "127.0.0.1/32", "via", HOST4, "dev", "eth0"]):
        o.run(cmd, check=True)


def test_loopback_attack_path_is_real(host: Namespace) -> None:
    """Control for the test above: a naive prerouting DNAT of 127.0.0.1 *is* reachable from outside."""
    with world(host) as w:
        net = w.add_net(1)
        c1 = net.containers["c11"]
        host.write_sysctl("net.ipv4.ip_forward", "1")
        script = (f"table ip naive {{\n chain pre {{\n type nat hook prerouting priority -100; policy accept;\n"
                  f" ip daddr 127.0.0.1 udp dport 8080 dnat to {net.ips4['c11']}:80\n }}\n"
                  f" chain post {{\n type nat hook postrouting priority 100; policy accept;\n"
                  f" ip saddr 10.1.0.0/24 oifname != \"br1\" masquerade\n }}\n}}\n")
        host.run(["nft", "-f", "-"], input=script, check=True)
        _route_loopback_via_host(w)
        with serve(c1, "0.0.0.0", 80, proto="udp") as srv:
            connect(w.outside, "127.0.0.1", 8080, proto="udp", timeout=1)
            assert srv.peers and srv.peers[-1][0] == OUT4
        host.run(["nft", "delete", "table", "ip", "naive"], check=True)


def test_udp_and_port_ranges(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        c1 = net.containers["c11"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        udp = PublishedPort.parse("5353:53/udp", container_ip=net.ips4["c11"], bridge="br1")
        rng = PublishedPort.parse("9000-9002:7000-7002", container_ip=net.ips4["c11"], bridge="br1")
        with NatRule.dnat(udp), NatRule.dnat(rng):
            with serve(c1, "0.0.0.0", 53, proto="udp"):
                assert connect(w.outside, HOST4, 5353, proto="udp") == f"hello from {c1.label}\n"
            with serve(c1, "0.0.0.0", 7002):
                assert connect(w.outside, HOST4, 9002) == f"hello from {c1.label}\n"
                assert connect(w.outside, HOST4, 9001, timeout=1) is None  # maps to 7001: nobody there
        fw.detach_network("br1")


def test_ipv6_masquerade_and_published_port(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1, v6=True)
        c1 = net.containers["c11"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        assert host.read_sysctl("net.ipv6.conf.all.forwarding") == "1"
        with serve(w.outside, "::", 9000) as srv:
            assert connect(c1, OUT6, 9000) is not None
            assert srv.peers[-1][0] == HOST6
        port = PublishedPort.parse("8080:80", container_ip=net.ips6["c11"], bridge="br1", bridge_port="vc11")
        with serve(c1, "::", 80) as srv, NatRule.dnat(port):
            hello = f"hello from {c1.label}\n"
            assert connect(w.outside, HOST6, 8080) == hello
            assert srv.peers[-1][0] == OUT6
            assert connect(host, HOST6, 8080) == hello
            assert connect(net.containers["c12"], HOST6, 8080) == hello
            assert connect(c1, HOST6, 8080) == hello
            t0 = time.monotonic()
            assert connect(host, "::1", 8080, timeout=2) is None  # not translated: refused at once
            assert time.monotonic() - t0 < 1
        fw.detach_network("br1")
    assert host.read_sysctl("net.ipv6.conf.all.forwarding") == "0"


def test_the_tables_ipv6_part_comes_once_with_the_first_ipv6_element(host: Namespace) -> None:
    """An IPv4-only host keeps the smaller table (no IPv6 sets, maps or rules); the first IPv6
    network adds them, once, and a second try (another process) finds them and changes nothing."""
    def count(needle: str) -> int:
        return nft(host, "list", "table", "inet", "netns_kit").stdout.count(needle)

    with world(host) as w:
        w.add_net(1)
        v6 = w.add_net(2, v6=True)
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        assert has_table(host) and count("dnat4") >= 1
        assert count("dnat6") == 0 and count("masq6") == 0 and count("ip6 saddr") == 0
        attach(fw, w, "br2")  # a dual-stack network: its masquerade needs the IPv6 sets
        assert count("map dnat6 {") == 1 and count("@masq6 masquerade") == 1 and count("@hairpin6 masquerade") == 1
        assert not ensure_family6(_nft.context_for(host))  # made already: refused as a whole, nothing added
        assert count("@masq6 masquerade") == 1 and count("@dnat6_addr") == 2
        c = v6.containers["c21"]
        with serve(w.outside, "::", 9000) as srv:  # and it works: masquerade of the IPv6 network
            assert connect(c, OUT6, 9000) is not None
            assert srv.peers[-1][0] == HOST6
        fw.detach_network("br2")
        fw.detach_network("br1")
    assert not has_table(host)


def test_conflicts_are_refused_and_change_nothing(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        ip1, ip2 = net.ips4["c11"], net.ips4["c12"]
        fw.publish(PublishedPort.parse("8080:80", container_ip=ip1, bridge="br1"))
        for spec in ("8080:81", "127.0.0.1:8080:80", "8079-8081:80-82"):
            with pytest.raises(AlreadyExistsError):
                fw.publish(PublishedPort.parse(spec, container_ip=ip2, bridge="br1"))
        fw.publish(PublishedPort.parse("8080:80/udp", container_ip=ip2, bridge="br1"))  # other protocol: fine
        with pytest.raises(ValidationError, match="not attached"):
            fw.publish(PublishedPort.parse("8090:80", container_ip=ip1, bridge="br9"))
        with pytest.raises(ValidationError, match="not in any subnet"):
            fw.publish(PublishedPort.parse("8090:80", container_ip="10.99.0.2", bridge="br1"))
        with pytest.raises(AlreadyExistsError):
            attach(fw, w, "br1")
        inner = w.add_net(2)
        attach(fw, w, "br2", internal=True)
        with pytest.raises(ValidationError, match="internal"):
            fw.publish(PublishedPort.parse("8090:80", container_ip=inner.ips4["c21"], bridge="br2"))
        fw.detach_network("br2")
        # another process's element in the kernel map is a conflict too (create, not add)
        nft(host, "add", "element", "inet", "netns_kit", "dnat4", "{ tcp . 7000 : 10.1.0.9 . 80 }")
        with pytest.raises(AlreadyExistsError):
            fw.publish(PublishedPort.parse("7000:80", container_ip=ip1, bridge="br1"))
        nft(host, "delete", "element", "inet", "netns_kit", "dnat4", "{ tcp . 7000 }")
        assert len(fw.published) == 2
        fw.detach_network("br1")  # takes its ports along
        assert fw.published == []
    assert not has_table(host)


def test_transaction_rolls_back_firewall_changes(host: Namespace) -> None:
    host.write_sysctl("net.ipv4.ip_forward", "0")
    with world(host) as w:
        net = w.add_net(1)
        fw = Firewall.for_namespace(host)
        with pytest.raises(AlreadyExistsError), Transaction():
            attach(fw, w, "br1")
            fw.publish(PublishedPort.parse("8080:80", container_ip=net.ips4["c11"], bridge="br1"))
            assert has_table(host)
            fw.publish(PublishedPort.parse("8080:80", container_ip=net.ips4["c12"], bridge="br1"))
        assert not has_table(host)
        assert fw.published == [] and fw.networks == {}
        assert host.read_sysctl("net.ipv4.ip_forward") == "0"
        assert host.read_sysctl("net.ipv4.conf.br1.route_localnet") == "0"


def test_standalone_masquerade_rule(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1", masquerade=False)
        with serve(w.outside, "0.0.0.0", 9000) as srv:
            with NatRule.masquerade(net.subnet4, bridge="br1") as rule:
                assert rule.active
                assert connect(net.containers["c11"], OUT4, 9000) is not None
                assert srv.peers[-1][0] == HOST4
            assert connect(net.containers["c11"], OUT4, 9000, timeout=1) is None
        fw.detach_network("br1")
    assert not has_table(host)


def test_describe_shows_our_nat_state(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        fw = Firewall.for_namespace(host)
        assert "no table" in fw.describe()
        attach(fw, w, "br1")
        fw.publish(PublishedPort.parse("8080:80", container_ip=net.ips4["c11"], bridge="br1"))
        fw.publish(PublishedPort.parse("127.0.0.1:9090:90/udp", container_ip=net.ips4["c12"], bridge="br1"))
        text = fw.describe(rules=True)
        assert "MASQUERADE  all   10.1.0.0/24" in text and "out: not br1" in text
        assert "DNAT        tcp   0.0.0.0/0                   8080    10.1.0.2:80" in text
        assert "DNAT        udp   127.0.0.1                   9090    10.1.0.3:90" in text
        assert "chain forward" in text
        fw.detach_network("br1")


def test_port_bound_to_one_host_address(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        c1 = net.containers["c11"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        fw.publish(PublishedPort.parse(f"{HOST4}:8082:80", container_ip=net.ips4["c11"], bridge="br1"))
        with serve(c1, "0.0.0.0", 80):
            assert connect(w.outside, HOST4, 8082) == f"hello from {c1.label}\n"
            assert connect(host, HOST4, 8082) == f"hello from {c1.label}\n"
            assert connect(host, net.gateway4, 8082, timeout=1) is None
            assert connect(host, "127.0.0.1", 8082, timeout=1) is None
        fw.detach_network("br1")


def test_detach_after_the_bridge_is_gone(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        fw.publish(PublishedPort.parse("8080:80", container_ip=net.ips4["c11"], bridge="br1", bridge_port="vc11"))
        host.run(["ip", "link", "del", "vc11"], check=True)
        host.run(["ip", "link", "del", "br1"], check=True)
        fw.detach_network("br1")
        assert fw.networks == {} and fw.published == []
    assert not has_table(host)


def _sctp_supported() -> str | None:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def test_sctp_port(host: Namespace) -> None:
    missing = _sctp_supported()
    with world(host) as w:
        net = w.add_net(1)
        c1 = net.containers["c11"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        port = PublishedPort.parse("3868:3868/sctp", container_ip=net.ips4["c11"], bridge="br1")
        fw.publish(port)  # the map takes it whether or not the kernel speaks SCTP
        assert "sctp  0.0.0.0/0                   3868    10.1.0.2:3868" in fw.describe()
        if missing is None:  # pragma: no cover - this machine's kernel has no SCTP
            with c1.enter():
                srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
            with w.outside.enter():
                cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
            with srv, cli:
                srv.bind(("0.0.0.0", 3868))
                srv.listen(1)
                cli.settimeout(3)
                cli.connect((HOST4, 3868))
                conn, peer = srv.accept()
                conn.close()
                assert peer[0] == OUT4
        fw.unpublish(port)
        fw.detach_network("br1")
    if missing is not None:
        pytest.skip(f"kernel feature missing: no SCTP sockets ({missing}), so no SCTP traffic test")


def test_containers_cannot_reach_the_hosts_loopback(host: Namespace) -> None:
    """route_localnet=1 on the bridge (for 127.0.0.1 publications) must not open the host's 127.0.0.1."""
    with world(host) as w:
        net = w.add_net(1)
        c1 = net.containers["c11"]
        for cmd in (["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
                    ["ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
                    ["ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"],
                    ["ip", "route", "add", "127.0.0.1/32", "via", net.gateway4, "dev", "eth0"]):
            c1.run(cmd, check=True)
        fw = Firewall.for_namespace(host)
        with serve(host, "127.0.0.1", 7777, proto="udp") as srv:
            attach(fw, w, "br1")
            assert host.read_sysctl("net.ipv4.conf.br1.route_localnet") == "1"
            connect(c1, "127.0.0.1", 7777, proto="udp", timeout=1)
            assert srv.peers == []  # the guard chain dropped it
            fw.detach_network("br1")
            # control: the same with route_localnet=1 and no guard reaches the host's loopback service
            host.write_sysctl("net.ipv4.conf.br1.route_localnet", "1")
            connect(c1, "127.0.0.1", 7777, proto="udp", timeout=1)
            assert srv.peers and srv.peers[-1][0] == net.ips4["c11"]


def test_publish_and_unpublish_many_ports_in_one_call(host: Namespace) -> None:
    with world(host) as w:
        net = w.add_net(1)
        c1, c2 = net.containers["c11"], net.containers["c12"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        p1 = PublishedPort.parse("8081:80", container_ip=net.ips4["c11"], bridge="br1", bridge_port="vc11")
        p2 = PublishedPort.parse("8082:81", container_ip=net.ips4["c11"], bridge="br1", bridge_port="vc11")
        p3 = PublishedPort.parse("8083:80", container_ip=net.ips4["c12"], bridge="br1", bridge_port="vc12")
        clash = PublishedPort.parse("8081:90", container_ip=net.ips4["c12"], bridge="br1")
        outside_subnet = PublishedPort.parse("8084:80", container_ip="10.9.9.9", bridge="br1")
        for bad, error in (((p1, p2, clash), AlreadyExistsError), ((p1, outside_subnet), ValidationError)):
            with pytest.raises(error):
                fw.publish(*bad)  # refused as a whole: nothing of it is published
            assert fw.published == []
        with serve(c1, "0.0.0.0", 80):
            assert connect(w.outside, HOST4, 8081, timeout=1) is None
        fw.publish(p1, p2, p3)  # one batch
        with serve(c1, "0.0.0.0", 80), serve(c1, "0.0.0.0", 81), serve(c2, "0.0.0.0", 80):
            assert connect(w.outside, HOST4, 8081) == f"hello from {c1.label}\n"
            assert connect(w.outside, HOST4, 8082) == f"hello from {c1.label}\n"
            assert connect(w.outside, HOST4, 8083) == f"hello from {c2.label}\n"
            assert connect(c1, HOST4, 8081) == f"hello from {c1.label}\n"  # hairpin
        with pytest.raises(ValidationError):
            fw.unpublish(p1, "8083:80")  # type: ignore[arg-type]
        assert set(fw.published) == {p1, p2, p3}  # refused before any change
        fw.unpublish(p1, p3, p3)  # one batch; a repeated port counts once
        with serve(c1, "0.0.0.0", 80), serve(c1, "0.0.0.0", 81), serve(c2, "0.0.0.0", 80):
            assert connect(w.outside, HOST4, 8081, timeout=1) is None
            assert connect(w.outside, HOST4, 8083, timeout=1) is None
            assert connect(w.outside, HOST4, 8082) == f"hello from {c1.label}\n"
            assert connect(c1, HOST4, 8082) == f"hello from {c1.label}\n"  # c1's hairpin stays
        assert fw.published == [p2]
        fw.unpublish(p1, p2)  # p1 is gone already: skipped
        assert fw.published == []
        fw.detach_network("br1")
    assert not has_table(host)
