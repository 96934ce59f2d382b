"""Namespace, Bridge, VethPair, addresses, routes and link settings on the real kernel."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import subprocess

import pytest
from snapshots import ip
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Bridge, Namespace, Route, VethPair


def test_named_namespace_is_visible_to_ip_netns(host: Namespace) -> None:
    with Namespace("t-named") as ns:
        assert os.path.exists("/run/netns/t-named")
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert "t-named" in out
        res = subprocess.run(["ip", "netns", "exec", "t-named", "ip", "-o", "link"], capture_output=True,
                             text=True, check=True)
        assert "lo:" in res.stdout and "UP" in res.stdout  # lo is up
        assert [link.name for link in ns.links()] == ["lo"]
    assert not os.path.exists("/run/netns/t-named")


def test_create_remove_explicit_and_idempotent(host: Namespace) -> None:
    ns = Namespace("t-explicit").create()
    assert ns.exists and ns.owned
    ns.remove()
    ns.remove()  # missing counts as done
    assert not ns.exists
    with pytest.raises(nk.StateError):
        ns.links()


def test_duplicate_namespace_refused(host: Namespace) -> None:
    with Namespace("t-dup"), pytest.raises(nk.AlreadyExistsError, match="t-dup"):
        Namespace("t-dup").create()


def test_open_existing_is_not_owned(host: Namespace) -> None:
    with Namespace("t-open"):
        other = Namespace.open("t-open")
        with pytest.raises(nk.OwnershipError):
            other.remove()
        assert other.same_as(Namespace.open("t-open"))
    with pytest.raises(nk.NotFoundError):
        Namespace.open("t-open")


def test_namespace_from_pid_and_path(host: Namespace) -> None:
    with Namespace("t-pid") as ns:
        proc = ns.popen(["sleep", "30"])
        try:
            by_pid = Namespace.from_pid(proc.pid)
            assert by_pid.same_as(ns)
            by_path = Namespace.from_path(f"/proc/{proc.pid}/ns/net")
            assert by_path.same_as(ns)
            assert [link.name for link in by_pid.links()] == ["lo"]
        finally:
            proc.kill()
            proc.wait()
        with pytest.raises(nk.NotFoundError):
            Namespace.from_pid(proc.pid)
    with pytest.raises(nk.ValidationError):
        Namespace.from_path("/etc/hostname")


def test_current_namespace_is_the_host(host: Namespace) -> None:
    assert Namespace.current().same_as(host)
    with Namespace("t-cur") as ns, ns.enter():
        assert Namespace.current().same_as(ns)
    assert Namespace.current().same_as(host)


def test_run_captures_output(host: Namespace) -> None:
    with Namespace("t-run") as ns:
        res = ns.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (res.stdout, res.stderr, res.returncode) == ("out\n", "err\n", 3)
        with pytest.raises(nk.ValidationError, match="argv"):
            ns.run("echo hi")


def test_enter_switches_only_the_calling_thread(host: Namespace) -> None:
    import threading

    with Namespace("t-thread") as ns:
        seen: list[tuple[int, int]] = []
        go = threading.Event()

        def other() -> None:
            go.wait(5)
            seen.append(Namespace.current().identity)

        t = threading.Thread(target=other)
        t.start()  # already running before the switch
        with ns.enter():
            go.set()
            t.join()
            inner = Namespace.current().identity
        assert inner == ns.identity
        assert seen == [host.identity]


def test_sync_api_inside_running_asyncio_loop(host: Namespace) -> None:
    async def body() -> list[str]:
        with Namespace("t-async") as ns, Bridge("br-async"), ns.enter():
            return [link.name for link in Namespace.current().links()]

    assert asyncio.run(body()) == ["lo"]


def test_bridge_veth_addresses_routes_by_traffic(host: Namespace) -> None:
    with Namespace("t-a") as a, Namespace("t-b") as b, \
            Bridge("br-t", addresses=["10.20.0.1/24", "fd20::1/64"], mtu=1400) as br, \
            VethPair("va", "eth0", peer_namespace=a, master=br, mtu=1400), \
            VethPair("vb", "eth0", peer_namespace=b, master=br, mtu=1400):
        for ns, n in ((a, 2), (b, 3)):
            ns.add_address("eth0", f"10.20.0.{n}/24")
            ns.add_address("eth0", f"fd20::{n}/64")
            ns.add_route(Route(gateway="10.20.0.1"))
            ns.add_route(Route("198.51.100.0/24", dev="eth0"))
        eth0 = a.link("eth0")
        assert eth0.kind == "veth" and eth0.up and eth0.mtu == 1400
        assert host.link("va").master == br.index
        assert {str(x.interface) for x in a.addresses("eth0")} >= {"10.20.0.2/24", "fd20::2/64"}
        routes = {(str(r.dst), str(r.gateway)) for r in a.routes(4)}
        assert ("0.0.0.0/0", "10.20.0.1") in routes and ("198.51.100.0/24", "None") in routes
        assert "default via 10.20.0.1" in ip(a, "route")
        with serve(b, "::", 9000) as srv:
            assert connect(a, "10.20.0.3", 9000) == "hello from t-b\n"
            assert connect(a, "fd20::3", 9000) == "hello from t-b\n"
            assert connect(host, "10.20.0.3", 9000) == "hello from t-b\n"
        assert {p[0] for p in srv.peers} == {"::ffff:10.20.0.2", "fd20::2", "::ffff:10.20.0.1"}
    assert [link.name for link in host.links()] == ["lo"]


def test_link_settings_and_undo(host: Namespace) -> None:
    with Bridge("br-set") as br, Bridge("br-other"), Namespace("t-set") as ns, \
            VethPair("vset", "eth0", peer_namespace=ns):
        with nk.Transaction(keep=False):
            host.set_link("vset", mtu=1300, mac="02:00:00:00:00:42", master="br-set")
            info = host.link("vset")
            assert (info.mtu, info.mac, info.master) == (1300, "02:00:00:00:00:42", br.index)
            host.set_link("vset", up=False)
            assert not host.link("vset").up
        info = host.link("vset")
        assert info.mtu == 1500 and info.master is None and info.up
        with pytest.raises(nk.ValidationError, match="not a bridge"):
            host.set_link("vset", master="lo")


def test_veth_in_same_namespace_and_peer_removal(host: Namespace) -> None:
    v = VethPair("vx0", "vx1").create()
    assert host.link("vx1").kind == "veth"
    v.remove()
    v.remove()
    assert not host.has_link("vx0") and not host.has_link("vx1")


def test_duplicates_refused_before_any_change(host: Namespace) -> None:
    with Bridge("br-dup"), Namespace("t-dupl") as ns:
        with pytest.raises(nk.AlreadyExistsError, match="br-dup"):
            Bridge("br-dup").create()
        with VethPair("vdup", "eth0", peer_namespace=ns):
            before = sorted(link.name for link in host.links())
            with pytest.raises(nk.AlreadyExistsError, match="eth0"):
                VethPair("vdup2", "eth0", peer_namespace=ns).create()
            assert sorted(link.name for link in host.links()) == before
            ns.add_address("eth0", "10.3.0.2/24")
            with pytest.raises(nk.AlreadyExistsError, match=r"10\.3\.0\.2"):
                ns.add_address("eth0", "10.3.0.2/24")


def test_remove_only_what_was_created(host: Namespace) -> None:
    theirs = Bridge("br-theirs").create()  # stands for an interface another program made
    mine = Bridge.open("br-theirs")
    with pytest.raises(nk.OwnershipError):
        mine.remove()
    assert host.has_link("br-theirs")
    theirs.remove()
    # Recorded identity: a same-named replacement is not deleted by the stale object.
    old = Bridge("br-swap").create()
    host.rtnl().delete_link(old.index)
    new = Bridge("br-swap").create()
    old.remove()
    assert host.link("br-swap").index == new.index
    new.remove()


def test_ipv6_address_usable_at_once(host: Namespace) -> None:
    with Namespace("t-v6") as ns, VethPair("v6h", "eth0", peer_namespace=ns):
        host.add_address("v6h", "2001:db8:6::1/64")
        ns.add_address("eth0", "2001:db8:6::2/64")
        info = [a for a in ns.addresses("eth0") if a.interface.version == 6 and not a.address.is_link_local]
        assert info[0].interface == ipaddress.IPv6Interface("2001:db8:6::2/64")
        with serve(ns, "2001:db8:6::2", 7001):
            assert connect(host, "2001:db8:6::2", 7001) == "hello from t-v6\n"


def test_sysctl_write_and_restore(host: Namespace) -> None:
    assert host.read_sysctl("net.ipv4.ip_forward") == "0"
    with nk.Transaction(keep=False):
        assert host.write_sysctl("net.ipv4.ip_forward", "1") == "0"
        assert host.read_sysctl("net.ipv4.ip_forward") == "1"
    assert host.read_sysctl("net.ipv4.ip_forward") == "0"
    with pytest.raises(nk.ValidationError):
        host.read_sysctl("kernel.hostname")
    with pytest.raises(nk.ValidationError):
        host.read_sysctl("net.../../x")


def test_socket_pool_keeps_descriptors_bounded(host: Namespace) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    start = fds()
    names = [Namespace(f"t-fd{i}") for i in range(80)]
    try:
        for ns in names:
            ns.create()
            ns.links()
        assert fds() - start <= 40  # at most the pool's size, not one per namespace
    finally:
        for ns in names:
            ns.remove()


def test_unsendable_socket_created_inside_belongs_there(host: Namespace) -> None:
    with Namespace("t-sock") as ns:
        with ns.enter():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # The namespace has only lo: 127.0.0.1 works, nothing else is routable.
            s.settimeout(1)
            with pytest.raises(OSError):
                s.connect(("10.99.0.1", 80))
        finally:
            s.close()


def test_remove_without_waiting_lets_the_kernel_reclaim_in_background(host: Namespace) -> None:
    import time

    with Bridge("br-async-rm") as br:
        ns = Namespace("t-nowait").create()
        VethPair("vnowait", "eth0", peer_namespace=ns, master=br).create()
        ns.remove(wait=False)
        assert not os.path.exists("/run/netns/t-nowait")
        deadline = time.monotonic() + 10
        while host.has_link("vnowait") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not host.has_link("vnowait")  # the host end went with the namespace


def test_bridge_mtu_survives_its_last_port_leaving(host: Namespace) -> None:
    with Bridge("br-mtu", mtu=1400) as br, Namespace("t-mtu") as ns:
        with VethPair("vmtu", "eth0", peer_namespace=ns, master=br, mtu=1400):
            assert host.link("br-mtu").mtu == 1400
        assert host.link("br-mtu").mtu == 1400
