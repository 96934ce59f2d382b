"""Pure value objects and validators: no kernel access, no root needed.

Every value object is a frozen dataclass validated in ``__post_init__``; a bad
value raises :class:`~netns_kit.errors.ValidationError` naming the value and why,
before anything touches the kernel.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from .errors import ValidationError

__all__ = [
    "AddressInfo",
    "IPInterface",
    "LinkInfo",
    "Route",
    "RouteInfo",
    "check_arg",
    "check_args",
    "check_items",
    "check_usable_subnet",
    "format_rate",
    "overlap",
    "parse_interface",
    "parse_ip",
    "parse_mac",
    "parse_rate",
    "validate_ifname",
    "validate_netns_name",
]

IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddr: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_T = TypeVar("_T")
IFACE_TYPES = (ipaddress.IPv4Interface, ipaddress.IPv6Interface)
ADDR_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
NET_TYPES = (ipaddress.IPv4Network, ipaddress.IPv6Network)

IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL: 15 usable bytes
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_NETNS_NAME_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@+=-]{0,254}$")


def _type_names(types: tuple[type, ...], none: bool) -> str:
    names = [t.__name__ for t in types] + (["None"] if none else [])
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_instance(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:  # True is an int to Python, not to us
        return False
    return isinstance(value, types)


def check_arg(value: _T, name: str, types: type | tuple[type, ...], *, none: bool = False,
              owner: str = "") -> _T:
    """Return ``value`` if it is an instance of ``types`` (or None with ``none=True``), else raise
    ValidationError naming the argument (``owner``: the call it belongs to, e.g. ``"VethPair"``).

    A bool is not accepted where an int is asked for. Pure: call it before any kernel change.
    """
    wanted = types if isinstance(types, tuple) else (types,)
    if (value is None and none) or _is_instance(value, wanted):
        return value
    where = f"{owner}: " if owner else ""
    raise ValidationError(f"{where}argument {name!r} must be {_type_names(wanted, none)}, "
                          f"got {type(value).__name__} {_short(value)}", obj=_short(value),
                          step=f"check argument {name}")


def check_items(value: Iterable[_T] | Any, name: str, types: type | tuple[type, ...], *,
                owner: str = "") -> tuple[_T, ...]:
    """The items of ``value`` (a list, tuple or other iterable, but not a str, bytes or mapping)
    as a tuple, each an instance of ``types``; else ValidationError naming the argument (a lone
    ``"10.0.0.1/24"`` is refused, not read character by character)."""
    wanted = types if isinstance(types, tuple) else (types,)
    where = f"{owner}: " if owner else ""
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(f"{where}argument {name!r} must be a list of {_type_names(wanted, False)}, "
                              f"got {type(value).__name__} {_short(value)}", obj=_short(value),
                              step=f"check argument {name}")
    items = tuple(value)
    for i, item in enumerate(items):
        if not _is_instance(item, wanted):
            raise ValidationError(f"{where}argument {name!r}: item {i} must be {_type_names(wanted, False)}, "
                                  f"got {type(item).__name__} {_short(item)}", obj=_short(item),
                                  step=f"check argument {name}")
    return items


def _items_exactly(value: list[Any] | tuple[Any, ...], allowed: tuple[Any, ...]) -> bool:
    """True if ``allowed`` has a list of types and every item's type is exactly one of them (the
    common case of a list argument; anything else takes the full check)."""
    for a in allowed:
        if type(a) is list:
            return all(type(item) in a for item in value)
    return False


def check_args(owner: str, **args: tuple[Any, ...]) -> None:
    """Check several arguments of the call ``owner`` at once: ``name=(value, *allowed)``, where an
    allowed entry is a type, ``None`` (None accepted), or a list of types (an iterable of those,
    not a str). ValidationError naming the first wrong argument; nothing else happens."""
    for name, spec in args.items():
        value = spec[0]
        allowed = spec[1:]
        kind = type(value)
        if kind in allowed:  # the common case: exactly an allowed type (a bool only if bool is)
            continue
        none = None in allowed
        if value is None and none:
            continue
        if (kind is list or kind is tuple) and _items_exactly(value, allowed):
            continue
        lists = [a for a in allowed if isinstance(a, list)]
        types = tuple(a for a in allowed if isinstance(a, type))
        if lists and not (types and _is_instance(value, types)):
            if isinstance(value, Iterator):  # a generator: its items are checked where it is read
                continue
            check_items(value, name, tuple(lists[0]), owner=owner)
        else:
            check_arg(value, name, types, none=none, owner=owner)


def validate_ifname(name: object, *, what: str = "interface name") -> str:
    """Return ``name`` if it is a valid Linux interface name, else raise ValidationError.

    The kernel accepts 1-15 bytes with no '/', ':', whitespace, and not '.' or '..'.
    """
    if not isinstance(name, str):
        raise ValidationError(f"{what} must be a str, got {type(name).__name__}", obj=repr(name))
    raw = name.encode("utf-8", "surrogateescape")
    if not 1 <= len(raw) < IFNAMSIZ:
        raise ValidationError(f"{what} {name!r} must be 1-15 bytes long (it is {len(raw)})", obj=name)
    if name in (".", ".."):
        raise ValidationError(f"{what} {name!r} is reserved", obj=name)
    for ch in name:
        if ch in "/:" or ch.isspace() or not ch.isprintable():
            raise ValidationError(
                f"{what} {name!r} contains {ch!r}; '/', ':', whitespace and control characters are not allowed",
                obj=name,
            )
    return name


def validate_netns_name(name: object) -> str:
    """Return ``name`` if it is safe as a file name under /run/netns, else raise ValidationError.

    Allowed: letters, digits and ``_ . @ + = -`` (not starting with '-'), at most 255 bytes,
    not '.' or '..'. This keeps the name inside /run/netns and out of command-line options.
    """
    if not isinstance(name, str):
        raise ValidationError(f"namespace name must be a str, got {type(name).__name__}", obj=repr(name))
    if name in (".", "..") or not _NETNS_NAME_RE.fullmatch(name):
        raise ValidationError(
            f"namespace name {name!r} is not allowed: use 1-255 of letters, digits and '_.@+=-', "
            "not starting with '-', and not '.' or '..'",
            obj=name,
        )
    return name


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_ADDR = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\Z")
_V4_IFACE = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(3[0-2]|[12]?[0-9])\Z")
"""A dotted-quad IPv4 address without leading zeros (and a prefix length of 0-32): what
``ipaddress`` reads the same way."""


def parse_interface(value: object, *, what: str = "address") -> IPInterface:
    """Parse ``'ADDR/PREFIX'`` (IPv4 or IPv6) into an interface address; no prefix means a host route."""
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be 'ADDR/PREFIX', got {type(value).__name__}", obj=repr(value))
    m = _V4_IFACE.match(value)
    if m is not None:  # the common form, 10.0.0.2/24: the same object without the general parser
        a, b, c, d, plen = map(int, m.groups())
        return ipaddress.IPv4Interface(((a << 24) | (b << 16) | (c << 8) | d, plen))
    try:
        return ipaddress.ip_interface(value.strip())
    except ValueError as exc:
        raise ValidationError(f"{what} {value!r} is not a valid IP address with prefix: {exc}", obj=value) from exc


def parse_ip(value: object, *, what: str = "IP address") -> IPAddr:
    """Parse a bare IPv4 or IPv6 address."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, got {type(value).__name__}", obj=repr(value))
    m = _V4_ADDR.match(value)
    if m is not None:  # the common form, 10.0.0.2: the same object without the general parser
        a, b, c, d = map(int, m.groups())
        return ipaddress.IPv4Address((a << 24) | (b << 16) | (c << 8) | d)
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError as exc:
        raise ValidationError(f"{what} {value!r} is not a valid IP address", obj=value) from exc


def parse_network(value: object, *, what: str = "subnet") -> IPNet:
    """Parse a network in CIDR form; host bits must be zero."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str in CIDR form, got {type(value).__name__}", obj=repr(value))
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValidationError(f"{what} {value!r} is not a valid network in CIDR form: {exc}", obj=value) from exc


_UNUSABLE: tuple[tuple[IPNet, str], ...] = tuple((ipaddress.ip_network(net), kind) for net, kind in (
    ("0.0.0.0/8", "unspecified"), ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"), ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("fe80::/10", "link-local"), ("ff00::/8", "multicast"),
))


def check_usable_subnet(net: IPNet, *, what: str = "subnet") -> IPNet:
    """Return ``net`` if it can serve a bridge network or a host's addresses; ValidationError if it
    overlaps a loopback, multicast, link-local, unspecified or broadcast range (IPv4 or IPv6): a
    bridge on 127.0.0.0/8 would take 127.0.0.1 and put a loopback route in the main table."""
    for reserved, kind in _UNUSABLE:
        if reserved.version == net.version and reserved.overlaps(net):
            raise ValidationError(f"{what} {net} overlaps the {kind} range {reserved}, which cannot serve a "
                                  "bridge network or an endpoint's address", obj=str(net), step="validate")
    return net


def overlap(nets: Iterable[IPNet], others: Iterable[IPNet] | None = None) -> tuple[IPNet, IPNet] | None:
    """The first pair of same-family subnets that overlap: one of ``nets`` and one of ``others``,
    or (without ``others``) two different entries of ``nets``. None if there is none."""
    mine = list(nets)
    if others is None:
        pairs = ((a, b) for i, a in enumerate(mine) for b in mine[i + 1:])
    else:
        theirs = list(others)
        pairs = ((a, b) for a in mine for b in theirs)
    return next(((a, b) for a, b in pairs if a.version == b.version and a.overlaps(b)), None)


def parse_mac(value: object) -> str:
    """Validate a MAC address ``aa:bb:cc:dd:ee:ff``; it must be unicast (lowest bit of the first byte clear)."""
    if not isinstance(value, str) or not _MAC_RE.fullmatch(value):
        raise ValidationError(f"MAC address {value!r} must look like 'aa:bb:cc:dd:ee:ff'", obj=repr(value))
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise ValidationError(f"MAC address {value!r} is a multicast address", obj=value)
    if mac == "00:00:00:00:00:00":
        raise ValidationError("MAC address 00:00:00:00:00:00 is not usable", obj=value)
    return mac


def validate_mtu(mtu: object) -> int:
    """MTU between 68 (IPv4 minimum) and 65535."""
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
        raise ValidationError(f"MTU {mtu!r} must be an integer from 68 to 65535", obj=repr(mtu))
    return mtu


@dataclass(frozen=True)
class Route:
    """A route to install: ``dst`` (``"default"`` or a CIDR), optional ``gateway`` and ``dev``.

    At least one of ``gateway`` and ``dev`` is needed. ``metric`` maps to the route priority.
    """

    dst: str = "default"
    gateway: str | None = None
    dev: str | None = None
    metric: int | None = None
    table: int = 254

    network: IPNet = field(init=False, repr=False, compare=False)
    gateway_ip: IPAddr | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_args("Route", dst=(self.dst, str), gateway=(self.gateway, str, *ADDR_TYPES, None),
                   dev=(self.dev, str, None), metric=(self.metric, int, None), table=(self.table, int))
        gw = parse_ip(self.gateway, what="gateway") if self.gateway is not None else None
        if self.dst in ("default", "default4", "default6"):
            if self.dst == "default6" or (self.dst == "default" and gw is not None and gw.version == 6):
                net: IPNet = ipaddress.IPv6Network("::/0")
            else:
                net = ipaddress.IPv4Network("0.0.0.0/0")
        else:
            net = parse_network(self.dst, what="route destination")
        if gw is not None and gw.version != net.version:
            raise ValidationError(
                f"route to {self.dst} (IPv{net.version}) cannot go via IPv{gw.version} gateway {gw}",
                obj=f"route {self.dst}",
            )
        if gw is None and self.dev is None:
            raise ValidationError(f"route to {self.dst} needs a gateway or a dev", obj=f"route {self.dst}")
        if self.dev is not None:
            validate_ifname(self.dev, what="route device")
        if self.metric is not None and (not isinstance(self.metric, int) or not 0 <= self.metric < 2**32):
            raise ValidationError(f"route metric {self.metric!r} must be 0..2^32-1", obj=f"route {self.dst}")
        if not isinstance(self.table, int) or not 1 <= self.table < 2**32:
            raise ValidationError(f"route table {self.table!r} must be 1..2^32-1", obj=f"route {self.dst}")
        object.__setattr__(self, "network", net)
        object.__setattr__(self, "gateway_ip", gw)

    @property
    def family(self) -> int:
        return self.network.version


@dataclass(frozen=True)
class LinkInfo:
    """One network interface as the kernel reports it."""

    index: int
    name: str
    kind: str | None
    mtu: int
    mac: str | None
    up: bool
    master: int | None
    peer_index: int | None = None
    namespace_id: int | None = None
    alias: str | None = None
    group: int | None = None


@dataclass(frozen=True)
class AddressInfo:
    """One address on an interface."""

    index: int
    ifname: str
    interface: IPInterface

    @property
    def address(self) -> IPAddr:
        return self.interface.ip


@dataclass(frozen=True)
class RouteInfo:
    """One route from the main table (or the table the query named)."""

    dst: IPNet
    gateway: IPAddr | None
    oif: int | None
    ifname: str | None
    table: int
    metric: int | None
    scope: int
    protocol: int

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?\s*$", re.I)
_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9,
               "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9}


def parse_rate(rate: int | str) -> int:
    """A rate in bits per second: an int, or a string like ``"10mbit"``, ``"512kbit"``, ``"1gbit"``.

    Units follow tc: ``bit``, ``kbit``, ``mbit``, ``gbit`` (powers of 1000) and ``bps``, ``kbps``,
    ``mbps``, ``gbps`` (bytes per second). Between 8 bit/s and 100 Gbit/s.
    """
    if isinstance(rate, bool):
        raise ValidationError(f"rate {rate!r} must be bits per second or a string like '10mbit'", obj=repr(rate))
    if isinstance(rate, int):
        bits = rate
    elif isinstance(rate, str) and (m := _RATE_RE.match(rate)):
        bits = int(float(m.group(1)) * _RATE_UNITS[(m.group(2) or "bit").lower()])
    else:
        raise ValidationError(f"rate {rate!r} must be bits per second or a string like '10mbit'", obj=repr(rate))
    if not 8 <= bits <= 100 * 10**9:
        raise ValidationError(f"rate {rate!r} must be between 8 bit/s and 100gbit", obj=repr(rate))
    return bits


def format_rate(bits: int) -> str:
    """A rate in bits per second as tc writes it (``10mbit``, ``512kbit``, ``1500bit``)."""
    for unit, size in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits % size == 0:
            return f"{bits // size}{unit}"
    return f"{bits}bit"
