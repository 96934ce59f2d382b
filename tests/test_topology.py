"""Topology: plan without root, the same plan as commands, build/remove on the kernel, views."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace
from netns_kit._inspection import observe
from netns_kit.testing import named_namespaces
from netns_kit.topology import Topology


def _demo() -> Topology:
    topo = Topology("demo")
    topo.bridge("br-topo", addresses=["10.31.0.1/24"], nat=True)
    topo.endpoint("tweb", bridge="br-topo", address="10.31.0.2/24", gateway="10.31.0.1",
                  publish=["8080:80/tcp"])
    topo.endpoint("tdb", bridge="br-topo", address=["10.31.0.3/24"], gateway="10.31.0.1")
    return topo


def test_plan_is_data_and_commands() -> None:
    plan = _demo().plan()
    actions = [s.action for s in plan]
    assert actions == ["create namespace", "create namespace", "create bridge", "attach bridge to the firewall",
                       "create veth pair", "add address", "add route", "publish port", "create veth pair",
                       "add address", "add route"]
    cmds = plan.commands()
    assert cmds[:3] == ["ip netns add tweb", "ip -n tweb link set lo up", "ip netns add tdb"]
    assert "ip link add vtweb type veth peer name eth0 netns tweb" in cmds
    assert "ip -n tweb route add default via 10.31.0.1" in cmds
    assert "nft add element inet netns_kit dnat4 '{ tcp . 8080 : 10.31.0.2 . 80 }'" in cmds
    assert "nft add element inet netns_kit masq4 '{ 10.31.0.0/24 }'" in cmds
    assert plan.script().startswith("#!/bin/sh")
    d = plan.to_dicts()
    assert d[0] == {"action": "create namespace", "target": "tweb", "namespace": "host",
                    "commands": ["ip netns add tweb", "ip -n tweb link set lo up"], "undo": "ip netns del tweb"}
    assert "<table" in plan._repr_html_() and "ip netns add tweb" in plan._repr_html_()
    assert "  1. create namespace tweb" in str(plan)


def test_plan_refuses_bad_input_before_anything() -> None:
    topo = Topology().bridge("br0", addresses=["192.168.0.1/24"])
    with pytest.raises(nk.ValidationError, match=r"192\.168\.1\.1"):
        topo.endpoint("c1", bridge="br0", address="192.168.0.123/24", gateway="192.168.1.1")  # the tutorial typo
    with pytest.raises(nk.ValidationError, match="not in the topology"):
        topo.endpoint("c1", bridge="br9", address="192.168.0.5/24")
    with pytest.raises(nk.ValidationError, match="broadcast"):
        topo.endpoint("c1", bridge="br0", address="192.168.0.255/24")
    with pytest.raises(nk.ValidationError, match="nat=True"):
        topo.endpoint("c1", bridge="br0", address="192.168.0.5/24", publish=["8080:80"])
    with pytest.raises(nk.ValidationError):
        Topology().bridge("b", addresses=["10.0.0.1/24"], nat=True).endpoint(
            "c1", bridge="b", address="10.0.0.5/24", publish=["0:80"])
    with pytest.raises(nk.ValidationError):
        topo.namespace("../etc")


def test_planned_view_renders_without_root() -> None:
    view = _demo().view()
    html = view.to_html()
    assert "<table" in html and "vtweb" in html and "10.31.0.2/24" in html and "8080-&gt;10.31.0.2:80/tcp" in html
    dot = view.to_dot()
    assert "cluster_" in dot and '"host/vtweb" -- "tweb/eth0"' in dot
    if shutil.which("dot"):
        assert view.to_svg().lstrip().startswith(("<?xml", "<svg"))


def test_build_then_remove_by_traffic(host: Namespace, caplog: pytest.LogCaptureFixture) -> None:
    before = {link.name for link in host.links()}
    topo = _demo()
    with caplog.at_level(logging.DEBUG, logger="netns_kit"), topo:
        web, db = topo.namespaces()["tweb"], topo.namespaces()["tdb"]
        with serve(web, "0.0.0.0", 80):
            assert connect(db, "10.31.0.2", 80) == "hello from tweb\n"
            assert connect(host, "10.31.0.1", 8080) == "hello from tweb\n"   # via the published port
        view = topo.view()
        assert {(v.a, v.b) for v in view.veths} >= {(("host", "vtweb"), ("tweb", "eth0"))} or \
            {(v.b, v.a) for v in view.veths} >= {(("host", "vtweb"), ("tweb", "eth0"))}
        assert [p.spec for p in view.ports] == ["8080->10.31.0.2:80/tcp"]
        assert "tweb 10.31.0.2:80" in view.ports[0].target
        html = web._repr_html_()
        assert "eth0" in html and "10.31.0.2/24" in html and "default via 10.31.0.1" in html
    assert any("change:" in r.getMessage() for r in caplog.records)       # the journal: each undoable change
    kernel = [r.getMessage() for r in caplog.records if r.name == "netns_kit.netlink"]
    assert any(m.startswith("netlink: create veth link vtweb") for m in kernel), kernel  # each request
    assert any(r.name == "netns_kit.nft" and "publish" in r.getMessage() for r in caplog.records)
    assert {link.name for link in host.links()} == before
    assert not named_namespaces()


def test_many_endpoints_one_publish_batch_ipv4_only_ends_without_link_local(host: Namespace) -> None:
    topo = Topology("many").bridge("br-many", addresses=["10.32.0.1/24"], nat=True)
    for i in range(2, 12):
        topo.endpoint(f"tm{i}", bridge="br-many", address=f"10.32.0.{i}/24", gateway="10.32.0.1",
                      publish=[f"{8000 + i}:80"])
    topo.endpoint("tsix", bridge="br-many", address=["10.32.0.99/24", "fd00:32::99/64"])
    cmds = topo.commands()
    assert "ip -n tm2 link set eth0 addrgenmode none" in cmds
    assert "ip -n tsix link set eth0 up" in cmds  # an IPv6 address: link-local as usual
    batches: list[str] = []
    with _nft_batches(batches), topo:
        assert sum("publish port" in b for b in batches) == 1  # ten ports, one batch
        spaces = topo.namespaces()
        with serve(spaces["tm7"], "0.0.0.0", 80):
            assert connect(host, "10.32.0.1", 8007) == "hello from tm7\n"
        assert not [a for a in spaces["tm3"].addresses("eth0") if a.address.version == 6]
        assert not [a for a in host.addresses("vtm3") if a.address.version == 6]
    assert not named_namespaces()
    assert not any(link.name.startswith("vtm") for link in host.links())


@contextmanager
def _nft_batches(out: list[str]) -> Iterator[None]:
    handler = logging.Handler()
    handler.emit = lambda record: out.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("netns_kit.nft")
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old)


def test_failed_build_leaves_nothing(host: Namespace) -> None:
    before = {link.name for link in host.links()}
    with nk.Bridge("vtdb") as _squatter:      # the second endpoint's host-side name is taken
        with pytest.raises(nk.AlreadyExistsError):
            _demo().create()
        assert {link.name for link in host.links()} == before | {"vtdb"}
        assert not named_namespaces()


def test_observe_pairs_veths_across_namespaces(host: Namespace) -> None:
    with nk.Namespace("obs") as ns, nk.VethPair("vobs", "eth0", peer_namespace=ns):
        view = observe([ns], title="t")
        assert view.veths[0].a == ("host", "vobs") and view.veths[0].b == ("obs", "eth0")
        assert "vobs" in str(view)


def test_sync_api_inside_a_running_asyncio_loop(host: Namespace) -> None:
    async def main() -> list[str]:
        with Topology("loop").bridge("br-loop", addresses=["10.32.0.1/24"]) \
                .endpoint("lp", bridge="br-loop", address="10.32.0.2/24", gateway="10.32.0.1") as topo:
            ns = topo.namespaces()["lp"]
            assert ns.run(["ping", "-c1", "-W2", "10.32.0.1"]).returncode == 0
            return [link.name for link in ns.links()]

    assert asyncio.run(main()) == ["lo", "eth0"]
