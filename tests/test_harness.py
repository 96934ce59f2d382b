"""Harness helpers on the real kernel: servers inside namespaces, bandwidth limits, netem."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Literal

import pytest

import netns_kit as nk
from netns_kit import Namespace
from netns_kit.harness import BandwidthLimit, NetworkEmulation, Process, parse_rate, wait_for_port

SERVER = [sys.executable, "-c", (
    "import socket,sys\n"
    "s=socket.create_server(('0.0.0.0',int(sys.argv[1])))\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'hi'); c.close()\n"), "9100"]


def _pair(host: Namespace) -> tuple[nk.Namespace, nk.Namespace]:
    a = nk.Namespace("h-a").create()
    b = nk.Namespace("h-b").create()
    nk.VethPair("eth0", "eth0", namespace=a, peer_namespace=b).create()
    a.add_address("eth0", "10.50.0.1/24")
    b.add_address("eth0", "10.50.0.2/24")
    return a, b


def test_parse_rate() -> None:
    assert parse_rate("10mbit") == 10_000_000
    assert parse_rate("1.5kbit") == 1500
    assert parse_rate("1mbps") == 8_000_000
    assert parse_rate(64000) == 64000
    for bad in ("fast", "-1mbit", 0, True, "10 furlongs", "1000gbit"):
        with pytest.raises(nk.ValidationError):
            parse_rate(bad)


def test_process_serves_then_stops(host: Namespace) -> None:
    with nk.Namespace("h-srv") as ns, Process(ns, SERVER) as srv:
        waited = srv.wait_for_port(9100)
        assert srv.running and waited is srv
        with ns.enter():
            c = socket.create_connection(("127.0.0.1", 9100), timeout=2)
        assert c.recv(2) == b"hi"
        c.close()
        # the host's own loopback does not see it: the server lives in ns
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", 9100), timeout=0.5)
        pid = srv.pid
    assert not srv.running
    with pytest.raises(ProcessLookupError):
        import os
        os.kill(pid, 0)


def test_wait_for_port_reports_an_exited_process(host: Namespace) -> None:
    with nk.Namespace("h-bad") as ns, Process(ns, [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]) as p:
        with pytest.raises(nk.StateError, match="boom"):
            p.wait_for_port(9100, timeout=5)
        assert p.returncode == 3


def test_wait_for_port_times_out(host: Namespace) -> None:
    with nk.Namespace("h-none") as ns, pytest.raises(TimeoutError):
        wait_for_port(ns, 9101, timeout=0.3)


def test_processes_stop_when_their_namespace_goes(host: Namespace) -> None:
    ns = nk.Namespace("h-gone").create()
    p = Process(ns, ["sleep", "300"]).start()
    raw = ns.popen(["sleep", "300"])  # started through the library too
    ns.remove()
    assert not p.running
    assert raw.poll() is not None


def test_process_in_transaction_is_stopped_on_rollback(host: Namespace) -> None:
    with pytest.raises(RuntimeError), nk.Transaction():
        ns = nk.Namespace("h-tx").create()
        p = Process(ns, ["sleep", "300"]).start()
        raise RuntimeError("fail")
    assert not p.running


def _transfer_seconds(a: Namespace, b: Namespace, size: int) -> float:
    with b.enter():
        srv = socket.create_server(("10.50.0.2", 9200))
    got = []

    def sink() -> None:
        conn, _ = srv.accept()
        n = 0
        while chunk := conn.recv(65536):
            n += len(chunk)
        got.append(n)
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    with a.enter():
        cli = socket.create_connection(("10.50.0.2", 9200), timeout=10)
    start = time.monotonic()
    cli.sendall(b"x" * size)
    cli.close()
    t.join(30)
    srv.close()
    assert got == [size]
    return time.monotonic() - start


@pytest.mark.parametrize("kind", ["tbf", "htb"])
def test_bandwidth_limit_slows_traffic_then_lifts(host: Namespace, kind: Literal["tbf", "htb"]) -> None:
    with nk.Transaction(keep=False):
        a, b = _pair(host)
        size = 400_000  # 3.2 Mbit: ~1.6 s at 2 Mbit/s, milliseconds without the limit
        fast = _transfer_seconds(a, b, size)
        with BandwidthLimit("eth0", "2mbit", namespace=a, kind=kind) as lim:
            shown = a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
            shown += a.run(["tc", "class", "show", "dev", "eth0"]).stdout
            assert kind in shown and "2Mbit" in shown, shown
            slow = _transfer_seconds(a, b, size)
            assert lim.commands()[0].startswith("ip netns exec h-a tc qdisc add dev eth0 root")
        assert kind not in a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
        again = _transfer_seconds(a, b, size)
    assert slow > 1.0 and slow < 4.0, (fast, slow)
    assert fast < 0.5 and again < 0.5, (fast, slow, again)


def test_bandwidth_limit_undone_by_transaction(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, _ = _pair(host)
        with pytest.raises(RuntimeError), nk.Transaction():
            BandwidthLimit("eth0", "1mbit", namespace=a).create()
            raise RuntimeError("fail")
        assert "tbf" not in a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout


def _kernel_has_netem() -> bool:
    out = subprocess.run(["sh", "-c", "grep -qw sch_netem /proc/modules || modinfo sch_netem"],
                         capture_output=True)
    return out.returncode == 0


def test_netem_is_refused_clearly_where_the_kernel_lacks_it(host: Namespace) -> None:
    with nk.Transaction(keep=False):
        a, _ = _pair(host)
        emu = NetworkEmulation("eth0", namespace=a, delay_ms=50, loss_percent=1)
        assert emu.commands() == ["ip netns exec h-a tc qdisc add dev eth0 root netem delay 50ms loss 1%"]
        if _kernel_has_netem():
            with emu:
                out = a.run(["ping", "-c1", "-W2", "10.50.0.2"]).stdout
                assert "time=" in out
            return
        with pytest.raises(nk.UnsupportedError, match="netem"):
            emu.create()
        assert not emu.created
        assert "netem" not in a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout


def test_netem_validation() -> None:
    with pytest.raises(nk.ValidationError):
        NetworkEmulation("eth0", loss_percent=101)
    with pytest.raises(nk.ValidationError):
        NetworkEmulation("eth0", jitter_ms=5)
