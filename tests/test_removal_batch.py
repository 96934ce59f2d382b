"""removal_batch(): interfaces deleted together (one kernel batch per namespace), namespaces
after them; everything gone when the block ends; failures reported, nothing else skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from snapshots import snapshot
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace
from netns_kit._netlink import RtnlSocket


def _endpoints(host: Namespace, br: nk.Bridge, count: int, prefix: str = "rb") -> list[tuple[Namespace, nk.VethPair]]:
    out = []
    for i in range(count):
        ns = nk.Namespace(f"{prefix}{i}").create()
        pair = nk.VethPair(f"h{prefix}{i}", "eth0", namespace=host, peer_namespace=ns, master=br,
                           ipv6_link_local=False).create()
        ns.add_address("eth0", f"10.91.0.{i + 2}/24")
        out.append((ns, pair))
    return out


@contextmanager
def _delete_links_calls() -> Iterator[list[int]]:
    """How many links each RtnlSocket.delete_links call of the body was given."""
    calls: list[int] = []
    real = RtnlSocket.delete_links

    def spy(self: RtnlSocket, indexes: list[int], *, obj: str | None = None) -> None:
        calls.append(len(indexes))
        real(self, indexes, obj=obj)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RtnlSocket, "delete_links", spy)
        yield calls


def test_everything_is_gone_when_the_block_ends_not_before(host: Namespace) -> None:
    before = snapshot(host)
    br = nk.Bridge("br-rb", namespace=host, addresses=["10.91.0.1/24"]).create()
    eps = _endpoints(host, br, 12)
    with serve(eps[0][0], "0.0.0.0", 8080):
        assert connect(eps[1][0], "10.91.0.2", 8080) == f"hello from {eps[0][0].label}\n"
    with nk.removal_batch() as pending:
        for ns, pair in eps:
            pair.remove()
            ns.remove()
        br.remove()
        assert len(pending) == 12 + 1 + 12  # host ends and the bridge, then the namespaces
        # nothing has happened yet: the names are still taken, the namespaces still there
        assert host.has_link("hrb0") and host.has_link("br-rb")
        assert eps[0][0].exists
    assert snapshot(host) == before
    assert not any(ns.exists for ns, _ in eps)


def test_a_rollback_batches_its_deletions_and_leaves_nothing(host: Namespace) -> None:
    before = snapshot(host)
    with _delete_links_calls() as calls, pytest.raises(RuntimeError, match="boom"), nk.Transaction():
        br = nk.Bridge("br-rb", namespace=host, addresses=["10.91.0.1/24"]).create()
        _endpoints(host, br, 10)
        raise RuntimeError("boom")
    assert snapshot(host) == before
    assert 11 in calls  # ten host ends and the bridge, in one request


def test_a_failed_removal_is_reported_and_the_others_still_happen(host: Namespace) -> None:
    before = snapshot(host)
    br = nk.Bridge("br-rb", namespace=host).create()
    eps = _endpoints(host, br, 3)
    real = RtnlSocket.delete_links

    def fail_in_host(self: RtnlSocket, indexes: list[int], *, obj: str | None = None) -> None:
        if self is host.rtnl():
            raise nk.KernelError("injected", step="delete links")
        real(self, indexes, obj=obj)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RtnlSocket, "delete_links", fail_in_host)
        with pytest.raises(nk.NetnsKitError, match="1 removal") as info, nk.removal_batch():
            for ns, pair in eps:
                pair.remove()
                ns.remove()  # still made: removing a namespace deletes its veths, both ends
    failures = nk.rollback_failures(info.value)
    assert len(failures) == 1 and "injected" in str(failures[0])
    assert not any(ns.exists for ns, _ in eps)
    assert not any(host.has_link(f"hrb{i}") for i in range(3))
    br.remove()
    after = snapshot(host)
    assert after == before


def test_the_block_raising_still_removes_and_nested_blocks_join(host: Namespace) -> None:
    before = snapshot(host)
    br = nk.Bridge("br-rb", namespace=host).create()
    eps = _endpoints(host, br, 2)
    with pytest.raises(ValueError), nk.removal_batch() as outer:
        with nk.removal_batch() as inner:
            assert inner is outer
            eps[0][1].remove()
            eps[0][0].remove()
        assert host.has_link("hrb0")  # the inner block's end is not the flush
        eps[1][0].remove()
        br.remove()
        raise ValueError("the caller's own error")
    assert snapshot(host) == before


def test_delete_links_deletes_exactly_the_given_links(host: Namespace) -> None:
    keep = nk.VethPair("keep0", "keep1", namespace=host).create()
    pairs = [nk.VethPair(f"dl{i}", f"dlp{i}", namespace=host).create() for i in range(4)]
    host.run(["ip", "link", "add", "foreign0", "type", "veth", "peer", "name", "foreign1"], check=True)
    sock = host.rtnl()
    sock.delete_links([pairs[0].index, pairs[1].index, 999999], obj="test")
    names = {link.name for link in host.links()}
    assert {"keep0", "keep1", "foreign0", "foreign1", "dl2", "dl3"} <= names
    assert not names & {"dl0", "dlp0", "dl1", "dlp1"}
    keep.remove()
    pairs[2].remove()
    pairs[3].remove()
    host.run(["ip", "link", "del", "foreign0"], check=True)


def test_network_remove_force_deletes_all_veths_and_the_bridge_in_one_request(host: Namespace) -> None:
    before = snapshot(host)
    net = nk.Network("rbnet", subnet="10.92.0.0/24").create()
    spaces = [nk.Namespace(f"rbn{i}").create() for i in range(8)]
    for ns in spaces:
        net.connect(ns)
    with _delete_links_calls() as calls:
        net.remove(force=True)
    assert calls == [9]  # eight host ends and the bridge
    for ns in spaces:
        assert [link.name for link in ns.links()] == ["lo"]
        ns.remove()
    assert snapshot(host) == before


def test_a_crash_before_the_batch_ends_is_recovered(host: Namespace) -> None:
    """Objects whose with-block ended inside the batch stay in the on-disk journal until the
    batch has removed them: a process killed before that leaves them to recover()."""
    before = snapshot(host)
    child = subprocess.Popen([sys.executable, "-c", r"""
import os, signal, netns_kit as nk
with nk.removal_batch():
    with nk.Namespace("rb-crash") as ns, nk.Bridge("br-crash") as br, \
            nk.VethPair("vrb-crash", "eth0", peer_namespace=ns, master=br):
        pass
    print("EXITED", flush=True)  # both blocks are over; the batch has not removed anything yet
    os.kill(os.getpid(), signal.SIGKILL)
"""], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=30)
    assert out.strip() == "EXITED"
    assert host.has_link("br-crash") and host.has_link("vrb-crash") and os.path.exists("/run/netns/rb-crash")
    report = nk.recover()
    assert report.undone, report
    assert snapshot(host) == before


def test_an_address_comes_back_only_once_its_veth_is_gone(host: Namespace) -> None:
    net = nk.Network("rbaddr", subnet="10.96.0.0/29").create()  # five addresses to hand out
    spaces = [nk.Namespace(f"rba{i}").create() for i in range(6)]
    try:
        conns = [net.connect(ns) for ns in spaces[:5]]
        with nk.removal_batch():
            conns[0].disconnect()
            assert host.has_link(conns[0].host_ifname)  # not deleted yet: its address is still in use
            with pytest.raises(nk.ExhaustedError):
                net.connect(spaces[5])
        late = net.connect(spaces[5])
        assert late.address == conns[0].address
        assert not host.has_link(conns[0].host_ifname)
        assert spaces[5].run(["ping", "-c1", "-W2", str(net.gateway)]).returncode == 0
    finally:
        net.remove(force=True)
        for ns in spaces:
            ns.remove()
