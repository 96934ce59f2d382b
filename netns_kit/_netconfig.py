"""A user-defined network's settings, the names it accepts, and its removal report (pure: no
kernel access).

:class:`NetworkConfig` validates everything ``Network(...)`` is given before anything is made;
:func:`validate_name` is the rule for network and endpoint names (they are host names in hosts
files); :func:`parse_ports` reads a list of Docker ``-p`` specs and refuses two that take the same
host port. Used by :mod:`netns_kit.network` and :mod:`netns_kit.modes`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import ValidationError
from .ipam import DEFAULT_POOLS, AddressPool, SubnetPlan
from .model import ADDR_TYPES, NET_TYPES, IPAddr, IPNet, check_args, validate_ifname, validate_mtu
from .ports import PortSpec

__all__ = ["DEFAULT_BRIDGE", "DEFAULT_NETWORK_NAME", "RESERVED_NETWORK_NAMES", "NetworkConfig", "RemovalReport",
           "default_bridge_name", "parse_ports", "validate_name"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RESERVED_NETWORK_NAMES = frozenset({"bridge", "host", "none", "default"})
DEFAULT_NETWORK_NAME = "bridge"
DEFAULT_BRIDGE = "nk0"


def validate_name(name: object, *, what: str) -> str:
    """A Docker-style object name that is also a valid host name in /etc/hosts: 1-63 of letters,
    digits and ``_.-``, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValidationError(
            f"{what} {name!r} must be 1-63 of letters, digits and '_.-', starting with a letter or digit",
            obj=repr(name))
    return name


def default_bridge_name(network: str) -> str:
    """``nk-NAME`` if that fits in 15 bytes, else ``nk-`` and 12 hex digits of a hash of the name."""
    candidate = f"nk-{network}"
    if len(candidate.encode()) <= 15:
        return candidate
    return "nk-" + hashlib.sha256(network.encode()).hexdigest()[:12]


def parse_ports(specs: Iterable[str | PortSpec]) -> tuple[PortSpec, ...]:
    """Docker ``-p`` specs (or :class:`~netns_kit.ports.PortSpec` objects) checked, as PortSpecs
    (ValidationError if bad).

    Two specs of the list that take the same fixed host port (same family and protocol, the same
    or every address) are refused here, before anything is made. Specs that leave the host port
    to be picked never clash: each gets its own."""
    if isinstance(specs, str):
        raise ValidationError("publish must be a list of port specs, not one str", obj=specs)
    out = [spec if isinstance(spec, PortSpec) else PortSpec.parse(spec) for spec in specs]
    if len(out) < 2:  # one spec cannot clash with itself
        return tuple(out)
    seen: dict[tuple[int, str, int], list[PortSpec]] = {}
    for port in out:
        slots = port.slots()
        for slot in slots:
            for other in seen.get(slot, ()):
                if other.host_ip is None or port.host_ip is None or other.host_ip == port.host_ip:
                    raise ValidationError(f"port specs {other.text!r} and {port.text!r} both publish host port "
                                          f"{slot[2]}/{slot[1]} (IPv{slot[0]})", obj=port.text, step="check ports")
        for slot in slots:
            seen.setdefault(slot, []).append(port)
    return tuple(out)



@dataclass(frozen=True)
class NetworkConfig:
    """The validated options of a :class:`Network` (no kernel access).

    ``subnet`` None means "pick one from ``pools``" at :meth:`Network.create` (skipping every
    subnet that overlaps an address or route of the host, or another network). ``gateway``
    defaults to the first address of the subnet, ``ip_range`` to the whole subnet. IPv6 is on
    when ``subnet6`` is given; without it, endpoint interfaces get no IPv6 link-local address
    either (Docker's behaviour for ``--ipv6=false`` networks). ``internal``: no default route,
    no masquerade, no way out. ``icc``: endpoints may talk to each other. ``resolve_names``:
    endpoints find each other by name through /etc/netns/NAME/hosts.
    """

    name: str
    bridge: str | None = None
    subnet: IPNet | str | None = None
    gateway: IPAddr | str | None = None
    ip_range: IPNet | str | None = None
    subnet6: IPNet | str | None = None
    gateway6: IPAddr | str | None = None
    ip_range6: IPNet | str | None = None
    mtu: int | None = None
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    resolve_names: bool = True
    pools: tuple[AddressPool, ...] = DEFAULT_POOLS

    plan: SubnetPlan | None = field(init=False, repr=False, compare=False)
    plan6: SubnetPlan | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nets, addrs = (str, *NET_TYPES, None), (str, *ADDR_TYPES, None)
        check_args("NetworkConfig", name=(self.name, str), bridge=(self.bridge, str, None),
                   subnet=(self.subnet, *nets), gateway=(self.gateway, *addrs), ip_range=(self.ip_range, *nets),
                   subnet6=(self.subnet6, *nets), gateway6=(self.gateway6, *addrs),
                   ip_range6=(self.ip_range6, *nets), mtu=(self.mtu, int, None), internal=(self.internal, bool),
                   icc=(self.icc, bool), masquerade=(self.masquerade, bool),
                   resolve_names=(self.resolve_names, bool), pools=(self.pools, [AddressPool]))
        validate_name(self.name, what="network name")
        bridge = self.bridge if self.bridge is not None else default_bridge_name(self.name)
        object.__setattr__(self, "bridge", validate_ifname(bridge, what="bridge name"))
        for flag in ("internal", "icc", "masquerade", "resolve_names"):
            if not isinstance(getattr(self, flag), bool):
                raise ValidationError(f"{flag} must be True or False", obj=self.name)
        if self.mtu is not None:
            validate_mtu(self.mtu)
        pools = tuple(self.pools)
        if not pools or not all(isinstance(p, AddressPool) for p in pools):
            raise ValidationError("pools must be a non-empty sequence of AddressPool", obj=self.name)
        object.__setattr__(self, "pools", pools)
        plan: SubnetPlan | None = None
        if self.subnet is not None:
            plan = SubnetPlan(self.subnet, self.gateway, self.ip_range)
            if plan.version != 4:
                raise ValidationError(f"subnet {plan.network} must be IPv4 (put IPv6 in subnet6)", obj=self.name)
        elif self.gateway is not None or self.ip_range is not None:
            raise ValidationError("gateway and ip_range need an explicit subnet", obj=self.name)
        plan6: SubnetPlan | None = None
        if self.subnet6 is not None:
            plan6 = SubnetPlan(self.subnet6, self.gateway6, self.ip_range6)
            if plan6.version != 6:
                raise ValidationError(f"subnet6 {plan6.network} must be IPv6", obj=self.name)
        elif self.gateway6 is not None or self.ip_range6 is not None:
            raise ValidationError("gateway6 and ip_range6 need subnet6", obj=self.name)
        object.__setattr__(self, "plan", plan)
        object.__setattr__(self, "plan6", plan6)

    @property
    def bridge_name(self) -> str:
        assert self.bridge is not None
        return self.bridge

    @property
    def masquerades(self) -> bool:
        """True if the network's subnets are masqueraded on the way out (``masquerade`` and not ``internal``)."""
        return self.masquerade and not self.internal


@dataclass(frozen=True)
class RemovalReport:
    """What :meth:`Network.remove` did besides removing the network, each line naming the object.

    - ``disconnected``: endpoints it disconnected (only with ``force``; their veths are gone).
    - ``left``: what it left in place, and why: the named namespaces of the endpoints it
      disconnected (a network never owns its endpoints' namespaces: remove them through their
      :class:`~netns_kit.Endpoint`, found with :meth:`~netns_kit.Endpoint.lookup`, or their
      :class:`~netns_kit.Namespace`), and addresses other processes still lease.
    - ``already_gone``: what had vanished before the call (a namespace deleted with
      ``ip netns del``, and what went with it).

    A report with anything in ``left`` or ``already_gone`` is also logged as a warning.
    """

    network: str
    disconnected: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    already_gone: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f"network {self.network} removed"]
        lines += [f"  disconnected: {x}" for x in self.disconnected]
        lines += [f"  left: {x}" for x in self.left]
        lines += [f"  already gone: {x}" for x in self.already_gone]
        return "\n".join(lines)
