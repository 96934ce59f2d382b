"""Crash recovery: a child building 50 endpoints is SIGKILLed at random points; recover() puts the
kernel back exactly as it was, and leaves persistent builds (made on purpose) untouched."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from snapshots import snapshot

import netns_kit as nk
from netns_kit import Bridge, Namespace, Route, Transaction, VethPair, _state, _sys
from netns_kit._netlink import OWNER_PROTO
from netns_kit.network import Network

N_ENDPOINTS = 50
N_KILLS = 20

CHILD = r"""
import sys
import netns_kit as nk
from netns_kit import Bridge, Namespace, Route, Transaction, VethPair
from netns_kit.network import Network
run, n = sys.argv[1], int(sys.argv[2])
print("START", flush=True)
Namespace(f"keep-{run}").create()              # persistent: explicit create, no transaction
print("KEPT", flush=True)
with Transaction():                             # kept only if it commits: it never does here
    host = nk.Namespace.current()
    host.write_sysctl("net.ipv4.ip_forward", "1")
    host.add_address("br-keep", f"10.88.{run}.1/32")   # on a link the child does not own
    br = Bridge(f"brc{run}", addresses=["10.77.0.1/16"]).create()
    net = Network(f"cn{run}", subnet="10.79.0.0/24").create()  # bridge + nft policy
    for i in range(n):
        ns = Namespace(f"c{run}-{i}").create()
        if i % 2:  # half on the network, each with a published port (nft map elements)
            net.connect(ns, publish=[f"{20000 + i}:80/tcp"])
        else:      # half by hand: veth on a bridge, address, route
            VethPair(f"vc{run}x{i}", "eth0", peer_namespace=ns, master=br).create()
            ns.add_address("eth0", f"10.77.1.{i + 2}/16")
            ns.add_route(Route(gateway="10.77.0.1"))
        print(f"E{i}", flush=True)
    with Bridge(f"bre{run}"):                   # ephemeral (context manager) inside
        print("BUILT", flush=True)
        import time
        time.sleep(60)
"""


def full_snapshot(host: Namespace) -> dict[str, object]:
    """snapshot() plus link aliases; IPv6 link-local addresses (they appear a while after a link
    comes up, on the kernel's own schedule) are left out."""
    snap = snapshot(host)
    snap["addresses"] = [a for a in snap["addresses"] if not a[1].startswith("fe80:")]  # type: ignore[attr-defined]
    snap["routes"] = [r for r in snap["routes"] if not r[0].startswith("fe80:")]  # type: ignore[attr-defined]
    snap["aliases"] = sorted((link.name, link.alias) for link in host.links())
    return snap


def journals() -> list[str]:
    try:
        return sorted(os.listdir(_state.journal_dir()))
    except FileNotFoundError:
        return []


def start_child(run: int) -> subprocess.Popen[str]:
    # started from the test thread, so the child inherits the test's host namespace
    return subprocess.Popen([sys.executable, "-c", CHILD, str(run), str(N_ENDPOINTS)],
                            stdout=subprocess.PIPE, text=True)  # stderr: shown by pytest


def test_sigkill_at_random_points_then_recover(host: Namespace) -> None:
    persistent = Bridge("br-keep", addresses=["10.99.0.1/24"]).create()  # made before, kept
    keep_ns = Namespace("keep-parent").create()
    VethPair("vkeep", "eth0", peer_namespace=keep_ns, master=persistent).create()
    keep_ns.add_address("eth0", "10.99.0.2/24")
    keep_net = Network("keepnet", subnet="10.98.0.0/24").create()  # with a published port
    keep_ep = Namespace("keep-ep").create()
    keep_net.connect(keep_ep, publish=["19999:80/tcp"])
    kept: set[str] = set()
    try:
        before = full_snapshot(host)
        own = set(journals())

        rng = random.Random(int(os.environ.get("NETNS_KIT_SEED", "5")))
        marks = ["START", "KEPT", *(f"E{i}" for i in range(N_ENDPOINTS)), "BUILT"]
        outcomes = []
        for run in range(N_KILLS):
            # kill at a random point: after a random progress line, plus up to ~one endpoint's time
            child = start_child(run)
            assert child.stdout is not None
            target = rng.choice(marks)
            seen = ""
            for line in child.stdout:
                seen += line
                if line.strip() == target:
                    break
            time.sleep(rng.uniform(0, 0.006))
            child.send_signal(signal.SIGKILL)
            out, _ = child.communicate()
            out = seen + out
            assert child.returncode == -signal.SIGKILL
            if "KEPT" in out:
                kept.add(f"keep-{run}")
            outcomes.append("BUILT" if "BUILT" in out else "KEPT" if "KEPT" in out else "early")
            report = nk.recover()
            assert not report.failures, report.failures
            if os.path.lexists(f"/run/netns/keep-{run}"):
                # killed after create() returned and before "KEPT" was printed: kept on purpose all
                # the same (recover() removes one whose creation did not finish); checked intact below
                kept.add(f"keep-{run}")
            after = full_snapshot(host)
            expected_named = sorted(set(before["named"]) | kept)  # type: ignore[call-overload]
            assert after["named"] == expected_named, (run, report)
            after["named"] = before["named"]
            if after["nft"] != before["nft"]:
                import difflib

                diff = "\n".join(difflib.unified_diff(str(before["nft"]).splitlines(), str(after["nft"]).splitlines(),
                                                     lineterm=""))
                pytest.fail(f"run {run} ({target}): nft ruleset differs\n{diff}\n{report}")
            assert after == before, (run, outcomes[-1], report)
            assert set(journals()) <= own  # the dead child's journal is gone
            # every kept namespace is intact, with its mark
            for name in kept:
                ns = Namespace.open(name)
                assert ns.link("lo").alias is not None and ns.link("lo").up

        # persistent builds survive, and recovery with nothing to do does nothing
        assert host.link("br-keep").alias == _state.mark()
        assert [str(a.interface) for a in keep_ns.addresses("eth0") if a.interface.version == 4] == ["10.99.0.2/24"]
        assert not nk.recover()
        assert "BUILT" in outcomes or "KEPT" in outcomes, outcomes
        print("kill outcomes:", {o: outcomes.count(o) for o in set(outcomes)})
        assert "19999" in host.run(["nft", "list", "table", "inet", "netns_kit"]).stdout
    finally:  # also when an assertion failed: nothing of this test may leak into the next ones
        for name in (f"keep-{run}" for run in range(N_KILLS)):  # what the children kept on purpose
            with contextlib.suppress(nk.NotFoundError):
                Namespace.open(name).adopt().remove()
        keep_net.remove(force=True)
        keep_ep.remove()
        keep_ns.remove()
        persistent.remove()


def test_recover_leaves_live_owners_and_foreign_objects_alone(host: Namespace) -> None:
    # a live process's ephemeral build is not touched
    child = subprocess.Popen([sys.executable, "-c", r"""
import sys, netns_kit as nk
with nk.Transaction(keep=False):
    nk.Bridge("br-live").create()
    print("UP", flush=True)
    sys.stdin.readline()
"""], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "UP"
    nk.recover()
    assert host.has_link("br-live")
    child.stdin.write("\n")
    child.stdin.flush()
    child.wait(10)
    assert not host.has_link("br-live")

    # a dead process's journal naming objects that now belong to someone else: left alone
    child = subprocess.Popen([sys.executable, "-c", r"""
import os, signal, netns_kit as nk
from netns_kit import Transaction, Bridge, Namespace
with Transaction():
    Bridge("br-reused").create()
    Namespace("ns-reused").create()
    print("UP", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""], stdout=subprocess.PIPE, text=True)
    child.communicate()
    # someone else (not netns_kit) takes the names before recovery runs
    host.rtnl().delete_link(host.link("br-reused").index)
    subprocess.run(["ip", "link", "add", "br-reused", "type", "bridge"], check=True)
    subprocess.run(["ip", "netns", "delete", "ns-reused"], check=True)
    subprocess.run(["ip", "netns", "add", "ns-reused"], check=True)
    report = nk.recover()
    assert host.has_link("br-reused")
    assert os.path.exists("/run/netns/ns-reused")
    assert len(report.skipped) == 2 and not report.undone, report
    subprocess.run(["ip", "netns", "delete", "ns-reused"], check=True)


def test_state_files_are_root_only(host: Namespace) -> None:
    with Transaction(keep=False):
        Bridge("br-perm").create()
        jdir = Path(_state.journal_dir())
        files = list(jdir.iterdir())
        assert files
        for p in [Path(_state.STATE_DIR), jdir, Path(_state.locks_dir()), *files,
                  *Path(_state.locks_dir()).iterdir()]:
            mode = p.stat().st_mode & 0o777
            assert mode & 0o077 == 0, (p, oct(mode))
            assert p.stat().st_uid == 0
        lines = [json.loads(x) for x in (jdir / f"{_state.owner_id()}.jsonl").read_text().splitlines()]
        assert any(rec.get("op") == "link" and rec["a"]["name"] == "br-perm" for rec in lines)


def test_zombie_owner_counts_as_dead(host: Namespace) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(0)"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    assert not _state.owner_alive(f"{child.pid}.{1}")
    child.wait()
    assert _state.owner_alive(_state.owner_id())


@pytest.mark.parametrize("keep", [True, False])
def test_transaction_outcomes_settle_the_disk_journal(host: Namespace, keep: bool) -> None:
    before = _pending_ids()  # an earlier test's rollback with a failed undo may have left some
    with Transaction(keep=keep):
        Namespace("t-settle").create()
        Bridge("br-settle", addresses=["10.5.0.1/24"]).create()
    pending = _pending_ops(before)
    assert pending == []
    if keep:
        Namespace.open("t-settle").adopt().remove()
        Bridge.open("br-settle").adopt().remove()


def _pending() -> dict[int, str]:
    path = Path(_state.journal_dir()) / f"{_state.owner_id()}.jsonl"
    if not path.exists():
        return {}
    entries: dict[int, str] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "i" in rec:
            entries[rec["i"]] = rec["op"]
        for k in ("done", "keep"):
            if k in rec:
                entries.pop(rec[k], None)
    return entries


def _pending_ids() -> set[int]:
    return set(_pending())


def _pending_ops(before: set[int] | frozenset[int] = frozenset()) -> list[str]:
    """The ops of this process's open journal entries, except those open at ``before``."""
    return [op for i, op in _pending().items() if i not in before]


def test_context_manager_builds_are_ephemeral_until_exit(host: Namespace) -> None:
    before = _pending_ids()
    with Bridge("br-cm"), Namespace("t-cm") as ns:
        VethPair("vcm", "eth0", peer_namespace=ns).create()  # explicit inside: kept at once
        assert sorted(_pending_ops(before)) == ["link", "netns"]
        ns.add_route(Route(dst="10.9.0.0/24", dev="eth0"))
    assert _pending_ops(before) == []


def test_with_blocks_of_networks_and_nat_rules_are_ephemeral(host: Namespace) -> None:
    """A process killed inside ``with Network(...)``/``with Namespace(...)``: recover() removes
    them (a ``with`` block promises removal at its end); a network made by create() stays."""
    before = full_snapshot(host)
    child = subprocess.Popen([sys.executable, "-c", r"""
import os, signal
from netns_kit import Namespace, Transaction
from netns_kit.modes import Endpoint
from netns_kit.network import Network
kept = Network("kept-net", subnet="10.97.0.0/24").create()
# connect() outside a transaction is a change of its own (kept); a transaction makes it ephemeral
with Network("cm-net", subnet="10.96.0.0/24") as net, Namespace("cm-ep") as ep, Transaction(keep=False):
    net.connect(ep, publish=["18080:80/tcp"])
    Endpoint("cm-e2", mode="none").__enter__()
    print("UP", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate()
    assert out.strip() == "UP"
    assert host.has_link("nk-cm-net")
    report = nk.recover()
    assert not report.failures, report.failures
    assert not host.has_link("nk-cm-net") and not os.path.exists("/run/netns/cm-ep")
    assert not os.path.exists("/run/netns/cm-e2")
    assert host.has_link("nk-kept-net")  # made by create(): kept on purpose
    nft = host.run(["nft", "list", "table", "inet", "netns_kit"]).stdout
    assert "18080" not in nft and "nk-kept-net" in nft
    # clean the kept network up by hand (its process is gone): adopt the bridge, sweep its elements
    Bridge.open("nk-kept-net").adopt().remove()
    from netns_kit.firewall import Firewall

    Firewall.for_namespace(host).recover_leftovers(everything=True)
    after = full_snapshot(host)
    assert after["links"] == before["links"] and after["nft"] == before["nft"]


def test_addresses_of_a_dead_process_come_back_once_its_endpoint_is_gone(host: Namespace) -> None:
    """A process connected to a shared network dies: its address stays taken while its veth is
    there, and comes back to the network once recover() has removed it."""
    net = nk.Network("reclaim", subnet="10.93.0.0/29").create()  # addresses .2-.6 to hand out
    child = subprocess.Popen([sys.executable, "-c", r"""
import os, signal, netns_kit as nk
net = nk.Network.open("reclaim")
with nk.Transaction(keep=False):
    c = net.connect(nk.Namespace("rc-child").create())
    print(c.address.ip, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=30)
    child_ip = out.strip()
    spaces = [nk.Namespace(f"rc{i}").create() for i in range(5)]
    try:
        got = [str(net.connect(ns).address.ip) for ns in spaces[:4]]
        assert child_ip not in got
        with pytest.raises(nk.ExhaustedError):  # the dead child's veth is still there
            net.connect(spaces[4])
        nk.recover()
        late = net.connect(spaces[4])
        assert str(late.address.ip) == child_ip
        assert spaces[4].run(["ping", "-c1", "-W2", str(net.gateway)]).returncode == 0
    finally:
        net.remove(force=True)
        for ns in spaces:
            ns.remove()


def test_a_dead_process_s_kept_endpoint_keeps_its_address(host: Namespace) -> None:
    net = nk.Network("keepaddr", subnet="10.94.0.0/29").create()
    child = subprocess.run([sys.executable, "-c", r"""
import netns_kit as nk
c = nk.Network.open("keepaddr").connect(nk.Namespace("rc-kept").create())  # kept on purpose
print(c.address.ip)
"""], capture_output=True, text=True, check=True, timeout=30)
    kept_ip = child.stdout.strip()
    spaces = [nk.Namespace(f"rk{i}").create() for i in range(5)]
    try:
        got = [str(net.connect(ns).address.ip) for ns in spaces[:4]]
        assert kept_ip not in got
        nk.recover()
        with pytest.raises(nk.ExhaustedError):  # its owner is gone, its endpoint is not
            net.connect(spaces[4])
    finally:
        net.remove(force=True)
        for ns in spaces:
            ns.remove()
        Namespace.open("rc-kept").adopt().remove()


def test_recover_removes_the_hosts_files_of_a_dead_process_s_namespaces(host: Namespace) -> None:
    child = subprocess.Popen([sys.executable, "-c", r"""
import os, signal, netns_kit as nk
with nk.Transaction(keep=False):
    net = nk.Network("hostsnet", subnet="10.95.0.0/24").create()
    for name in ("hf-one", "hf-two"):
        net.connect(nk.Namespace(name).create(), name=name)
    print("UP", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=30)
    assert out.strip() == "UP"
    assert os.path.exists("/etc/netns/hf-one/hosts") and os.path.exists("/etc/netns/hf-two/hosts")
    shared = {os.readlink(f"/etc/netns/{name}/{entry}") for name in ("hf-one", "hf-two")
              for entry in ("hosts", "resolv.conf")}
    assert len(shared) == 2 and all(os.path.exists(p) for p in shared)  # the network's hosts and resolv.conf
    os.makedirs("/etc/netns/hf-foreign", exist_ok=True)
    Path("/etc/netns/hf-foreign/hosts").write_text("127.0.0.1 somebody-else\n")  # not netns_kit's
    try:
        report = nk.recover()
        assert any("hf-one and its hosts file" in line for line in report.undone), report
        assert not os.path.lexists("/etc/netns/hf-one") and not os.path.lexists("/etc/netns/hf-two")
        assert not any(os.path.exists(p) for p in shared), report  # the dead writer's shared files too
        assert not _sys.drop_stale_hosts("hf-foreign")
        assert Path("/etc/netns/hf-foreign/hosts").read_text() == "127.0.0.1 somebody-else\n"
    finally:
        os.unlink("/etc/netns/hf-foreign/hosts")
        os.rmdir("/etc/netns/hf-foreign")


CRASH_CHILD = r"""
import os, signal, sys
import netns_kit as nk
from netns_kit import _state
from netns_kit._netlink import RtnlSocket
kind, when = sys.argv[1], sys.argv[2]
host = nk.Namespace.current()
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
with nk.Transaction():
    if when == "before-kernel":      # the intent is on disk, the kernel never hears of the change
        setattr(RtnlSocket, "add_" + kind, die)
    elif when == "before-confirm":   # the kernel acknowledged the change, the journal never says so
        _state.confirm = die
    if kind == "address":
        host.add_address("br-own", "10.66.0.5/32")
    else:
        host.add_route(nk.Route("10.67.0.0/24", gateway="10.66.0.254"))
    die()                            # after-confirm: a confirmed change of a process that died
"""
FOREIGN = {"address": (["ip", "addr", "add", "10.66.0.5/32", "dev", "br-own"],
                       ["ip", "addr", "del", "10.66.0.5/32", "dev", "br-own"]),
           "route": (["ip", "route", "add", "10.67.0.0/24", "via", "10.66.0.254"],
                     ["ip", "route", "del", "10.67.0.0/24", "via", "10.66.0.254"])}


def _crash_child(kind: str, when: str) -> None:
    child = subprocess.run([sys.executable, "-c", CRASH_CHILD, kind, when], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr


def _present(host: Namespace, kind: str) -> list[int]:
    """The owner mark (protocol) of each address/route the crash child tried to add, as the kernel has it."""
    if kind == "address":
        proto = host.rtnl().address_protocol(host.link("br-own").index, ipaddress.ip_interface("10.66.0.5/32"))
        return [] if proto is None else [proto]
    return [r.protocol for r in host.routes(4) if str(r.dst) == "10.67.0.0/24"]


@pytest.mark.parametrize("kind", ["address", "route"])
def test_crash_between_the_kernel_ack_and_the_confirmation_is_recovered(host: Namespace, kind: str) -> None:
    """SIGKILL after the kernel added the address/route and before the journal confirmed it: the
    object carries netns_kit's mark, so recover() knows it is the dead process's and deletes it."""
    own = Bridge("br-own", addresses=["10.66.0.1/24"]).create()  # a live owner's link, kept
    try:
        before = full_snapshot(host)
        _crash_child(kind, "before-confirm")
        assert _present(host, kind) == [OWNER_PROTO]  # in the kernel, marked; the journal has no "ok"
        report = nk.recover()
        assert not report.failures and not report.skipped, report
        assert any(("10.66.0.5/32" if kind == "address" else "10.67.0.0/24") in u for u in report.undone), report
        assert _present(host, kind) == []
        assert full_snapshot(host) == before
        assert not nk.recover()
    finally:
        own.remove()


@pytest.mark.parametrize("when", ["before-kernel", "after-confirm"])
@pytest.mark.parametrize("kind", ["address", "route"])
def test_a_same_looking_address_or_route_of_someone_else_survives_recovery(host: Namespace, kind: str,
                                                                          when: str) -> None:
    """A dead process's journal names an address/route; by the time recover() runs, the one in the
    kernel is someone else's (added by `ip`, without netns_kit's mark): it is left alone, confirmed
    entry or not, and the report says why."""
    own = Bridge("br-own", addresses=["10.66.0.1/24"]).create()
    add, delete = FOREIGN[kind]
    try:
        _crash_child(kind, when)
        if when == "after-confirm":  # the dead process's own is replaced by someone else's
            assert _present(host, kind) == [OWNER_PROTO]
            subprocess.run(delete, check=True)
        else:
            assert _present(host, kind) == []
        subprocess.run(add, check=True)
        foreign = _present(host, kind)
        assert foreign and OWNER_PROTO not in foreign
        report = nk.recover()
        assert not report.failures and not report.undone, report
        assert len(report.skipped) == 1 and "owner mark" in report.skipped[0], report
        assert _present(host, kind) == foreign  # still there, still someone else's
        subprocess.run(delete, check=True)
    finally:
        own.remove()
