"""Packets as a capture sees them: header decoding, the capture filter language, flow summaries.

Pure: no kernel, no sockets. :mod:`netns_kit.capture` feeds it the frames it reads.

**Filter language** (a small subset of tcpdump's, checked when the filter is made)::

    expr      := term ("or" term)*
    term      := factor ("and" factor)*
    factor    := "not" factor | "(" expr ")" | primitive
    primitive := tcp | udp | icmp | icmp6 | arp | ip | ip6
               | [src | dst] host ADDRESS
               | [src | dst] net PREFIX          (e.g. 10.0.0.0/24, fd00::/64)
               | [src | dst] port NUMBER         (TCP or UDP)
               | [src | dst] portrange LOW-HIGH

``host``, ``net`` and ``port`` without ``src``/``dst`` match either side. ``ip`` is IPv4 and
``ip6`` IPv6; ``icmp`` is ICMP for IPv4 and ``icmp6`` ICMPv6. A frame that is neither ARP nor
IP matches only ``not ...`` expressions. Examples: ``"tcp port 80"`` (an implicit ``and``
between a protocol and what follows it is accepted), ``"icmp or icmp6"``,
``"udp and not dst port 53"``, ``"host 10.0.0.2 and (tcp or udp)"``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import ValidationError
from .model import IPAddr

__all__ = ["CaptureFilter", "Flow", "PacketInfo", "decode", "summarize"]

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, ETH_P_8021Q = 0x0800, 0x0806, 0x86DD, 0x8100
_IP_PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}
_V6_EXT = {0, 43, 60}  # hop-by-hop, routing, destination options (fragment: 44, handled apart)


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """What a frame carries: ``proto`` (tcp, udp, icmp, icmp6, arp, ip, ip6, or the EtherType in
    hex), addresses (IP, or ARP's sender/target), ports (TCP/UDP only) and the frame's length."""

    proto: str
    length: int
    src: IPAddr | None = None
    dst: IPAddr | None = None
    sport: int | None = None
    dport: int | None = None
    version: int | None = None


def decode(frame: bytes) -> PacketInfo:
    """Decode an Ethernet frame's headers (one 802.1Q tag is skipped). Never raises: what cannot be
    decoded (short, or an unknown EtherType) comes back with only ``proto`` and ``length``."""
    n = len(frame)
    if n < 14:
        return PacketInfo("short", n)
    (etype,) = struct.unpack_from("!H", frame, 12)
    off = 14
    if etype == ETH_P_8021Q and n >= 18:
        (etype,) = struct.unpack_from("!H", frame, 16)
        off = 18
    if etype == ETH_P_ARP:
        if n < off + 28 or frame[off + 4] != 6 or frame[off + 5] != 4:
            return PacketInfo("arp", n)
        return PacketInfo("arp", n, ipaddress.IPv4Address(frame[off + 14:off + 18]),
                          ipaddress.IPv4Address(frame[off + 24:off + 28]), version=4)
    if etype == ETH_P_IP:
        if n < off + 20:
            return PacketInfo("ip", n, version=4)
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        src = ipaddress.IPv4Address(frame[off + 12:off + 16])
        dst = ipaddress.IPv4Address(frame[off + 16:off + 20])
        (frag,) = struct.unpack_from("!H", frame, off + 6)
        first = (frag & 0x1FFF) == 0
        return _l4(frame, off + ihl, proto if first else -1, n, src, dst, 4)
    if etype == ETH_P_IPV6:
        if n < off + 40:
            return PacketInfo("ip6", n, version=6)
        nxt = frame[off + 6]
        src6 = ipaddress.IPv6Address(frame[off + 8:off + 24])
        dst6 = ipaddress.IPv6Address(frame[off + 24:off + 40])
        pos = off + 40
        while n >= pos + 8:
            if nxt in _V6_EXT:
                nxt, pos = frame[pos], pos + (frame[pos + 1] + 1) * 8
            elif nxt == 44:  # fragment header: ports only in the first fragment
                (fo,) = struct.unpack_from("!H", frame, pos + 2)
                nxt, pos = (frame[pos] if fo >> 3 == 0 else -1), pos + 8
            else:
                break
        return _l4(frame, pos, nxt, n, src6, dst6, 6)
    return PacketInfo(f"0x{etype:04x}", n)


def _l4(frame: bytes, pos: int, proto: int, n: int, src: IPAddr, dst: IPAddr, version: int) -> PacketInfo:
    name = _IP_PROTOS.get(proto, "ip" if version == 4 else "ip6")
    if name in ("tcp", "udp") and n >= pos + 4:
        sport, dport = struct.unpack_from("!HH", frame, pos)
        return PacketInfo(name, n, src, dst, sport, dport, version)
    return PacketInfo(name, n, src, dst, version=version)


# -- the filter language ---------------------------------------------------------------------------

Predicate = Callable[[PacketInfo], bool]
_PROTO_WORDS = {"tcp", "udp", "icmp", "icmp6", "arp", "ip", "ip6"}


def _proto_pred(word: str) -> Predicate:
    if word == "ip":
        return lambda p: p.version == 4 and p.proto != "arp"
    if word == "ip6":
        return lambda p: p.version == 6
    return lambda p: p.proto == word


def _sides(direction: str | None) -> tuple[bool, bool]:
    return (direction in (None, "src"), direction in (None, "dst"))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = text.replace("(", " ( ").replace(")", " ) ").split()
        self.i = 0

    def error(self, why: str) -> ValidationError:
        return ValidationError(f"capture filter {self.text!r}: {why}", obj=self.text, step="parse capture filter")

    def peek(self) -> str | None:
        return self.tokens[self.i].lower() if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise self.error("ends too early")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        if not self.tokens:
            raise self.error("is empty (use filter=None to capture everything)")
        pred = self.expr()
        if self.i != len(self.tokens):
            raise self.error(f"unexpected {self.tokens[self.i]!r}")
        return pred

    def expr(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == "or":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda p: any(f(p) for f in parts))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.peek() not in (None, "or", ")"):
            if self.peek() == "and":
                self.take()
            elif not self._implicit_and_ok():
                raise self.error(f"expected 'and' or 'or' before {self.tokens[self.i]!r}")
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda p: all(f(p) for f in parts))

    def _implicit_and_ok(self) -> bool:
        # "tcp port 80", "udp dst port 53": a protocol word directly followed by a primitive
        prev = self.tokens[self.i - 1].lower() if self.i else ""
        return prev in _PROTO_WORDS and self.peek() not in _PROTO_WORDS

    def factor(self) -> Predicate:
        tok = self.peek()
        if tok == "not":
            self.take()
            inner = self.factor()
            return lambda p: not inner(p)
        if tok == "(":
            self.take()
            inner = self.expr()
            if self.peek() != ")":
                raise self.error("a '(' is not closed")
            self.take()
            return inner
        return self.primitive()

    def primitive(self) -> Predicate:
        word = self.take().lower()
        if word in _PROTO_WORDS:
            return _proto_pred(word)
        direction: str | None = None
        if word in ("src", "dst"):
            direction, word = word, self.take().lower()
        use_src, use_dst = _sides(direction)
        if word == "host":
            raw = self.take()
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                raise self.error(f"{raw!r} is not an IP address") from None
            return lambda p: (use_src and p.src == addr) or (use_dst and p.dst == addr)
        if word == "net":
            raw = self.take()
            try:
                net = ipaddress.ip_network(raw, strict=False)
            except ValueError:
                raise self.error(f"{raw!r} is not a network prefix") from None
            return lambda p: ((use_src and p.src is not None and p.src in net)
                              or (use_dst and p.dst is not None and p.dst in net))
        if word in ("port", "portrange"):
            raw = self.take()
            low, _, high = raw.partition("-") if word == "portrange" else (raw, "", raw)
            lo, hi = self._port(low), self._port(high)
            if lo > hi:
                raise self.error(f"port range {raw!r} is reversed")
            return lambda p: ((use_src and p.sport is not None and lo <= p.sport <= hi)
                              or (use_dst and p.dport is not None and lo <= p.dport <= hi))
        raise self.error(f"unknown word {word!r} (expected a protocol, host, net, port or portrange)")

    def _port(self, raw: str) -> int:
        if not raw.isdigit() or not 0 <= int(raw) <= 65535:
            raise self.error(f"port {raw!r} must be a number from 0 to 65535")
        return int(raw)


@dataclass(frozen=True)
class CaptureFilter:
    """A parsed capture filter (see the module's grammar). Bad text raises
    :class:`~netns_kit.errors.ValidationError` when the filter is made."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValidationError(f"capture filter {self.text!r} must be a string", obj=repr(self.text),
                                  step="parse capture filter")
        object.__setattr__(self, "_pred", _Parser(self.text).parse())

    def matches(self, packet: PacketInfo | bytes) -> bool:
        """True if the packet (a decoded one, or an Ethernet frame) passes the filter."""
        info = decode(packet) if isinstance(packet, bytes | bytearray) else packet
        pred: Predicate = object.__getattribute__(self, "_pred")
        return pred(info)


# -- flows -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Flow:
    """Packets of one direction of one conversation: protocol, addresses and ports (None where the
    protocol has none), and how many frames and bytes (frame lengths) were captured."""

    proto: str
    src: str
    dst: str
    sport: int | None
    dport: int | None
    packets: int
    bytes: int

    def __str__(self) -> str:
        s = self.src if self.sport is None else _hostport(self.src, self.sport)
        d = self.dst if self.dport is None else _hostport(self.dst, self.dport)
        return f"{self.proto} {s} -> {d}: {self.packets} packets, {self.bytes} bytes"


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


FlowKey = tuple[str, str, str, int | None, int | None]


def flow_key(p: PacketInfo) -> FlowKey:
    return (p.proto, "" if p.src is None else str(p.src), "" if p.dst is None else str(p.dst), p.sport, p.dport)


def summarize(packets: Iterable[PacketInfo]) -> list[Flow]:
    """Flows in the order they were first seen."""
    counts: dict[FlowKey, list[int]] = {}
    for p in packets:
        c = counts.setdefault(flow_key(p), [0, 0])
        c[0] += 1
        c[1] += p.length
    return flows_from(counts)


def flows_from(counts: dict[FlowKey, list[int]]) -> list[Flow]:
    """Flows from ``{key: [packets, bytes]}`` (insertion order kept)."""
    return [Flow(k[0], k[1], k[2], k[3], k[4], c[0], c[1]) for k, c in counts.items()]
