"""Topology files on the kernel: built from YAML and from a containerlab file, checked by TCP;
a bad file, or one the kernel refuses halfway, leaves nothing behind."""

from __future__ import annotations

import pathlib
import shutil
import signal
import subprocess
import sys

import pytest
from snapshots import snapshot
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace
from netns_kit.testing import named_namespaces
from netns_kit.topofile import parse_topology
from netns_kit.topology import Topology

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _qdisc(ns: str, ifname: str) -> str:
    return subprocess.run(["tc", "-n", ns, "qdisc", "show", "dev", ifname], capture_output=True, text=True,
                          check=True).stdout


def _state(host: Namespace) -> tuple[list[str], set[str]]:
    return sorted(link.name for link in host.links()), set(named_namespaces())


def test_build_from_yaml_file(host: Namespace) -> None:
    before = _state(host)
    topo = Topology.load(EXAMPLES / "lab.yaml")
    with topo:
        ns = topo.namespaces()
        assert sorted(ns) == ["backup", "db", "web"]
        with serve(ns["web"], "0.0.0.0", 80):
            assert connect(ns["db"], "10.52.0.2", 80) == "hello from web\n"      # over the bridge
            assert connect(host, "10.52.0.1", 8080) == "hello from web\n"        # through the published port
        with serve(ns["db"], "10.53.0.1", 5432):
            assert connect(ns["backup"], "10.53.0.1", 5432) == "hello from db\n"  # over the link
        assert connect(ns["backup"], "10.52.0.2", 80) is None                      # the link is not routed on
        assert " tbf " in _qdisc("backup", "eth1") and "rate 20Mbit" in _qdisc("backup", "eth1")
        assert "br-lab" in [link.name for link in host.links()]
    assert _state(host) == before


def test_build_from_containerlab_file(host: Namespace) -> None:
    before = _state(host)
    with Topology.load(EXAMPLES / "lab.clab.yml") as topo:
        ns = topo.namespaces()
        with serve(ns["r2"], "0.0.0.0", 179):
            assert connect(ns["r1"], "10.54.0.2", 179) == "hello from r2\n"   # point-to-point r1:eth1 - r2:eth1
            assert connect(ns["r3"], "10.55.0.2", 179) == "hello from r2\n"   # both on bridge br-clab
        addrs = {(a.ifname, str(a.interface)) for a in ns["r2"].addresses()}
        assert {("eth1", "10.54.0.2/30"), ("eth2", "10.55.0.2/24")} <= addrs
        assert {link.name: link.master is not None for link in host.links()}.get("r3-eth1") is True
    assert _state(host) == before


def test_bad_file_changes_nothing(host: Namespace, tmp_path: pathlib.Path) -> None:
    before = _state(host)
    text = (EXAMPLES / "lab.yaml").read_text()
    for bad, field in ((text.replace("gateway: 10.52.0.1", "gateway: 10.99.0.1", 1), "endpoints.web"),
                       (text.replace("    rate: 20mbit", "    rate: 20 furlongs"), "impairments[0].rate"),
                       (text.replace("address: 10.52.0.3/24", "adress: 10.52.0.3/24"), "endpoints.db.adress")):
        path = tmp_path / "bad.yaml"
        path.write_text(bad)
        with pytest.raises(nk.TopologyFileError) as info:
            Topology.load(path).create()
        assert info.value.field == field and info.value.source == str(path)
        assert _state(host) == before


def test_kernel_refusal_halfway_rolls_back(host: Namespace) -> None:
    """A valid file whose build the kernel refuses at its last veth: everything made before is undone."""
    squatter = nk.VethPair("r3-eth1", "squat-peer").create()   # takes the host-side name of the last link
    try:
        before = _state(host)
        topo = Topology.load(EXAMPLES / "lab.clab.yml")
        with pytest.raises(nk.AlreadyExistsError):
            topo.create()
        assert _state(host) == before
        assert not topo.created
    finally:
        squatter.remove()


def test_impairment_with_netem(host: Namespace) -> None:
    """delay/loss need sch_netem: installed where the kernel has it, else a clear error and nothing left."""
    spec = parse_topology("name: n\nlinks: [{endpoints: ['na:e0', 'nb:e0'], addresses: [10.56.0.1/30, 10.56.0.2/30]}]\n"
                          "impairments: [{interface: 'na:e0', delay_ms: 5, loss_percent: 0}]")
    before = _state(host)
    topo = Topology.from_spec(spec)
    try:
        topo.create()
    except nk.UnsupportedError as exc:
        assert "netem" in str(exc)
        assert _state(host) == before
        return
    try:
        assert " netem " in _qdisc("na", "e0") and "delay 5" in _qdisc("na", "e0")
        assert shutil.which("tc")
    finally:
        topo.remove()
    assert _state(host) == before


CRASH_CHILD = r"""
import os, signal, sys
from netns_kit import Transaction
from netns_kit.topology import Topology
topo = Topology.load(sys.argv[1]).link("host:vcrash", "r1:eth7", addresses=["10.57.0.1/30", "10.57.0.2/30"])
topo.impair("host:vcrash", rate="5mbit")
with Transaction(keep=False):                   # kept only if it ends: the process dies inside
    topo.create()
    print("BUILT", flush=True)
    sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_recover_after_sigkill_removes_a_loaded_topology(host: Namespace) -> None:
    """A process that built a containerlab file (plus a link to the host with a qdisc) inside a
    transaction is SIGKILLed there; recover() removes its namespaces, bridge and host-side veths
    (the qdisc goes with its veth), and the host is as before."""
    before = snapshot(host)
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(EXAMPLES / "lab.clab.yml")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "BUILT"
    assert {"br-clab", "vcrash", "r2-eth2", "r3-eth1"} <= {link.name for link in host.links()}
    assert " tbf " in subprocess.run(["tc", "qdisc", "show", "dev", "vcrash"], capture_output=True, text=True,
                                     check=True).stdout
    child.communicate("\n")                      # it kills itself inside the transaction
    assert child.returncode == -signal.SIGKILL
    report = nk.recover()
    assert not report.failures, report.failures
    assert snapshot(host) == before
