"""Docker's five network modes and a user-defined network, each checked by real traffic.

An "outside world" namespace (203.0.113.2) is joined to the host (203.0.113.1) by a veth, so
outbound masquerade and a published port can be seen from the far side. Everything is built
inside one Transaction(keep=False) and torn down at the end.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import netns_kit as nk
from netns_kit.testing import named_namespaces


@contextmanager
def serve(ns: nk.Namespace, address: str, port: int) -> Iterator[list[str]]:
    """A TCP server in ``ns``: answers b"hello from NS"; yields the list of client addresses it saw."""
    with ns.enter():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(8)
    seen: list[str] = []

    def loop() -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            seen.append(peer[0])
            with conn:
                conn.sendall(f"hello from {ns.label}".encode())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(2)


def talk(ns: nk.Namespace, address: str, port: int) -> str:
    """Connect from ``ns``; the greeting, or what went wrong."""
    with ns.enter():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(1.5)
    try:
        sock.connect((address, port))
        return sock.recv(100).decode()
    except OSError as exc:
        return f"no answer ({type(exc).__name__})"
    finally:
        sock.close()


def main() -> None:
    host = nk.Namespace.current()
    with nk.Transaction(keep=False):
        outside = nk.Namespace("demo-outside").create()
        nk.VethPair("to-outside", "eth0", peer_namespace=outside).create()
        host.add_address("to-outside", "203.0.113.1/24")
        outside.add_address("eth0", "203.0.113.2/24")

        print("-- none: its own namespace, only lo")
        quiet = nk.Endpoint("demo-none", "none").create()
        print("   interfaces:", [(link.name, "up" if link.up else "down") for link in quiet.namespace.links()])

        print("-- host: no namespace of its own")
        h = nk.Endpoint("demo-host", "host").create()
        print("   same namespace as the host:", h.namespace.same_as(host),
              "| sees", sorted(link.name for link in h.namespace.links()))

        print("-- bridge (the default): default network made on first use, port 8080 -> 80 published")
        web = nk.Endpoint("demo-web", publish=["8080:80"]).create()
        cli = nk.Endpoint("demo-cli").create()
        net = nk.default_network()
        assert net is not None
        print("  ", net.describe().replace("\n", "\n   "))
        with serve(outside, "0.0.0.0", 9000) as seen:
            print("   web -> outside 203.0.113.2:9000:", talk(web.namespace, "203.0.113.2", 9000),
                  f"(outside saw source {seen[-1]}: the host's address, masqueraded)")
        with serve(web.namespace, "0.0.0.0", 80):
            print("   outside -> host 203.0.113.1:8080:", talk(outside, "203.0.113.1", 8080))
            print(f"   cli -> web {web.address}:80:", talk(cli.namespace, str(web.address), 80))

        print("-- container: the very namespace of demo-web")
        side = nk.Endpoint("demo-side", nk.ContainerMode(web)).create()
        print("   same addresses as web:", [str(a) for a in side.addresses] == [str(a) for a in web.addresses])
        with serve(web.namespace, "127.0.0.1", 7000):
            print("   side -> 127.0.0.1:7000 (web's localhost):", talk(side.namespace, "127.0.0.1", 7000))

        print("-- custom: a user-defined network with a fixed address and name resolution")
        app = nk.Network("demo-app", subnet="10.77.0.0/24", ip_range="10.77.0.128/25").create()
        api = nk.Endpoint("demo-api", "demo-app", ip="10.77.0.10", aliases=["api"]).create()
        db = nk.Endpoint("demo-db", nk.CustomMode(app)).create()
        print("  ", app.describe().replace("\n", "\n   "))
        print("   db resolves 'api':", db.run(["getent", "hosts", "api"]).stdout.strip())
        with serve(api.namespace, "0.0.0.0", 5000):
            print("   db -> api:5000 by name:", talk(db.namespace, str(app.resolve("api")), 5000))
            print("   cli (default network) -> api:5000:", talk(cli.namespace, "10.77.0.10", 5000),
                  "(networks are isolated)")

        print("-- internal: a network with no way out")
        vault = nk.Network("demo-vault", subnet="10.78.0.0/24", internal=True).create()
        safe = nk.Endpoint("demo-safe", nk.CustomMode(vault)).create()
        with serve(outside, "0.0.0.0", 9000):
            print("   safe -> outside:", talk(safe.namespace, "203.0.113.2", 9000), "(no default route, and the "
                  "firewall drops what leaves an internal network)")
        print("   named namespaces:", sorted(n for n in named_namespaces() if n.startswith("demo-")))
    left = sorted(n for n in named_namespaces() if n.startswith("demo-"))
    print("after the transaction: namespaces left", left, "| host interfaces",
          sorted(link.name for link in host.links()))


if __name__ == "__main__":
    main()
