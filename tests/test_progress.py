"""Progress of long work: (done, total) calls, monotonic, ending at the total; silent by default."""

from __future__ import annotations

import pytest

import netns_kit as nk
from netns_kit import Namespace, Topology


def _check(calls: list[tuple[int, int]]) -> int:
    """The calls start at 0, never go back, keep one total, and end at it; returns the total."""
    assert calls, "no progress reported"
    total = calls[0][1]
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done)
    return total


def _topology(n: int) -> Topology:
    topo = Topology("progress").bridge("br-prog", addresses=["10.63.0.1/24"], nat=True)
    for i in range(n):
        topo.endpoint(f"pg{i}", bridge="br-prog", address=f"10.63.0.{i + 2}/24", gateway="10.63.0.1",
                      publish=[f"{21000 + i}:80"] if i < 2 else ())
    return topo


def test_topology_build_and_teardown_report_progress(host: Namespace, capfd: pytest.CaptureFixture[str]) -> None:
    built: list[tuple[int, int]] = []
    removed: list[tuple[int, int]] = []
    topo = _topology(30)
    topo.create(progress=lambda d, t: built.append((d, t)))
    try:
        assert _check(built) == 30 + 1 + 30 + 1  # namespaces, bridge, endpoints, the published ports
        assert len(topo.namespaces()) == 30
    finally:
        topo.remove(progress=lambda d, t: removed.append((d, t)))
    assert _check(removed) >= 30  # every namespace and interface the batch removed
    assert not any(n.startswith("pg") for n in host.run(["ip", "netns", "list"]).stdout.split())
    assert capfd.readouterr() == ("", "")  # a callback draws nothing


def test_default_is_silent_and_true_draws_a_bar(host: Namespace, capfd: pytest.CaptureFixture[str]) -> None:
    with _topology(3):
        pass
    assert capfd.readouterr() == ("", "")
    topo = _topology(3)
    topo.create(progress=True)
    topo.remove(progress=True)
    err = capfd.readouterr().err
    assert "building progress" in err and "8/8" in err and "removing" in err and "7/7" in err


def test_removal_batch_and_network_removal_report_progress(host: Namespace) -> None:
    calls: list[tuple[int, int]] = []
    pairs = [nk.VethPair(f"vpg{i}", f"vpgp{i}").create() for i in range(20)]
    with nk.removal_batch(progress=lambda d, t: calls.append((d, t))):
        for p in pairs:
            p.remove()
    assert _check(calls) == 20
    assert not any(host.has_link(f"vpg{i}") for i in range(20))

    net = nk.Network("prognet", subnet="10.64.0.0/24").create()
    eps = [nk.Endpoint(f"pge{i}", mode=net).create() for i in range(5)]
    calls.clear()
    try:
        net.remove(force=True, progress=lambda d, t: calls.append((d, t)))
    finally:
        with nk.removal_batch():
            for ep in eps:
                ep.remove()
    assert _check(calls) == 5 + 1  # each endpoint disconnected, then the kernel batch
    assert not host.has_link(net.bridge)


def test_bad_progress_changes_nothing(host: Namespace) -> None:
    topo = _topology(2)
    with pytest.raises(nk.ValidationError, match="progress"):
        topo.create(progress="yes")  # type: ignore[arg-type]
    assert not topo.created and "pg0" not in host.run(["ip", "netns", "list"]).stdout
    with pytest.raises(nk.ValidationError, match="progress"), nk.removal_batch(progress=3):  # type: ignore[arg-type]
        pass
