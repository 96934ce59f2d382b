"""Rootless mode: the pytest plugin's fixtures without root, and the clear error at the machine's edge.

These tests carry the ``rootless`` marker: besides running as root in the sandbox with the rest of
the suite, they run as an unprivileged user (``scripts/test.sh`` runs them as uid 65534 through
``scripts/unprivileged.sh``). There the ``netns_host`` fixture finds the capabilities missing and
enters rootless mode (a user namespace of the test process's own), and everything below is built
inside it: a network with endpoints, NAT between them and an outside namespace, a partition.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from outside_world import HOST_IP, OUTSIDE_IP, outside_world
from traffic import connect, serve

from netns_kit import Namespace, Network
from netns_kit.chaos import Partition
from netns_kit.pytest_plugin import EndpointFactory
from netns_kit.testing import rootless_mode

pytestmark = pytest.mark.rootless

STARTED_AS_ROOT = os.geteuid() == 0  # read at collection, before any fixture could enter a user namespace
ROOT = Path(__file__).resolve().parent.parent


def test_the_fixtures_enter_rootless_mode_exactly_when_unprivileged(netns_host: Namespace) -> None:
    mode = rootless_mode()
    assert (mode is not None) == (not STARTED_AS_ROOT)
    if mode is not None:  # unprivileged: root inside a user namespace of this process's own
        assert mode.uid != 0 and os.geteuid() == 0
        assert Path("/proc/self/uid_map").read_text().split() == ["0", str(mode.uid), "1"]
    assert [link.name for link in netns_host.links()] == ["lo"]


def test_endpoints_talk_and_nat_works_both_ways(netns_host: Namespace, netns_network: Network,
                                                netns_endpoints: EndpointFactory) -> None:
    web, = netns_endpoints(1, publish=["8080:80"])
    client, = netns_endpoints(1)
    assert web.address is not None and client.address is not None
    with outside_world(netns_host) as out:
        with serve(web.namespace, "0.0.0.0", 80) as srv:
            # endpoint to endpoint, on the bridge
            assert connect(client.namespace, str(web.address), 80) == f"hello from {web.namespace.label}\n"
            assert srv.peers[-1][0] == str(client.address)
            # the outside world to a published port: DNAT, the client's own address seen
            assert connect(out, HOST_IP, 8080) == f"hello from {web.namespace.label}\n"
            assert srv.peers[-1][0] == OUTSIDE_IP
        with serve(out, OUTSIDE_IP, 9000) as far:
            # an endpoint to the outside world: masquerade (the outside has no route back to the subnet)
            assert connect(client.namespace, OUTSIDE_IP, 9000) == f"hello from {out.label}\n"
            assert far.peers[-1][0] == HOST_IP
    assert netns_host.read_sysctl("net.ipv4.ip_forward") == "1"


def test_a_partition_cuts_and_heals(netns_endpoints: EndpointFactory) -> None:
    a, b, c = netns_endpoints(3)
    with serve(b.namespace, "0.0.0.0", 7100), serve(c.namespace, "0.0.0.0", 7100):
        with Partition([a], [b]):
            assert connect(a.namespace, str(b.address), 7100, timeout=0.5) is None
            assert connect(a.namespace, str(c.address), 7100) is not None
        assert connect(a.namespace, str(b.address), 7100) is not None


EDGE = textwrap.dedent('''
    import os, threading
    import netns_kit as nk
    from netns_kit.testing import enter_rootless

    gate = threading.Event()
    t = threading.Thread(target=gate.wait)
    t.start()
    try:
        enter_rootless()
    except nk.RootlessError as e:
        print("threads:", e)
    gate.set(); t.join()

    kept = os.open("/proc/self/ns/net", os.O_RDONLY)  # the network the process started in: the machine's
    mode = enter_rootless()
    print("entered:", os.getuid() == 0)
    machine = nk.Namespace.from_path(f"/proc/self/fd/{kept}")
    try:
        nk.Bridge("br-machine", namespace=machine).create()
    except nk.RootlessError as e:
        print("bridge:", type(e).__name__, isinstance(e, PermissionError), e)
    try:
        nk.Namespace.from_pid(os.getppid()).links()  # another process's network, outside
    except nk.RootlessError as e:
        print("parent:", type(e).__name__)
    with nk.Bridge("br-own", addresses=["10.99.0.1/24"]) as br:  # its own network is its to change
        print("own:", [link.name for link in nk.Namespace.current().links()])
    print("private:", sorted(os.listdir("/run/netns")), os.listdir("/etc/netns"))
''')


def test_touching_the_machine_is_a_clear_rootless_error() -> None:
    before = Path("/proc/self/ns/net").stat().st_ino
    res = subprocess.run([sys.executable, "-c", EDGE], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = dict(line.split(": ", 1) for line in res.stdout.splitlines())
    assert "threads; a process enters a user namespace only while it has one" in lines["threads"]
    assert lines["entered"] == "True"
    assert lines["bridge"].startswith("RootlessError True ")
    assert "belongs to the machine, outside this process's user namespace" in lines["bridge"]
    assert lines["parent"] == "RootlessError"
    assert lines["own"] == "['lo', 'br-own']"
    assert lines["private"] == "[] []"
    # this process's own network is untouched
    assert Path("/proc/self/ns/net").stat().st_ino == before
    assert "br-machine" not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
