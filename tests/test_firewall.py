"""Filtering on the real kernel, proven by traffic: isolation, internal, icc off, a foreign drop policy."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from nat_env import OUT4, World, world
from traffic import connect, serve

from netns_kit import AlreadyExistsError, Namespace, OwnershipError
from netns_kit import _nft_render as render
from netns_kit.firewall import ACCEPT_MARK, Firewall, NetworkPolicy
from netns_kit.nat import PublishedPort


def attach(fw: Firewall, w: World, br: str, **kw: Any) -> None:
    fw.attach_network(NetworkPolicy(br, (ipaddress.ip_network(w.nets[br].subnet4),), **kw))


def hello(ns: Namespace) -> str:
    return f"hello from {ns.label}\n"


def test_two_networks_are_isolated_but_published_ports_work_across(host: Namespace) -> None:
    with world(host) as w:
        a, b = w.add_net(1), w.add_net(2)
        a1, a2, b1 = a.containers["c11"], a.containers["c12"], b.containers["c21"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        with serve(b1, "0.0.0.0", 80), serve(a2, "0.0.0.0", 80):
            attach(fw, w, "br2")
            assert connect(a1, b.ips4["c21"], 80, timeout=1) is None
            assert connect(b1, a.ips4["c12"], 80, timeout=1) is None
            assert connect(a1, a.ips4["c12"], 80) == hello(a2)  # same network: icc on
            fw.publish(PublishedPort.parse("8080:80", container_ip=b.ips4["c21"], bridge="br2"))
            assert connect(a1, b.gateway4, 8080) == hello(b1)  # through the host, as from outside
            fw.detach_network("br2")
        fw.detach_network("br1")


def test_icc_off_blocks_peers_not_the_way_out(host: Namespace) -> None:
    with world(host) as w:
        a = w.add_net(1)
        c1, c2 = a.containers["c11"], a.containers["c12"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1", icc=False)
        with serve(c2, "0.0.0.0", 80), serve(w.outside, "0.0.0.0", 9000):
            assert connect(c1, a.ips4["c12"], 80, timeout=1) is None
            assert connect(c1, OUT4, 9000) == hello(w.outside)
            assert connect(host, a.ips4["c12"], 80) == hello(c2)  # the host itself still reaches it
        fw.detach_network("br1")
        with serve(c2, "0.0.0.0", 80):
            assert connect(c1, a.ips4["c12"], 80) == hello(c2)


def test_internal_network_has_no_way_out_and_no_way_in(host: Namespace) -> None:
    with world(host) as w:
        a = w.add_net(1)
        c1, c2 = a.containers["c11"], a.containers["c12"]
        fw = Firewall.for_namespace(host)
        host.write_sysctl("net.ipv4.ip_forward", "1")  # even with forwarding on for other reasons
        attach(fw, w, "br1", internal=True)
        with serve(w.outside, "0.0.0.0", 9000) as srv, serve(c2, "0.0.0.0", 80):
            assert connect(c1, OUT4, 9000, timeout=1) is None
            assert srv.peers == []
            assert connect(c1, a.ips4["c12"], 80) == hello(c2)  # inside the network: fine
            w.outside.run(["ip", "route", "add", "10.1.0.0/24", "via", "203.0.113.1"], check=True)
            assert connect(w.outside, a.ips4["c12"], 80, timeout=1) is None
        fw.detach_network("br1")
        assert host.read_sysctl("net.ipv4.ip_forward") == "1"  # not ours to change back


def test_no_direct_inbound_to_container_addresses(host: Namespace) -> None:
    """Like Docker's NAT mode: from outside, containers are reachable only through published ports."""
    with world(host) as w:
        a = w.add_net(1)
        c1 = a.containers["c11"]
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")
        w.outside.run(["ip", "route", "add", "10.1.0.0/24", "via", "203.0.113.1"], check=True)
        with serve(c1, "0.0.0.0", 80):
            assert connect(w.outside, a.ips4["c11"], 80, timeout=1) is None
        fw.detach_network("br1")


FOREIGN = """table inet userfw {
  chain forward {
    type filter hook forward priority 0; policy drop;
    %s
  }
}
"""


def test_foreign_drop_policy_blocks_until_it_accepts_the_mark(host: Namespace) -> None:
    with world(host) as w:
        a = w.add_net(1)
        c1 = a.containers["c11"]
        fw = Firewall.for_namespace(host)
        host.run(["nft", "-f", "-"], input=FOREIGN % "", check=True)
        attach(fw, w, "br1")
        assert fw.foreign_drop_policies() == ["chain inet userfw forward (policy drop)"]
        assert "meta mark & 0x01000000 == 0x01000000 accept" in fw.describe()
        fw.publish(PublishedPort.parse("8080:80", container_ip=a.ips4["c11"], bridge="br1"))
        with serve(w.outside, "0.0.0.0", 9000), serve(c1, "0.0.0.0", 80):
            assert connect(c1, OUT4, 9000, timeout=1) is None  # the other table's drop wins
            assert connect(w.outside, "203.0.113.1", 8080, timeout=1) is None
            host.run(["nft", "delete", "table", "inet", "userfw"], check=True)
            rule = f"meta mark & {ACCEPT_MARK:#010x} == {ACCEPT_MARK:#010x} accept"
            host.run(["nft", "-f", "-"], input=FOREIGN % rule, check=True)
            assert connect(c1, OUT4, 9000) == hello(w.outside)
            assert connect(w.outside, "203.0.113.1", 8080) == hello(c1)
        fw.detach_network("br1")
        # the user's table is untouched by netns_kit
        assert host.run(["nft", "list", "table", "inet", "userfw"]).returncode == 0


DEAD = "netns-kit:999999999.1"  # no such process


def test_leftovers_of_dead_processes_are_recovered_others_kept(host: Namespace) -> None:
    with world(host) as w:
        a = w.add_net(1)
        c1 = a.containers["c11"]
        # a process that died left the table with a published port and its network in it
        host.run(["nft", "-f", "-"], input=render.skeleton_text(), check=True)
        host.run(["nft", "add", "element", "inet", "netns_kit", "dnat4",
                  f'{{ tcp . 8080 comment "{DEAD}" : 10.1.0.9 . 80 }}'], check=True)
        host.run(["nft", "add", "element", "inet", "netns_kit", "bridges", f'{{ "br9" comment "{DEAD}" }}'],
                 check=True)
        # ... and someone added an element by hand: not ours to remove
        host.run(["nft", "add", "element", "inet", "netns_kit", "dnat4", "{ udp . 53 : 10.1.0.9 . 53 }"], check=True)
        fw = Firewall.for_namespace(host)
        attach(fw, w, "br1")  # finds the table; the dead process's elements may be kept ones: they stay
        port = PublishedPort.parse("8080:80", container_ip=a.ips4["c11"], bridge="br1")
        with pytest.raises(AlreadyExistsError):
            fw.publish(port)
        assert fw.recover_leftovers(everything=True) == 2  # a clean slate, asked for
        fw.publish(port)
        with serve(c1, "0.0.0.0", 80):
            assert connect(w.outside, "203.0.113.1", 8080) == hello(c1)
        listing = host.run(["nft", "list", "table", "inet", "netns_kit"]).stdout
        assert DEAD not in listing and "udp . 53" in listing and '"br9"' not in listing
        assert fw.recover_leftovers() == 0
        fw.detach_network("br1")
        # the hand-made element keeps the table alive; netns_kit's own elements are gone
        listing = host.run(["nft", "list", "table", "inet", "netns_kit"]).stdout
        assert "udp . 53" in listing and "br1" not in listing and "8080" not in listing
        host.run(["nft", "delete", "table", "inet", "netns_kit"], check=True)


def test_a_foreign_table_of_our_name_is_not_adopted(host: Namespace) -> None:
    with world(host) as w:
        w.add_net(1)
        host.run(["nft", "add", "table", "inet", "netns_kit"], check=True)
        fw = Firewall.for_namespace(host)
        with pytest.raises(OwnershipError):
            attach(fw, w, "br1")
        assert fw.networks == {}
        assert host.run(["nft", "list", "table", "inet", "netns_kit"]).returncode == 0  # left alone
