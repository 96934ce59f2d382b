"""The name service of one host namespace's user-defined networks: a small resolver process
(internal; run as ``python -m netns_kit._dnsd DEV-INO``, started by :mod:`netns_kit._dns`).

It owns nothing but its sockets. Everything it answers comes from the shared state on disk that
every netns_kit process writes (:mod:`netns_kit._state`, :mod:`netns_kit._leases`):

- ``/run/netns-kit/networks/<dev>-<ino>/<network>.json``: the networks (gateway, subnets,
  ``internal``, ``resolve_names``, the service port ``dns_port``), served while their bridge exists;
- ``<network>.leases/<ip>``: one file per endpoint address, with its names and namespace.

inotify on those directories tells it of every change; before answering any query it reads the
events already queued, so a connect or disconnect that returned before the query was sent is
always seen (the kernel queues the event when the lease file is closed or unlinked). Local UDP
answers (and the decision to forward a question) are kept, by question (all but its ID) and the
asker's scope, until the next change; answers from upstream are relayed, never kept.

Sockets: UDP and TCP on ``<gateway>:<dns_port>`` of each network (never port 53); the network's
nft DNAT elements send ``<gateway>:53`` there. Queries it cannot answer
go to the nameservers of the host's /etc/resolv.conf (re-read when it changes), over UDP from the
event loop or over TCP from a thread per TCP client. SIGTERM stops it (netns_kit does when the
host's last network with name resolution is removed, or :func:`netns_kit.recover` when they all went
with their owner). It also stops by itself when its host has had no network to serve for a few
seconds, or when nothing but itself keeps its host namespace alive (no netns_kit process owning one
of its networks or endpoints is alive, no other process is in the namespace, it is neither the
initial namespace nor named under /run/netns): a throwaway host whose creator died is never kept
alive by its name service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.rcode

from . import _state, _sys
from ._dnsmodel import Entry, NameTable, NetInfo, ResolvConf, respond, udp_limit, wire
from ._leases import LeaseBook
from .model import parse_network

__all__ = ["Server", "main"]

log = logging.getLogger("netns_kit.dns")

RESOLV_CONF = "/etc/resolv.conf"
UPSTREAM_TIMEOUT = 2.0  # seconds per upstream server, then the next one
IDLE_EXIT = 3.0  # seconds without any network to serve before the process exits by itself
ORPHAN_CHECK = 2.0  # seconds between checks that something besides this process keeps the host alive
TICK = 0.5  # housekeeping: dead owners' leases, lost watches, upstream timeouts
CACHE_SIZE = 4096  # local answers kept (by question and scope) until the next change of the table
TCP_CLIENTS = 64  # TCP connections served at once (a thread each; 10 s idle timeout)
_FORWARD = b""  # in the cache: "this question goes upstream" (upstream answers are never cached)
_DIR_EVENTS = (_sys.IN_CLOSE_WRITE | _sys.IN_MOVED_TO | _sys.IN_MOVED_FROM | _sys.IN_DELETE | _sys.IN_CREATE
               | _sys.IN_DELETE_SELF | _sys.IN_ONLYDIR)
# a lease file is complete when its writer closes it (or renames it in): its creation, still empty,
# is no news (one wake-up and one read less per connect)
_LEASE_EVENTS = _DIR_EVENTS & ~_sys.IN_CREATE
_SUBNET_KEYS = ("subnet", "subnet6")


@dataclass
class _Pending:
    """A UDP query forwarded upstream, waiting for the answer."""

    client: tuple[str, int]
    sock: socket.socket
    query_id: bytes
    wire: bytes
    upstreams: list[str]
    deadline: float


@dataclass
class _Served:
    info: NetInfo
    port: int
    bridge: tuple[str, int] = ("", 0)  # name and index: served while it exists
    udp: socket.socket | None = None
    tcp: socket.socket | None = None
    watch: int | None = None


class Server:
    """The resolver of one host namespace (identity ``host``)."""

    def __init__(self, host: tuple[int, int]) -> None:
        self.host = host
        self.directory = os.path.join(_state.networks_dir(), f"{host[0]}-{host[1]}")
        self.table = NameTable()
        self.lock = threading.RLock()  # the table, the sockets, the watches: event loop and TCP threads
        self.served: dict[str, _Served] = {}
        self.by_watch: dict[int, str] = {}
        self.dir_watch: int | None = None
        self.stale: set[tuple[str, str, str]] = set()  # (network, ip, owner) of dead owners, veth gone
        # Two inotify instances. The networks directory's wakes the loop: a new network is served at
        # once. The lease directories' does not: a connect or disconnect costs its process no
        # wake-up of this one, and the queued events are read before each answer and at each tick.
        self.inotify = _sys.inotify_init()
        self.lease_notify = _sys.inotify_init()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.inotify, selectors.EVENT_READ, "inotify")
        self.pending: dict[tuple[str, bytes], _Pending] = {}
        self.cache: dict[tuple[bytes, frozenset[str] | None], bytes] = {}
        self.cache_generation = -1
        self.tcp_slots = threading.BoundedSemaphore(TCP_CLIENTS)
        self.published: dict[str, int] | None = None  # what the serving file says
        self.up4 = self._upstream_socket(socket.AF_INET)
        self.up6 = self._upstream_socket(socket.AF_INET6)
        self.resolv: ResolvConf = ResolvConf()
        self.resolv_key: tuple[int, int, int] | None = None
        self.stop = False
        self.signalled = False  # stopped by a signal: whoever sent it deletes the record
        self.idle_since: float | None = None
        self.next_orphan_check = time.monotonic() + ORPHAN_CHECK
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")

    def _upstream_socket(self, family: int) -> socket.socket | None:
        try:
            s = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            return None
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, "upstream")
        return s

    # -- state on disk ------------------------------------------------------------------------------

    def _watch_dir(self) -> None:
        if self.dir_watch is not None:
            return
        try:
            self.dir_watch = _sys.inotify_watch(self.inotify, self.directory, _DIR_EVENTS)
        except OSError:
            return
        self.rescan()

    def rescan(self) -> None:
        """Read the networks directory: serve new networks, forget removed ones."""
        try:
            names = {e[: -len(".json")] for e in os.listdir(self.directory) if e.endswith(".json")}
        except FileNotFoundError:
            names = set()
        for name in list(self.served):
            if name not in names:
                self._drop(name)
        for name in sorted(names):
            self._load_network(name)

    def _load_network(self, name: str) -> None:
        try:
            data = _state.read_json(os.path.join(self.directory, name + ".json"))
        except (OSError, ValueError):
            data = None
        found = self._network_info(data) if data is not None else None
        served = self.served.get(name)
        if found is None:
            if served is not None:
                self._drop(name)
            return
        info, port, bridge = found
        if served is not None and served.info == info and served.port == port and served.bridge == bridge:
            self._bind(served)
            return
        if served is not None:
            self._drop(name)
        served = self.served[name] = _Served(info, port, bridge)
        with self.lock:
            self.table.set_network(info)
        self._watch_leases(served)
        self._bind(served)
        log.info("serving network %s on %s:%d", name, info.gateway, port)

    def _watch_leases(self, served: _Served) -> None:
        """Watch the network's lease directory (made just after its state file) and read it."""
        if served.watch is None:
            try:
                served.watch = _sys.inotify_watch(self.lease_notify, os.path.join(self.directory, served.info.name
                                                                                  + ".leases"), _LEASE_EVENTS)
            except OSError:
                return  # not there yet: its creation is an event of the networks directory
            self.by_watch[served.watch] = served.info.name
        self._load_leases(served.info.name)

    def _network_info(self, data: dict[str, object]) -> tuple[NetInfo, int, tuple[str, int]] | None:
        if not data.get("resolve_names", True) or not data.get("gateway") or not data.get("dns_port"):
            return None
        try:  # only while its bridge exists (a network of a dead process, bridge gone, is not served)
            bridge = (str(data["bridge"]), int(str(data["bridge_index"])))
        except (KeyError, ValueError):
            return None
        if not _bridge_is(*bridge):
            return None
        subnets = tuple(parse_network(str(data[k])) for k in _SUBNET_KEYS if data.get(k))
        info = NetInfo(str(data["name"]), str(data["gateway"]), subnets, bool(data.get("internal")))
        return info, int(str(data["dns_port"])), bridge

    def _load_leases(self, network: str) -> None:
        book = LeaseBook(os.path.join(self.directory, network + ".leases"))
        try:
            ips = os.listdir(book.directory)
        except FileNotFoundError:
            ips = []
        with self.lock:
            for ip in list(self.table.entries(network)):
                if ip not in ips:
                    self.table.remove(network, ip)
        for ip in ips:
            self._load_lease(network, ip)

    def _load_lease(self, network: str, ip: str) -> None:
        lease = LeaseBook(os.path.join(self.directory, network + ".leases")).get(ip)
        with self.lock:
            if lease is None or not lease.names:
                self.table.remove(network, ip)
                if lease is None and self.stale:  # given back: forget that it was a dead process's
                    self.stale = {s for s in self.stale if s[:2] != (network, ip)}
                return
            if (network, ip, lease.owner) in self.stale:
                return
            self.table.add(network, Entry(ip, lease.names, lease.ns, lease.owner, lease.link))

    def _drop(self, name: str) -> None:
        served = self.served.pop(name, None)
        if served is None:
            return
        for s in (served.udp, served.tcp):
            if s is not None:
                self.sel.unregister(s)
                s.close()
        if served.watch is not None:
            self.by_watch.pop(served.watch, None)
            with contextlib.suppress(OSError):
                _sys.inotify_rm_watch(self.lease_notify, served.watch)
        with self.lock:
            self.table.drop_network(name)
        self._publish_serving()
        log.info("stopped serving network %s", name)

    def _bind(self, served: _Served) -> None:
        """UDP and TCP sockets on the network's gateway address and its service port."""
        gw, port = served.info.gateway, served.port
        try:
            if served.udp is None:
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                udp.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
                udp.bind((gw, port))
                udp.setblocking(False)
                served.udp = udp
                self.sel.register(udp, selectors.EVENT_READ, ("udp", served.info.name))
            if served.tcp is None:
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
                tcp.bind((gw, port))
                tcp.listen(64)
                tcp.setblocking(False)
                served.tcp = tcp
                self.sel.register(tcp, selectors.EVENT_READ, ("tcp", served.info.name))
        except OSError as exc:
            log.warning("cannot listen on %s:%d for network %s: %s (retrying)", gw, port, served.info.name, exc)
            return
        self._publish_serving()

    def _publish_serving(self) -> None:
        """``dns/<host>.serving``: the networks whose sockets are bound, with their port (what a
        creating process waits for)."""
        networks = {n: s.port for n, s in self.served.items() if s.udp is not None and s.tcp is not None}
        if networks == self.published:
            return
        try:
            _state.write_json(os.path.join(_state.dns_dir(), f"{self.host[0]}-{self.host[1]}.serving"),
                              {"pid": os.getpid(), "networks": networks})
            self.published = networks
        except OSError as exc:
            log.warning("cannot write the serving file: %s", exc)

    def sync(self) -> None:
        """Apply every queued inotify event (called before each answer)."""
        with self.lock:
            self._sync()

    def _sync(self) -> None:
        events = _sys.inotify_read(self.inotify)
        lease_events = _sys.inotify_read(self.lease_notify)
        if not events and not lease_events:
            return
        rescan = False
        touched: dict[tuple[str, str], None] = {}
        reload: set[str] = set()
        for wd, mask, name in events:
            if mask & _sys.IN_Q_OVERFLOW:  # events were lost: read the directory again
                rescan = True
            elif wd != self.dir_watch:
                continue
            elif mask & (_sys.IN_DELETE_SELF | _sys.IN_IGNORED):
                self.dir_watch = None
                rescan = True
            elif name.endswith(".json"):
                rescan = True
            elif name.endswith(".leases") and name[: -len(".leases")] in self.served:
                lost = self.served[name[: -len(".leases")]]
                if lost.watch is not None:  # the directory was replaced: watch the new one
                    self.by_watch.pop(lost.watch, None)
                    lost.watch = None
                self._watch_leases(lost)
        for wd, mask, name in lease_events:
            if mask & _sys.IN_Q_OVERFLOW:  # events were lost: read every lease directory again
                reload.update(self.served)
                continue
            network = self.by_watch.get(wd)
            if network is None:
                continue
            if mask & (_sys.IN_DELETE_SELF | _sys.IN_IGNORED):
                served = self.served.get(network)
                if served is not None and served.watch == wd:
                    served.watch = None
                self.by_watch.pop(wd, None)
                reload.add(network)
            elif name:
                touched[(network, name)] = None
        if rescan:
            self._watch_dir()
            self.rescan()
        for network in reload:
            if network in self.served:
                self._load_leases(network)
        for network, ip in touched:
            if network in self.served and network not in reload:
                self._load_lease(network, ip)

    def housekeeping(self) -> None:
        """Leases of dead processes whose veth is gone stop resolving (as IPAM reclaims them);
        a lost directory watch is renewed; sockets that could not be bound are retried."""
        self._watch_dir()
        alive: dict[str, bool] = {}
        with self.lock:
            doomed = []
            for network, entry in self.table.all_entries():
                if not entry.owner or entry.link is None:
                    continue
                if entry.owner not in alive:
                    alive[entry.owner] = _state.owner_alive(entry.owner)
                if not alive[entry.owner] and not _has_link(entry.link):
                    doomed.append((network, entry))
            for network, entry in doomed:
                self.stale.add((network, entry.ip, entry.owner))
                self.table.remove(network, entry.ip)
        for name, served in list(self.served.items()):
            if not _bridge_is(*served.bridge):  # removed by hand, or with its host: nothing to serve
                self._drop(name)
                continue
            if served.udp is None or served.tcp is None:
                self._bind(served)
            if served.watch is None:
                self._watch_leases(served)
        now = time.monotonic()
        if self.served:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now
        elif now - self.idle_since > IDLE_EXIT:
            log.info("no network left to serve: exiting")
            self.stop = True
        if now >= self.next_orphan_check:
            self.next_orphan_check = now + ORPHAN_CHECK
            if self.orphaned():
                log.info("nothing but this process keeps host namespace %d-%d: exiting", *self.host)
                self.stop = True

    def orphaned(self) -> bool:
        """True if no live netns_kit process owns one of the served networks or endpoints, and no
        other process, /run/netns entry or the initial namespace is this host namespace."""
        owners = {e.owner for _n, e in self.table.all_entries() if e.owner}
        for name in self.served:
            data = _state.read_json(os.path.join(self.directory, name + ".json")) or {}
            owners.add(str(data.get("owner") or ""))
        if any(o and _state.owner_alive(o) for o in owners):
            return False
        return not _namespace_held(self.host)

    # -- upstream ----------------------------------------------------------------------------------

    def upstreams(self) -> list[str]:
        """The host's nameservers (its resolv.conf, re-read when it changed), minus our own gateways."""
        try:
            st = os.stat(RESOLV_CONF)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key != self.resolv_key:
            self.resolv_key = key
            try:
                with open(RESOLV_CONF, encoding="utf-8", errors="replace") as f:
                    self.resolv = ResolvConf.parse(f.read())
            except OSError:
                self.resolv = ResolvConf()
        own = {s.info.gateway for s in self.served.values()}
        return [ns for ns in self.resolv.nameservers if ns not in own]

    def _forward_udp(self, data: bytes, client: tuple[str, int], sock: socket.socket,
                     upstreams: list[str]) -> None:
        while upstreams:
            server = upstreams.pop(0)
            up = self.up6 if ":" in server else self.up4
            if up is None:
                continue
            for _ in range(8):
                new_id = struct.pack("!H", random.getrandbits(16))
                if (server, new_id) not in self.pending:
                    break
            try:
                up.sendto(new_id + data[2:], (server, 53))
            except OSError as exc:
                log.debug("upstream %s: %s", server, exc)
                continue
            self.pending[(server, new_id)] = _Pending(client, sock, data[:2], data, upstreams,
                                                      time.monotonic() + UPSTREAM_TIMEOUT)
            return
        self._servfail(data, client, sock)

    def _servfail(self, data: bytes, client: tuple[str, int], sock: socket.socket) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.SERVFAIL)
        with contextlib.suppress(OSError):
            sock.sendto(wire(resp, udp_limit(query)), client)

    def _upstream_reply(self, up: socket.socket) -> None:
        while True:
            try:
                data, addr = up.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error for an earlier query
                continue
            if len(data) < 12:
                continue
            pend = self.pending.pop((_strip(addr[0]), data[:2]), None)
            if pend is None:
                continue
            with contextlib.suppress(OSError):
                pend.sock.sendto(pend.query_id + data[2:], pend.client)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, pend in list(self.pending.items()):
            if pend.deadline <= now:
                del self.pending[key]
                self._forward_udp(pend.wire, pend.client, pend.sock, pend.upstreams)

    # -- queries -----------------------------------------------------------------------------------

    def _udp_query(self, sock: socket.socket, network: str) -> None:
        served = self.served.get(network)
        local = served.info.gateway if served is not None else ""
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self._sync()
            if self.table.generation != self.cache_generation:
                self.cache.clear()
                self.cache_generation = self.table.generation
            key = (data[2:], self.table.scope(addr[0], local))
            hit = self.cache.get(key)
            if hit is not None:  # the same question from the same scope since the last change
                if hit == _FORWARD:
                    self._forward_udp(data, addr, sock, self.upstreams())
                    continue
                with contextlib.suppress(OSError):
                    sock.sendto(data[:2] + hit, addr)
                continue
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            resp = respond(query, self.table, addr[0], local)
            if len(self.cache) >= CACHE_SIZE:
                self.cache.clear()
            if resp is None:
                self.cache[key] = _FORWARD
                self._forward_udp(data, addr, sock, self.upstreams())
                continue
            out = wire(resp, udp_limit(query))
            self.cache[key] = out[2:]
            with contextlib.suppress(OSError):
                sock.sendto(out, addr)

    def _tcp_accept(self, sock: socket.socket, network: str) -> None:
        served = self.served.get(network)
        local = served.info.gateway if served is not None else ""
        while True:
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not self.tcp_slots.acquire(blocking=False):  # too many TCP clients at once: refuse this one
                conn.close()
                continue
            conn.setblocking(True)
            conn.settimeout(10)
            threading.Thread(target=self._tcp_client, args=(conn, addr[0], local), daemon=True).start()

    def _tcp_client(self, conn: socket.socket, client: str, local: str) -> None:
        try:
            self._tcp_exchange(conn, client, local)
        finally:
            self.tcp_slots.release()

    def _tcp_exchange(self, conn: socket.socket, client: str, local: str) -> None:
        with conn:
            while True:
                try:
                    data = _read_framed(conn)
                except OSError:
                    return
                if data is None:
                    return
                try:
                    query = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    return
                with self.lock:
                    self.sync()
                    resp = respond(query, self.table, client, local)
                    upstreams = self.upstreams() if resp is None else []
                out = wire(resp, None) if resp is not None else _forward_tcp(data, upstreams, query)
                try:
                    conn.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    return

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self._watch_dir()
        next_tick = time.monotonic()
        while not self.stop:
            timeout = max(0.0, next_tick - time.monotonic())
            if self.pending:
                timeout = min(timeout, max(0.0, min(p.deadline for p in self.pending.values()) - time.monotonic()))
            for key, _mask in self.sel.select(timeout):
                with self.lock:
                    self._event(key)
            with self.lock:
                if self.pending:
                    self._expire()
                if time.monotonic() >= next_tick:
                    self._sync()
                    self.housekeeping()
                    next_tick = time.monotonic() + TICK
        with self.lock:
            for name in list(self.served):
                self._drop(name)

    def _event(self, key: selectors.SelectorKey) -> None:
        what = key.data
        if what == "inotify":
            self._sync()
        elif what == "wake":
            with contextlib.suppress(OSError):
                os.read(self.wake_r, 512)
        elif what == "upstream":
            self._upstream_reply(key.fileobj)  # type: ignore[arg-type]
        elif what[0] == "udp":
            self._udp_query(key.fileobj, what[1])  # type: ignore[arg-type]
        else:
            self._tcp_accept(key.fileobj, what[1])  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop = True
        self.signalled = True


_IP_FREEBIND = 15


def _strip(addr: str) -> str:
    return addr[7:] if addr.startswith("::ffff:") else addr


def _bridge_is(name: str, index: int) -> bool:
    try:
        return socket.if_nametoindex(name) == index
    except OSError:
        return False


def _forget_record(dev: int, ino: int) -> None:
    """After exiting by itself: delete the host's service record and log if they still name this
    process (skipped if a process holds the host's ``dns`` lock: it is starting or stopping one)."""
    record = os.path.join(_state.dns_dir(), f"{dev}-{ino}.json")
    try:
        with _state.lock(f"dns-{dev}-{ino}", blocking=False):
            data = _state.read_json(record) or {}
            if data.get("pid") != os.getpid():
                return
            for suffix in (".log", ".serving"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(_state.dns_dir(), f"{dev}-{ino}{suffix}"))
            _state.delete_json(record)
    except (BlockingIOError, OSError) as exc:
        log.info("left the service record to its owner: %s", exc)


def _namespace_held(ident: tuple[int, int]) -> bool:
    """True if the network namespace ``ident`` is the initial one, is named under /run/netns, or
    has a process other than this one (any thread) in it."""
    candidates = ["/proc/1/ns/net"]
    with contextlib.suppress(OSError):
        candidates += [os.path.join("/run/netns", n) for n in os.listdir("/run/netns")]
    for path in candidates:
        with contextlib.suppress(OSError):
            if _sys.stat_identity(path) == ident:
                return True
    me = str(os.getpid())
    want = f"net:[{ident[1]}]"
    with contextlib.suppress(OSError):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            with contextlib.suppress(OSError):
                for tid in os.listdir(f"/proc/{pid}/task"):
                    if os.readlink(f"/proc/{pid}/task/{tid}/ns/net") == want:
                        return True
    return False


def _has_link(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _read_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_framed(conn: socket.socket) -> bytes | None:
    """One DNS-over-TCP message (two bytes of length, then the message); None at the end."""
    head = _read_exact(conn, 2)
    if head is None:
        return None
    return _read_exact(conn, struct.unpack("!H", head)[0])


def _forward_tcp(data: bytes, upstreams: list[str], query: dns.message.Message) -> bytes:
    """Ask the upstream servers over TCP, in order; SERVFAIL if none answers."""
    for server in upstreams:
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(UPSTREAM_TIMEOUT)
                s.connect((server, 53))
                s.sendall(struct.pack("!H", len(data)) + data)
                out = _read_framed(s)
        except OSError as exc:
            log.debug("upstream %s over TCP: %s", server, exc)
            continue
        if out is not None and len(out) >= 12:
            return data[:2] + out[2:]
    resp = dns.message.make_response(query)
    resp.set_rcode(dns.rcode.SERVFAIL)
    return wire(resp, None)


def main(argv: list[str] | None = None) -> int:
    """``python -m netns_kit._dnsd DEV-INO``: serve the networks of this host namespace."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s netns-kit-dns[%(process)d] %(message)s")
    dev, ino = (int(x) for x in args[0].split("-", 1))
    if _sys.stat_identity("/proc/thread-self/ns/net") != (dev, ino):
        log.error("not in host namespace %d-%d: refusing to serve it", dev, ino)
        return 2
    server = Server((dev, ino))
    log.info("started for host %d-%d", dev, ino)
    try:
        server.run()
    except Exception:
        log.exception("stopped by an error")
        return 1
    if not server.signalled:
        _forget_record(dev, ino)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
