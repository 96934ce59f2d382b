"""Published ports as pure values (no kernel access): :class:`PortSpec`, :class:`PublishedPort`, :class:`PortBinding`.

- :class:`PortSpec` is a ``-p`` spec as a user writes it (``"8080:80"``, ``"[::]:8095:80"``,
  ``"80"``, ``"127.0.0.1::80/udp"``), before it is bound to an endpoint: it may leave the host
  port open (Docker's "pick one for me") and, without a host address, means every family the
  endpoint has. :meth:`PortSpec.bind` turns it into one :class:`PublishedPort` per family.
- ``PublishedPort.parse("127.0.0.1:8080:80/tcp", container_ip=..., bridge=...)`` reads Docker's
  ``-p`` syntax for one container address; the firewall turns it into nft map elements (see
  :mod:`netns_kit._nft_render`); :class:`~netns_kit.nat.NatRule` and
  :meth:`~netns_kit.firewall.Firewall.publish` install it.
- :class:`PortBinding` is one host port leading to one container port, as read back from the
  kernel (the ``docker port`` answer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .errors import ValidationError
from .model import ADDR_TYPES, IPAddr, check_args, parse_ip, validate_ifname

__all__ = ["PROTOCOLS", "PortBinding", "PortSpec", "Proto", "PublishedPort"]

PROTOCOLS = ("tcp", "udp", "sctp")
Proto = Literal["tcp", "udp", "sctp"]

_SPEC_RE = re.compile(
    r"^(?:(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9.]+):)?"
    r"(?P<hp>\d+)(?:-(?P<hpe>\d+))?:(?P<cp>\d+)(?:-(?P<cpe>\d+))?(?:/(?P<proto>[a-z]+))?$"
)


# [host_ip:][host_port[-end]]:container_port[-end][/proto]; a host address needs the colon after
# it even with no host port ("127.0.0.1::80"), as in Docker, and has a dot or brackets.
_SPEC_ANY_RE = re.compile(
    r"^(?:(?P<ip>\[[0-9A-Fa-f:.]+\]|\d+\.[0-9.]*):(?P<hp>\d*)(?:-(?P<hpe>\d+))?:"
    r"|(?P<hp2>\d+)(?:-(?P<hpe2>\d+))?:)?"
    r"(?P<cp>\d+)(?:-(?P<cpe>\d+))?(?:/(?P<proto>[a-z]+))?$"
)


def _spec_proto(spec: str, hp: int | None, hpe: int | None, cp: int, cpe: int | None, proto: str | None) -> str:
    """The protocol of a ``-p`` spec, once its host and container ranges are known to match."""
    if (hpe is None) != (cpe is None) or (hpe is not None and cpe is not None and hp is not None
                                          and hpe - hp != cpe - cp):
        raise ValidationError(f"port spec {spec!r}: host and container ranges must have the same length", obj=spec)
    proto = proto or "tcp"
    if proto not in PROTOCOLS:
        raise ValidationError(f"port spec {spec!r}: protocol must be one of {', '.join(PROTOCOLS)}", obj=spec)
    return proto


def _range_end(host_port: int, host_port_end: int | None, container_port: int, name: str) -> int | None:
    """The checked end of a host port range (None for a single port, also for ``N-N``)."""
    if host_port_end is None:
        return None
    _check_port(host_port_end, "host port range end", name)
    if host_port_end < host_port:
        raise ValidationError(f"host port range {host_port}-{host_port_end} is reversed", obj=name)
    if container_port + (host_port_end - host_port) > 65535:
        raise ValidationError("container port range would end above 65535", obj=name)
    return None if host_port_end == host_port else host_port_end


_CONTAINER_IP_TYPES = (str, *ADDR_TYPES)


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
        if not (type(self.host_port) is int and type(self.container_port) is int and type(self.bridge) is str
                and type(self.container_ip) in _CONTAINER_IP_TYPES and type(self.proto) is str
                and self.host_ip is None and self.host_port_end is None and self.bridge_port is None):
            # anything but the common form (every type exactly as expected) gets the full check
            check_args("PublishedPort", host_port=(self.host_port, int),
                       container_ip=(self.container_ip, str, *ADDR_TYPES), container_port=(self.container_port, int),
                       bridge=(self.bridge, str), host_ip=(self.host_ip, str, *ADDR_TYPES, None),
                       host_port_end=(self.host_port_end, int, None), proto=(self.proto, str),
                       bridge_port=(self.bridge_port, str, None))
        if self.proto not in PROTOCOLS:
            raise ValidationError(f"protocol {self.proto!r} must be one of {', '.join(PROTOCOLS)}", obj=self._name())
        if not (1 <= self.host_port <= 65535 and 1 <= self.container_port <= 65535):  # ints here: checked above
            _check_port(self.host_port, "host port", self._name())
            _check_port(self.container_port, "container port", self._name())
        if self.host_port_end is not None:
            object.__setattr__(self, "host_port_end", _range_end(self.host_port, self.host_port_end,
                                                                 self.container_port, self._name()))
        validate_ifname(self.bridge, what="bridge name")
        if self.bridge_port is not None:
            validate_ifname(self.bridge_port, what="bridge port name")
        caddr = parse_ip(self.container_ip, what="container address")
        if caddr.is_loopback or caddr.is_unspecified or caddr.is_multicast:
            raise ValidationError(f"container address {caddr} must be a unicast address", obj=self._name())
        object.__setattr__(self, "container_ip", str(caddr))
        object.__setattr__(self, "container_address", caddr)
        haddr: IPAddr | None = None
        if self.host_ip is not None:
            haddr = parse_ip(self.host_ip, what="host address")
            if haddr.version != caddr.version:
                raise ValidationError(
                    f"host address {haddr} (IPv{haddr.version}) and container address {caddr} "
                    f"(IPv{caddr.version}) must be of the same family", obj=self._name())
            if haddr.is_unspecified:
                haddr = None
            elif haddr.version == 6 and haddr.is_loopback:
                raise ValidationError("IPv6 loopback (::1) cannot be published: the kernel never routes "
                                      "::1 to another host; publish on 127.0.0.1 or all addresses", obj=self._name())
            elif haddr.is_multicast:
                raise ValidationError(f"host address {haddr} is multicast", obj=self._name())
        object.__setattr__(self, "host_ip", str(haddr) if haddr is not None else None)
        object.__setattr__(self, "host_address", haddr)

    @classmethod
    def _bound(cls, spec: PortSpec, host_port: int, family: int, container: IPAddr, bridge: str,
               bridge_port: str | None) -> PublishedPort:
        """The publication of ``spec`` (checked: its ports, range and host address, of ``family`` if
        it has one) for the IPv``family`` container address ``container``, with valid ``bridge`` and
        ``bridge_port`` names: what :meth:`PortSpec.bind` makes, without the constructor's checks."""
        if container.version != family:
            raise ValidationError(f"container address {container} for IPv{family} is IPv{container.version}",
                                  obj=spec.text, step="publish port")
        if container.is_loopback or container.is_unspecified or container.is_multicast:
            raise ValidationError(f"container address {container} must be a unicast address", obj=spec.text)
        port = object.__new__(cls)
        put = object.__setattr__
        put(port, "host_port", host_port)
        put(port, "container_ip", str(container))
        put(port, "container_port", spec.container_port)
        put(port, "bridge", bridge)
        put(port, "host_ip", spec.host_ip)
        put(port, "host_port_end", spec.host_port_end)
        put(port, "proto", spec.proto)
        put(port, "bridge_port", bridge_port)
        put(port, "container_address", container)
        put(port, "host_address", parse_ip(spec.host_ip, what="host address") if spec.host_ip is not None else None)
        return port

    def _name(self) -> str:
        """How errors name the publication (its ``-p`` spec as far as it is known)."""
        try:
            return self.spec
        except Exception:  # fields not checked yet
            return f"{self.host_ip or ''}:{self.host_port}:{self.container_ip}:{self.container_port}/{self.proto}"

    @classmethod
    def parse(cls, spec: str, *, container_ip: str, bridge: str, bridge_port: str | None = None) -> PublishedPort:
        """Read Docker's ``-p`` syntax: ``[host_ip:]host_port[-end]:container_port[-end][/proto]``.

        An IPv6 host address goes in brackets: ``[2001:db8::1]:8080:80``. Both ranges must have
        the same length. A missing host port (Docker's "pick one for me") is refused here: a
        PublishedPort is one concrete port. :class:`PortSpec` leaves it open, and an endpoint's
        connection picks it (see :meth:`netns_kit.Network.connect`).
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
        proto = _spec_proto(spec, hp, hpe, cp, cpe, m["proto"])
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


def _host_text(ip: str | None, family: int) -> str:
    if ip is None:
        return "0.0.0.0" if family == 4 else "[::]"
    return f"[{ip}]" if ":" in ip else ip


@dataclass(frozen=True)
class PortSpec:
    """One ``-p`` spec before it is bound to an endpoint: ``[host_ip:][host_port[-end]:]container_port[-end][/proto]``.

    - ``host_port`` None: the host port is picked when the spec is published, a free port of the
      host's ephemeral range (``net.ipv4.ip_local_port_range``), as Docker's ``-p 80`` and ``-P``.
      Only a single container port can take a picked host port.
    - ``host_ip`` None (or ``0.0.0.0`` / ``::``, read as None unless the family is meant): every
      address, of every family the endpoint has (a dual-stack endpoint gets an IPv4 and an IPv6
      publication, as Docker's). An IPv4 host address (``127.0.0.1``) publishes for the endpoint's
      IPv4 address only, an IPv6 one (``[fd00::1]``) for its IPv6 address only; ``0.0.0.0`` is
      IPv4 only and ``[::]`` IPv6 only.
    """

    container_port: int
    host_port: int | None = None
    host_port_end: int | None = None
    host_ip: str | None = None
    proto: Proto = "tcp"
    family: int | None = None  # set from host_ip: None means every family

    def __post_init__(self) -> None:
        cp, hp = self.container_port, self.host_port
        if (self.host_ip is None and self.family is None and self.host_port_end is None and self.proto in PROTOCOLS
                and type(cp) is int and 1 <= cp <= 65535 and (hp is None or (type(hp) is int and 1 <= hp <= 65535))):
            return  # the common spec (8080:80, 80/udp): valid as it is, nothing to normalize
        name = self.text
        if self.proto not in PROTOCOLS:
            raise ValidationError(f"protocol {self.proto!r} must be one of {', '.join(PROTOCOLS)}", obj=name)
        _check_port(self.container_port, "container port", name)
        if self.host_port is None:
            if self.host_port_end is not None:
                raise ValidationError("a host port range needs its first port", obj=name)
        else:
            _check_port(self.host_port, "host port", name)
        if self.host_port is not None:
            object.__setattr__(self, "host_port_end", _range_end(self.host_port, self.host_port_end,
                                                                 self.container_port, name))
        if self.host_ip is not None:
            haddr = parse_ip(self.host_ip, what="host address")
            if haddr.version == 6 and haddr.is_loopback:
                raise ValidationError("IPv6 loopback (::1) cannot be published: the kernel never routes "
                                      "::1 to another host; publish on 127.0.0.1 or all addresses", obj=name)
            if haddr.is_multicast:
                raise ValidationError(f"host address {haddr} is multicast", obj=name)
            object.__setattr__(self, "family", haddr.version)
            object.__setattr__(self, "host_ip", None if haddr.is_unspecified else str(haddr))
        elif self.family is not None and self.family not in (4, 6):
            raise ValidationError(f"family {self.family!r} must be 4, 6 or None", obj=name)

    @classmethod
    def parse(cls, spec: str) -> PortSpec:
        """Read Docker's ``-p`` syntax: ``[host_ip:][host_port[-end]:]container_port[-end][/proto]``.

        ``80`` and ``127.0.0.1::80`` leave the host port to be picked; an IPv6 host address goes in
        brackets (``[2001:db8::1]:8080:80``, ``[::]:8080:80``). Ranges have the same length.
        """
        check_args("PortSpec.parse", spec=(spec, str))
        m = _SPEC_ANY_RE.match(spec.strip())
        if m is None:
            raise ValidationError(
                f"port spec {spec!r} must look like [host_ip:][host_port[-end]:]container_port[-end][/proto], "
                "e.g. 8080:80, 127.0.0.1:8080:80/udp, [::]:8080:80, 8000-8009:9000-9009, 80, 127.0.0.1::80",
                obj=spec)
        ip = m["ip"]
        if ip is not None and ip.startswith("["):
            ip = ip[1:-1]
        hp_text = m["hp"] if ip is not None else m["hp2"]
        hpe_text = m["hpe"] if ip is not None else m["hpe2"]
        hp = int(hp_text) if hp_text else None
        hpe = int(hpe_text) if hpe_text else None
        cp = int(m["cp"])
        cpe = int(m["cpe"]) if m["cpe"] else None
        if hp is None and cpe is not None:
            raise ValidationError(f"port spec {spec!r}: a container port range needs host ports "
                                  "(only a single port can take a picked host port)", obj=spec)
        proto = _spec_proto(spec, hp, hpe, cp, cpe, m["proto"])
        return cls(container_port=cp, host_port=hp, host_port_end=hpe, host_ip=ip,
                   proto=proto)  # type: ignore[arg-type]

    @property
    def text(self) -> str:
        """The spec in Docker's ``-p`` syntax (``0.0.0.0``/``[::]`` when one family was meant)."""
        host = ""
        if self.host_ip is not None or self.family is not None:
            host = _host_text(self.host_ip, self.family or 4) + ":"
        hp = "" if self.host_port is None else f"{self.host_port}"
        if self.host_port_end is not None:
            hp += f"-{self.host_port_end}"
        cp = f"{self.container_port}"
        if self.host_port is not None and self.host_port_end is not None:
            cp += f"-{self.container_port + self.host_port_end - self.host_port}"
        lead = f"{host}{hp}:" if host or hp else ""
        return f"{lead}{cp}/{self.proto}"

    def __str__(self) -> str:
        return self.text

    def families(self, available: set[int] | frozenset[int] = frozenset({4, 6})) -> list[int]:
        """The families this spec publishes for an endpoint with addresses of ``available`` families."""
        want = (4, 6) if self.family is None else (self.family,)
        return [f for f in want if f in available]

    def slots(self) -> list[tuple[int, str, int]]:
        """``(family, proto, host port)`` of every fixed host port it may take (none if picked)."""
        if self.host_port is None:
            return []
        last = self.host_port_end if self.host_port_end is not None else self.host_port
        fams = (4, 6) if self.family is None else (self.family,)
        return [(f, self.proto, hp) for f in fams for hp in range(self.host_port, last + 1)]

    def bind(self, addresses: Mapping[int, IPAddr], *, bridge: str, host_port: int | None = None,
             bridge_port: str | None = None) -> list[PublishedPort]:
        """One :class:`PublishedPort` per family of ``addresses`` (family -> container address) it
        applies to; ``host_port`` is the picked one when the spec has none. ValidationError if the
        spec's host address is of a family the endpoint lacks."""
        fams = self.families(frozenset(addresses))
        if not fams:
            raise ValidationError(f"port spec {self.text}: the endpoint has no IPv{self.family} address",
                                  obj=self.text, step="publish port")
        hp = self.host_port if self.host_port is not None else host_port
        if hp is None:
            raise ValidationError(f"port spec {self.text} needs a host port to be picked", obj=self.text)
        if host_port is not None and self.host_port is None:
            _check_port(host_port, "picked host port", self.text)
        validate_ifname(bridge, what="bridge name")
        if bridge_port is not None:
            validate_ifname(bridge_port, what="bridge port name")
        # this spec is checked (ports, range, host address and its family) and so are the names: the
        # publications are made without checking it all again
        return [PublishedPort._bound(self, hp, f, parse_ip(addresses[f], what="container address"), bridge,
                                     bridge_port) for f in fams]


@dataclass(frozen=True)
class PortBinding:
    """One host port leading to one container port, as the kernel has it (``docker port``'s answer).

    ``host_ip`` None means every address of the family of ``container_ip``. ``str()`` reads like
    ``docker port``: ``80/tcp -> 0.0.0.0:32768``.
    """

    proto: str
    host_ip: str | None
    host_port: int
    container_ip: str
    container_port: int

    @property
    def family(self) -> int:
        return 6 if ":" in self.container_ip else 4

    @property
    def host(self) -> str:
        """``ADDRESS:PORT`` as ``docker port`` prints it (``0.0.0.0:32768``, ``[::]:32768``)."""
        return f"{_host_text(self.host_ip, self.family)}:{self.host_port}"

    def __str__(self) -> str:
        return f"{self.container_port}/{self.proto} -> {self.host}"
