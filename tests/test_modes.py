"""The five network modes through Endpoint, on the real kernel, checked by traffic."""

from __future__ import annotations

import ipaddress
import os

import pytest
from outside_world import HOST_IP, OUTSIDE_IP, outside_world
from snapshots import snapshot
from traffic import connect, serve

import netns_kit as nk
from netns_kit import (
    BridgeMode,
    ContainerMode,
    CustomMode,
    Endpoint,
    HostMode,
    Namespace,
    Network,
    NetworkMode,
    NoneMode,
    Transaction,
    default_network,
)


def _links(ns: Namespace) -> list[str]:
    return sorted(link.name for link in ns.links())


def test_parse_modes() -> None:
    assert NetworkMode.parse("bridge") == BridgeMode()
    assert NetworkMode.parse("host") == HostMode()
    assert NetworkMode.parse("none") == NoneMode()
    assert NetworkMode.parse("container:web") == ContainerMode("web")
    assert NetworkMode.parse("app") == CustomMode("app")
    assert str(ContainerMode("web")) == "container:web"
    with pytest.raises(nk.ValidationError):
        NetworkMode.parse("container:")
    with pytest.raises(nk.ValidationError):
        NetworkMode.parse(NetworkMode())


@pytest.mark.parametrize(("mode", "kwargs", "what"), [
    ("container:web", {"publish": ["8080:80"]}, "port publishing"),
    ("container:web", {"ip": "10.0.0.5"}, "fixed address"),
    ("container:web", {"mac": "02:00:00:00:00:01"}, "MAC"),
    ("host", {"publish": ["8080:80"]}, "port publishing"),
    ("none", {"publish": ["8080:80"]}, "port publishing"),
    ("bridge", {"ip": "172.17.0.9"}, "fixed address"),
    ("bridge", {"aliases": ["x"]}, "aliases"),
    ("bridge", {"publish": ["80-90"]}, "port spec"),
    ("bridge", {"publish": ["[::]:8080:80"]}, "no IPv6 subnet"),
])
def test_conflicting_options_are_refused_before_anything(mode: str, kwargs: dict[str, object], what: str) -> None:
    with pytest.raises(nk.ValidationError, match=what):
        Endpoint("x", mode, host=None, **kwargs)  # type: ignore[arg-type]


def test_none_mode_has_only_lo(host: Namespace) -> None:
    with Endpoint("quiet", "none") as ep:
        assert os.path.exists("/run/netns/quiet")
        assert [(link.name, link.up) for link in ep.namespace.links()] == [("lo", True)]
        assert ep.addresses == [] and ep.address is None
        assert ep.run(["ip", "-o", "route"]).stdout == ""
        with serve(ep.namespace, "127.0.0.1", 9000):
            assert connect(ep.namespace, "127.0.0.1", 9000) == "hello from quiet\n"
    assert not os.path.exists("/run/netns/quiet")
    assert _links(host) == ["lo"]


def test_host_mode_shares_the_hosts_namespace(host: Namespace) -> None:
    with nk.Bridge("hostbr", addresses=["10.9.9.1/24"]), Endpoint("h", "host") as ep:
        assert ep.namespace.same_as(host)
        assert not os.path.exists("/run/netns/h")
        out = ep.run(["ip", "-o", "link"]).stdout
        assert "hostbr" in out
        assert ipaddress.ip_interface("10.9.9.1/24") in ep.addresses
        with serve(host, "10.9.9.1", 9001):
            assert connect(ep.namespace, "10.9.9.1", 9001) == "hello from host\n"
    assert _links(host) == ["lo"]


def test_bridge_mode_outbound_inbound_and_cleanup(host: Namespace) -> None:
    before = snapshot(host)
    with outside_world(host) as out:
        with Endpoint("web", publish=["8080:80"]) as web, Endpoint("api") as api:
            net = default_network()
            assert net is not None and net.bridge == "nk0"
            # 172.17.0.0/16, the first of Docker's pools (nothing on the host overlaps it)
            assert net.subnet == ipaddress.ip_network("172.17.0.0/16")
            assert web.address == ipaddress.ip_address("172.17.0.2")
            assert api.address == ipaddress.ip_address("172.17.0.3")
            assert _links(web.namespace) == ["eth0", "lo"]
            assert [str(r.gateway) for r in web.namespace.routes(4) if r.is_default] == ["172.17.0.1"]
            # outbound: the outside world sees the host's address
            with serve(out, port=9000) as srv:
                assert connect(web.namespace, OUTSIDE_IP, 9000) == "hello from outside\n"
            assert srv.peers[-1][0] == HOST_IP
            # inbound: a published port from the outside world, and a peer on the same network
            with serve(web.namespace, port=80) as srv80:
                assert connect(out, HOST_IP, 8080) == "hello from web\n"
                assert srv80.peers[-1][0] == OUTSIDE_IP
                assert connect(api.namespace, "172.17.0.2", 80) == "hello from web\n"
                # the published port from the host itself (also on 127.0.0.1), a peer, and hairpin
                assert connect(host, HOST_IP, 8080) == "hello from web\n"
                assert connect(host, "127.0.0.1", 8080) == "hello from web\n"
                assert connect(api.namespace, HOST_IP, 8080) == "hello from web\n"
                assert connect(web.namespace, HOST_IP, 8080) == "hello from web\n"
            # the default network has no name resolution among endpoints, as in Docker
            assert api.run(["getent", "-s", "files", "hosts", "web"]).returncode != 0
            assert api.run(["getent", "hosts", "api"]).stdout.split()[0] == "172.17.0.3"
        # the default network went with its last endpoint
        assert default_network() is None
        assert not host.has_link("nk0")
    after = snapshot(host)
    assert after == before  # links, addresses, routes, nft ruleset, named namespaces, forwarding


def test_default_network_skips_a_route_on_the_host(host: Namespace) -> None:
    with nk.Bridge("busy", addresses=["172.17.200.1/24"]), Endpoint("web") as web:
        assert web.address is not None and web.address in ipaddress.ip_network("172.18.0.0/16")


def test_container_mode_shares_localhost_and_outlives_its_owner(host: Namespace) -> None:
    web = Endpoint("web").create()
    side = Endpoint("side", ContainerMode(web)).create()
    try:
        assert side.namespace.same_as(web.namespace)
        assert side.addresses == web.addresses
        assert not os.path.exists("/run/netns/side")
        with serve(web.namespace, "127.0.0.1", 9002):
            assert connect(side.namespace, "127.0.0.1", 9002) == "hello from web\n"
        # by name, as Docker's --network container:NAME
        with Endpoint("side2", "container:web") as side2:
            assert side2.namespace.same_as(web.namespace)
        # the owner goes: the namespace stays while a user remains
        ns = web.namespace
        web.remove()
        assert os.path.exists("/run/netns/web") and ns.exists
        assert "eth0" in _links(side.namespace)
        with pytest.raises(nk.StateError):
            _ = web.namespace
    finally:
        side.remove()
        web.remove()
    assert not os.path.exists("/run/netns/web")
    assert _links(host) == ["lo"]


def test_container_mode_needs_a_live_target(host: Namespace) -> None:
    with pytest.raises(nk.NotFoundError, match="no endpoint named 'ghost'"):
        Endpoint("side", "container:ghost").create()
    ep = Endpoint("later", "none")
    with pytest.raises(nk.StateError, match="not running"):
        Endpoint("side", ContainerMode(ep)).create()
    with Endpoint("x", "none") as x, Endpoint("side", ContainerMode(x)) as side, \
            pytest.raises(nk.ValidationError, match="cannot be connected"):
        side.connect(Network("n", subnet="10.1.0.0/24"))


def test_custom_mode_fixed_address_names_and_more_networks(host: Namespace) -> None:
    with Network("app", subnet="10.20.0.0/24") as app, Network("data", subnet="10.21.0.0/24") as data, \
            Endpoint("web", CustomMode(app), ip="10.20.0.10", aliases=["www"]) as web, \
            Endpoint("db", "data") as db:
        assert web.address == ipaddress.ip_address("10.20.0.10")
        # a fixed address already taken is refused, nothing is made
        with pytest.raises(nk.AlreadyExistsError, match="already in use"):
            Endpoint("dup", "app", ip="10.20.0.10").create()
        assert not os.path.exists("/run/netns/dup")
        with pytest.raises(nk.ValidationError, match="outside subnet"):
            Endpoint("dup", "app", ip="10.99.0.10").create()
        # web joins the data network too: eth1
        conn = web.connect(data)
        assert conn.ifname == "eth1" and _links(web.namespace) == ["eth0", "eth1", "lo"]
        assert web.run(["getent", "hosts", "db"]).stdout.split()[0] == "10.21.0.2"
        assert db.run(["getent", "hosts", "web"]).stdout.split()[0] == "10.21.0.3"
        # aliases are per network, as in Docker
        assert db.run(["getent", "-s", "files", "hosts", "www"]).returncode != 0
        assert db.run(["ping", "-n", "-c1", "-W2", "web"]).returncode == 0
        with serve(db.namespace, port=5432):
            assert connect(web.namespace, "10.21.0.2", 5432) == "hello from db\n"
        web.disconnect(data)
        assert _links(web.namespace) == ["eth0", "lo"]
        assert db.run(["getent", "-s", "files", "hosts", "web"]).returncode != 0
    assert _links(host) == ["lo"]


def test_custom_mode_unknown_network(host: Namespace) -> None:
    with pytest.raises(nk.NotFoundError, match="no network named 'nope'"):
        Endpoint("x", "nope").create()
    assert not os.path.exists("/run/netns/x")


def test_transaction_rolls_back_every_mode(host: Namespace) -> None:
    before = snapshot(host)
    with pytest.raises(RuntimeError, match="boom"), Transaction():
        net = Network("app", subnet="10.30.0.0/24").create()
        web = Endpoint("web", publish=["8081:80"]).create()
        Endpoint("side", ContainerMode(web)).create()
        Endpoint("db", CustomMode(net)).create()
        Endpoint("quiet", "none").create()
        Endpoint("h", "host").create()
        assert host.has_link("nk0") and host.has_link("nk-app")
        raise RuntimeError("boom")
    assert snapshot(host) == before
    assert default_network() is None
    assert not os.path.exists("/etc/netns/web") and not os.path.exists("/etc/netns/db")
    assert nk._registry.peek_host_state(host) is None  # the registry forgot this host


def test_endpoints_share_one_host_descriptor(host: Namespace) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    eps = [Endpoint(f"e{i}", "none").create() for i in range(80)]
    try:
        assert len({id(ep.host) for ep in eps}) == 1
        assert len(os.listdir("/proc/self/fd")) - fds < 40  # bounded by the socket pool, not by 80
    finally:
        for ep in eps:
            ep.remove()
    assert nk._registry.peek_host_state(host) is None


def test_failed_create_leaves_nothing(host: Namespace) -> None:
    before = snapshot(host)
    with Network("app", subnet="10.31.0.0/24"), Namespace("db"):  # the name is taken
        with pytest.raises(nk.AlreadyExistsError, match="'db' already exists"):
            Endpoint("db").create()  # refused before anything is made
        assert default_network() is None and not host.has_link("nk0")
    assert snapshot(host) == before


def test_a_network_object_is_its_custom_mode(host: Namespace) -> None:
    """``Endpoint("web", net)`` with the Network itself, as ``docker run --network`` takes its name."""
    with nk.Network("objnet", subnet="10.96.0.0/24") as net, nk.Endpoint("objweb", net) as web:
        assert web.mode == CustomMode(net)
        assert web.address is not None and web.address in net.subnet
        assert web.run(["ping", "-n", "-c1", "-W2", str(net.gateway)]).returncode == 0
