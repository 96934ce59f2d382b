"""The name service of user-defined networks, by traffic: DNS queries from endpoints (getent through
the C library and the endpoint's resolv.conf, and raw queries with dnspython) answered by the one
resolver process of the host, for endpoints made by this process, by another process, and from a
podman container joined to an endpoint's namespace; forwarding to a stub upstream; TCP for large
answers; and the service's end with the last network and after a crash."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest
from test_podman import IMAGE, ULIMITS, Podman, podman, podman_env  # noqa: F401 - fixtures

import netns_kit as nk
from netns_kit import Endpoint, NameService, Namespace, _state, _sys
from netns_kit.network import Network

# a second process that opens the network, connects a namespace of its own, and waits for orders
CONNECTOR = r"""
import sys
import netns_kit as nk
net = nk.Network.open(sys.argv[1])
ns = nk.Namespace(sys.argv[2]).create()
conn = net.connect(ns, aliases=sys.argv[3:])
print(conn.ip, flush=True)
sys.stdin.readline()
conn.disconnect()
print("disconnected", flush=True)
sys.stdin.readline()
ns.remove()
"""


def child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def ask(ns: Namespace, name: str, rdtype: str = "A", *, server: str, tcp: bool = False) -> dns.message.Message:
    """One query from inside ``ns`` to ``server``:53."""
    if rdtype == "PTR":
        query = dns.message.make_query(dns.reversename.from_address(name), rdtype)
    else:
        query = dns.message.make_query(name, rdtype)
    with ns.enter():
        if tcp:
            return dns.query.tcp(query, server, timeout=5)
        return dns.query.udp(query, server, timeout=5)


def addresses(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset)


def getent(ep: Endpoint | Namespace, *key: str) -> subprocess.CompletedProcess[str]:
    return ep.run(["getent", *key])


class StubUpstream:
    """A resolver the host runs on 0.0.0.0:53 (UDP and TCP), as dnsmasq would: answers
    ``www.example.test`` with 192.0.2.7 and ``big.example.test`` with 40 addresses (truncated over
    UDP), and counts the queries it saw."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("0.0.0.0", 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("0.0.0.0", 53))
        self.tcp.listen(8)
        self.seen: list[str] = []
        self.stop = False
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True),
                        threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self.threads:
            t.start()

    def _answer(self, data: bytes) -> dns.message.Message:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text()
        self.seen.append(name)
        resp = dns.message.make_response(query)
        if name == "www.example.test.":
            resp.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.7"))
        elif name == "big.example.test.":
            resp.answer.append(dns.rrset.from_text(name, 60, "IN", "A", *[f"198.51.100.{i}" for i in range(1, 41)]))
        else:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp

    def _serve_udp(self) -> None:
        while not self.stop:
            try:
                data, addr = self.udp.recvfrom(4096)
            except OSError:
                return
            resp = self._answer(data)
            try:
                out = resp.to_wire(max_size=512)
            except dns.exception.TooBig:
                resp.answer.clear()
                resp.flags |= dns.flags.TC
                out = resp.to_wire()
            self.udp.sendto(out, addr)

    def _serve_tcp(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(2)
                body = conn.recv(int.from_bytes(data, "big")) if len(data) == 2 else b""
                if body:
                    out = self._answer(body).to_wire()
                    conn.sendall(len(out).to_bytes(2, "big") + out)

    def close(self) -> None:
        self.stop = True
        self.udp.close()
        with contextlib.suppress(OSError):
            self.tcp.shutdown(socket.SHUT_RDWR)
        self.tcp.close()


@pytest.fixture
def upstream(host: Namespace) -> Iterator[StubUpstream]:
    """The stub upstream, named as the host's only nameserver in /etc/resolv.conf (the sandbox's
    /etc is a throwaway overlay; the file is put back afterwards)."""
    with open("/etc/resolv.conf") as f:
        saved = f.read()
    stub = StubUpstream()
    with open("/etc/resolv.conf", "w") as f:
        f.write("nameserver 127.0.0.1\nsearch corp.example\noptions edns0\n")
    try:
        yield stub
    finally:
        with open("/etc/resolv.conf", "w") as f:
            f.write(saved)
        stub.close()


def test_names_of_endpoints_of_two_processes_resolve_both_ways(host: Namespace, upstream: StubUpstream) -> None:
    with Network("app", subnet="10.20.0.0/24") as app, Endpoint("web", app, aliases=["www"]) as web:
        gw = str(app.gateway)
        other = child(CONNECTOR, "app", "db2", "database")
        try:
            assert other.stdout is not None and other.stdin is not None
            db_ip = other.stdout.readline().strip()
            db = Namespace.open("db2")
            # the other process's endpoint is in no hosts file of this process: DNS answers it
            assert "db2" not in web.run(["cat", "/etc/hosts"]).stdout
            res = getent(web, "hosts", "db2")
            assert res.returncode == 0 and res.stdout.split()[0] == db_ip, res
            assert getent(web, "hosts", "database").stdout.split()[0] == db_ip
            msg = ask(web.namespace, "db2", server=gw)
            assert addresses(msg) == [db_ip] and msg.flags & dns.flags.AA
            assert addresses(ask(web.namespace, "db2.app", server=gw)) == [db_ip]  # NAME.NETWORK
            assert ask(web.namespace, "db2", "AAAA", server=gw).answer == []  # no IPv6: empty, not an error
            ptr = ask(web.namespace, db_ip, "PTR", server=gw)
            assert addresses(ptr) == ["database.", "db2."]
            # and the other way: the other process's namespace resolves this one's names, over TCP too
            web_ip = str(web.address)
            assert getent(db, "hosts", "www").stdout.split()[0] == web_ip
            assert addresses(ask(db, "web", server=gw, tcp=True)) == [web_ip]
            assert "db2." not in upstream.seen and "database." not in upstream.seen  # (their AAAA
            # queries, answered with no record, go on to the search domain as libc does: db2.corp.example)
            # a disconnect in the other process: the name is gone for the next query (now unknown
            # here, it goes to the host's resolver, which does not know it either)
            other.stdin.write("\n")
            other.stdin.flush()
            assert other.stdout.readline().strip() == "disconnected"
            assert ask(web.namespace, "db2", server=gw).rcode() == dns.rcode.NXDOMAIN
            assert "db2." in upstream.seen
            assert getent(web, "hosts", "database").returncode == 2
        finally:
            if other.stdin is not None:
                other.stdin.write("\n\n")
                other.stdin.flush()
            other.wait(30)
    assert not NameService.of(host).running


def test_resolv_conf_of_an_endpoint(host: Namespace, upstream: StubUpstream) -> None:
    with Network("app", subnet="10.20.0.0/24") as app, Endpoint("web", app) as web:
        text = web.run(["cat", "/etc/resolv.conf"]).stdout
        lines = text.splitlines()
        assert lines[0].startswith("# written by netns_kit")
        assert lines[1:] == ["nameserver 10.20.0.1", "search corp.example", "options ndots:0 edns0"]
        assert app.dns_flags() == ["--dns", "10.20.0.1", "--dns-option", "ndots:0", "--dns-search", "corp.example"]
    assert not os.path.exists("/etc/netns/web/resolv.conf")


def test_endpoints_of_a_network_share_one_resolv_conf(host: Namespace, upstream: StubUpstream) -> None:
    """Each endpoint's resolv.conf is a link to its network's one file (next to the network's shared
    hosts file): written once, rewritten in place when the host's search domains change (seen by
    the endpoints made before), and gone with the network."""
    with Network("one", subnet="10.21.0.0/24") as net:
        with Endpoint("web", net) as web, Endpoint("api", net) as api:
            shared = os.readlink("/etc/netns/web/resolv.conf")
            assert os.readlink("/etc/netns/api/resolv.conf") == shared
            assert os.path.dirname(shared) == _sys.HOSTS_RUN_DIR
            assert "search corp.example" in api.run(["cat", "/etc/resolv.conf"]).stdout
            with open("/etc/resolv.conf", "w") as f:
                f.write("nameserver 127.0.0.1\nsearch other.example\noptions edns0\n")
            with Endpoint("db", net):  # the next connect brings the shared file up to date
                text = web.run(["cat", "/etc/resolv.conf"]).stdout
                assert "search other.example" in text and "nameserver 10.21.0.1" in text
        assert not os.path.lexists("/etc/netns/web") and os.path.exists(shared)
    assert not os.path.exists(shared)


def test_other_networks_names_are_nxdomain_at_once(host: Namespace, upstream: StubUpstream) -> None:
    with Network("front", subnet="10.30.0.0/24") as front, Network("back", subnet="10.31.0.0/24") as back, \
            Endpoint("web", front) as web, Endpoint("db", back) as db, Endpoint("api", front) as api:
        gw = str(front.gateway)
        msg = ask(web.namespace, "db", server=gw)
        assert msg.rcode() == dns.rcode.NXDOMAIN and msg.flags & dns.flags.AA  # answered here, not upstream
        assert ask(web.namespace, str(db.address), "PTR", server=gw).rcode() == dns.rcode.NXDOMAIN
        assert getent(web, "hosts", "db").returncode == 2
        assert "db." not in upstream.seen  # never forwarded (only db.corp.example: the search list)
        # an endpoint on both networks resolves both; the others still do not see across
        api.connect(back)
        assert addresses(ask(api.namespace, "db", server=gw)) == [str(db.address)]
        assert addresses(ask(api.namespace, "web", server=str(back.gateway))) == [str(web.address)]
        assert ask(db.namespace, "web", server=str(back.gateway)).rcode() == dns.rcode.NXDOMAIN
        assert addresses(ask(db.namespace, "api", server=str(back.gateway))) != []


def test_other_names_go_to_the_host_s_resolver_unless_internal(host: Namespace, upstream: StubUpstream) -> None:
    """The host's resolver holds 0.0.0.0:53 (no conflict: the service listens elsewhere, the
    gateway's port 53 is redirected to it); names it knows come back through the service, over UDP
    and, for an answer too large for UDP, over TCP; an internal network forwards nothing."""
    with Network("app", subnet="10.20.0.0/24") as app, Network("lab", subnet="10.21.0.0/24", internal=True) as lab, \
            Endpoint("web", app) as web, Endpoint("probe", lab) as probe:
        gw = str(app.gateway)
        res = getent(web, "hosts", "www.example.test")
        assert res.returncode == 0 and res.stdout.split()[0] == "192.0.2.7", res
        assert addresses(ask(web.namespace, "www.example.test", server=gw)) == ["192.0.2.7"]
        big = ask(web.namespace, "big.example.test", server=gw)
        assert big.flags & dns.flags.TC and not big.answer  # relayed truncated ...
        assert len(addresses(ask(web.namespace, "big.example.test", server=gw, tcp=True))) == 40  # ... then TCP
        assert len(getent(web, "ahostsv4", "big.example.test").stdout.split("\n")) > 40  # libc falls back to TCP
        assert addresses(ask(web.namespace, "web", server=gw)) == [str(web.address)]  # local: not the host's
        seen = len(upstream.seen)
        msg = ask(probe.namespace, "www.example.test", server=str(lab.gateway))
        assert msg.rcode() == dns.rcode.REFUSED
        assert len(upstream.seen) == seen
        assert addresses(ask(probe.namespace, "probe", server=str(lab.gateway))) == [str(probe.address)]


def test_a_large_local_answer_comes_over_tcp(host: Namespace) -> None:
    aliases = [f"alias-{i:02d}-of-the-endpoint-with-a-long-name" for i in range(30)]
    with Network("app", subnet="10.20.0.0/24") as app, Endpoint("many", app, aliases=aliases) as many, \
            Endpoint("web", app) as web:
        gw, ip = str(app.gateway), str(many.address)
        udp = ask(web.namespace, ip, "PTR", server=gw)
        assert udp.flags & dns.flags.TC and not udp.answer
        tcp = ask(web.namespace, ip, "PTR", server=gw, tcp=True)
        assert len(addresses(tcp)) == 31
        assert getent(web, "hosts", ip).stdout.split()[:2] == [ip, "many"]  # the C library retried over TCP


def test_service_lives_with_the_networks_and_survives_its_starter(host: Namespace) -> None:
    """A process creates a network (kept) and exits: the service keeps running, another process
    opens the network and its endpoints resolve each other; the last removal stops the service."""
    made = subprocess.run([sys.executable, "-c", "import netns_kit as nk; "
                           "nk.Network('kept', subnet='10.40.0.0/24').create()"], check=True)
    assert made.returncode == 0
    svc = NameService.of(host)
    assert svc.running and svc.pid is not None
    owner = _state.owner_of(svc.pid)
    assert owner is not None
    with Network("extra", subnet="10.41.0.0/24") as extra:
        assert NameService.of(host).pid == svc.pid  # one service per host
        kept = Network.open("kept")
        with Namespace("a") as a, Namespace("b") as b:
            kept.connect(a)
            kept.connect(b, aliases=["bee"])
            assert addresses(ask(a, "bee", server="10.40.0.1")) == [str(kept.resolve("b"))]
            kept.close()
        kept.adopt().remove()
        assert NameService.of(host).running  # "extra" still has name resolution
        assert str(extra.gateway) == "10.41.0.1"
    assert not NameService.of(host).running and not _state.owner_alive(owner)  # stopped with the last one


def test_service_exits_by_itself_when_nothing_is_left_to_serve(host: Namespace) -> None:
    """A kept network whose creator exited, its bridge then deleted by hand: the service stops
    serving it, exits by itself and deletes its own record; recover() removes the stale state."""
    subprocess.run([sys.executable, "-c", "import netns_kit as nk; nk.Network('handmade', subnet='10.42.0.0/24')"
                    ".create()"], check=True)
    svc = NameService.of(host)
    assert svc.running and svc.pid is not None
    owner = _state.owner_of(svc.pid)
    assert owner is not None
    host.run(["ip", "link", "del", "nk-handmade"], check=True)
    deadline = time.monotonic() + 60  # a bounded wait for it to notice (no duration is asserted)
    while _state.owner_alive(owner) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _state.owner_alive(owner)
    assert not os.path.exists(_state.dns_dir())  # it took its record and log along
    report = nk.recover()
    assert any("state file and leases of network handmade" in u for u in report.undone), report.undone
    host.run(["nft", "delete", "table", "inet", "netns_kit"], check=True)  # the kept policy, by hand


def test_recover_stops_the_service_of_a_killed_owner(host: Namespace) -> None:
    code = r"""
import os, signal
import netns_kit as nk
with nk.Network("crash", subnet="10.50.0.0/24") as net, nk.Endpoint("k-ep", net), nk.Endpoint("k-db", net):
    print(nk.NameService.of().pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = child(code)
    out, _ = proc.communicate(timeout=60)
    pid = int(out.strip())
    svc = NameService.of(host)
    assert svc.running and svc.pid == pid  # it outlived the process that started it ...
    ep = Namespace.open("k-ep")
    assert addresses(ask(ep, "k-db", server="10.50.0.1")) != []  # ... and still answers
    report = nk.recover()
    assert not report.failures, report.failures
    assert any("name service" in u for u in report.undone), report.undone
    assert not NameService.of(host).running
    assert not os.path.exists(_state.dns_dir())
    assert not host.has_link("nk-crash") and not os.path.exists("/run/netns/k-ep")


def test_podman_container_in_an_endpoint_namespace_resolves(podman: Podman, host: Namespace) -> None:  # noqa: F811
    """``podman run --network ns:/run/netns/web`` with the network's ``dns_flags()``: the container's
    own resolver (busybox nslookup, not the C library) asks the service."""
    with Network("app", subnet="10.20.0.0/24") as app, Network("other", subnet="10.22.0.0/24") as other, \
            Endpoint("web", app), Endpoint("db", app, aliases=["database"]) as db, Endpoint("elsewhere", other):
        podman.containers.append("nk-dns")
        podman("run", "-d", "--name", "nk-dns", "--runtime", "runc", "--network", "ns:/run/netns/web",
               *app.dns_flags(), "--cgroup-parent", podman.cgroup_parent, *ULIMITS, IMAGE, "sleep", "600")
        assert "nameserver 10.20.0.1" in podman.exec("nk-dns", "cat", "/etc/resolv.conf").stdout
        out = podman.exec("nk-dns", "/bin/busybox", "nslookup", "database")
        assert str(db.address) in out.stdout, out
        out = podman.exec("nk-dns", "/bin/busybox", "nslookup", "elsewhere")
        assert "NXDOMAIN" in out.stdout and out.returncode != 0, out  # another network's name


def test_service_port_is_not_53_and_gateway_53_is_redirected(host: Namespace) -> None:
    with Network("app", subnet="10.20.0.0/24") as app:
        svc = NameService.of(host)
        assert svc.port is not None and svc.port != 53
        nft = host.run(["nft", "list", "map", "inet", "netns_kit", "dnat4_addr"]).stdout
        assert "10.20.0.1 . udp . 53" in nft and f": 10.20.0.1 . {svc.port}" in nft
        assert app.ports() == []  # the redirect is not a published port
    assert "10.20.0.1" not in host.run(["nft", "list", "ruleset"]).stdout


def test_the_benchmark_runs(host: Namespace) -> None:
    """benchmarks/name_service.py keeps working (a tiny run; no figure is asserted)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-m", "benchmarks.name_service", "20"], cwd=repo, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "| local name | aardvark-dns |" in res.stdout and "| forwarded name | netns_kit |" in res.stdout
    assert not os.path.exists(_state.dns_dir())  # its network's service stopped with it
    left = []  # aardvark-dns processes of this sandbox (same mount namespace), not other programs'
    mine = os.stat("/proc/self/ns/mnt").st_ino
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"aardvark-dns" in f.read() and os.stat(f"/proc/{pid}/ns/mnt").st_ino == mine:
                left.append(pid)
    assert left == []


def test_lease_changes_are_read_before_answers_and_lost_ones_reload_the_leases(
        host: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver does not wake up for lease changes (no cost to a connect): they wait in an
    inotify queue of their own, read before each answer and at each tick. If the kernel dropped
    some (the queue overflowed), every served network's leases are read again."""
    from netns_kit import _dnsd, _sys

    srv = _dnsd.Server(host.identity)
    try:
        watched = {key.fileobj for key in srv.sel.get_map().values()}
        assert srv.inotify in watched and srv.lease_notify not in watched
        srv.served["web"] = object()  # type: ignore[assignment]  # only its name matters here
        reloaded: list[str] = []
        monkeypatch.setattr(srv, "_load_leases", reloaded.append)
        queued = {srv.inotify: [], srv.lease_notify: [(-1, _sys.IN_Q_OVERFLOW, "")]}
        monkeypatch.setattr(_sys, "inotify_read", lambda fd: queued.get(fd, []))
        srv.sync()
        assert reloaded == ["web"]
    finally:
        srv.served.clear()
        srv.sel.close()
        for fd in (srv.inotify, srv.lease_notify, srv.wake_r, srv.wake_w):
            os.close(fd)
        for s in (srv.up4, srv.up6):
            if s is not None:
                s.close()
