"""User-defined networks on the real kernel: IPAM on the wire, connect/disconnect, several networks per
namespace, names, isolation, internal, icc, rollback. Asserted by traffic where traffic can tell."""

from __future__ import annotations

import ipaddress
import os

import pytest
from outside_world import HOST_IP, HOST_IP6, OUTSIDE_IP, OUTSIDE_IP6, outside_world
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace, Network, Transaction


def _links(ns: Namespace) -> list[str]:
    return sorted(link.name for link in ns.links())


def test_create_remove_leaves_nothing(host: Namespace) -> None:
    net = Network("app", subnet="10.20.0.0/24", mtu=1400)
    with net:
        br = host.link(net.bridge)
        assert br.kind == "bridge" and br.mtu == 1400 and net.bridge == "nk-app"
        assert [str(a.interface) for a in host.addresses(net.bridge) if a.interface.version == 4] == ["10.20.0.1/24"]
        assert "10.20.0.0/24" in net.describe()
    assert _links(host) == ["lo"]
    net.remove()  # idempotent
    assert not net.created


def test_bad_requests_change_nothing(host: Namespace) -> None:
    with pytest.raises(nk.ValidationError, match="not inside subnet"):
        Network("bad", subnet="192.168.0.0/24", gateway="192.168.1.1")  # the blog's typo
    with pytest.raises(nk.ValidationError, match="reserved"):
        Network("host")
    with pytest.raises(nk.ValidationError, match="need an explicit subnet"):
        Network("x", gateway="10.0.0.1")
    with pytest.raises(nk.ValidationError, match="bridge name"):
        Network("x", bridge="a-very-long-bridge-name")
    with Network("one", subnet="10.30.0.0/16"):
        with pytest.raises(nk.AlreadyExistsError, match="overlaps"):
            Network("two", subnet="10.30.5.0/24").create()
        with pytest.raises(nk.AlreadyExistsError, match="already exists"):
            Network("one", subnet="10.31.0.0/24", bridge="other").create()
        assert _links(host) == ["lo", "nk-one"]
    assert _links(host) == ["lo"]


def test_automatic_subnet_skips_the_hosts_routes(host: Namespace) -> None:
    with nk.Bridge("busy", addresses=["172.17.3.1/24"]), Network("auto1") as a, Network("auto2") as b:
        assert a.subnet == ipaddress.ip_network("172.18.0.0/16")
        assert b.subnet == ipaddress.ip_network("172.19.0.0/16")
        assert a.gateway == ipaddress.ip_address("172.18.0.1")


def test_connect_addresses_routes_and_traffic(host: Namespace) -> None:
    with Network("app", subnet="10.20.0.0/24") as net, Namespace("a") as a, Namespace("b") as b:
        att_a = net.connect(a)
        att_b = net.connect(b, ip="10.20.0.50")
        assert (att_a.ifname, att_b.ifname) == ("eth0", "eth0")
        assert str(att_a.address) == "10.20.0.2/24" and str(att_b.address) == "10.20.0.50/24"
        assert [str(x.interface) for x in a.addresses("eth0") if x.interface.version == 4] == ["10.20.0.2/24"]
        default = [r for r in a.routes(4) if r.is_default]
        assert [str(r.gateway) for r in default] == ["10.20.0.1"]
        assert host.link(att_a.host_ifname).master == host.link("nk-app").index
        with serve(b, port=8080) as srv:
            assert connect(a, "10.20.0.50", 8080) == "hello from b\n"
        assert srv.peers[0][0] == "10.20.0.2"
        # the host reaches them through the bridge
        assert a.run(["ping", "-c1", "-W2", "10.20.0.1"]).returncode == 0
        # a duplicate or outside address is refused, and nothing changes
        with Namespace("c") as c:
            with pytest.raises(nk.AlreadyExistsError, match="already in use"):
                net.connect(c, ip="10.20.0.50")
            with pytest.raises(nk.ValidationError, match="outside subnet"):
                net.connect(c, ip="10.99.0.5")
            with pytest.raises(nk.AlreadyExistsError, match="gateway"):
                net.connect(c, ip="10.20.0.1")
            with pytest.raises(nk.AlreadyExistsError, match="already connected"):
                net.connect(a)
            assert _links(c) == ["lo"]
        att_a.disconnect()
        att_a.disconnect()  # idempotent
        assert _links(a) == ["lo"]
        assert not host.has_link(att_a.host_ifname)
    assert _links(host) == ["lo"]


def test_released_address_comes_back(host: Namespace) -> None:
    with Network("tiny", subnet="10.40.0.0/29") as net:  # 5 usable: .2-.6
        nss = [Namespace(f"t{i}").create() for i in range(5)]
        try:
            atts = [net.connect(ns) for ns in nss]
            assert [str(x.address.ip) for x in atts] == [f"10.40.0.{i}" for i in range(2, 7)]
            with Namespace("t5") as extra:
                with pytest.raises(nk.ExhaustedError):
                    net.connect(extra)
                assert _links(extra) == ["lo"]
                atts[2].disconnect()
                assert str(net.connect(extra).address.ip) == "10.40.0.4"
                # a namespace deleted by other means (`ip netns del`) is noticed when addresses run out
                assert host.run(["ip", "netns", "del", "t0"]).returncode == 0
                with Namespace("t6") as late:
                    assert str(net.connect(late).address.ip) == "10.40.0.2"
        finally:
            for ns in nss:
                ns.remove()
    # the network's removal disconnected what was left, though the namespaces were already gone
    assert net.connections == [] and _links(host) == ["lo"]


def test_several_networks_per_namespace(host: Namespace) -> None:
    with Network("front", subnet="10.50.0.0/24") as front, Network("back", subnet="10.51.0.0/24") as back, \
            Namespace("app") as app, Namespace("db") as db:
        f = front.connect(app)
        b = back.connect(app)
        back.connect(db)
        assert (f.ifname, b.ifname) == ("eth0", "eth1")
        assert _links(app) == ["eth0", "eth1", "lo"]
        assert [str(r.gateway) for r in app.routes(4) if r.is_default] == ["10.50.0.1"]
        with serve(db, port=5432):
            assert connect(app, str(back.resolve("db")), 5432) == "hello from db\n"
        # names: db (one network) shares the network's file; app (two) has the union of its own
        assert os.path.islink("/etc/netns/db/hosts") and not os.path.islink("/etc/netns/app/hosts")
        assert app.run(["getent", "hosts", "db"]).stdout.split()[0] == "10.51.0.3"
        assert db.run(["getent", "hosts", "app"]).stdout.split()[0] == "10.51.0.2"
        # the default route moves to the remaining network when its carrier goes
        front.disconnect(app)
        assert _links(app) == ["eth1", "lo"]
        assert os.path.islink("/etc/netns/app/hosts")  # one network again: back to the shared file
        assert app.run(["getent", "hosts", "db"]).stdout.split()[0] == "10.51.0.3"
        assert [str(r.gateway) for r in app.routes(4) if r.is_default] == ["10.51.0.1"]
        # connect again at any time: the first free name is eth0 again
        assert front.connect(app).ifname == "eth0"


def test_names_resolve_within_a_network(host: Namespace) -> None:
    with Network("app", subnet="10.60.0.0/24") as net, Namespace("web") as web, Namespace("db") as db, \
            Namespace("lonely") as lonely:
        net.connect(web, aliases=["www"])
        net.connect(db)
        with Network("other", subnet="10.61.0.0/24") as other:
            other.connect(lonely)
            out = db.run(["getent", "hosts", "web"])
            assert out.returncode == 0 and out.stdout.split()[0] == "10.60.0.2"
            assert db.run(["getent", "hosts", "www"]).stdout.split()[0] == "10.60.0.2"
            assert web.run(["getent", "hosts", "db"]).stdout.split()[0] == "10.60.0.3"
            assert db.run(["ping", "-n", "-c1", "-W2", "web"]).returncode == 0
            # another network's endpoint is not known by name
            assert lonely.run(["getent", "-s", "files", "hosts", "web"]).returncode != 0
            assert lonely.run(["getent", "hosts", "lonely"]).stdout.split()[0] == "10.61.0.2"
            # ip netns exec honours the same file
            res = nk.Namespace.current().run(["ip", "netns", "exec", "db", "getent", "hosts", "web"])
            assert res.stdout.split()[0] == "10.60.0.2"
            # a new endpoint becomes known to the running ones, and forgotten when it leaves
            with Namespace("cache") as cache:
                net.connect(cache)
                assert web.run(["getent", "hosts", "cache"]).stdout.split()[0] == "10.60.0.4"
                net.disconnect(cache)
                assert web.run(["getent", "-s", "files", "hosts", "cache"]).returncode != 0
                assert not os.path.exists("/etc/netns/cache")
            # a namespace removed behind the network's back is forgotten at the next connect
            with Namespace("gone") as gone:
                net.connect(gone)
            with Namespace("next") as nxt:
                net.connect(nxt)
                assert web.run(["getent", "-s", "files", "hosts", "gone"]).returncode != 0
                assert "gone" not in net.endpoints()
    assert not os.path.exists("/etc/netns/web")
    assert not os.path.exists("/etc/netns/db")


def test_transaction_rolls_back_a_network_and_its_endpoints(host: Namespace) -> None:
    with Namespace("a") as a, pytest.raises(RuntimeError, match="boom"), Transaction():
        net = Network("app", subnet="10.70.0.0/24").create()
        net.connect(a)
        assert _links(a) == ["eth0", "lo"]
        raise RuntimeError("boom")
    assert _links(host) == ["lo"]
    # a failed connect inside a transaction leaves nothing either
    with Network("app2", subnet="10.71.0.0/24") as net2, Namespace("b") as b:
        with pytest.raises(nk.ValidationError), Transaction():
            net2.connect(b, publish=["not-a-port"])
        assert _links(b) == ["lo"] and net2.connections == []


def test_dual_stack(host: Namespace) -> None:
    with outside_world(host) as out, \
            Network("v6", subnet="10.80.0.0/24", subnet6="fd00:80::/64") as net, Namespace("a") as a, \
            Namespace("b") as b:
        net.connect(a, mac="02:42:0a:50:00:02")
        att = net.connect(b, ip6="fd00:80::b")
        assert a.link("eth0").mac == "02:42:0a:50:00:02"
        assert str(att.address6) == "fd00:80::b/64"
        assert [str(r.gateway) for r in a.routes(6) if r.is_default] == ["fd00:80::1"]
        with serve(b, address="::", port=8081) as srv:
            assert connect(a, "fd00:80::b", 8081) == "hello from b\n"
        assert srv.peers[0][0] == "fd00:80::2"
        with serve(out, address="::", port=8082) as srv6:  # IPv6 outbound, masqueraded too
            assert connect(a, OUTSIDE_IP6, 8082) == "hello from outside\n"
        assert srv6.peers[0][0] == HOST_IP6


# -- what the firewall policy enforces, checked by traffic -----------------------------------------------


def test_outbound_masquerade_and_internal(host: Namespace) -> None:
    with outside_world(host) as out, Network("pub", subnet="10.90.0.0/24") as pub, \
            Network("priv", subnet="10.91.0.0/24", internal=True) as priv, \
            Namespace("a") as a, Namespace("i") as i:
        pub.connect(a)
        priv.connect(i)
        assert not [r for r in i.routes(4) if r.is_default]
        with serve(out, port=9000) as srv:
            assert connect(a, OUTSIDE_IP, 9000) == "hello from outside\n"
            assert srv.peers[-1][0] == HOST_IP  # masqueraded behind the host's address
            # internal: no way out, not even with a route added by hand
            assert connect(i, OUTSIDE_IP, 9000, timeout=1) is None
            i.add_route(nk.Route("default", gateway="10.91.0.1"))
            assert connect(i, OUTSIDE_IP, 9000, timeout=1) is None


def test_two_networks_are_isolated(host: Namespace) -> None:
    with Network("n1", subnet="10.92.0.0/24") as n1, Network("n2", subnet="10.93.0.0/24") as n2, \
            Namespace("a") as a, Namespace("b") as b, Namespace("c") as c:
        n1.connect(a)
        n1.connect(c)
        n2.connect(b)
        with serve(b, port=7000), serve(c, port=7000):
            assert connect(a, str(n1.resolve("c")), 7000) == "hello from c\n"  # same network: fine
            assert connect(a, str(n2.resolve("b")), 7000, timeout=1) is None
            assert connect(b, str(n1.resolve("a")), 7000, timeout=1) is None


def test_icc_off_blocks_peers(host: Namespace) -> None:
    with outside_world(host) as out, Network("quiet", subnet="10.94.0.0/24", icc=False) as net, \
            Namespace("a") as a, Namespace("b") as b:
        net.connect(a)
        net.connect(b)
        with serve(b, port=7001), serve(out, port=7001):
            assert connect(a, str(net.resolve("b")), 7001, timeout=1) is None
            assert connect(a, OUTSIDE_IP, 7001) == "hello from outside\n"  # the way out stays open


def test_open_a_network_another_process_created_and_adopt_it(host: Namespace) -> None:
    import subprocess
    import sys

    from netns_kit.errors import NotFoundError, OwnershipError

    with pytest.raises(NotFoundError):
        Network.open("kept")
    child = subprocess.run([sys.executable, "-c", "from netns_kit.network import Network; "
                            "Network('kept', subnet='10.66.0.0/24', icc=False).create()"],
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    with pytest.raises(nk.AlreadyExistsError):
        Network("kept", bridge="nk-kept2", subnet="10.67.0.0/24").create()
    net = Network.open("kept")
    assert not net.owned and not net.config.icc and str(net.subnet) == "10.66.0.0/24"
    assert Network.open("kept") is not net  # not registered: each open() reads the shared state
    with Namespace("kept-a") as a:
        with net:  # an opened network's with-block disconnects what it connected, nothing more
            c = net.connect(a)
            assert str(c.ip) == "10.66.0.2"
            assert a.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.66.0.1"]).returncode == 0
        assert not c.connected and host.has_link("nk-kept")
    with pytest.raises(OwnershipError):
        net.remove()
    assert host.has_link("nk-kept")
    net.adopt().remove()
    assert [link.name for link in host.links()] == ["lo"]
    assert "netns_kit" not in host.run(["nft", "list", "tables"]).stdout
    with pytest.raises(NotFoundError):
        Network.open("kept")
