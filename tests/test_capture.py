"""Packet captures proven by traffic: what the pcapng file holds, read back with scapy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import PcapNgReader, rdpcap
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace
from netns_kit._packets import decode
from netns_kit.capture import Capture, CaptureFilter


def _pair(host: Namespace) -> tuple[nk.Network, nk.Endpoint, nk.Endpoint]:
    net = nk.Network("capnet", subnet="10.61.0.0/24", subnet6="fd61::/64").create()
    a = nk.Endpoint("cap-a", mode=net).create()
    b = nk.Endpoint("cap-b", mode=net).create()
    return net, a, b


def _ip(ep: nk.Endpoint) -> str:
    return str(ep.connections[0].ip)


def test_tcp_connection_and_ping_in_the_file(host: Namespace, tmp_path: Path) -> None:
    with nk.Transaction(keep=False):
        _net, a, b = _pair(host)
        a_ip, b_ip = _ip(a), _ip(b)
        path = tmp_path / "a.pcapng"
        with serve(b.namespace, b_ip, 8080), Capture(a, "eth0", path) as cap:
            assert connect(a.namespace, b_ip, 8080) == "hello from cap-b\n"
            assert a.namespace.run(["ping", "-c2", "-W2", b_ip]).returncode == 0
        assert not cap.running
    pkts = rdpcap(str(path))
    tcp = [p for p in pkts if TCP in p]
    syn = [p for p in tcp if p[TCP].flags == "S"]
    assert len(syn) == 1 and syn[0][IP].src == a_ip and syn[0][IP].dst == b_ip and syn[0][TCP].dport == 8080
    assert any(p[IP].src == b_ip and p[TCP].sport == 8080 and p[TCP].dport == syn[0][TCP].sport for p in tcp)
    echo = [p for p in pkts if ICMP in p]
    assert [p[ICMP].type for p in echo].count(8) == 2 and [p[ICMP].type for p in echo].count(0) == 2
    assert {p.sniffed_on for p in pkts} == {"eth0"}
    assert {p.direction for p in syn} == {2}  # outbound, as a saw it
    assert cap.packets == len(pkts)
    flows = {(f.proto, f.src, f.dst, f.dport) for f in cap.summary()}
    assert ("tcp", a_ip, b_ip, 8080) in flows and ("icmp", a_ip, b_ip, None) in flows
    tcp_out = next(f for f in cap.summary() if f.proto == "tcp" and f.src == a_ip)
    assert tcp_out.packets == len([p for p in tcp if p[IP].src == a_ip])
    assert tcp_out.bytes == sum(len(p) for p in tcp if p[IP].src == a_ip)
    assert "<table>" in cap._repr_html_() and b_ip in cap._repr_html_()


def test_filter_keeps_only_matching_frames(host: Namespace, tmp_path: Path) -> None:
    with nk.Transaction(keep=False):
        _net, a, b = _pair(host)
        b_ip = _ip(b)
        with serve(b.namespace, b_ip, 8080), serve(b.namespace, b_ip, 8081), serve(b.namespace, "::", 5353, "udp"), \
                Capture(b, "eth0", tmp_path / "f.pcapng", filter="tcp dst port 8081") as only81, \
                Capture(b, None, tmp_path / "u.pcapng", filter="udp or icmp6") as udp:
            assert connect(a.namespace, b_ip, 8080) is not None
            assert connect(a.namespace, b_ip, 8081) is not None
            assert connect(a.namespace, "fd61::3", 5353, proto="udp") is not None
    kept = rdpcap(str(tmp_path / "f.pcapng"))
    assert kept and all(p[TCP].dport == 8081 for p in kept)
    assert only81.seen > only81.packets == len(kept)
    got = rdpcap(str(tmp_path / "u.pcapng"))
    dgrams = [p for p in got if UDP in p]
    assert {(p[IPv6].dst, p[UDP].dport) for p in dgrams if p[UDP].dport == 5353} == {("fd61::3", 5353)}
    assert {p.sniffed_on for p in got} == {"eth0"} and udp.packets == len(got)


def test_host_side_sees_the_endpoint_traffic(host: Namespace, tmp_path: Path) -> None:
    with nk.Transaction(keep=False):
        _net, a, b = _pair(host)
        b_ip = _ip(b)
        conn = a.connections[0]
        with serve(b.namespace, b_ip, 8080), Capture(a, side="host", path=tmp_path / "h.pcapng",
                                                     filter="tcp") as cap:
            assert cap.namespace.same_as(host) and cap.ifname == conn.host_ifname
            assert connect(a.namespace, b_ip, 8080) is not None
    pkts = rdpcap(str(tmp_path / "h.pcapng"))
    assert any(p[TCP].flags == "S" and p[IP].dst == b_ip for p in pkts)
    assert {p.sniffed_on for p in pkts} == {conn.host_ifname}


def test_file_closed_and_valid_after_an_exception(host: Namespace, tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    with nk.Transaction(keep=False):
        _net, a, b = _pair(host)
        b_ip = _ip(b)
        cap = Capture(a.namespace, "eth0", path, filter="icmp")
        with pytest.raises(RuntimeError, match="boom"), cap:
            assert a.namespace.run(["ping", "-c1", "-W2", b_ip]).returncode == 0
            raise RuntimeError("boom")
        assert not cap.running
        cap.stop()  # idempotent
    with PcapNgReader(str(path)) as reader:
        pkts = list(reader)
    assert [p[ICMP].type for p in pkts] == [8, 0]
    # the file ends exactly at a block boundary: a pcapng block's total length is repeated at its end
    data = path.read_bytes()
    assert data[:4] == b"\x0a\x0d\x0d\x0a" and len(data) % 4 == 0
    assert int.from_bytes(data[-4:], "little") <= len(data)


def test_capture_bad_input_changes_nothing(host: Namespace, tmp_path: Path) -> None:
    with nk.Namespace("cap-x") as x:
        with pytest.raises(nk.ValidationError, match="unknown word"):
            Capture(x, "lo", tmp_path / "n.pcapng", filter="tcp portt 80")
        with pytest.raises(nk.ValidationError):
            Capture(x, side="host")
        with pytest.raises(nk.ValidationError):
            Capture("not an endpoint")
        with pytest.raises(nk.NotFoundError, match="nosuch"):
            Capture(x, "nosuch", tmp_path / "n.pcapng").start()
        assert not os.path.exists(tmp_path / "n.pcapng")
        with Capture(x, "lo") as tmp:  # no path: a temporary file
            assert x.run(["ping", "-c1", "-W1", "127.0.0.1"]).returncode == 0
        assert tmp.path.endswith(".pcapng") and len(rdpcap(tmp.path)) == 4  # echo and reply, each seen twice
        os.unlink(tmp.path)


@pytest.mark.pure
def test_filter_language() -> None:
    def frame(proto: int, src: str, dst: str, sport: int = 0, dport: int = 0) -> bytes:
        import ipaddress
        import struct
        ip = (struct.pack("!BBHHHBBH", 0x45, 0, 40, 0, 0, 64, proto, 0)
              + ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed)
        return bytes(12) + b"\x08\x00" + ip + struct.pack("!HH", sport, dport) + bytes(16)

    web = frame(6, "10.0.0.1", "10.0.0.2", 40000, 80)
    dns = frame(17, "10.0.0.2", "10.0.0.9", 5353, 53)
    ping = frame(1, "10.0.0.1", "10.0.0.2")
    info = decode(web)
    assert (info.proto, str(info.src), str(info.dst), info.sport, info.dport) == ("tcp", "10.0.0.1", "10.0.0.2",
                                                                                  40000, 80)
    cases = {
        "tcp": (True, False, False), "tcp port 80": (True, False, False), "port 80 or port 53": (True, True, False),
        "src host 10.0.0.2": (False, True, False), "host 10.0.0.2": (True, True, True),
        "not icmp": (True, True, False), "udp and not dst port 53": (False, False, False),
        "ip and (icmp or udp)": (False, True, True), "net 10.0.0.8/29": (False, True, False),
        "dst portrange 50-100": (True, True, False), "ip6": (False, False, False),
    }
    for text, want in cases.items():
        f = CaptureFilter(text)
        assert (f.matches(web), f.matches(dns), f.matches(ping)) == want, text
    for bad in ["", "tcp and", "port 70000", "host nowhere", "(tcp", "portrange 9-1", "tcp udp", "tcp )"]:
        with pytest.raises(nk.ValidationError, match="capture filter"):
            CaptureFilter(bad)
