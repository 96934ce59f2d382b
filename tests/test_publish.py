"""Published ports of endpoints, Docker's way, proven by traffic: both families on dual-stack
networks, IPv6 at once, picked host ports (``-p 80``, ``-P``) and the ``docker port`` answer."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from outside_world import HOST_IP, HOST_IP6, OUTSIDE_IP, OUTSIDE_IP6, outside_world
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace


def dnat_text(host: Namespace) -> str:
    r = host.run(["nft", "list", "table", "inet", "netns_kit"])
    return r.stdout if r.returncode == 0 else ""


def test_dual_stack_publishes_both_families_for_the_endpoints_lifetime(host: Namespace) -> None:
    with outside_world(host) as out, \
            nk.Network("app", subnet="10.20.0.0/24", subnet6="fd00:20::/64", host=host) as net:
        ep = nk.Endpoint("web", nk.CustomMode(net), host=host,
                         publish=["8090:80", "[::]:8095:80", f"[{HOST_IP6}]:8096:80", "0.0.0.0:8097:80"])
        with ep, serve(ep.namespace, "::", 80) as srv:  # a dual-stack server (v4-mapped for IPv4)
            hello = "hello from web\n"
            assert connect(out, HOST_IP, 8090) == hello  # no host address: IPv4 ...
            assert srv.peers[-1][0] == f"::ffff:{OUTSIDE_IP}"  # the real client address
            assert connect(out, HOST_IP6, 8090) == hello  # ... and IPv6, as Docker
            assert srv.peers[-1][0] == OUTSIDE_IP6
            assert connect(out, HOST_IP6, 8095) == hello  # [::]: IPv6 only
            assert connect(out, HOST_IP, 8095, timeout=0.5) is None
            assert connect(out, HOST_IP6, 8096) == hello  # one IPv6 host address
            assert connect(out, HOST_IP, 8097) == hello  # 0.0.0.0: IPv4 only
            assert connect(out, HOST_IP6, 8097, timeout=0.5) is None
            c = ep.connections[0]
            assert c.address6 is not None
            assert {(b.host, b.container_ip) for b in ep.port(80)} == {
                ("0.0.0.0:8090", "10.20.0.2"), ("[::]:8090", str(c.address6.ip)), ("[::]:8095", str(c.address6.ip)),
                (f"[{HOST_IP6}]:8096", str(c.address6.ip)), ("0.0.0.0:8097", "10.20.0.2")}
        # gone with the endpoint: no element is left, nothing answers
        assert "8090" not in dnat_text(host) and "8095" not in dnat_text(host)
        with nk.Endpoint("web2", nk.CustomMode(net), host=host) as other, serve(other.namespace, "::", 80):
            assert connect(out, HOST_IP6, 8090, timeout=0.5) is None


def test_ipv6_host_address_on_an_ipv4_network_is_refused_before_anything(host: Namespace) -> None:
    with nk.Network("v4", subnet="10.21.0.0/24", host=host) as net:
        for spec in ("[::]:8095:80", "[fd00::1]:8095:80"):
            with pytest.raises(nk.ValidationError, match="no IPv6 subnet"):
                nk.Endpoint("web", nk.CustomMode(net), host=host, publish=[spec]).create()
            with Namespace("bare") as bare, pytest.raises(nk.ValidationError, match="no IPv6 subnet"):
                net.connect(bare, publish=[spec])
            assert not Namespace("web").exists and net.connections == []
        with nk.Endpoint("web", nk.CustomMode(net), host=host, publish=["8090:80"]) as ep:
            assert [b.host for b in ep.port(80)] == ["0.0.0.0:8090"]  # the endpoint's one family


def test_ipv6_published_port_answers_at_once(host: Namespace) -> None:
    """The bridge's link-local address is never tentative, so the first connection does not wait
    for duplicate-address detection (it used to take ~2 s)."""
    with outside_world(host) as out, \
            nk.Network("app6", subnet="10.22.0.0/24", subnet6="fd00:22::/64", host=host) as net, \
            nk.Endpoint("web", nk.CustomMode(net), host=host, publish=["8090:80"]) as ep, \
            serve(ep.namespace, "::", 80):
        assert connect(out, HOST_IP6, 8090, timeout=1.0) == "hello from web\n"
        shown = host.run(["ip", "-6", "-o", "addr", "show", "dev", net.bridge]).stdout
        assert "fe80::1/64" in shown and "tentative" not in shown
        assert len([line for line in shown.splitlines() if "scope link" in line]) == 1


def test_picked_host_ports_and_the_docker_port_answer(host: Namespace) -> None:
    host.write_sysctl("net.ipv4.ip_local_port_range", "40000 40009")
    with outside_world(host) as out, \
            nk.Network("app", subnet="10.23.0.0/24", subnet6="fd00:23::/64", host=host) as net:
        with host.enter():
            held = socket.socket()
        with held:
            held.bind(("0.0.0.0", 40000))  # a port the host holds is never picked
            with nk.Endpoint("fixed", nk.CustomMode(net), host=host, publish=["40001:80"]), \
                    nk.Endpoint("web", nk.CustomMode(net), host=host, publish=["80", "127.0.0.1::80"],
                                expose=[80, 443, "53/udp"], publish_all=True) as web, \
                    serve(web.namespace, "::", 80), serve(web.namespace, "::", 443):
                ports = {(str(b.host), b.container_port, b.proto) for b in web.ports}
                # -p 80 takes the first free port for both families; 127.0.0.1::80 the next; -P
                # publishes 443 and 53/udp (80 has its own -p)
                assert ports == {("0.0.0.0:40002", 80, "tcp"), ("[::]:40002", 80, "tcp"),
                                 ("127.0.0.1:40003", 80, "tcp"),
                                 ("0.0.0.0:40004", 443, "tcp"), ("[::]:40004", 443, "tcp"),
                                 ("0.0.0.0:40000", 53, "udp"), ("[::]:40000", 53, "udp")}
                assert [str(b) for b in web.port(443)] == ["443/tcp -> 0.0.0.0:40004", "443/tcp -> [::]:40004"]
                assert connect(out, HOST_IP, 40002) == "hello from web\n"
                assert connect(out, HOST_IP6, 40004) == "hello from web\n"
                assert connect(host, "127.0.0.1", 40003) == "hello from web\n"
                assert connect(out, HOST_IP, 40003, timeout=0.5) is None  # loopback only
                # another process sharing the network asks the kernel, not this process
                child = subprocess.run(
                    [sys.executable, "-c", "from netns_kit import Network; net = Network.open('app'); "
                     "print(sorted(str(b) for b in net.ports('10.23.0.3')))"],
                    capture_output=True, text=True, timeout=60)
                assert child.returncode == 0, child.stderr
                assert child.stdout.strip() == str(sorted(str(b) for b in web.ports if b.family == 4))
                # the range is used up: refused, nothing is left of the endpoint
                with pytest.raises(nk.ExhaustedError, match="40000-40009"):
                    nk.Endpoint("more", nk.CustomMode(net), host=host,
                                publish=["80", "81", "82", "83", "84", "85", "86"]).create()
                assert not Namespace("more").exists and len(net.connections) == 2
        assert "4000" not in dnat_text(host)


def test_publish_all_needs_exposed_ports_and_a_network_mode() -> None:
    with pytest.raises(nk.ValidationError, match="port publishing"):
        nk.Endpoint("x", "host", expose=[80], publish_all=True)
    with pytest.raises(nk.ValidationError, match="exposed port"):
        nk.Endpoint("x", expose=["80/icmp"], publish_all=True)


def test_the_source_each_row_of_the_nat_table_names(host: Namespace) -> None:
    """docs/nat.md "Who reaches a published port": the address the container sees, per row. From
    another network through the host's address, the connection is masqueraded as it enters the
    published endpoint's bridge: the container sees its own network's gateway, as with Docker."""
    with outside_world(host) as out, nk.Network("a", subnet="10.24.0.0/24", host=host) as a, \
            nk.Network("b", subnet="10.25.0.0/24", host=host) as b, \
            nk.Endpoint("ea", nk.CustomMode(a), host=host) as ea, \
            nk.Endpoint("eb", nk.CustomMode(b), host=host, publish=["8096:80"]) as eb, \
            nk.Endpoint("peer", nk.CustomMode(b), host=host) as peer, \
            serve(eb.namespace, "0.0.0.0", 80) as srv:
        hello = "hello from eb\n"
        assert connect(out, HOST_IP, 8096) == hello
        assert srv.peers[-1][0] == OUTSIDE_IP  # another host: its real address
        for dst in (HOST_IP, "10.24.0.1", "10.25.0.1"):
            assert connect(ea.namespace, dst, 8096) == hello
            assert srv.peers[-1][0] == "10.25.0.1"  # another network: b's gateway, not ea's 10.24.0.2
        assert connect(ea.namespace, "10.25.0.2", 80, timeout=0.5) is None  # isolation: no direct way
        assert connect(peer.namespace, HOST_IP, 8096) == hello
        assert srv.peers[-1][0] == str(peer.address)  # same network: the peer's own address
        assert connect(host, "127.0.0.1", 8096) == hello
        assert srv.peers[-1][0] == "10.25.0.1"  # the host via 127.0.0.1: masqueraded to the bridge
        assert connect(eb.namespace, HOST_IP, 8096) == hello
        assert srv.peers[-1][0] == "10.25.0.1"  # itself (hairpin): masqueraded
