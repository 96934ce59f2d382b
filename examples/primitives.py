"""The foundation: two namespaces on a bridge, addressed and routed, checked by ping and TCP.

Everything is built inside one Transaction(keep=False), so it is all torn down at the end;
then a build that fails halfway shows the rollback leaving nothing behind.
"""

from __future__ import annotations

import socket
import threading

import netns_kit as nk


def main() -> None:
    host = nk.Namespace.current()
    before = {link.name for link in host.links()}
    with nk.Transaction(keep=False) as tx:
        br = nk.Bridge("nkdemo0", addresses=["10.123.0.1/24", "fd12:3::1/64"]).create()
        for i in (1, 2):
            ns = nk.Namespace(f"nkdemo-{i}").create()
            nk.VethPair(f"vnkdemo{i}", "eth0", peer_namespace=ns, master=br).create()
            ns.add_address("eth0", f"10.123.0.{i + 1}/24")
            ns.add_address("eth0", f"fd12:3::{i + 1}/64")
            ns.add_route(nk.Route(gateway="10.123.0.1"))
        a, b = nk.Namespace.open("nkdemo-1"), nk.Namespace.open("nkdemo-2")
        print("recorded undo steps:", *tx.undo_steps, sep="\n  ")
        print("nkdemo-1 interfaces:", [(link.name, link.kind) for link in a.links()])
        print("nkdemo-1 addresses:", [str(x.interface) for x in a.addresses("eth0")])
        print("nkdemo-1 routes:", [f"{r.dst} via {r.gateway}" for r in a.routes(4)])
        ping = a.run(["ping", "-c", "1", "-W", "2", "10.123.0.3"])
        print("ping nkdemo-1 -> nkdemo-2:", "ok" if ping.returncode == 0 else "FAILED")

        # A TCP server in nkdemo-2, a client in nkdemo-1: the server sees the client's address.
        with b.enter():
            srv = socket.create_server(("::", 7000), family=socket.AF_INET6, dualstack_ipv6=True)
        seen: list[str] = []

        def accept() -> None:
            conn, peer = srv.accept()
            seen.append(peer[0])
            conn.close()

        t = threading.Thread(target=accept)
        t.start()
        with a.enter():
            cli = socket.create_connection(("fd12:3::3", 7000), timeout=3)
        cli.close()
        t.join(3)
        srv.close()
        print("TCP nkdemo-1 -> [fd12:3::3]:7000, server saw source", seen[0] if seen else None)

    print("after the transaction, host links are back to:", sorted(link.name for link in host.links()))
    assert {link.name for link in host.links()} == before

    # A build that fails halfway: the gateway is outside the subnet, so the route is refused
    # and everything made before it is undone.
    try:
        with nk.Transaction():
            ns = nk.Namespace("nkdemo-bad").create()
            nk.Bridge("nkdemo1", addresses=["192.168.0.1/24"]).create()
            nk.VethPair("vnkbad", "eth0", peer_namespace=ns, master="nkdemo1").create()
            ns.add_address("eth0", "192.168.0.123/24")
            ns.add_route(nk.Route(gateway="192.168.1.1"))  # the classic recipe's typo
    except nk.ValidationError as exc:
        print("refused:", exc)
    left = {link.name for link in host.links()} - before
    print("left behind after the failed build:", sorted(left) or "nothing")


if __name__ == "__main__":
    main()
