"""Lifecycle from the outside: removal batches around endpoints and their network, forced removal
and endpoint lookup, namespaces deleted behind the library's back, and the state root."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from snapshots import snapshot
from traffic import connect, serve

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
    made_etc_netns = not os.path.lexists(_sys.ETC_NETNS_DIR)  # then netns_kit makes it, and must take it away
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
            os.unlink(f"/etc/netns/{name}/resolv.conf")
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
    if made_etc_netns:
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


def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _netns_of(pid: int) -> tuple[int, int] | None:
    try:
        return _sys.stat_identity(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _nft_elements(host: Namespace) -> str:
    """The elements of netns_kit's table that name an endpoint address (DNAT and hairpin)."""
    return host.run(["nft", "list", "table", "inet", "netns_kit"]).stdout


@pytest.mark.parametrize("held", [False, True])
@pytest.mark.parametrize("variant", ["endpoint", "network", "connection"])
def test_namespace_deleted_behind_the_library_s_back(host: Namespace, variant: str, held: bool,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """``ip netns del`` before Endpoint.remove, Network.remove or Connection.disconnect; ``held``: a
    process outside netns_kit keeps the namespace (and so the host end of the veth) alive."""
    before = snapshot(host)
    files_before = _our_files()
    net = nk.Network("gonenet", subnet="10.89.0.0/24").create()
    keep = nk.Endpoint("kept", nk.CustomMode(net), publish=["18101:80"]).create()
    if variant == "connection":
        ns = Namespace("gone").create()
        conn = net.connect(ns, publish=["18100:80"])
    else:
        ep = nk.Endpoint("gone", nk.CustomMode(net), publish=["18100:80"]).create()
        conn = ep.connections[0]
    ip = str(conn.address.ip)
    assert ip in _nft_elements(host) and host.has_link(conn.host_ifname)
    with serve(keep.namespace, "0.0.0.0", 80):
        assert connect(host, "10.89.0.1", 18101) is not None  # the other endpoint's port works
    holder = subprocess.Popen(["ip", "netns", "exec", "gone", "sleep", "60"]) if held else None
    if holder is not None:
        assert _wait_for(lambda: _netns_of(holder.pid) == conn.identity)
    subprocess.run(["ip", "netns", "del", "gone"], check=True)  # behind the library's back
    if holder is not None:
        assert host.has_link(conn.host_ifname)  # the namespace lives on, and the host end with it
    with caplog.at_level(logging.WARNING, logger="netns_kit"):
        if variant == "endpoint":
            ep.remove()
            assert ep.already_gone and "namespace gone" in ep.already_gone[0], ep.already_gone
        elif variant == "connection":
            conn.disconnect()
            assert conn.already_gone and "namespace gone" in conn.already_gone[0], conn.already_gone
            ns.remove()  # the Namespace object knows it is gone: nothing to do, no error
        keep.remove()
        report = net.remove()  # not forced: the vanished endpoint is not "still connected"
    assert "was already gone" in caplog.text, caplog.text
    if variant == "network":
        assert any("namespace gone" in line for line in report.already_gone), report
        ep.remove()  # its connection went with the network; the endpoint still goes cleanly
    if holder is not None:
        assert any("deleted outside netns_kit" in line for line in (*conn.already_gone, *report.already_gone))
        holder.kill()
        holder.wait()
    assert not conn.connected
    assert ip not in _nft_elements(host)
    assert not host.has_link(conn.host_ifname)
    assert not os.path.lexists("/etc/netns/gone")
    assert nk.Endpoint.lookup("gone", missing_ok=True) is None
    assert snapshot(host) == before
    assert _our_files() == files_before


def test_forced_removal_says_what_it_left_and_endpoints_are_found_by_name(
        host: Namespace, caplog: pytest.LogCaptureFixture) -> None:
    before = snapshot(host)
    files_before = _our_files()
    net = nk.Network("forcenet", subnet="10.86.0.0/24").create()
    web = nk.Endpoint("fweb", nk.CustomMode(net), publish=["18110:80"]).create()
    bare = Namespace("fbare").create()
    net.connect(bare)
    # a namespace of another netns_kit process (alive), and one of no netns_kit process at all
    other = subprocess.Popen([sys.executable, "-c", "import sys, netns_kit as nk\n"
                              "nk.Namespace('fother').create(); print('UP', flush=True); sys.stdin.readline()\n"
                              "nk.Namespace.open('fother').adopt().remove()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert other.stdout is not None and other.stdout.readline().strip() == "UP"
    subprocess.run(["ip", "netns", "add", "fforeign"], check=True)
    try:
        found = {info.name: info for info in nk.endpoints()}
        assert found["fweb"].endpoint is web and found["fweb"].networks == ("forcenet",)
        assert found["fweb"].owner == _state.owner_id() and found["fweb"].owner_alive
        assert str(web.address) in {str(a.ip) for a in found["fweb"].addresses}
        assert found["fbare"].endpoint is None and found["fbare"].networks == ("forcenet",)
        assert found["fother"].owner == f"{other.pid}." + found["fother"].owner.split(".")[1]  # type: ignore[union-attr]
        assert found["fother"].owner_alive and found["fother"].endpoint is None
        assert found["fforeign"].owner is None and not found["fforeign"].owner_alive
        assert nk.Endpoint.lookup("fweb") is web
        with pytest.raises(nk.NotFoundError, match=r"endpoints\(\)"):
            nk.Endpoint.lookup("fbare")

        with caplog.at_level(logging.WARNING, logger="netns_kit"):
            report = net.remove(force=True)
        assert len(report.disconnected) == 2 and not report.already_gone
        assert any("namespace fweb" in x and "Endpoint.lookup('fweb').remove()" in x for x in report.left), report
        assert any("namespace fbare" in x and "Network.connect" in x for x in report.left), report
        assert "left: namespace fweb" in caplog.text
        # what it left, by kernel state: the namespaces stay, without their veths
        assert [link.name for link in bare.links()] == ["lo"]
        assert [link.name for link in web.namespace.links()] == ["lo"]
        assert web.created and os.path.exists("/run/netns/fweb")
        nk.Endpoint.lookup("fweb").remove()  # type: ignore[union-attr]
        bare.remove()
        assert nk.Endpoint.lookup("fweb", missing_ok=True) is None
        assert {info.name for info in nk.endpoints()} == {"fother", "fforeign"}
    finally:
        other.communicate("\n", timeout=30)
        subprocess.run(["ip", "netns", "del", "fforeign"], check=True)
    assert snapshot(host) == before
    assert _our_files() == files_before
