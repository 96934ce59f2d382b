"""Lifecycle from the outside: removal batches around endpoints and their network, forced removal
and endpoint lookup, namespaces deleted behind the library's back, and the state root."""

from __future__ import annotations

import ipaddress
import os
import signal
import stat
import subprocess
import sys

import pytest
from snapshots import snapshot

import netns_kit as nk
from netns_kit import Namespace, _state, _sys


def _our_files() -> list[str]:
    """What netns_kit keeps on disk: every path under the state root but the lock files and the
    journal directory (the rendezvous of live processes), and /etc/netns with what is in it."""
    out: list[str] = []
    if os.path.lexists(_sys.ETC_NETNS_DIR):
        out.append(_sys.ETC_NETNS_DIR)
    for top in (_state.STATE_DIR, _sys.ETC_NETNS_DIR):
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                p = os.path.join(root, n)
                if not p.startswith((_state.locks_dir(), _state.journal_dir())):
                    out.append(p)
    return sorted(out)


@pytest.mark.parametrize("publish", [False, True])
@pytest.mark.parametrize("kind", ["endpoint", "connection"])
def test_removal_batch_around_endpoints_then_their_network(host: Namespace, kind: str, publish: bool) -> None:
    before = snapshot(host)
    files_before = _our_files()
    net = nk.Network("rbapp", subnet="10.93.0.0/24").create()
    ports = [f"{18080 + i}:80" for i in range(4)]
    eps: list[nk.Endpoint] = []
    spaces: list[Namespace] = []
    conns: list[nk.Connection] = []
    for i in range(4):
        pub = [ports[i]] if publish else []
        if kind == "endpoint":
            eps.append(nk.Endpoint(f"rbe{i}", nk.CustomMode(net), publish=pub).create())
        else:
            ns = Namespace(f"rbe{i}").create()
            spaces.append(ns)
            conns.append(net.connect(ns, publish=pub))
    assert os.path.exists("/etc/netns/rbe0/hosts")
    with nk.removal_batch():
        for ep in eps:
            ep.remove()
        for conn in conns:
            conn.disconnect()
        for ns in spaces:
            ns.remove()
        net.remove()
    assert not net.created
    assert snapshot(host) == before
    assert _our_files() == files_before


def _sigkilled_child(code: str) -> str:
    """Run ``code`` in a child Python, where ``KILL`` prints UP and SIGKILLs the child; return its output."""
    code = code.replace("KILL", "print('UP', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip().endswith("UP"), child.stderr
    return child.stdout


@pytest.mark.parametrize("how", ["ephemeral", "persistent-network-removed-by-hand"])
def test_recover_leaves_no_state_file_hosts_file_or_etc_netns(host: Namespace, how: str) -> None:
    before = snapshot(host)
    files_before = _our_files()
    assert not os.path.lexists(_sys.ETC_NETNS_DIR)  # the sandbox's /etc has none: netns_kit makes it
    if how == "ephemeral":
        _sigkilled_child("""
import os, signal, netns_kit as nk
with nk.Network("deadnet", subnet="10.94.0.0/24") as net, \\
        nk.Endpoint("dead1", nk.CustomMode(net), publish=["18090:80"]), nk.Endpoint("dead2", "deadnet"):
    KILL
""")
    else:  # explicit create(): kept on purpose, until someone removes the bridge
        _sigkilled_child("""
import os, signal, netns_kit as nk
net = nk.Network("deadnet", subnet="10.94.0.0/24").create()
for name in ("dead1", "dead2"):
    net.connect(nk.Namespace(name).create(), name=name)
KILL
""")
    state = _state.network_file(host.identity, "deadnet")
    assert os.path.exists(state) and os.path.isdir(state[: -len(".json")] + ".leases")
    assert os.listdir(_sys.HOSTS_RUN_DIR) and os.path.islink("/etc/netns/dead1/hosts")
    if how != "ephemeral":
        # a persistent network outlives its creator: recover() keeps what it needs
        kept = nk.recover()
        assert os.path.exists(state) and os.listdir(_sys.HOSTS_RUN_DIR), kept
        assert nk.Network.open("deadnet").subnet == ipaddress.ip_network("10.94.0.0/24")
        for name in ("dead1", "dead2"):  # the user cleans up by hand, as `ip` would
            subprocess.run(["ip", "netns", "del", name], check=True)
            os.unlink(f"/etc/netns/{name}/hosts")
            os.rmdir(f"/etc/netns/{name}")
        links = [link.name for link in host.links() if link.kind in ("bridge", "veth")]
        for name in links:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        host.run(["nft", "delete", "table", "inet", "netns_kit"], check=False)
    report = nk.recover()
    assert not report.failures, report.failures
    assert any("state file and leases of network deadnet" in line for line in report.undone), report
    assert any("shared hosts file" in line for line in report.undone), report
    assert snapshot(host)["named"] == before["named"]
    if how == "ephemeral":
        assert snapshot(host) == before
    assert _our_files() == files_before
    assert not os.path.lexists(_sys.ETC_NETNS_DIR)


def test_one_state_root_root_only_and_hosts_files_readable_in_the_namespaces(host: Namespace) -> None:
    unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    with nk.Network("rootnet", subnet="10.97.0.0/24") as net, nk.Endpoint("rn-a", nk.CustomMode(net)), \
            nk.Endpoint("rn-b", nk.CustomMode(net)) as b:
        hosts_dir = _sys.HOSTS_RUN_DIR
        assert os.path.dirname(hosts_dir) == _state.STATE_DIR == "/run/netns-kit"
        for d in (_state.STATE_DIR, hosts_dir, os.path.dirname(_state.network_file(host.identity, "x"))):
            st = os.lstat(d)
            assert stat.S_ISDIR(st.st_mode) and st.st_mode & 0o077 == 0 and st.st_uid == 0, d
        assert os.readlink("/etc/netns/rn-a/hosts").startswith(hosts_dir + "/")
        assert not os.path.exists("/run/netns_kit_hosts")
        # an unprivileged program in the namespace still reads its hosts file (the bind mount
        # over /etc/hosts is made as root), through Namespace.run and through `ip netns exec`
        res = b.run([*unprivileged, "getent", "hosts", "rn-a"])
        assert res.returncode == 0 and res.stdout.split()[0] == str(net.resolve("rn-a")), res
        res = subprocess.run(["ip", "netns", "exec", "rn-b", *unprivileged, "getent", "hosts", "rn-a"],
                             capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.split()[0] == str(net.resolve("rn-a")), res
        assert b.run(["ping", "-c1", "-W2", "rn-a"]).returncode == 0
