"""Fixed-IP attachment (pipework parity) on the real kernel: every option, proven by traffic."""

from __future__ import annotations

import importlib
import ipaddress
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from snapshots import ip
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Attachment, Bridge, Namespace, Route, VethPair, attach, mac_from_seed

attach_mod = importlib.import_module("netns_kit.attach")

IP = "192.168.0.123/24"
GW = "192.168.0.1"


def _state(*namespaces: Namespace) -> list[object]:
    out: list[object] = []
    for ns in namespaces:
        out.append(sorted((link.name, link.kind, link.mtu, link.master) for link in ns.links()))
        # IPv6 link-local addresses appear asynchronously after a link comes up: not compared
        out.append(sorted((a.ifname, str(a.interface)) for a in ns.addresses() if not a.address.is_link_local))
        out.append(sorted((str(r.dst), str(r.gateway), r.ifname) for r in ns.routes() if not r.dst.is_link_local))
    return out


@contextmanager
def lan(host: Namespace, name: str = "t-c1") -> Iterator[tuple[Bridge, Namespace]]:
    """Bridge br0 with the gateway address, and an empty named namespace playing the container."""
    with Bridge("br0", addresses=[GW + "/24", "2001:db8::1/64"]) as br, Namespace(name) as c:
        yield br, c


@contextmanager
def process_in_own_netns(host: Namespace) -> Iterator[int]:
    """A process with a network namespace of its own (like `docker run --net=none`); yields its PID."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        host_ino = os.stat(f"/proc/self/task/{__import__('threading').get_native_id()}/ns/net").st_ino
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == host_ino:
            assert time.monotonic() < deadline, "unshare --net did not start within 10 s"
            time.sleep(0.01)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def check_traffic(host: Namespace, c: Namespace, address: str = "192.168.0.123", gw: str = GW) -> None:
    """Host -> container at its fixed address, and container -> gateway (the peer sees the fixed address)."""
    with serve(c, address, 8080):
        assert connect(host, address, 8080) == f"hello from {c.label}\n"
    with serve(host, gw, 9000) as srv:
        assert connect(c, gw, 9000) == f"hello from {host.label}\n"
        assert srv.peers[0][0] == address


# -- pure checks (no root) ---------------------------------------------------------------------------

def test_mac_from_seed_is_stable_local_unicast() -> None:
    mac = mac_from_seed("test01")
    assert mac == mac_from_seed("test01") == mac_from_seed(b"test01")
    assert mac == "8a:57:db:86:06:2d"  # fixed forever: the same seed gives the same MAC on every run
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert mac_from_seed("test02") != mac
    with pytest.raises(nk.ValidationError):
        mac_from_seed("")


def test_tutorial_gateway_typo_is_refused_with_explanation() -> None:
    with pytest.raises(nk.ValidationError) as err:
        Attachment("x", bridge="br0", address="192.168.0.123/24", gateway="192.168.1.1")
    text = str(err.value)
    assert "192.168.1.1" in text and "192.168.0.0/24" in text and "classic recipe" in text
    with pytest.raises(nk.ValidationError, match="outside"):
        Attachment("x", bridge="br0", address="192.168.0.123/24@192.168.1.1")


@pytest.mark.parametrize(("address", "word"), [
    ("192.168.0.0/24", "network address"),
    ("192.168.0.255/24", "broadcast address"),
    ("2001:db8::/64", "anycast"),
    ("224.0.0.5/24", "unicast"),
])
def test_network_broadcast_and_non_unicast_refused(address: str, word: str) -> None:
    with pytest.raises(nk.ValidationError, match=word):
        Attachment("x", bridge="br0", address=address)


def test_other_bad_input_refused_before_anything() -> None:
    with pytest.raises(nk.ValidationError, match="exactly one"):
        Attachment("x", address=IP)
    with pytest.raises(nk.ValidationError, match="exactly one"):
        Attachment("x", bridge="br0", macvlan="eth0", address=IP)
    with pytest.raises(nk.ValidationError, match="not both"):
        Attachment("x", bridge="br0", address=IP, mac="02:00:00:00:00:01", mac_seed="a")
    with pytest.raises(nk.ValidationError, match="multicast"):
        Attachment("x", bridge="br0", address=IP, mac="01:00:5e:00:00:01")
    with pytest.raises(nk.ValidationError, match="own address"):
        Attachment("x", bridge="br0", address=IP, gateway="192.168.0.123")
    with pytest.raises(nk.ValidationError, match="no IPv6 address"):
        Attachment("x", bridge="br0", address=IP, gateway6="2001:db8::1")
    with pytest.raises(nk.ValidationError, match="outside"):
        Attachment("x", bridge="br0", address=IP, routes=[Route("10.0.0.0/8", gateway="10.1.1.1")])
    with pytest.raises(nk.ValidationError, match="interface name"):
        Attachment("x", bridge="br0", address=IP, ifname="a-very-long-interface-name")
    with pytest.raises(nk.ValidationError, match="MTU"):
        Attachment("x", bridge="br0", address=IP, mtu=10)
    with pytest.raises(nk.ValidationError, match="macvlan mode"):
        Attachment("x", macvlan="eth0", address=IP, macvlan_mode="bogus")
    a = Attachment("x", bridge="br0", address="192.168.0.123/24@192.168.0.1")
    assert str(a.gateway) == GW and str(a.addresses[0]) == IP


# -- the kernel --------------------------------------------------------------------------------------

def test_attach_named_namespace_like_pipework(host: Namespace) -> None:
    with lan(host) as (br, c):
        before_host = _state(host)
        att = attach(c, "br0", "192.168.0.123/24@192.168.0.1")
        assert att.created and att.host_ifname is not None
        eth0 = c.link("eth0")
        assert eth0.kind == "veth" and eth0.up and eth0.mtu == br.info().mtu
        assert host.link(att.host_ifname).master == br.index
        assert [str(a.interface) for a in c.addresses("eth0") if a.interface.version == 4] == [IP]
        default = [r for r in c.routes(4) if r.is_default]
        assert [(str(r.gateway), r.ifname) for r in default] == [(GW, "eth0")]
        check_traffic(host, c)
        att.remove()
        att.remove()  # idempotent
        assert [link.name for link in c.links()] == ["lo"]
        assert _state(host) == before_host  # exactly what it made is gone; the bridge stays
        with att:  # the same object attaches again
            check_traffic(host, c)
        assert _state(host, c)[:3] == before_host


def test_attach_by_pid_and_by_proc_path_like_the_classic_recipe(host: Namespace) -> None:
    with Bridge("br0", addresses=[GW + "/24"]), process_in_own_netns(host) as pid:
        with Attachment(pid, bridge="br0", address=IP, gateway=GW) as att:
            assert att.namespace is not None and att.namespace.kind == "pid"
            check_traffic(host, Namespace.from_pid(pid))
        assert [link.name for link in Namespace.from_pid(pid).links()] == ["lo"]
        with Attachment(f"/proc/{pid}/ns/net", bridge="br0", address=IP, gateway=GW, ifname="eth1"):
            assert Namespace.from_pid(pid).link("eth1").up
            check_traffic(host, Namespace.from_pid(pid))


def test_attach_by_bind_mount_path_and_by_name_string(host: Namespace) -> None:
    with lan(host) as (_br, c):
        with Attachment("/run/netns/t-c1", bridge="br0", address=IP):
            assert c.has_link("eth0")
        with Attachment("t-c1", bridge="br0", address=IP, gateway=GW) as att:
            assert att.namespace is not None and att.namespace.same_as(c)
            check_traffic(host, c)


def test_exited_target_refused_and_detach_after_exit_is_clean(host: Namespace) -> None:
    with Bridge("br0", addresses=[GW + "/24"]):
        before = _state(host)
        with process_in_own_netns(host) as pid:
            ns = Namespace.from_pid(pid)
            att = Attachment(ns, bridge="br0", address=IP).create()
            assert att.host_ifname is not None and host.has_link(att.host_ifname)
        # the process is gone: its namespace and (soon, the kernel cleans up asynchronously) the veth with it
        with pytest.raises(nk.NotFoundError):
            Attachment(pid, bridge="br0", address=IP).create()
        with pytest.raises(nk.NotFoundError):
            Attachment(ns, bridge="br0", address=IP).create()
        att.remove()  # the target exited: counts as detached
        assert _state(host) == before
        assert not host.has_link(att.host_ifname)


def test_bad_targets_and_bridges_refused_before_any_change(host: Namespace) -> None:
    with lan(host) as (_br, c), VethPair("notabr", "notabr-p"):
        before = _state(host, c)
        with pytest.raises(nk.NotFoundError, match="neither a named namespace"):
            Attachment("t-no-such-thing", bridge="br0", address=IP).create()
        with pytest.raises(nk.ValidationError, match="not a bridge"):
            Attachment(c, bridge="notabr", address=IP).create()
        with pytest.raises(nk.NotFoundError, match="create_bridge=True"):
            Attachment(c, bridge="br-missing", address=IP).create()
        with pytest.raises(nk.ValidationError, match="host namespace itself"):
            Attachment(host, bridge="br0", address=IP).create()
        with pytest.raises(nk.NotFoundError, match="does not exist"):
            Attachment(c, macvlan="nic-missing", address=IP).create()
        with Attachment(c, bridge="br0", address=IP, gateway=GW):
            mid = _state(host, c)
            with pytest.raises(nk.AlreadyExistsError, match="eth0"):
                Attachment(c, bridge="br0", address="192.168.0.124/24").create()
            with pytest.raises(nk.AlreadyExistsError, match=r"192\.168\.0\.123"):
                Attachment(c, bridge="br0", address=IP, ifname="eth1").create()
            with pytest.raises(nk.AlreadyExistsError, match="default route"):
                Attachment(c, bridge="br0", address="192.168.0.124/24", gateway=GW, ifname="eth1").create()
            with pytest.raises(nk.AlreadyExistsError, match="host interface"):
                Attachment(c, bridge="br0", address="192.168.0.124/24", ifname="eth1",
                           host_ifname="notabr").create()
            assert _state(host, c) == mid
        assert _state(host, c) == before


def test_create_bridge_when_asked_and_remove_only_what_was_made(host: Namespace) -> None:
    with Namespace("t-c1") as c:
        att = Attachment(c, bridge="br-new", address=IP, create_bridge=True).create()
        assert host.link("br-new").kind == "bridge"
        assert host.link(att.host_ifname or "").master == host.link("br-new").index
        att.remove()
        assert not host.has_link("br-new")
        with Bridge("br-old"):
            with Attachment(c, bridge="br-old", address=IP, create_bridge=True):
                pass
            assert host.has_link("br-old")  # it existed before: left alone


def test_a_created_bridge_carries_the_gateway_which_answers_and_goes_with_it(host: Namespace) -> None:
    with Namespace("t-c1") as c:
        att = Attachment(c, bridge="br-gw", address="192.168.0.123/24@192.168.0.1", ipv6=["fd00:77::2/64"],
                         gateway6="fd00:77::1", create_bridge=True).create()
        addrs = {str(a.interface) for a in host.addresses("br-gw")}
        assert {"192.168.0.1/24", "fd00:77::1/64"} <= addrs
        # by traffic: ping and a TCP connection from the target to the gateway address
        assert c.run(["ping", "-c1", "-W2", "192.168.0.1"]).returncode == 0
        with serve(host, "192.168.0.1", 8081) as srv:
            assert connect(c, "192.168.0.1", 8081) == "hello from host\n"
        assert srv.peers[0][0] == "192.168.0.123"
        # (the bridge's IPv6 address is usable once duplicate detection is over: wait for the state)
        assert any(c.run(["ping", "-c1", "-W2", "fd00:77::1"]).returncode == 0 for _ in range(5))
        att.remove()
        assert not host.has_link("br-gw")
        assert not any(a.interface.ip == ipaddress.ip_address("192.168.0.1") for a in host.addresses())
        # a gateway the host has on another interface stays there only (the bridge gets none)
        with Bridge("br-other", addresses=["192.168.0.1/24"]), \
                Attachment(c, bridge="br-gw", address="192.168.0.123/24@192.168.0.1", create_bridge=True):
            assert not [a for a in host.addresses("br-gw") if not a.interface.ip.is_link_local]
            assert "192.168.0.1/24" in [str(a.interface) for a in host.addresses("br-other")]


def test_mac_seed_mtu_and_interface_names(host: Namespace) -> None:
    with Bridge("br0", addresses=[GW + "/24"]) as br, Namespace("t-c1") as c:
        # set after creation: an MTU given at creation is auto-adjusted away once the last port leaves
        host.set_link("br0", mtu=1400)
        macs = []
        for _ in range(2):
            with Attachment(c, bridge=br, address=IP, mac_seed="test01") as att:
                macs.append(c.link("eth0").mac)
                assert att.mac == c.link("eth0").mac
                assert c.link("eth0").mtu == 1400  # from the bridge
        assert macs == [mac_from_seed("test01")] * 2
        with Attachment(c, bridge=br, address=IP, mac="02:42:c0:a8:00:7b", ifname="eth1", mtu=1300,
                        host_ifname="vethtest01"):
            link = c.link("eth1")
            assert (link.mac, link.mtu) == ("02:42:c0:a8:00:7b", 1300)
            assert host.link("vethtest01").mtu == 1300
            assert not c.has_link("eth0")
            check_traffic(host, c)


def test_two_attachments_eth0_eth1_on_two_bridges(host: Namespace) -> None:
    with Bridge("br0", addresses=[GW + "/24"]), Bridge("br1", addresses=["10.9.0.1/24"]), \
            Namespace("t-c1") as c:
        with Attachment(c, bridge="br0", address=IP, gateway=GW), \
                Attachment(c, bridge="br1", address="10.9.0.5/24", ifname="eth1"):
            assert {link.name for link in c.links()} == {"lo", "eth0", "eth1"}
            check_traffic(host, c)
            with serve(c, "10.9.0.5", 8081):
                assert connect(host, "10.9.0.5", 8081) is not None
        assert [link.name for link in c.links()] == ["lo"]


def test_ipv6_gateway6_and_extra_routes(host: Namespace) -> None:
    with lan(host) as (_br, c):
        routes = [Route("198.51.100.0/24", gateway="192.168.0.254"), Route("2001:db8:5::/48",
                                                                          gateway="2001:db8::fe")]
        with Attachment(c, bridge="br0", address=IP, gateway=GW, ipv6=["2001:db8::123/64"],
                        gateway6="2001:db8::1", routes=routes):
            got = {(str(r.dst), str(r.gateway), r.ifname) for r in c.routes()}
            assert ("198.51.100.0/24", "192.168.0.254", "eth0") in got
            assert ("2001:db8:5::/48", "2001:db8::fe", "eth0") in got
            assert ("::/0", "2001:db8::1", "eth0") in got
            with serve(c, "2001:db8::123", 8080):
                assert connect(host, "2001:db8::123", 8080) == "hello from t-c1\n"
            with serve(host, "2001:db8::1", 9000) as srv:
                assert connect(c, "2001:db8::1", 9000) == "hello from host\n"
                assert srv.peers[0][0] == "2001:db8::123"
            assert "192.168.0.254" in ip(c, "route", "get", "198.51.100.7")


def test_ipv6_only_pipework_form(host: Namespace) -> None:
    """`pipework br0 c 2001:db8::beef/64@2001:db8::1`."""
    with lan(host) as (_br, c), Attachment(c, bridge="br0", address="2001:db8::beef/64@2001:db8::1") as att:
        assert str(att.gateway) == "2001:db8::1"
        assert [(str(r.dst), str(r.gateway)) for r in c.routes(6) if r.is_default] == [("::/0", "2001:db8::1")]
        assert not [r for r in c.routes(4) if r.is_default]
        with serve(c, "2001:db8::beef", 8080):
            assert connect(host, "2001:db8::beef", 8080) == "hello from t-c1\n"


def _sniffer(ns: Namespace, ifname: str) -> socket.socket:
    with ns.enter():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((ifname, 0))
    s.settimeout(0.2)
    return s


def _frames(s: socket.socket) -> list[bytes]:
    out = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            out.append(s.recv(2048))
        except TimeoutError:
            if out:
                break
    return out


def test_gratuitous_arp_and_unsolicited_na_update_peers(host: Namespace) -> None:
    # a bridge with a MAC of its own: otherwise its first port changes its MAC, which flushes its neighbours
    with Bridge("br0", addresses=[GW + "/24", "2001:db8::1/64"], mac="02:00:00:00:00:01"), \
            Namespace("t-c1") as c:
        # the host believes an old container held 192.168.0.123 at another MAC
        subprocess.run(["ip", "neigh", "replace", "192.168.0.123", "lladdr", "02:00:00:00:00:99", "dev", "br0",
                        "nud", "stale"], check=True)
        subprocess.run(["ip", "-6", "neigh", "replace", "2001:db8::123", "lladdr", "02:00:00:00:00:99",
                        "dev", "br0", "nud", "stale"], check=True)
        sniff = _sniffer(host, "br0")
        try:
            with Attachment(c, bridge="br0", address=IP, ipv6=["2001:db8::123/64"], mac_seed="garp") as att:
                frames = _frames(sniff)
                mac = bytes.fromhex((att.mac or "").replace(":", ""))
                arps = [f for f in frames if f[12:14] == b"\x08\x06"]
                ops = sorted(struct.unpack("!H", f[20:22])[0] for f in arps
                             if f[22:28] == mac and f[28:32] == f[38:42] == bytes([192, 168, 0, 123]))
                assert ops == [1, 2]  # an announcement (request) and a gratuitous reply, like arping -A
                nas = [f for f in frames if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136]
                assert any(f[62:78] == ipaddress.IPv6Address("2001:db8::123").packed for f in nas)
                neigh4 = ip(host, "neigh", "show", "192.168.0.123", "dev", "br0")
                neigh6 = ip(host, "-6", "neigh", "show", "2001:db8::123", "dev", "br0")
                assert att.mac is not None and att.mac in neigh4 and att.mac in neigh6, (neigh4, neigh6)
        finally:
            sniff.close()
        with Attachment(c, bridge="br0", address=IP, announce=False):
            sniff = _sniffer(host, "br0")
            try:
                assert not [f for f in _frames(sniff) if f[12:14] == b"\x08\x06" and f[28:32] == f[38:42]]
            finally:
                sniff.close()


def test_macvlan_to_a_host_interface(host: Namespace) -> None:
    # phys0 plays the physical NIC; its far end is the LAN with the router at 192.168.0.1
    with Namespace("t-lan") as lan_ns, Namespace("t-c1") as c, \
            VethPair("phys0", "eth0", peer_namespace=lan_ns, mtu=1450):
        lan_ns.add_address("eth0", GW + "/24")
        with Attachment(c, macvlan="phys0", address=IP, gateway=GW, mac_seed="mv") as att:
            link = c.link("eth0")
            assert link.kind == "macvlan" and link.mtu == 1450 and link.mac == mac_from_seed("mv")
            assert att.host_ifname is None
            check_traffic(lan_ns, c)
            assert att.mac is not None and att.mac in ip(lan_ns, "neigh", "show", "192.168.0.123")
        assert [link.name for link in c.links()] == ["lo"]
        assert host.link("phys0").up
        with pytest.raises(nk.ValidationError, match="exceeds"):
            Attachment(c, macvlan="phys0", address=IP, mtu=1500).create()
        for mode in ("private", "vepa", "passthru"):
            with Attachment(c, macvlan="phys0", address=IP, macvlan_mode=mode):
                assert c.link("eth0").kind == "macvlan"


def test_macvlan_on_a_vlan_like_pipework_at_vlan(host: Namespace) -> None:
    """`pipework phys0 c 192.168.0.123/24@192.168.0.1 @10`: macvlan on phys0.10 (802.1Q)."""
    with pytest.raises(nk.ValidationError, match="macvlan mode"):
        Attachment("x", bridge="br0", address=IP, vlan=10)
    with pytest.raises(nk.ValidationError, match="4094"):
        Attachment("x", macvlan="phys0", address=IP, vlan=4095)
    with Namespace("t-lan") as lan_ns, Namespace("t-c1") as c, VethPair("phys0", "eth0", peer_namespace=lan_ns):
        before = _state(host, c)
        att = Attachment(c, macvlan="phys0", vlan=10, address=IP, gateway=GW)
        try:
            att.create()
        except nk.UnsupportedError as exc:
            assert "802.1Q" in str(exc)
            assert _state(host, c) == before  # nothing was changed
            pytest.skip(f"kernel feature missing: {exc}")
        try:
            assert host.link("phys0.10").kind == "vlan"
            assert c.link("eth0").kind == "macvlan"
            ip(lan_ns, "link", "add", "link", "eth0", "name", "eth0.10", "type", "vlan", "id", "10")
            ip(lan_ns, "link", "set", "eth0.10", "up")
            ip(lan_ns, "addr", "add", GW + "/24", "dev", "eth0.10")
            check_traffic(lan_ns, c)
        finally:
            att.remove()
        assert _state(host, c) == before  # the VLAN device it made is gone too


def test_transaction_rolls_back_a_half_done_attach(host: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    with lan(host) as (_br, c):
        before = _state(host, c)

        def boom(*args: object, **kwargs: object) -> int:
            raise nk.KernelError("injected failure after addressing", step="announce")

        monkeypatch.setattr(attach_mod, "_announce", boom)
        with pytest.raises(nk.KernelError, match="injected"), nk.Transaction():
            Attachment(c, bridge="br-tx", address=IP, gateway=GW, ipv6=["2001:db8::5/64"],
                       create_bridge=True).create()
        assert _state(host, c) == before
        with pytest.raises(nk.KernelError, match="injected"):  # outside a transaction: the same
            Attachment(c, macvlan="br0", address=IP, gateway=GW).create()
        assert _state(host, c) == before
        monkeypatch.undo()
        with pytest.raises(RuntimeError), nk.Transaction() as tx:
            Attachment(c, bridge="br0", address=IP, gateway=GW).create()
            assert c.has_link("eth0") and len(tx.undo_steps) == 1
            raise RuntimeError("later step failed")
        assert _state(host, c) == before
        with nk.Transaction(keep=False):
            Attachment(c, bridge="br0", address=IP, gateway=GW).create()
            check_traffic(host, c)
        assert _state(host, c) == before
