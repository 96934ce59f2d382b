"""The pytest plugin's fixtures: a network and endpoints per test, undone even when the test fails."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

from traffic import connect, serve

from netns_kit import ContainerMode, Endpoint, Namespace, Network
from netns_kit.chaos import Partition
from netns_kit.harness import Process
from netns_kit.pytest_plugin import EndpointFactory
from netns_kit.testing import named_namespaces


def test_endpoints_on_the_test_network_talk(netns_host: Namespace, netns_network: Network,
                                            netns_endpoints: EndpointFactory) -> None:
    a, b = netns_endpoints(2)
    assert isinstance(a, Endpoint) and a.created
    assert a.address is not None and b.address is not None
    assert a.address in netns_network.subnet and b.address in netns_network.subnet
    with serve(b.namespace, "0.0.0.0", 7100):
        assert connect(a.namespace, str(b.address), 7100) == f"hello from {b.namespace.label}\n"


def test_partition_between_endpoints(netns_endpoints: EndpointFactory) -> None:
    a, b, c = netns_endpoints(3)
    with serve(b.namespace, "0.0.0.0", 7100), serve(c.namespace, "0.0.0.0", 7100):
        with Partition([a], [b]):
            assert connect(a.namespace, str(b.address), 7100, timeout=0.5) is None
            assert connect(a.namespace, str(c.address), 7100) is not None
        assert connect(a.namespace, str(b.address), 7100) is not None


INNER = '''
from netns_kit.harness import Process

def test_fails_halfway(netns_network, netns_endpoints):
    eps = netns_endpoints(2)
    p = Process(eps[0].namespace, ["sleep", "300"]).start()
    with open("PIDFILE", "w") as f:
        f.write(str(p.pid))
    assert False, "this test fails on purpose"
'''


def test_fixtures_undo_everything_when_the_test_fails(netns_host: Namespace, tmp_path: pathlib.Path) -> None:
    pidfile = tmp_path / "pid"
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER).replace("PIDFILE", str(pidfile)))
    before = named_namespaces()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 1 and "1 failed" in res.stdout, res.stdout + res.stderr
    assert "this test fails on purpose" in res.stdout
    pid = int(pidfile.read_text())
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in pathlib.Path(f"/proc/{pid}/status").read_text()
    assert named_namespaces() == before


def test_process_in_an_endpoint_stops_with_it(netns_endpoints: EndpointFactory) -> None:
    (ep,) = netns_endpoints(1)
    proc = Process(ep.namespace, ["sleep", "300"]).start()
    ep.remove()
    assert not proc.running


def test_rich_reprs_of_network_and_endpoint(netns_network: Network, netns_endpoints: EndpointFactory) -> None:
    (ep,) = netns_endpoints(1, publish=["8081:80/tcp"])
    html = netns_network._repr_html_()
    assert f"Network {netns_network.name}" in html and "<table" in html
    assert str(ep.address) in html and "8081" in html and netns_network.bridge in html
    eh = ep._repr_html_()
    assert f"Endpoint {ep.name}" in eh and "eth0" in eh and str(ep.address) in eh


def _timed_copy(src: Namespace, dst: Namespace, ip: str, size: int = 300_000) -> float:
    """Send ``size`` bytes from src to a sink in dst; seconds taken."""
    import socket
    import threading
    import time

    with dst.enter():
        srv = socket.create_server(("0.0.0.0", 7200))
    got: list[int] = []

    def sink() -> None:
        conn, _ = srv.accept()
        n = 0
        while chunk := conn.recv(65536):
            n += len(chunk)
        got.append(n)
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    with src.enter():
        cli = socket.create_connection((ip, 7200), timeout=10)
    start = time.monotonic()
    cli.sendall(b"x" * size)
    cli.close()
    t.join(30)
    srv.close()
    assert got == [size]
    return time.monotonic() - start


def test_endpoint_limit_both_directions(netns_endpoints: EndpointFactory) -> None:
    from netns_kit.harness import EndpointLimit

    a, b = netns_endpoints(2)
    ip_a, ip_b = str(a.address), str(b.address)
    fast_up = _timed_copy(a.namespace, b.namespace, ip_b)
    with EndpointLimit(a, upload="2mbit", download="4mbit") as lim:
        assert len(lim.commands()) == 2
        up = _timed_copy(a.namespace, b.namespace, ip_b)      # a sends: its eth0 qdisc (2 Mbit/s)
        down = _timed_copy(b.namespace, a.namespace, ip_a)    # a receives: the host end (4 Mbit/s)
    again = _timed_copy(a.namespace, b.namespace, ip_b)
    assert 0.8 < up < 3.0 and 0.35 < down < 1.5 and down < up, (up, down)
    assert fast_up < 0.3 and again < 0.3, (fast_up, again)


def test_processes_go_with_their_endpoint_in_every_mode(netns_endpoints: EndpointFactory) -> None:
    (owner,) = netns_endpoints(1)
    (hostmode,) = netns_endpoints(1, mode="host")
    (shared,) = netns_endpoints(1, mode=ContainerMode(owner))
    procs = {ep.mode.kind: Process(ep, ["sleep", "300"]).start() for ep in (hostmode, shared)}
    raw = shared.popen(["sleep", "300"])
    hostmode.remove()
    shared.remove()          # the namespace lives on (owner still uses it), its processes do not
    assert owner.namespace.exists
    assert not procs["host"].running and not procs["container"].running and raw.poll() is not None
