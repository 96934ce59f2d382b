"""Pure rendering of netns_kit's nftables state as libnftables JSON commands (no kernel, no root).

Everything netns_kit puts in the kernel lives in one table, ``table inet netns_kit``, whose
rules are fixed: they never change after the table is made. What varies (networks, published
ports, masqueraded subnets) is data, kept as elements of the sets and maps below, so a
packet's lookup and the cost of adding an entry do not grow with the number of entries
(moby#53466 is the counter-example: one rule per port)::

    set  bridges      ifname                      every attached bridge
    set  icc          ifname . ifname             "br . br" for bridges with inter-container traffic on
    set  internal     ifname                      bridges with no way out
    set  masq4/6      ipv4/6 subnet (interval)    sources to masquerade ...
    set  masq4/6_skip subnet . ifname (interval)  ... except when leaving through their own bridge
    set  hairpin4/6   addr . addr                 "c . c": a container reaching its own published port
    map  dnat4/6      proto . port -> addr . port              ports published on every address
    map  dnat4/6_addr addr . proto . port -> addr . port       ports published on one address

    chain guard        filter prerouting -300  drop 127.0.0.0/8 arriving on a bridge (route_localnet)
    chain prerouting   nat prerouting -100     DNAT (never for 127.0.0.0/8: moby#41872)
    chain output       nat output -100         DNAT of the host's own connections (incl. 127.0.0.1,
                                               not ::1: IPv6 loopback never leaves the host)
    chain postrouting  nat postrouting 100     masquerade: 127.0.0.0/8 -> bridge, hairpin, subnets
    chain forward      filter forward -10      icc, isolation, internal, published ports;
                                               packets it accepts get ``meta mark | ACCEPT_MARK``

Every command built here is a plain dict ready for ``{"nftables": [...]}``. The same elements
can be written as ``nft`` command text for plans (:func:`element_text`, :func:`port_text`) and
read back from a listing (:func:`listed_elements`, :func:`parse_port_element`, :func:`value_text`):
one spelling of each element, here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

from .model import IPNet
from .ports import PublishedPort

__all__ = [
    "ACCEPT_MARK",
    "FAMILY",
    "TABLE",
    "TABLE_COMMENT",
    "V6_SETS",
    "Cmd",
    "PortElement",
    "delete_table",
    "element_cmds",
    "element_key",
    "element_keys",
    "element_text",
    "hairpin_elements",
    "listed_elements",
    "masquerade_elements",
    "needs_v6",
    "network_elements",
    "parse_port_element",
    "port_elements",
    "port_slots",
    "port_text",
    "skeleton6_text",
    "skeleton_text",
    "value_text",
]

Cmd = dict[str, Any]
Op = Literal["add", "create", "delete"]

FAMILY = "inet"
TABLE = "netns_kit"
TABLE_COMMENT = "netns_kit v1: owned by netns_kit, do not edit"
ACCEPT_MARK = 0x01000000
"""Bit that netns_kit's forward chain ORs into the packet mark of everything it accepts.

A forward chain of another table with ``policy drop`` still drops what netns_kit accepted (an
accept ends only its own chain). Add ``meta mark & 0x01000000 == 0x01000000 accept`` to that
chain (at a priority after -10) to let netns_kit's traffic through. See docs/nat.md."""

def _t(obj: Cmd) -> Cmd:
    return {"family": FAMILY, "table": TABLE, **obj}


def _addr_type(version: int) -> str:
    return "ipv4_addr" if version == 4 else "ipv6_addr"


def _family_set_defs(v: int) -> list[tuple[str, str, str]]:
    """``(kind, name, body)`` of the sets and maps of one address family."""
    at = _addr_type(v)
    return [
        ("set", f"masq{v}", f'type {at}; flags interval; comment "subnets to masquerade";'),
        ("set", f"masq{v}_skip", f'type {at} . ifname; flags interval; comment "subnet . own bridge: no masquerade";'),
        ("set", f"hairpin{v}", f'type {at} . {at}; comment "container . container: masquerade to own port";'),
        ("map", f"dnat{v}", f'type inet_proto . inet_service : {at} . inet_service; '
                            'comment "published on every address";'),
        ("map", f"dnat{v}_addr", f'type {at} . inet_proto . inet_service : {at} . inet_service;\n'
                                  '    comment "published on one address";'),
    ]


def _family_sets(v: int) -> str:
    return "".join(f"\n  {kind} {name} {{ {body} }}" for kind, name, body in _family_set_defs(v))


# The NAT rules look ``meta l4proto . th dport`` up without checking the protocol first: the maps'
# keys hold only tcp, udp and sctp, so a packet of any other protocol finds no element (the two
# bytes ``th dport`` reads for it never matter). A check such as ``meta l4proto { tcp, udp, sctp }``
# would be an anonymous set per rule, and libnftables reads every set into its cache before every
# batch, whoever sends it (tables made by earlier versions have them; they decide the same).
_L4 = ""

V6_SETS = frozenset({"masq6", "masq6_skip", "hairpin6", "dnat6", "dnat6_addr"})
"""The sets and maps of the table's IPv6 part (see :func:`skeleton6_text`)."""


def needs_v6(names: Iterable[str]) -> bool:
    """True if any of these set or map names is in the table's IPv6 part (:data:`V6_SETS`)."""
    return any(name in V6_SETS for name in names)


def skeleton_text() -> str:
    """The table with its sets, maps, chains and fixed rules for IPv4, as one nft script (one
    transaction); :func:`skeleton6_text` adds the IPv6 part when the first IPv6 element needs it,
    so that a host without IPv6 networks keeps a smaller ruleset (libnftables reads the whole
    ruleset into its cache before every batch, whoever sends it).

    It is a constant: no caller data is ever interpolated into it (all data goes in elements,
    as JSON). Text rather than JSON because libnftables 1.0.6 crashes parsing a JSON ``dnat``
    whose address comes from a map with concatenated data (``dnat ip to ... map @dnat4``).
    """
    mark = f"meta mark set meta mark | {ACCEPT_MARK:#010x}"
    return f"""table {FAMILY} {TABLE} {{
  comment "{TABLE_COMMENT}"
  set bridges {{ type ifname; comment "attached bridges"; }}
  set icc {{ type ifname . ifname; comment "bridge . bridge: inter-container communication on"; }}
  set internal {{ type ifname; comment "internal bridges: no way out"; }}{_family_sets(4)}
  chain guard {{
    type filter hook prerouting priority -300; policy accept;
    iifname @bridges ip daddr 127.0.0.0/8 drop comment "route_localnet must not open the host's loopback"
  }}
  chain prerouting {{
    type nat hook prerouting priority -100; policy accept;
    ip daddr != 127.0.0.0/8 dnat ip to ip daddr . meta l4proto . th dport map @dnat4_addr
    ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport map @dnat4
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    dnat ip to ip daddr . meta l4proto . th dport map @dnat4_addr
    fib daddr type local dnat ip to meta l4proto . th dport map @dnat4
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip saddr 127.0.0.0/8 oifname @bridges masquerade comment "host to container via 127.0.0.1"
    ip saddr . ip daddr @hairpin4 masquerade comment "masquerade to own port"
    ip saddr . oifname @masq4_skip return
    ip saddr @masq4 masquerade comment "outbound"
  }}
  chain forward {{
    type filter hook forward priority -10; policy accept;
    iifname . oifname @icc {mark} accept comment "icc"
    iifname @internal drop comment "internal"
    oifname @internal drop comment "internal"
    oifname @bridges ct state established,related {mark} accept comment "replies"
    oifname @bridges ct status dnat {mark} accept comment "published ports"
    oifname @bridges drop comment "isolation, icc off, no direct inbound"
    iifname @bridges {mark} accept comment "outbound"
  }}
}}
"""


def skeleton6_text() -> str:
    """The table's IPv6 part, added to a table made by :func:`skeleton_text`: its sets and maps, and
    its rules appended to the NAT chains (an IPv6 rule never matches an IPv4 packet, so after the
    IPv4 rules it decides what it decided before them). One transaction that starts by *creating*
    the ``dnat6`` map: if the part exists already (made by another process, or by an older
    netns_kit that always made it), the whole script is refused with EEXIST and nothing changes.
    A constant, like :func:`skeleton_text`."""
    t = f"{FAMILY} {TABLE}"
    defs = _family_set_defs(6)
    first = next(d for d in defs if d[1] == "dnat6")
    rest = "".join(f"\n  {kind} {name} {{ {body} }}" for kind, name, body in defs if name != first[1])
    return f"""create {first[0]} {t} {first[1]} {{ {first[2]} }}
table {t} {{{rest}
}}
add rule {t} prerouting dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6_addr
add rule {t} prerouting fib daddr type local dnat ip6 to meta l4proto . th dport map @dnat6
add rule {t} output ip6 daddr != ::1 dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6_addr
add rule {t} output ip6 daddr != ::1 fib daddr type local dnat ip6 to meta l4proto . th dport map @dnat6
add rule {t} postrouting ip6 saddr . ip6 daddr @hairpin6 masquerade comment "masquerade to own port"
add rule {t} postrouting ip6 saddr . oifname @masq6_skip return
add rule {t} postrouting ip6 saddr @masq6 masquerade comment "outbound"
"""


def delete_table() -> Cmd:
    return {"delete": {"table": {"family": FAMILY, "name": TABLE}}}


Elements = dict[str, list[Any]]
"""set/map name -> elements (a map element is ``[key, value]``)."""


def _concat(*parts: Any) -> Cmd:
    return {"concat": list(parts)}


def _prefix(net: IPNet) -> Cmd:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _merge(into: Elements, more: Elements) -> Elements:
    for name, elems in more.items():
        into.setdefault(name, []).extend(elems)
    return into


def network_elements(bridge: str, subnets: Sequence[IPNet], *, internal: bool, icc: bool,
                     masquerade: bool, dns: tuple[str, int] | None = None) -> Elements:
    """The elements that attach one bridge network (masquerade only if not internal); with ``dns``
    (gateway, service port): ``gateway:53`` over UDP and TCP goes to ``gateway:port`` (the name service)."""
    out: Elements = {"bridges": [bridge]}
    if dns is not None:
        gw, port = dns
        out["dnat4_addr"] = [[_concat(gw, proto, 53), _concat(gw, port)] for proto in ("udp", "tcp")]
    if icc:
        out["icc"] = [_concat(bridge, bridge)]
    if internal:
        out["internal"] = [bridge]
    elif masquerade:
        for net in subnets:
            _merge(out, masquerade_elements(net, bridge))
    return out


def masquerade_elements(subnet: IPNet, bridge: str | None) -> Elements:
    """Masquerade ``subnet`` except when it leaves through ``bridge``."""
    out: Elements = {f"masq{subnet.version}": [_prefix(subnet)]}
    if bridge is not None:
        out[f"masq{subnet.version}_skip"] = [_concat(_prefix(subnet), bridge)]
    return out


def port_elements(port: PublishedPort) -> Elements:
    """The dnat map elements of one publication (one per host port of a range)."""
    v = port.family
    out: list[Any] = []
    for hp, cp in port.pairs():
        value = _concat(port.container_ip, cp)
        if port.host_ip is None:
            out.append([_concat(port.proto, hp), value])
        else:
            out.append([_concat(port.host_ip, port.proto, hp), value])
    return {f"dnat{v}" + ("" if port.host_ip is None else "_addr"): out}


def port_text(port: PublishedPort, op: Op = "add") -> list[str]:
    """The nft commands that ``op`` the dnat elements of ``port`` (for plans: what ``nft`` would run)."""
    return element_text(port_elements(port), op)


def port_slots(port: PublishedPort) -> list[tuple[int, str, int]]:
    """The host ports a publication takes, as ``(family, proto, host port)``: its dnat map keys
    without the host address (an every-address and a one-address publication of the same port
    clash, as sockets would)."""
    return [(port.family, port.proto, hp) for hp, _ in port.pairs()]


class PortElement(NamedTuple):
    """A dnat map element read back from the kernel: ``host_ip`` None means every address."""

    proto: str
    host_ip: str | None
    host_port: int
    container_ip: str
    container_port: int


def parse_port_element(name: str, elem: Any) -> PortElement | None:
    """Decode a listed element of map ``name`` (``dnat4``, ``dnat6_addr``, ...): the inverse of
    :func:`port_elements`. None for anything that is not a dnat element."""
    if not name.startswith("dnat") or not isinstance(elem, list) or len(elem) != 2:
        return None
    key, value = _parts(elem[0]), _parts(elem[1])
    if len(value) != 2:
        return None
    if name.endswith("_addr"):
        if len(key) != 3:
            return None
        host_ip: str | None = key[0]
        proto, hport = key[1], key[2]
    else:
        if len(key) != 2:
            return None
        host_ip, (proto, hport) = None, key
    return PortElement(proto, host_ip, int(hport), value[0], int(value[1]))


def hairpin_elements(container_ip: str, version: int | None = None) -> Elements:
    """The hairpin set element of a container; ``version`` (4 or 6) spares parsing a normalized address."""
    if version is None:
        addr = ipaddress.ip_address(container_ip)
        container_ip, version = str(addr), addr.version
    return {f"hairpin{version}": [_concat(container_ip, container_ip)]}


def _tagged(elem: Any, comment: str) -> Any:
    if isinstance(elem, list):  # a map element: [key, value]
        return [{"elem": {"val": elem[0], "comment": comment}}, elem[1]]
    return {"elem": {"val": elem, "comment": comment}}


def element_cmds(op: Op, elements: Elements, *, comment: str | None = None) -> list[Cmd]:
    """One command per set/map: ``add``/``create``/``delete`` of its elements.

    ``comment`` tags each added element (netns_kit puts its owner mark there, so that a later
    process can find what a dead one left behind); deletes go by key alone.
    """
    out: list[Cmd] = []
    for name, elems in elements.items():
        if not elems:
            continue
        if comment is not None and op != "delete":
            elems = [_tagged(e, comment) for e in elems]
        out.append({op: {"element": _t({"name": name, "elem": list(elems)})}})
    return out


def element_key(kind: str, elem: Any) -> tuple[Any, str | None]:
    """From a listed element (libnftables JSON), the key to delete it by and its comment."""
    if kind == "map" and isinstance(elem, list) and len(elem) == 2:
        elem = elem[0]
    if isinstance(elem, dict) and "elem" in elem:
        return elem["elem"].get("val"), elem["elem"].get("comment")
    return elem, None


def element_keys(elements: Elements) -> Elements:
    """The same elements by key alone (a map element's key, without its value): what deletes them."""
    return {name: [e[0] if isinstance(e, list) else e for e in elems] for name, elems in elements.items()}


def value_text(x: Any) -> str:
    """An element (or part of one) as nft writes it: ``10.0.0.0/24``, ``tcp . 8080 : 10.0.0.2 . 80``.

    Takes what this module renders and what libnftables lists (``{"elem": {"val": ...}}`` wrappers,
    prefixes, ranges, concatenations, ``[key, value]`` map elements).
    """
    if isinstance(x, dict):
        if "elem" in x:
            return value_text(x["elem"].get("val"))
        if "prefix" in x:
            return f"{x['prefix']['addr']}/{x['prefix']['len']}"
        if "range" in x:
            lo, hi = x["range"]
            return f"{value_text(lo)}-{value_text(hi)}"
        if "concat" in x:
            return " . ".join(value_text(p) for p in x["concat"])
        return str(x)
    if isinstance(x, list):
        return " : ".join(value_text(p) for p in x)
    return str(x)


def _parts(x: Any) -> list[str]:
    if isinstance(x, dict) and "elem" in x:
        x = x["elem"].get("val")
    if isinstance(x, dict) and "concat" in x:
        return [value_text(p) for p in x["concat"]]
    return [value_text(x)]


def element_text(elements: Elements, op: Op = "add") -> list[str]:
    """The ``nft`` command lines that ``op`` the elements, one per set/map (for plans and logs:
    netns_kit itself sends them as JSON, :func:`element_cmds`)."""
    return [f"nft {op} element {FAMILY} {TABLE} {name} '{{ {', '.join(value_text(e) for e in elems)} }}'"
            for name, elems in elements.items() if elems]


def listed_elements(objs: Iterable[Cmd]) -> Elements:
    """From a listing of the table (libnftables JSON), each set's and map's elements by name."""
    out: Elements = {}
    for o in objs:
        for kind in ("set", "map"):
            if kind in o:
                out[o[kind]["name"]] = list(o[kind].get("elem", []))
    return out


def merged(parts: Iterable[Elements]) -> Elements:
    out: Elements = {}
    for p in parts:
        _merge(out, p)
    return out
