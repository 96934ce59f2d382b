"""Richer faults proven by traffic and kernel state: one-way and per-port partitions, packet loss
without netem, link flaps, the netem option set, and recover() after a SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace
from netns_kit.chaos import LinkFlap, PacketLoss, Partition
from netns_kit.harness import NetworkEmulation


def _star(n: int, prefix: str = "fl") -> list[Namespace]:
    """n namespaces on one bridge, 10.62.0.(i+2)/24."""
    br = nk.Bridge(f"br-{prefix}", addresses=["10.62.0.1/24"]).create()
    out = []
    for i in range(n):
        ns = nk.Namespace(f"{prefix}{i}").create()
        nk.VethPair(f"v{prefix}{i}", "eth0", peer_namespace=ns, master=br).create()
        ns.add_address("eth0", f"10.62.0.{i + 2}/24")
        out.append(ns)
    return out


def _tables(ns: Namespace) -> str:
    return ns.run(["nft", "list", "tables"]).stdout


def test_one_way_partition_drops_one_direction_only(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, b = _star(2)
        with serve(a, "0.0.0.0", 5000, "udp") as at_a, serve(b, "0.0.0.0", 5000, "udp") as at_b:
            with Partition(a, b, one_way=True) as p:
                connect(a, "10.62.0.3", 5000, proto="udp", timeout=0.5)   # a -> b: dropped
                connect(b, "10.62.0.2", 5000, proto="udp", timeout=0.5)   # b -> a: arrives (the reply does not)
                assert at_b.peers == []
                assert [ip for ip, _ in at_a.peers] == ["10.62.0.3"]
                assert connect(b, "10.62.0.2", 5000, proto="udp", timeout=0.5) is None  # a's answer is cut
                assert p.plan() == [("fl0", ["10.62.0.3"]), ("fl1", ["10.62.0.2"])]
            assert connect(a, "10.62.0.3", 5000, proto="udp") is not None
            assert [ip for ip, _ in at_b.peers] == ["10.62.0.2"]
            assert p.table not in _tables(a) and p.table not in _tables(b)


def test_partition_per_port_and_protocol(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, b = _star(2)
        with serve(b, "0.0.0.0", 80), serve(b, "0.0.0.0", 81), serve(a, "0.0.0.0", 80), \
                serve(b, "0.0.0.0", 53, "udp"), serve(b, "0.0.0.0", 53):
            with Partition(a, b, ports=[80]):
                assert connect(a, "10.62.0.3", 80, timeout=1) is None
                assert connect(b, "10.62.0.2", 80, timeout=1) is None
                assert connect(a, "10.62.0.3", 81) is not None
                assert connect(a, "10.62.0.3", 53, proto="udp") is not None
            assert connect(a, "10.62.0.3", 80) is not None
            with Partition(a, b, proto="udp", ports=[53]) as p:
                assert connect(a, "10.62.0.3", 53, proto="udp", timeout=1) is None
                assert connect(a, "10.62.0.3", 53) is not None  # TCP 53 passes
                assert any("meta l4proto udp th dport 53 drop" in c for c in p.commands())


def test_partition_bad_input() -> None:
    x, y = Namespace.current(), Namespace.current()
    for kwargs in ({"proto": "icmp"}, {"ports": [0]}, {"ports": "80"}, {"one_way": 1}):
        with pytest.raises(nk.ValidationError):
            Partition(x, y, **kwargs)


def _received(out: str) -> int:
    m = re.search(r"(\d+) received", out)
    assert m, out
    return int(m.group(1))


def test_packet_loss_without_netem(host: Namespace) -> None:
    n = 400
    with nk.Transaction(keep=False):
        a, _b = _star(2)
        with PacketLoss(a, 30, direction="egress") as loss:
            assert loss.table in _tables(a)
            out = a.run(["ping", "-q", "-n", "-c", str(n), "-i", "0.002", "-W", "1", "10.62.0.3"]).stdout
        got = _received(out)
        # 30 % of the echo requests dropped: 280 expected, sd = sqrt(400 * 0.3 * 0.7) = 9.2; +-6 sd
        assert 225 <= got <= 335, out
        assert loss.table not in _tables(a)
        assert _received(a.run(["ping", "-q", "-c", "20", "-i", "0.002", "-W", "1", "10.62.0.3"]).stdout) == 20
        with PacketLoss(a, 100, ifname="eth0", direction="ingress") as all_in:
            assert _received(a.run(["ping", "-q", "-c", "5", "-i", "0.002", "-W", "1", "10.62.0.3"]).stdout) == 0
            assert _received(a.run(["ping", "-q", "-c", "5", "-i", "0.002", "-W", "1", "127.0.0.1"]).stdout) == 5
            assert all_in.commands()[-1].endswith('prerouting iifname "eth0" drop')
        assert loss.commands()[-1].endswith('postrouting oifname != "lo" numgen random mod 10000 < 3000 drop')


def test_packet_loss_bad_input(host: Namespace) -> None:
    for percent in (0, 101, "5", True, float("nan")):
        with pytest.raises(nk.ValidationError):
            PacketLoss(host, percent)  # type: ignore[arg-type]
    with pytest.raises(nk.ValidationError):
        PacketLoss(host, 5, direction="sideways")  # type: ignore[arg-type]
    with nk.Namespace("fl-x") as x:
        with pytest.raises(nk.NotFoundError):
            PacketLoss(x, 5, ifname="nosuch").create()
        assert "netns_kit_loss" not in _tables(x)


def _monitor_states(out: str, ifname: str) -> list[bool]:
    """Admin state (UP flag) of each link message about ifname, consecutive repeats collapsed."""
    states: list[bool] = []
    for line in out.splitlines():
        m = re.search(rf"\d+: {ifname}(?:@\S+)?: <([^>]*)>", line)
        if m and not line.startswith("Deleted"):
            up = "UP" in m.group(1).split(",")
            if not states or states[-1] != up:
                states.append(up)
    return states


def test_link_flap_on_a_schedule(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, _b = _star(2)
        mon = a.popen(["ip", "-o", "monitor", "link"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)  # let the monitor subscribe (not an assertion on time)
            seen: list[bool] = []
            with LinkFlap(a, down=0.2, up=0.2, count=2, on_change=seen.append) as flap:
                assert flap.wait(timeout=30)
            assert seen == [False, True, False, True]
            assert [up for _, up in flap.changes] == [False, True, False, True]
            assert a.link("eth0").up
            time.sleep(0.3)
        finally:
            mon.terminate()
            out = mon.communicate(timeout=5)[0].decode()
        assert _monitor_states(out, "eth0") == [False, True, False, True]
        # stopped while down: the link is set up again
        with LinkFlap(a, "eth0", down=600, up=1) as long:
            while not long.changes:
                time.sleep(0.01)
            assert not a.link("eth0").up
        assert a.link("eth0").up and a.run(["ping", "-c1", "-W2", "10.62.0.3"]).returncode == 0
        assert long.changes[-1][1] is True


def test_link_flap_bad_input(host: Namespace) -> None:
    for kwargs in ({"down": 0}, {"up": -1}, {"count": 0}, {"on_change": 5}):
        with pytest.raises(nk.ValidationError):
            LinkFlap(host, "lo", **kwargs)  # type: ignore[arg-type]


def test_netem_full_option_set_validated_and_refused_clearly(host: Namespace) -> None:
    with pytest.raises(nk.ValidationError, match="reorder_percent needs a delay"):
        NetworkEmulation("eth0", reorder_percent=10)
    for kwargs in ({"duplicate_percent": 101}, {"corrupt_percent": -1}, {"rate": "fast"}, {"limit": 0},
                   {"reorder_gap": 2}, {"delay_ms": 10, "reorder_percent": 5, "reorder_gap": 0}):
        with pytest.raises(nk.ValidationError):
            NetworkEmulation("eth0", **kwargs)
    with nk.Transaction(keep=False):
        a, _b = _star(2)
        emu = NetworkEmulation("eth0", namespace=a, delay_ms=20, jitter_ms=5, loss_percent=1, duplicate_percent=2,
                               corrupt_percent=0.5, reorder_percent=25, reorder_gap=5, rate="10mbit")
        assert emu.commands() == ["ip netns exec fl0 tc qdisc add dev eth0 root netem delay 20ms 5ms loss 1% "
                                  "duplicate 2% corrupt 0.5% reorder 25% gap 5 rate 10mbit"]
        if subprocess.run(["sh", "-c", "grep -qw sch_netem /proc/modules || modinfo sch_netem"],
                          capture_output=True).returncode == 0:
            with emu:
                assert "netem" in a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
            return
        with pytest.raises(nk.UnsupportedError, match="netem"), emu:
            pass
        assert not emu.created and "netem" not in a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout


CHILD = r"""
import time
from netns_kit import Namespace
from netns_kit.chaos import LinkFlap, PacketLoss, Partition
from netns_kit.harness import BandwidthLimit
a, b = Namespace.open("fl0"), Namespace.open("fl1")
with Partition(a, b, one_way=True) as p, PacketLoss(a, 50) as loss, BandwidthLimit("eth0", "10mbit", namespace=b), \
        LinkFlap(a, "eth0", down=600) as flap:
    while not flap.changes:
        time.sleep(0.01)
    print("READY", p.table, loss.table, flush=True)
    time.sleep(600)
"""


def test_recover_undoes_faults_after_sigkill(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, b = _star(2)
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, env=dict(os.environ))
        assert child.stdout is not None
        line = child.stdout.readline().decode().split()
        assert line[0] == "READY", line
        part, loss = line[1], line[2]
        assert part in _tables(a) and loss in _tables(a) and part in _tables(b)
        assert not a.link("eth0").up and "tbf" in b.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        report = nk.recover()
        assert not report.failures, report.failures
        assert part not in _tables(a) and loss not in _tables(a) and part not in _tables(b)
        assert a.link("eth0").up and "tbf" not in b.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
        assert any("set eth0 up again" in u for u in report.undone)
        assert a.run(["ping", "-c1", "-W2", "10.62.0.3"]).returncode == 0


CHILD_PART = r"""
import time
from netns_kit import Namespace
from netns_kit.chaos import Partition
with Partition(Namespace.open("fl0"), Namespace.open("fl1")) as p:
    print("READY", p.table, flush=True)
    time.sleep(600)
"""


def test_recover_leaves_a_same_named_table_without_the_mark_alone(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, _b = _star(2)
        child = subprocess.Popen([sys.executable, "-c", CHILD_PART], stdout=subprocess.PIPE, env=dict(os.environ))
        assert child.stdout is not None
        line = child.stdout.readline().decode().split()
        assert line[0] == "READY", line
        table = line[1]
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        # someone else's table now has that name in fl0 (its rule carries no netns_kit mark)
        assert a.run(["nft", "delete", "table", "inet", table]).returncode == 0
        script = f"add table inet {table}\nadd chain inet {table} c\nadd rule inet {table} c accept\n"
        assert a.run(["nft", "-f", "-"], input=script).returncode == 0
        report = nk.recover()
        assert not report.failures, report.failures
        assert any(table in s and "does not carry the mark" in s for s in report.skipped), report.skipped
        assert table in _tables(a)
        assert table not in _tables(_b)  # the other namespace's table did carry the mark
        a.run(["nft", "delete", "table", "inet", table])
