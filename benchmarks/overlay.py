"""Overlay networks: endpoint setup cost next to a local network's, and TCP throughput between two
hosts' endpoints over the overlay next to the plain underlay between the hosts (same run, ratios).

Run inside the sandbox:  bash scripts/sandbox.sh .venv/bin/python benchmarks/overlay.py 100 [SECONDS]
Two "hosts" are namespaces h1 and h2 joined by a veth pair (the underlay, 192.168.77.0/24), inside
a throwaway host namespace. Setup: N endpoints connected one after the other to a local Network on
h1 and to h1's side of an OverlayNetwork (namespaces made beforehand; the time of ``connect`` and of
``disconnect``), alternating the two in rounds of 10 so that machine noise hits both alike.
Throughput: one TCP stream for SECONDS (default 2) from an endpoint on h1 to one on h2 over the overlay, and from
h1 to h2 over the underlay, three times each, alternating; the median of each.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time

import netns_kit as nk
from netns_kit.testing import isolated_host

PORT = 5201


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def throughput(src: nk.Namespace, dst: nk.Namespace, dst_ip: str, seconds: float = 2.0) -> float:
    """Gbit/s of one TCP stream from ``src`` to ``dst_ip`` (a sink inside ``dst``) for ``seconds``."""
    with dst.enter():
        srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((dst_ip, PORT))
    srv.listen(1)
    got = [0]

    def sink() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(1 << 20):
                got[0] += len(data)

    t = threading.Thread(target=sink)
    t.start()
    with src.enter():
        cli = socket.socket()
    cli.connect((dst_ip, PORT))
    buf = bytes(1 << 18)
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        cli.sendall(buf)
    cli.close()
    t.join()
    elapsed = time.perf_counter() - start
    srv.close()
    return got[0] * 8 / elapsed / 1e9


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    with isolated_host():
        h1, h2 = nk.Namespace("h1").create(), nk.Namespace("h2").create()
        try:
            _sh("ip", "link", "add", "ul1", "netns", "h1", "type", "veth", "peer", "name", "ul2", "netns", "h2")
            for ns, ifname, ip in ((h1, "ul1", "192.168.77.1"), (h2, "ul2", "192.168.77.2")):
                ns.add_address(ifname, f"{ip}/24")
                ns.set_link(ifname, up=True)
                ns.set_link("lo", up=True)
            run(n, h1, h2, seconds)
        finally:
            h1.remove()
            h2.remove()


def run(n: int, h1: nk.Namespace, h2: nk.Namespace, seconds: float) -> None:
    shares = {"192.168.77.1": "10.60.1.0/24", "192.168.77.2": "10.60.2.0/24"}

    def side(host: nk.Namespace, me: str) -> nk.OverlayNetwork:
        peers = {a: s for a, s in shares.items() if a != me}
        return nk.OverlayNetwork("ov", vni=42, subnet="10.60.0.0/16", share=shares[me], local=me, peers=peers,
                                 host=host)

    with nk.Network("local", subnet="10.70.0.0/16", host=h1) as local, side(h1, "192.168.77.1") as ov1, \
            side(h2, "192.168.77.2") as ov2:
        nets: dict[str, nk.Network] = {"local Network": local, "OverlayNetwork": ov1}
        setup: dict[str, list[float]] = {k: [] for k in nets}
        teardown: dict[str, list[float]] = {k: [] for k in nets}
        spaces = {k: [nk.Namespace(f"{k[0]}{i}").create() for i in range(n)] for k in nets}
        try:
            for lo in range(0, n, 10):
                for label, net in nets.items():
                    conns = []
                    for ns in spaces[label][lo:lo + 10]:
                        t = time.perf_counter()
                        conns.append(net.connect(ns))
                        setup[label].append(time.perf_counter() - t)
                    for conn in reversed(conns):
                        t = time.perf_counter()
                        conn.disconnect()
                        teardown[label].append(time.perf_counter() - t)
        finally:
            for group in spaces.values():
                with nk.removal_batch():
                    for ns in group:
                        ns.remove()
        print(f"N={n} endpoints per network, one host")
        base = statistics.median(setup["local Network"])
        for label in nets:
            s, d = statistics.median(setup[label]), statistics.median(teardown[label])
            print(f"{label:16s} connect median {s * 1000:6.2f} ms ({s / base:4.2f}x local)  "
                  f"disconnect median {d * 1000:6.2f} ms")
        with nk.Namespace("e1") as e1, nk.Namespace("e2") as e2:
            c2 = ov2.connect(e2)
            c1 = ov1.connect(e1)
            ip2 = str(c2.ip)
            over: list[float] = []
            under: list[float] = []
            for _ in range(3):
                over.append(throughput(e1, e2, ip2, seconds))
                under.append(throughput(h1, h2, "192.168.77.2", seconds))
            o, u = statistics.median(over), statistics.median(under)
            print(f"TCP h1->h2, one stream, {seconds:g} s x3: overlay endpoints {o:6.2f} Gbit/s, "
                  f"underlay {u:6.2f} Gbit/s (overlay/underlay {o / u:4.2f})")
            c1.disconnect()
            c2.disconnect()


if __name__ == "__main__":
    main()
