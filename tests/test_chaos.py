"""Partitions proven by traffic: blocked while in place, healed afterwards."""

from __future__ import annotations

import pytest
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace
from netns_kit.chaos import Partition


def _star(n: int) -> list[nk.Namespace]:
    """n namespaces on one bridge, 10.60.0.(i+2)/24 and fd60::(i+2)/64."""
    br = nk.Bridge("br-chaos", addresses=["10.60.0.1/24", "fd60::1/64"]).create()
    out = []
    for i in range(n):
        ns = nk.Namespace(f"ch{i}").create()
        nk.VethPair(f"vch{i}", "eth0", peer_namespace=ns, master=br).create()
        ns.add_address("eth0", f"10.60.0.{i + 2}/24")
        ns.add_address("eth0", f"fd60::{i + 2}/64")
        out.append(ns)
    return out


def _reach(a: Namespace, ip: str) -> bool:
    return connect(a, ip, 7000, timeout=1.5) is not None


def test_partition_blocks_both_ways_then_heals(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, b, c = _star(3)
        with serve(a, "::", 7000), serve(b, "::", 7000), serve(c, "::", 7000):
            assert _reach(a, "10.60.0.3") and _reach(b, "10.60.0.2")
            p = Partition(a, b)
            assert p.plan() == [("ch0", ["10.60.0.3", "fd60::3"]), ("ch1", ["10.60.0.2", "fd60::2"])]
            with p:
                assert not _reach(a, "10.60.0.3") and not _reach(a, "fd60::3")
                assert not _reach(b, "10.60.0.2") and not _reach(b, "fd60::2")
                assert _reach(a, "10.60.0.4") and _reach(c, "10.60.0.3")  # c is in neither group
                assert a.run(["ping", "-c1", "-W1", "10.60.0.3"]).returncode != 0
                assert p.table in a.run(["nft", "list", "tables"]).stdout
            assert _reach(a, "10.60.0.3") and _reach(b, "fd60::2")
            assert p.table not in a.run(["nft", "list", "tables"]).stdout
            assert p.table not in b.run(["nft", "list", "tables"]).stdout


def test_groups_keep_talking_inside(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, b, c, d = _star(4)
        with serve(a, "::", 7000), serve(b, "::", 7000), serve(c, "::", 7000), serve(d, "::", 7000):
            with Partition([a, b], [c, d]):
                assert _reach(a, "10.60.0.3") and _reach(c, "10.60.0.5")      # inside each group
                assert not _reach(a, "10.60.0.4") and not _reach(d, "10.60.0.3")  # across
            assert _reach(a, "10.60.0.4") and _reach(d, "10.60.0.3")


def test_partition_rolled_back_by_transaction(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, b = _star(2)
        with serve(b, "::", 7000):
            with pytest.raises(RuntimeError), nk.Transaction():
                Partition(a, b).create()
                assert not _reach(a, "10.60.0.3")
                raise RuntimeError("fail")
            assert _reach(a, "10.60.0.3")
            assert "netns_kit_part" not in a.run(["nft", "list", "tables"]).stdout


def test_partition_validation(host: Namespace) -> None:
    with nk.Namespace("ch-x") as x:
        with pytest.raises(nk.ValidationError):
            Partition(x)
        with pytest.raises(nk.ValidationError):
            Partition([x], [])
        with pytest.raises(nk.ValidationError, match="two groups"):
            Partition([x], [x]).create()
        with pytest.raises(nk.ValidationError):
            Partition(x, "not an endpoint").create()


def test_partition_commands_are_readable(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, b = _star(2)
        p = Partition(a, b)
        cmds = p.commands()
        assert cmds[0] == f"ip netns exec ch0 nft add table inet {p.table}"
        assert any("elements = { 10.60.0.3 }" in c for c in cmds)
        assert any(c.endswith("ip daddr @output4 drop") for c in cmds)
        assert any(c.endswith("ip saddr @input4 drop") for c in cmds)
