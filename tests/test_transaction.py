"""Transactions: all or nothing, proven by fault injection at every kernel step."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from snapshots import snapshot

import netns_kit as nk
from netns_kit import Bridge, Namespace, Route, Transaction, VethPair, _netlink, _sys, rollback_failures
from netns_kit._journal import Journal


class InjectedFault(Exception):
    pass


MUTATING = {16, 17, 20, 21, 24, 25}  # RTM_NEW/DELLINK, NEW/DELADDR, NEW/DELROUTE


class FaultInjector:
    """Counts kernel changes (netlink writes and namespace creations); fails the k-th one."""

    def __init__(self, fail_at: int | None, after: bool = False) -> None:
        self.fail_at = fail_at
        self.after = after
        self.count = 0

    def tick(self) -> bool:
        self.count += 1
        return self.count == self.fail_at


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FaultInjector]]:
    holder: list[FaultInjector] = []
    real_request = _netlink.RtnlSocket._request
    real_create = _sys.create_named_netns

    def request(self: _netlink.RtnlSocket, msg: Any, msg_type: int, flags: int, **kw: Any) -> list[Any]:
        inj = holder[0] if holder else None
        if inj is not None and msg_type in MUTATING and inj.tick():
            if inj.after:
                real_request(self, msg, msg_type, flags, **kw)
            raise InjectedFault(f"fault at change {inj.count}")
        return real_request(self, msg, msg_type, flags, **kw)

    def create(path: str, *, label: str, prepare: Any = None) -> tuple[int, int]:
        inj = holder[0] if holder else None
        if inj is not None and inj.tick():
            n = inj.count  # prepare() below makes requests of its own (lo up, marked)
            if inj.after:
                real_create(path, label=label, prepare=prepare)
            raise InjectedFault(f"fault at change {n}")
        return real_create(path, label=label, prepare=prepare)

    monkeypatch.setattr(_netlink.RtnlSocket, "_request", request)
    monkeypatch.setattr(_sys, "create_named_netns", create)
    yield holder


def build() -> None:
    """3 namespaces, a bridge, 3 veths, addresses and routes."""
    br = Bridge("br-fi", addresses=["10.40.0.1/24", "fd40::1/64"]).create()
    for i in range(3):
        ns = Namespace(f"fi-{i}").create()
        VethPair(f"vfi{i}", "eth0", peer_namespace=ns, master=br).create()
        ns.add_address("eth0", f"10.40.0.{i + 2}/24")
        ns.add_address("eth0", f"fd40::{i + 2}/64")
        ns.add_route(Route(gateway="10.40.0.1"))
        ns.add_route(Route(gateway="fd40::1"))
    nk.Namespace.current().write_sysctl("net.ipv4.ip_forward", "1")


def count_changes(injector: list[FaultInjector]) -> int:
    probe = FaultInjector(None)
    injector.append(probe)
    with Transaction(keep=False):
        build()
        total = probe.count
    injector.clear()
    return total


@pytest.mark.parametrize("after", [False, True], ids=["refused", "applied-then-failed"])
def test_fault_at_every_step_leaves_kernel_as_before(
        host: Namespace, injector: list[FaultInjector], after: bool) -> None:
    total = count_changes(injector)
    assert total >= 20
    before = snapshot(host)
    for k in range(1, total + 1):
        injector[:] = [FaultInjector(k, after=after)]
        with pytest.raises(InjectedFault, match=f"fault at change {k}$") as exc, Transaction():
            build()
        injector.clear()
        assert rollback_failures(exc.value) == []
        assert snapshot(host) == before, f"state differs after a fault at change {k} of {total}"


def test_success_keeps_or_tears_down(host: Namespace) -> None:
    before = snapshot(host)
    with Transaction() as tx:
        build()
    assert len(tx.undo_steps) == 0  # committed: nothing left to undo
    assert host.has_link("br-fi") and len(host.link("br-fi").name) > 0
    # Persistent build: tear it down explicitly, object by object.
    for i in range(3):
        Namespace.open(f"fi-{i}").adopt().remove()
    Bridge.open("br-fi").adopt().remove()
    host.write_sysctl("net.ipv4.ip_forward", "0")
    assert snapshot(host) == before
    with Transaction(keep=False) as tx:
        build()
        assert len(tx.undo_steps) > 10
    assert snapshot(host) == before


def test_nested_transaction_hands_changes_to_outer(host: Namespace) -> None:
    before = snapshot(host)
    with pytest.raises(RuntimeError), Transaction():
        with Transaction():
            Bridge("br-inner").create()
        assert host.has_link("br-inner")
        raise RuntimeError("outer fails")
    assert snapshot(host) == before


def test_original_error_is_raised_and_undo_failures_attached(host: Namespace) -> None:
    def bad_undo() -> None:
        raise OSError("undo broke")

    with pytest.raises(ValueError, match="the cause") as exc, Transaction() as tx:
        Bridge("br-att").create()
        tx.record("a step whose undo fails", bad_undo)
        raise ValueError("the cause")
    failures = rollback_failures(exc.value)
    assert len(failures) == 1 and "undo broke" in str(failures[0])
    assert any("rollback also failed" in n for n in exc.value.__notes__)
    assert not host.has_link("br-att")  # the other undo still ran


def test_rollback_keeps_going_and_treats_missing_as_done() -> None:
    j = Journal()
    ran: list[str] = []

    def gone() -> None:
        ran.append("gone")
        raise nk.NotFoundError("already gone")

    j.record("a", lambda: ran.append("a"))
    j.record("gone", gone)
    j.record("c", lambda: ran.append("c"))
    assert j.rollback() == []
    assert ran == ["c", "gone", "a"]


def test_explicit_rollback_and_commit(host: Namespace) -> None:
    with Transaction() as tx:
        Bridge("br-rb").create()
        tx.rollback()
        assert not host.has_link("br-rb")
        b = Bridge("br-cm").create()
        tx.commit()
    assert host.has_link("br-cm")
    b.remove()


def test_context_manager_objects_inside_transaction(host: Namespace) -> None:
    before = snapshot(host)
    with pytest.raises(KeyError), Transaction(), Namespace("tx-ctx") as ns, Bridge("br-ctx") as br:
        VethPair("vctx", "eth0", peer_namespace=ns, master=br).create()
        raise KeyError("boom")
    assert snapshot(host) == before


async def _async_build() -> None:
    async with Transaction(keep=False):
        Bridge("br-async-tx").create()


def test_async_with(host: Namespace) -> None:
    import asyncio

    asyncio.run(_async_build())
    assert not host.has_link("br-async-tx")
