"""Several processes and threads at once on one host: no race errors, no duplicates, nothing left."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import netns_kit as nk
from netns_kit import Namespace
from netns_kit.testing import named_namespaces

N_PROCS = 8
N_EACH = 50

CHILD = r"""
import sys
import netns_kit as nk
from netns_kit import Bridge, Namespace, Route, Transaction, VethPair
p, n = int(sys.argv[1]), int(sys.argv[2])
br = Bridge.open("br-conc")
print("READY", flush=True)
sys.stdin.readline()                                   # start together
with Transaction(keep=False):
    for i in range(n):
        ns = Namespace(f"p{p}-{i}").create()
        VethPair(f"vp{p}x{i}", "eth0", peer_namespace=ns, master=br).create()
        ns.add_address("eth0", f"10.61.{p}.{i + 2}/16")
        ns.add_route(Route(gateway="10.61.255.254"))
        # every process also adds an address on the shared bridge (one host-wide table)
        nk.Namespace.current().add_address("br-conc", f"10.62.{p}.{i + 1}/32")
    print("BUILT", flush=True)
    sys.stdin.readline()                               # tear down together
print("DOWN", flush=True)
"""


def _wait_ready(procs: list[subprocess.Popen[str]]) -> None:
    """Wait until every child has imported and stands at the start line (a state, not a guess of how
    long imports take: on a busy machine they take seconds)."""
    for pr in procs:
        assert pr.stdout is not None
        assert pr.stdout.readline().strip() == "READY", pr.communicate()[1]


def test_processes_build_and_tear_down_at_once(host: Namespace) -> None:
    br = nk.Bridge("br-conc", addresses=["10.61.255.254/16"]).create()
    before_named = set(named_namespaces())
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(p), str(N_EACH)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(N_PROCS)]
    _wait_ready(procs)
    t0 = time.monotonic()
    for pr in procs:
        assert pr.stdin is not None
        pr.stdin.write("\n")
        pr.stdin.flush()
    for pr in procs:
        assert pr.stdout is not None
        line = pr.stdout.readline().strip()
        assert line == "BUILT", pr.communicate()[1]
    built = time.monotonic() - t0

    ports = [link for link in host.links() if link.master == br.index]
    assert len(ports) == N_PROCS * N_EACH
    named = set(named_namespaces()) - before_named
    assert len(named) == N_PROCS * N_EACH
    addrs = [str(a.interface) for a in host.addresses("br-conc") if a.interface.version == 4]
    assert len(addrs) == len(set(addrs)) == N_PROCS * N_EACH + 1
    for p in range(N_PROCS):  # spot-check an endpoint of each process by traffic
        ns = Namespace.open(f"p{p}-{N_EACH - 1}")
        assert ns.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.61.255.254"]).returncode == 0

    t1 = time.monotonic()
    for pr in procs:
        assert pr.stdin is not None
        pr.stdin.write("\n")
        pr.stdin.flush()
    for pr in procs:
        out, err = pr.communicate(timeout=120)
        assert pr.returncode == 0 and out.strip() == "DOWN", err
        for bad in ("Device or resource busy", "File exists", "Traceback"):
            assert bad not in err, err
    down = time.monotonic() - t1
    print(f"{N_PROCS} processes x {N_EACH} endpoints: built in {built:.2f}s, torn down in {down:.2f}s")

    assert [link.name for link in host.links() if link.master == br.index] == []
    assert set(named_namespaces()) == before_named
    assert [str(a.interface) for a in host.addresses("br-conc") if a.interface.version == 4] == ["10.61.255.254/16"]
    assert not nk.recover()  # nothing left for recovery either
    br.remove()


def test_threads_connect_to_one_network_at_once(host: Namespace) -> None:
    from netns_kit.network import Network

    n_threads, each = 8, 10
    errors: list[BaseException] = []
    conns: list[object] = []
    lock = threading.Lock()
    with Network("conc", subnet="10.63.0.0/20") as net:
        namespaces = [[Namespace(f"t{t}-{i}").create() for i in range(each)] for t in range(n_threads)]
        start = threading.Barrier(n_threads)

        def work(t: int) -> None:
            try:
                start.wait()
                for i, ns in enumerate(namespaces[t]):
                    c = net.connect(ns, publish=[f"{30000 + t * each + i}:80/tcp"])
                    with lock:
                        conns.append(c)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        addresses = [str(c.address) for c in conns]  # type: ignore[attr-defined]
        assert len(addresses) == len(set(addresses)) == n_threads * each
        in_kernel = {str(a.interface) for row in namespaces for ns in row for a in ns.addresses()
                     if a.interface.version == 4 and not a.interface.ip.is_loopback}
        assert in_kernel == set(addresses)
        from netns_kit.firewall import Firewall

        assert len(Firewall.for_namespace(host).published) == n_threads * each

        # parallel teardown: each thread disconnects and removes its own namespaces
        def down(t: int) -> None:
            try:
                for ns in namespaces[t]:
                    net.disconnect(ns)
                    ns.remove()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=down, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        assert net.connections == []
        assert Firewall.for_namespace(host).published == []
    assert [link.name for link in host.links()] == ["lo"]


def test_lock_excludes_threads_and_processes(host: Namespace) -> None:
    from netns_kit import _state

    order: list[str] = []
    with _state.lock("test-x"):
        with _state.lock("test-x"):  # re-entrant in one thread
            pass
        def take() -> None:
            with _state.lock("test-x"):
                order.append("thread")

        t = threading.Thread(target=take)
        t.start()
        t.join(0.3)
        assert t.is_alive() and order == []  # another thread waits
        child = subprocess.run([sys.executable, "-c", "import fcntl, os, sys; "
                                "fd = os.open(sys.argv[1], os.O_RDWR); "
                                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
                                f"{_state.locks_dir()}/test-x.lock"], capture_output=True, text=True)
        assert child.returncode != 0 and "BlockingIOError" in child.stderr  # another process too
    t.join(5)
    assert order == ["thread"]


SLOT_CHILD = r"""
import fcntl, os, struct, sys
from netns_kit import _state
fd = os.open(os.path.join(_state.locks_dir(), "slots.lock"), os.O_RDWR)
lk = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, int(sys.argv[1]), 1, 0)
try:
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lk)
except OSError:
    print("busy")
else:
    print("free")
"""


def _slot_taken_by_other_process(slot: int) -> bool:
    out = subprocess.run([sys.executable, "-c", SLOT_CHILD, str(slot)], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "busy"


def test_name_and_host_locks_exclude_threads_and_processes(host: Namespace) -> None:
    """name_lock and host_lock are byte-range locks on one file: another process and another thread
    wait, the same thread nests, a forked child has its own, and nothing stays held after."""
    import os

    from netns_kit import _state

    lock = _state.name_lock("web-1")
    slot = lock.slot  # type: ignore[attr-defined]
    hslot = _state.host_lock(host.identity).slot  # type: ignore[attr-defined]
    assert slot < _state.SLOTS <= hslot
    order: list[str] = []
    with lock:
        with _state.name_lock("web-1"), _state.host_lock(host.identity):  # nested in one thread
            assert _slot_taken_by_other_process(hslot)
        assert not _slot_taken_by_other_process(hslot)  # the host lock went with its block

        def take() -> None:
            with _state.name_lock("web-1"):
                order.append("thread")

        t = threading.Thread(target=take)
        t.start()
        t.join(0.3)
        assert t.is_alive() and order == []  # another thread waits
        assert _slot_taken_by_other_process(slot)  # another process too
        pid = os.fork()
        if pid == 0:  # the child has a description of its own: the parent's lock holds it off too
            code = 1
            try:
                got: list[int] = []

                def wait_for_it() -> None:
                    _state.name_lock("web-1").__enter__()
                    got.append(1)

                waiter = threading.Thread(target=wait_for_it, daemon=True)
                waiter.start()
                waiter.join(0.3)
                code = 0 if not got else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    t.join(5)
    assert order == ["thread"]
    assert not _slot_taken_by_other_process(slot)


NET_CHILD = r"""
import sys
from netns_kit.network import Network
p = int(sys.argv[1])
print("READY", flush=True)
sys.stdin.readline()
nets = [Network(f"auto{p}x{i}").create() for i in range(4)]   # subnets picked automatically
print(" ".join(str(n.subnet) for n in nets), flush=True)
sys.stdin.readline()
for n in nets:
    n.remove()
"""


def test_processes_creating_networks_at_once_get_distinct_subnets(host: Namespace) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", NET_CHILD, str(p)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(4)]
    _wait_ready(procs)
    for pr in procs:
        assert pr.stdin is not None
        pr.stdin.write("\n")
        pr.stdin.flush()
    subnets: list[str] = []
    for pr in procs:
        assert pr.stdout is not None
        line = pr.stdout.readline().split()
        assert len(line) == 4, pr.communicate()[1]
        subnets += line
    assert len(set(subnets)) == len(subnets) == 16, subnets
    for pr in procs:
        _out, err = pr.communicate("\n", timeout=60)
        assert pr.returncode == 0, err
    assert [link.name for link in host.links()] == ["lo"]


OPEN_CHILD = r"""
import sys
from netns_kit import Namespace
from netns_kit.network import Network
p, n = int(sys.argv[1]), int(sys.argv[2])
net = Network.open("shared")                            # created by the test process
nss = [Namespace(f"s{p}-{i}").create() for i in range(n)]
print("READY", flush=True)
sys.stdin.readline()                                    # connect together
conns = [net.connect(ns, publish=[f"{31000 + p * n + i}:80/tcp"]) for i, ns in enumerate(nss)]
print("BUILT " + " ".join(str(c.ip) for c in conns), flush=True)
sys.stdin.readline()                                    # tear down together
for ns in nss:
    net.disconnect(ns)
    ns.remove()
try:
    net.remove()
except Exception as exc:                                # not the owner: refused, nothing changed
    print("REFUSED " + type(exc).__name__, flush=True)
print("DOWN", flush=True)
"""


def test_processes_share_one_network(host: Namespace) -> None:
    import os
    import re

    from snapshots import snapshot

    from netns_kit import _state
    from netns_kit.errors import AlreadyExistsError
    from netns_kit.network import Network

    net = Network("shared", subnet="10.64.0.0/20").create()
    path = _state.network_file(host.identity, "shared")
    assert os.stat(path).st_mode & 0o777 == 0o600
    before = snapshot(host)
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_CHILD, str(p), str(N_EACH)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(N_PROCS)]
    for pr in procs:
        assert pr.stdout is not None
        assert pr.stdout.readline().strip() == "READY", pr.communicate()[1]
    t0 = time.monotonic()
    for pr in procs:
        assert pr.stdin is not None
        pr.stdin.write("\n")
        pr.stdin.flush()
    reported: list[str] = []
    for pr in procs:
        assert pr.stdout is not None
        line = pr.stdout.readline().split()
        assert line[:1] == ["BUILT"] and len(line) == N_EACH + 1, pr.communicate()[1]
        reported += line[1:]
    built = time.monotonic() - t0

    total = N_PROCS * N_EACH
    assert len(set(reported)) == total  # no address handed out twice
    in_kernel = [str(a.interface.ip) for name in named_namespaces() if name.startswith("s")
                 for a in Namespace.open(name).addresses() if a.interface.version == 4
                 and not a.interface.ip.is_loopback]
    assert sorted(in_kernel) == sorted(reported)
    assert len([link for link in host.links() if link.master == net._bridge.index]) == total  # type: ignore[union-attr]
    dnat = host.run(["nft", "list", "map", "inet", "netns_kit", "dnat4"]).stdout
    assert len(set(re.findall(r"tcp \. (3\d{4}) ", dnat))) == total  # no lost rule
    for p in range(N_PROCS):  # every process's endpoints reach the gateway
        ns = Namespace.open(f"s{p}-{N_EACH - 1}")
        assert ns.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.64.0.1"]).returncode == 0
    # a host port another process published is refused, not taken over silently
    extra = Namespace("s-extra").create()
    try:
        net.connect(extra, publish=["31000:80/tcp"])
        raise AssertionError("duplicate host port accepted")
    except AlreadyExistsError:
        pass
    extra.remove()
    # the owner refuses to pull the network from under other processes' endpoints
    try:
        net.remove()
        raise AssertionError("remove() with foreign endpoints accepted")
    except nk.StateError:
        pass

    t1 = time.monotonic()
    for pr in procs:
        assert pr.stdin is not None
        pr.stdin.write("\n")
        pr.stdin.flush()
    for pr in procs:
        out, err = pr.communicate(timeout=120)
        assert pr.returncode == 0 and out.split() == ["REFUSED", "OwnershipError", "DOWN"], (out, err)
        for bad in ("Device or resource busy", "File exists", "Traceback"):
            assert bad not in err, err
    down = time.monotonic() - t1
    print(f"{N_PROCS} processes x {N_EACH} endpoints on one shared Network: connected in {built:.2f}s, "
          f"torn down in {down:.2f}s")

    after = snapshot(host)
    # the bridge's own IPv6 link-local address (the kernel makes it when the first port brings the
    # bridge's carrier up; the bridge keeps its MAC address, so the address stays) is the network's
    for key in ("addresses", "routes"):
        after[key] = [x for x in after[key] if "fe80:" not in " ".join(map(str, x))]  # type: ignore[attr-defined]
    assert after == before  # parallel teardown left nothing
    leases = path[: -len(".json")] + ".leases"  # one file per address handed out
    assert os.listdir(leases) == []  # every address came back
    net.remove()
    assert not os.path.exists(path)
    assert [link.name for link in host.links()] == ["lo"]
