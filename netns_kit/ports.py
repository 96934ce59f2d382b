"""A published port as a pure value: :class:`PublishedPort` (Docker's ``-p`` syntax), no kernel access.

``PublishedPort.parse("127.0.0.1:8080:80/tcp", container_ip=..., bridge=...)`` reads Docker's
``-p`` syntax and validates everything before anything is changed. The firewall turns it into
nft map elements (see :mod:`netns_kit._nft_render`); :class:`~netns_kit.nat.NatRule` and
:meth:`~netns_kit.firewall.Firewall.publish` install it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .errors import ValidationError
from .model import ADDR_TYPES, IPAddr, check_args, parse_ip, validate_ifname

__all__ = ["PROTOCOLS", "Proto", "PublishedPort"]

PROTOCOLS = ("tcp", "udp", "sctp")
Proto = Literal["tcp", "udp", "sctp"]

_SPEC_RE = re.compile(
    r"^(?:(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9.]+):)?"
    r"(?P<hp>\d+)(?:-(?P<hpe>\d+))?:(?P<cp>\d+)(?:-(?P<cpe>\d+))?(?:/(?P<proto>[a-z]+))?$"
)


def _check_port(value: object, what: str, obj: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValidationError(f"{what} {value!r} must be an integer from 1 to 65535", obj=obj)
    return value


@dataclass(frozen=True)
class PublishedPort:
    """A port of a container published on the host: ``[host_ip:]host_port[-end] -> container_ip:port[-end]``.

    - ``host_ip``: ``None`` means every address of the host (of the container address's family);
      ``"127.0.0.1"`` (any 127.0.0.0/8 address) publishes on loopback only, never reachable from
      other hosts; any other address publishes on that address only. ``"0.0.0.0"`` and ``"::"`` are
      read as ``None``. IPv6 loopback (``::1``) is refused: the kernel does not route ``::1`` to
      another host, so it cannot be translated.
    - ``host_port``..``host_port_end`` maps one to one onto ``container_port``..``container_port_end``
      (the ranges have the same length).
    - ``proto``: ``"tcp"``, ``"udp"`` or ``"sctp"``.
    - ``bridge``: the bridge (in the host namespace) the container sits on.
    - ``bridge_port``: optional, the container's port on that bridge (the host end of its veth).
      Given, the firewall turns on ``hairpin`` on that port while the publication exists, so that
      the container can reach its own published port (the kernel bridges DNAT-ed traffic back
      to the same port only in hairpin mode). Without it, everything but that one path works.
    """

    host_port: int
    container_ip: str
    container_port: int
    bridge: str
    host_ip: str | None = None
    host_port_end: int | None = None
    proto: Proto = "tcp"
    bridge_port: str | None = None

    container_address: IPAddr = field(init=False, repr=False, compare=False)
    host_address: IPAddr | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_args("PublishedPort", host_port=(self.host_port, int), container_ip=(self.container_ip, str, *ADDR_TYPES),
                   container_port=(self.container_port, int), bridge=(self.bridge, str),
                   host_ip=(self.host_ip, str, *ADDR_TYPES, None), host_port_end=(self.host_port_end, int, None),
                   proto=(self.proto, str), bridge_port=(self.bridge_port, str, None))
        name = self.spec
        if self.proto not in PROTOCOLS:
            raise ValidationError(f"protocol {self.proto!r} must be one of {', '.join(PROTOCOLS)}", obj=name)
        _check_port(self.host_port, "host port", name)
        _check_port(self.container_port, "container port", name)
        if self.host_port_end is not None:
            _check_port(self.host_port_end, "host port range end", name)
            if self.host_port_end < self.host_port:
                raise ValidationError(f"host port range {self.host_port}-{self.host_port_end} is reversed",
                                      obj=name)
            if self.container_port + (self.host_port_end - self.host_port) > 65535:
                raise ValidationError("container port range would end above 65535", obj=name)
            if self.host_port_end == self.host_port:
                object.__setattr__(self, "host_port_end", None)
        validate_ifname(self.bridge, what="bridge name")
        if self.bridge_port is not None:
            validate_ifname(self.bridge_port, what="bridge port name")
        caddr = parse_ip(self.container_ip, what="container address")
        if caddr.is_loopback or caddr.is_unspecified or caddr.is_multicast:
            raise ValidationError(f"container address {caddr} must be a unicast address", obj=name)
        object.__setattr__(self, "container_ip", str(caddr))
        object.__setattr__(self, "container_address", caddr)
        haddr: IPAddr | None = None
        if self.host_ip is not None:
            haddr = parse_ip(self.host_ip, what="host address")
            if haddr.version != caddr.version:
                raise ValidationError(
                    f"host address {haddr} (IPv{haddr.version}) and container address {caddr} "
                    f"(IPv{caddr.version}) must be of the same family", obj=name)
            if haddr.is_unspecified:
                haddr = None
            elif haddr.version == 6 and haddr.is_loopback:
                raise ValidationError("IPv6 loopback (::1) cannot be published: the kernel never routes "
                                      "::1 to another host; publish on 127.0.0.1 or all addresses", obj=name)
            elif haddr.is_multicast:
                raise ValidationError(f"host address {haddr} is multicast", obj=name)
        object.__setattr__(self, "host_ip", str(haddr) if haddr is not None else None)
        object.__setattr__(self, "host_address", haddr)

    @classmethod
    def parse(cls, spec: str, *, container_ip: str, bridge: str, bridge_port: str | None = None) -> PublishedPort:
        """Read Docker's ``-p`` syntax: ``[host_ip:]host_port[-end]:container_port[-end][/proto]``.

        An IPv6 host address goes in brackets: ``[2001:db8::1]:8080:80``. Both ranges must have
        the same length. A missing host port (Docker's "pick one for me") is refused: netns_kit
        publishes only what it is told.
        """
        check_args("PublishedPort.parse", spec=(spec, str), container_ip=(container_ip, str, *ADDR_TYPES),
                   bridge=(bridge, str), bridge_port=(bridge_port, str, None))
        m = _SPEC_RE.match(spec.strip())
        if m is None:
            raise ValidationError(
                f"port spec {spec!r} must look like [host_ip:]host_port[-end]:container_port[-end][/proto], "
                "e.g. 8080:80, 127.0.0.1:8080:80/udp, 8000-8009:9000-9009", obj=spec)
        ip = m["ip"]
        if ip is not None and ip.startswith("["):
            ip = ip[1:-1]
        hp, cp = int(m["hp"]), int(m["cp"])
        hpe = int(m["hpe"]) if m["hpe"] else None
        cpe = int(m["cpe"]) if m["cpe"] else None
        if (hpe is None) != (cpe is None) or (hpe is not None and cpe is not None and hpe - hp != cpe - cp):
            raise ValidationError(f"port spec {spec!r}: host and container ranges must have the same length",
                                  obj=spec)
        proto = m["proto"] or "tcp"
        if proto not in PROTOCOLS:
            raise ValidationError(f"port spec {spec!r}: protocol must be one of {', '.join(PROTOCOLS)}", obj=spec)
        return cls(host_port=hp, host_port_end=hpe, container_ip=container_ip, container_port=cp,
                   bridge=bridge, host_ip=ip, proto=proto, bridge_port=bridge_port)  # type: ignore[arg-type]

    @property
    def family(self) -> int:
        """4 or 6: the family of the container address (and of the host address, if any)."""
        return self.container_address.version

    @property
    def container_port_end(self) -> int | None:
        if self.host_port_end is None:
            return None
        return self.container_port + (self.host_port_end - self.host_port)

    @property
    def loopback_only(self) -> bool:
        """True if published on 127.0.0.0/8 only (reachable from the host itself, never from others)."""
        return self.host_address is not None and self.host_address.is_loopback

    def pairs(self) -> list[tuple[int, int]]:
        """Every (host port, container port) pair this publication maps."""
        last = self.host_port_end if self.host_port_end is not None else self.host_port
        return [(hp, self.container_port + hp - self.host_port) for hp in range(self.host_port, last + 1)]

    @property
    def spec(self) -> str:
        """The publication in Docker's ``-p`` syntax, with the container address."""
        hp = f"{self.host_port}" + (f"-{self.host_port_end}" if self.host_port_end is not None else "")
        end = self.container_port_end if self.host_port_end is not None else None
        cp = f"{self.container_port}" + (f"-{end}" if end is not None else "")
        if self.host_ip is None:
            host = ""
        elif ":" in self.host_ip:
            host = f"[{self.host_ip}]:"
        else:
            host = f"{self.host_ip}:"
        cip = f"[{self.container_ip}]" if ":" in str(self.container_ip) else f"{self.container_ip}"
        return f"{host}{hp}->{cip}:{cp}/{self.proto}"

    def __str__(self) -> str:
        return self.spec
