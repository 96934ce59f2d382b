"""Crash safety of the firewall: a process killed mid-way leaves nothing that recovery does not undo."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from nat_env import world

from netns_kit import Namespace
from netns_kit._recovery import recover
from netns_kit.firewall import Firewall

ROOT = pathlib.Path(__file__).resolve().parent.parent

HEAD = """
import ipaddress, os, signal
from netns_kit import Namespace, Transaction
from netns_kit.firewall import Firewall, NetworkPolicy
from netns_kit.nat import PublishedPort
fw = Firewall.for_namespace(Namespace.current())
"""
KEPT = """
# kept on purpose: no transaction (a persistent network)
fw.attach_network(NetworkPolicy("br1", (ipaddress.ip_network("10.1.0.0/24"),)))
fw.publish(PublishedPort.parse("8081:80", container_ip="10.1.0.2", bridge="br1"))
"""
EPHEMERAL = """
# ephemeral: inside a transaction that never ends
Transaction().__enter__()
fw.attach_network(NetworkPolicy("br2", (ipaddress.ip_network("10.2.0.0/24"),), icc=False))
fw.publish(PublishedPort.parse("8082:80", container_ip="10.2.0.2", bridge="br2"))
print(fw.describe(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
CHILD = HEAD + KEPT + EPHEMERAL


def table(host: Namespace) -> str:
    return host.run(["nft", "list", "table", "inet", "netns_kit"]).stdout


def test_killed_process_ephemeral_changes_recovered_kept_ones_stay(host: Namespace) -> None:
    with world(host) as w:
        w.add_net(1)
        w.add_net(2)
        host.write_sysctl("net.ipv4.ip_forward", "0")
        out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == -9, out.stderr
        assert "8082" in out.stdout and "8081" in out.stdout
        left = table(host)
        assert "8082" in left and '"br2"' in left
        report = recover()
        assert any("nft element" in u for u in report.undone), report
        left = table(host)
        assert "8082" not in left and '"br2"' not in left  # the ephemeral network and its port: undone
        assert "8081" in left and '"br1"' in left  # the kept ones: still there
        assert host.read_sysctl("net.ipv4.ip_forward") == "1"  # the kept network needed it
        # a clean slate on request: everything marked by dead processes
        fw = Firewall.for_namespace(host)
        assert fw.recover_leftovers(everything=True) > 0
        assert host.run(["nft", "list", "table", "inet", "netns_kit"]).returncode != 0


def test_killed_process_sysctls_put_back(host: Namespace) -> None:
    with world(host) as w:
        w.add_net(2)
        host.write_sysctl("net.ipv4.ip_forward", "0")
        out = subprocess.run([sys.executable, "-c", HEAD + EPHEMERAL], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == -9, out.stderr
        assert host.read_sysctl("net.ipv4.ip_forward") == "1"
        assert host.read_sysctl("net.ipv4.conf.br2.route_localnet") == "1"
        fw = Firewall.for_namespace(host)
        assert fw.recover_leftovers() > 0  # the same recovery, from the firewall's side
        assert host.read_sysctl("net.ipv4.ip_forward") == "0"
        assert host.read_sysctl("net.ipv4.conf.br2.route_localnet") == "0"
        assert host.run(["nft", "list", "table", "inet", "netns_kit"]).returncode != 0
