"""Traffic helpers for the tests: real TCP/UDP servers and clients inside namespaces.

Sockets are created while the calling thread is inside the namespace (``Namespace.enter``),
so they belong to it; the I/O then runs from ordinary threads.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from netns_kit import Namespace


@dataclass
class Server:
    """A TCP (or UDP) echo-ish server: answers each connection with b"hello from NAME\\n"."""

    ns: Namespace
    address: str
    port: int
    proto: str = "tcp"
    peers: list[tuple[str, int]] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                if self.proto == "udp":
                    _data, peer = self._sock.recvfrom(2048)
                    if not peer:  # the socket was shut down
                        return
                    self.peers.append((peer[0], peer[1]))
                    self._sock.sendto(b"hello from " + self.ns.label.encode() + b"\n", peer)
                    continue
                conn, peer = self._sock.accept()
            except OSError:
                return
            self.peers.append((peer[0], peer[1]))
            with conn, suppress(OSError):
                conn.sendall(b"hello from " + self.ns.label.encode() + b"\n")


@contextmanager
def serve(ns: Namespace, address: str = "0.0.0.0", port: int = 8080, proto: str = "tcp") -> Iterator[Server]:
    """Listen on ``address:port`` inside ``ns`` for the duration of the block."""
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with ns.enter():
        sock = socket.socket(fam, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    if proto == "tcp":
        sock.listen(64)
    srv = Server(ns, address, port, proto)
    srv._sock = sock
    srv._thread = threading.Thread(target=srv._serve, daemon=True)
    srv._thread.start()
    try:
        yield srv
    finally:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        srv._thread.join(timeout=2)


def connect(ns: Namespace, address: str, port: int, *, timeout: float = 2.0, proto: str = "tcp",
            source: str | None = None) -> str | None:
    """Connect from inside ``ns``; return the server's greeting, or None if refused/dropped/timed out."""
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with ns.enter():
        sock = socket.socket(fam, kind)
    sock.settimeout(timeout)
    try:
        if source is not None:
            sock.bind((source, 0))
        if proto == "udp":
            sock.sendto(b"ping", (address, port))
            data, _ = sock.recvfrom(2048)
        else:
            sock.connect((address, port))
            data = sock.recv(2048)
        return data.decode()
    except OSError:
        return None
    finally:
        sock.close()


def wait_connect(ns: Namespace, address: str, port: int, timeout: float = 20.0) -> str | None:
    """Connect until the server answers (a container's server starts a moment after its engine says
    it runs); what it said, or None if nothing answered within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = connect(ns, address, port, timeout=1.0)
        if got is not None or time.monotonic() > deadline:
            return got
        time.sleep(0.1)
