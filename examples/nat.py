"""NAT: a container's outbound traffic masqueraded, a port published, reached from everywhere.

Builds (all inside one Transaction(keep=False), so it is all undone at the end):

    outside (203.0.113.2) --veth-- host (203.0.113.1)
    host: bridge nknat0 10.124.0.1/24 -- "web" 10.124.0.2, "client" 10.124.0.3

then publishes web's port 80 as host port 8080 (on every address) and as 127.0.0.1:9090,
and checks each path with a real TCP connection, printing the source address the far end saw.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import netns_kit as nk
from netns_kit.firewall import Firewall, NetworkPolicy
from netns_kit.nat import PublishedPort


@contextmanager
def serve(ns: nk.Namespace, port: int) -> Iterator[list[str]]:
    """A TCP server in ``ns`` that answers "hello" and records each client's address."""
    with ns.enter():
        srv = socket.create_server(("0.0.0.0", port))
    seen: list[str] = []

    def loop() -> None:
        while True:
            try:
                conn, peer = srv.accept()
            except OSError:
                return
            seen.append(peer[0])
            with conn:
                conn.sendall(b"hello")

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        srv.close()
        t.join(2)


def reach(ns: nk.Namespace, addr: str, port: int) -> bool:
    with ns.enter():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.5)
    try:
        s.connect((addr, port))
        return s.recv(16) == b"hello"
    except OSError:
        return False
    finally:
        s.close()


def main() -> None:
    host = nk.Namespace.current()
    fw = Firewall.for_namespace(host)
    with nk.Transaction(keep=False):
        outside = nk.Namespace("nknat-outside").create()
        nk.VethPair("vnknatout", "eth0", peer_namespace=outside).create()
        host.add_address("vnknatout", "203.0.113.1/24")
        outside.add_address("eth0", "203.0.113.2/24")
        br = nk.Bridge("nknat0", addresses=["10.124.0.1/24"]).create()
        boxes = {}
        for i, name in enumerate(("web", "client"), start=2):
            ns = nk.Namespace(f"nknat-{name}").create()
            nk.VethPair(f"vnknat{name}", "eth0", peer_namespace=ns, master=br).create()
            ns.add_address("eth0", f"10.124.0.{i}/24")
            ns.add_route(nk.Route(gateway="10.124.0.1"))
            boxes[name] = ns
        web, client = boxes["web"], boxes["client"]

        fw.attach_network(NetworkPolicy("nknat0", (ipaddress.ip_network("10.124.0.0/24"),)))
        print("attached bridge nknat0 (10.124.0.0/24): masquerade on, icc on; ip_forward =",
              host.read_sysctl("net.ipv4.ip_forward"))
        with serve(outside, 9000) as seen:
            ok = reach(client, "203.0.113.2", 9000)
            print(f"client -> outside 203.0.113.2:9000: {'ok' if ok else 'FAILED'}, outside saw {seen[-1:]}"
                  " (the host's address: masqueraded)")

        everywhere = PublishedPort.parse("8080:80", container_ip="10.124.0.2", bridge="nknat0",
                                         bridge_port="vnknatweb")
        loopback = PublishedPort.parse("127.0.0.1:9090:80", container_ip="10.124.0.2", bridge="nknat0")
        nk.NatRule.dnat(everywhere).create()
        nk.NatRule.dnat(loopback).create()
        print(f"published {everywhere.spec} and {loopback.spec}")
        print(fw.describe())
        with serve(web, 80) as seen:
            for who, ns, addr, port, want in [
                ("outside", outside, "203.0.113.1", 8080, True),
                ("host", host, "203.0.113.1", 8080, True),
                ("host", host, "127.0.0.1", 8080, True),
                ("client (peer)", client, "10.124.0.1", 8080, True),
                ("web itself (hairpin)", web, "203.0.113.1", 8080, True),
                ("host", host, "127.0.0.1", 9090, True),
                ("outside", outside, "203.0.113.1", 9090, False),
            ]:
                got = reach(ns, addr, port)
                source = seen[-1] if got and seen else "-"
                verdict = "as it must" if got == want else "UNEXPECTED"
                print(f"  {who:>20} -> {addr}:{port}: {'reached' if got else 'refused/dropped'}"
                      f" ({verdict}; web saw {source})")
                assert got == want
    print("after the transaction:", fw.describe())
    assert host.run(["nft", "list", "table", "inet", "netns_kit"]).returncode != 0


if __name__ == "__main__":
    main()
