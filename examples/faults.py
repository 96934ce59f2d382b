"""Captures, faults and progress: see the packets, break the network precisely, watch a long build.

Twenty endpoints on a network are built with a progress callback. One of them serves HTTP on
ports 80 and 81. A capture on the client's eth0 records a fetch and a ping into a pcapng file
(read back with scapy) and prints its flows. A partition of port 80 only (81 still works), a
one-way UDP partition, 30 % packet loss made with nftables (no netem), a link flap, and the netem
option set (refused clearly on a kernel without netem) follow. Everything is undone at the end.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile

from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

import netns_kit as nk
import netns_kit.testing
from netns_kit.capture import Capture
from netns_kit.chaos import LinkFlap, PacketLoss, Partition
from netns_kit.harness import NetworkEmulation, Process

N = 20


def reaches(ep: nk.Endpoint, ip: str, port: int) -> bool:
    cmd = f"import socket; socket.create_connection(('{ip}', {port}), timeout=1).close()"
    return ep.run([sys.executable, "-c", cmd]).returncode == 0


def udp_arrives(src: nk.Endpoint, dst: nk.Endpoint, ip: str) -> bool:
    """Send one datagram from src to ip:9999 and say whether dst received it."""
    with dst.namespace.enter():
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with src.namespace.enter():
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind((ip, 9999))
        rx.settimeout(0.5)
        try:
            tx.sendto(b"hello", (ip, 9999))  # a drop in the sender's output chain: EPERM
            return rx.recv(16) == b"hello"
        except OSError:  # refused at the sender, or nothing arrived within the timeout
            return False


def main() -> None:
    steps: list[int] = []
    net = nk.Network("faultnet", subnet="10.68.0.0/24").create()
    try:
        with nk.Transaction(keep=False):
            eps = [nk.Endpoint(f"f{i}", mode=net).create() for i in range(N)]
            web, client = eps[0], eps[1]
            web_ip, client_ip = str(web.connections[0].ip), str(client.connections[0].ip)
            print(f"{N} endpoints on {net.name}: web {web_ip}, client {client_ip}")

            path = os.path.join(tempfile.mkdtemp(prefix="netns-kit-example-"), "client.pcapng")
            with Process(web, [sys.executable, "-m", "http.server", "--bind", web_ip, "80"]) as s80, \
                    Process(web, [sys.executable, "-m", "http.server", "--bind", web_ip, "81"]) as s81:
                s80.wait_for_port(80, host=web_ip)
                s81.wait_for_port(81, host=web_ip)

                with Capture(client, "eth0", path, filter="tcp port 80 or icmp") as cap:
                    client.run([sys.executable, "-c",
                                f"import urllib.request as u; u.urlopen('http://{web_ip}/').read()"], check=True)
                    client.run(["ping", "-c2", "-W1", web_ip], check=True)
                print(f"capture: {cap.packets} of {cap.seen} frames kept by the filter, in {path}")
                for flow in cap.summary():
                    print("  ", flow)
                syns = [p for p in rdpcap(path) if TCP in p and p[TCP].flags == "S"]
                print("scapy reads the SYN back:", [(p[IP].src, p[IP].dst, p[TCP].dport) for p in syns])
                os.unlink(path)
                os.rmdir(os.path.dirname(path))

                with Partition(client, web, ports=[80]) as p:
                    print(f"{p}: port 80 {reaches(client, web_ip, 80)}, port 81 {reaches(client, web_ip, 81)}")
                print("healed: port 80", reaches(client, web_ip, 80))

            with Partition(client, web, one_way=True):
                print("one-way partition: client -> web arrives", udp_arrives(client, web, web_ip),
                      "| web -> client arrives", udp_arrives(web, client, client_ip))

            with PacketLoss(client, 30, direction="egress") as loss:
                out = client.run(["ping", "-q", "-c", "200", "-i", "0.002", "-W", "1", web_ip]).stdout
                print(loss, "->", out.strip().splitlines()[-2])

            with LinkFlap(client, down=0.2, up=0.2, count=2) as flap:
                flap.wait()
            print("flap:", [("up" if up else "down") for _, up in flap.changes], "| eth0 up now:",
                  client.namespace.link("eth0").up)

            emu = NetworkEmulation("eth0", namespace=client.namespace, delay_ms=50, jitter_ms=10, loss_percent=1,
                                   duplicate_percent=1, corrupt_percent=0.1, reorder_percent=5, rate="10mbit")
            print("netem:", emu.commands()[0])
            try:
                with emu:
                    print("netem in place")
            except nk.UnsupportedError as exc:
                print("netem:", exc)

            with nk.removal_batch(progress=lambda done, total: steps.append(done)):
                for ep in eps:
                    ep.remove()
            print(f"removed {N} endpoints in one batch; progress went {steps[0]} .. {steps[-1]} "
                  f"in {len(steps)} calls")
    finally:
        net.remove(force=True)
    print("namespaces left:", sorted(nk.testing.named_namespaces()) or "none")


if __name__ == "__main__":
    main()
