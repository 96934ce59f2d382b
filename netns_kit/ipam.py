"""IP address management: pure planning, no kernel access, no root needed.

Two jobs, as Docker's default IPAM does them:

- **Subnets** for networks that do not name one: :func:`pick_subnet` walks address pools
  (:data:`DEFAULT_POOLS`: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 cut into /20s)
  and returns the first candidate that overlaps none of the networks already in use
  (the caller passes the host's addresses and routes, and the other networks it knows).
- **Addresses** inside one subnet: an :class:`AddressAllocator` hands out addresses from the
  subnet (or from its ``ip_range``), never the network address, the broadcast address or the
  gateway; checks fixed addresses (outside the subnet → :class:`~netns_kit.errors.ValidationError`,
  already taken → :class:`~netns_kit.errors.AlreadyExistsError`); takes released addresses back.

Automatic allocation goes round the range from the last address handed out (as Docker's
bitmap allocator does), so an address just released is not reused at once while a peer's
ARP/neighbour cache may still point at the old interface; it comes back once the
allocator wraps around. When nothing is free, :class:`ExhaustedError` is raised.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import AlreadyExistsError, ExhaustedError, ValidationError
from .model import IPAddr, IPInterface, IPNet, check_usable_subnet, parse_ip, parse_network

__all__ = [
    "DEFAULT_POOLS",
    "AddressAllocator",
    "AddressPool",
    "ExhaustedError",
    "SubnetPlan",
    "pick_subnet",
]


@dataclass(frozen=True)
class AddressPool:
    """A block of address space (``base``) cut into subnets of prefix length ``size``.

    ``AddressPool("192.168.0.0/16", 20)`` yields 192.168.0.0/20, 192.168.16.0/20, …
    """

    base: IPNet | str
    size: int

    network: IPNet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        net = check_usable_subnet(parse_network(self.base, what="address pool base"), what="address pool base")
        max_len = net.max_prefixlen
        if not isinstance(self.size, int) or isinstance(self.size, bool) or \
                not net.prefixlen <= self.size <= max_len:
            raise ValidationError(
                f"pool size /{self.size} must be a prefix length from /{net.prefixlen} to /{max_len}",
                obj=str(net))
        object.__setattr__(self, "base", net)
        object.__setattr__(self, "network", net)

    @property
    def version(self) -> int:
        return self.network.version

    def subnets(self) -> Iterator[IPNet]:
        """The candidate subnets of this pool, lowest first."""
        yield from self.network.subnets(new_prefix=self.size)


#: Docker's default address pools (moby ``ipamutils``): 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
DEFAULT_POOLS: tuple[AddressPool, ...] = (
    *(AddressPool(f"172.{n}.0.0/16", 16) for n in range(17, 32)),
    AddressPool("192.168.0.0/16", 20),
)


def pick_subnet(in_use: Iterable[IPNet], *, pools: Iterable[AddressPool] = DEFAULT_POOLS,
                version: int = 4) -> IPNet:
    """The first subnet of ``pools`` (of IP ``version``) that overlaps no network in ``in_use``.

    Pass the networks of the host's addresses and routes (not its default route) and the
    subnets of the networks already made, so that a new bridge never shadows a route the
    host relies on. Raises :class:`ExhaustedError` if every candidate overlaps something.
    """
    used = [n for n in in_use if n.version == version]
    tried = 0
    for pool in pools:
        if pool.version != version:
            continue
        for candidate in pool.subnets():
            tried += 1
            if not any(candidate.overlaps(u) for u in used):
                return candidate
    raise ExhaustedError(
        f"no free IPv{version} subnet left in the address pools ({tried} candidates, all overlapping "
        f"a network in use); name a subnet explicitly", step="pick subnet")


def _host_bounds(net: IPNet) -> tuple[int, int]:
    """First and last assignable address (as ints): no network address, no IPv4 broadcast."""
    first = int(net.network_address)
    last = int(net.broadcast_address)
    if net.version == 4 and net.prefixlen >= 31:
        return first, last  # RFC 3021 point-to-point, or a single host
    if net.version == 6 and net.prefixlen == 128:
        return first, last
    if net.version == 4:
        return first + 1, last - 1
    return first + 1, last  # IPv6: the subnet-router anycast address is reserved, no broadcast


@dataclass(frozen=True)
class SubnetPlan:
    """A validated subnet with its gateway and the range automatic addresses come from.

    ``gateway`` defaults to the first usable address; ``ip_range`` (a network inside
    ``subnet``) defaults to the whole subnet. Raises ValidationError naming the field.
    """

    subnet: IPNet | str
    gateway: IPAddr | str | None = None
    ip_range: IPNet | str | None = None

    def __post_init__(self) -> None:
        subnet = check_usable_subnet(parse_network(self.subnet, what="subnet"))
        lo, hi = _host_bounds(subnet)
        if hi - lo < 1:
            raise ValidationError(
                f"subnet {subnet} is too small: it needs room for a gateway and at least one endpoint",
                obj=str(subnet))
        if self.gateway is None:
            gateway: IPAddr = ipaddress.ip_address(lo)
        else:
            gateway = parse_ip(self.gateway, what="gateway")
            if gateway.version != subnet.version or gateway not in subnet:
                raise ValidationError(f"gateway {gateway} is not inside subnet {subnet}", obj=str(gateway))
            if not lo <= int(gateway) <= hi:
                raise ValidationError(
                    f"gateway {gateway} is the network or broadcast address of {subnet}", obj=str(gateway))
        if self.ip_range is None:
            ip_range: IPNet = subnet
        else:
            ip_range = parse_network(self.ip_range, what="ip_range")
            if ip_range.version != subnet.version or not ip_range.subnet_of(subnet):  # type: ignore[arg-type]
                raise ValidationError(f"ip_range {ip_range} is not inside subnet {subnet}", obj=str(ip_range))
        object.__setattr__(self, "subnet", subnet)
        object.__setattr__(self, "gateway", gateway)
        object.__setattr__(self, "ip_range", ip_range)

    @property
    def network(self) -> IPNet:
        assert isinstance(self.subnet, ipaddress.IPv4Network | ipaddress.IPv6Network)
        return self.subnet

    @property
    def gateway_ip(self) -> IPAddr:
        assert isinstance(self.gateway, ipaddress.IPv4Address | ipaddress.IPv6Address)
        return self.gateway

    @property
    def range(self) -> IPNet:
        assert isinstance(self.ip_range, ipaddress.IPv4Network | ipaddress.IPv6Network)
        return self.ip_range

    @property
    def version(self) -> int:
        return self.network.version

    def gateway_interface(self) -> IPInterface:
        """The gateway with the subnet's prefix, as it goes on the bridge."""
        return ipaddress.ip_interface(f"{self.gateway_ip}/{self.network.prefixlen}")


class AddressAllocator:
    """Hands out the addresses of one :class:`SubnetPlan`; tracks which are taken. Not thread-safe:
    the owner (a Network) serialises calls.
    """

    def __init__(self, plan: SubnetPlan) -> None:
        self.plan = plan
        self._lo, self._hi = _host_bounds(plan.network)
        rlo, rhi = _host_bounds(plan.range)
        if plan.range.prefixlen == plan.network.prefixlen:
            rlo, rhi = self._lo, self._hi
        else:  # a sub-range may start at its own network address (Docker allows it), within the subnet
            rlo, rhi = max(int(plan.range.network_address), self._lo), min(int(plan.range.broadcast_address),
                                                                             self._hi)
        self._rlo, self._rhi = rlo, rhi
        self._gateway = int(plan.gateway_ip)
        self._taken: set[int] = set()
        self._taken_in_range = 0  # how many of _taken automatic allocation could hand out
        self._cursor = rlo  # the next automatic candidate

    @property
    def subnet(self) -> IPNet:
        return self.plan.network

    @property
    def gateway(self) -> IPAddr:
        return self.plan.gateway_ip

    @property
    def in_use(self) -> frozenset[IPAddr]:
        """Addresses handed out (the gateway is not among them)."""
        return frozenset(ipaddress.ip_address(i) for i in self._taken)

    @property
    def capacity(self) -> int:
        """How many addresses automatic allocation can hand out in total (gateway excluded)."""
        n = self._rhi - self._rlo + 1
        return n - (1 if self._rlo <= self._gateway <= self._rhi else 0)

    @property
    def available(self) -> int:
        """How many addresses automatic allocation can still hand out."""
        return self.capacity - self._taken_in_range

    def _counts(self, value: int) -> bool:
        return self._rlo <= value <= self._rhi and value != self._gateway

    def check(self, address: IPAddr | str) -> IPAddr:
        """Validate a fixed address without taking it (ValidationError / AlreadyExistsError)."""
        ip = parse_ip(address, what="fixed address")
        subnet = self.plan.network
        step = "check address"
        if ip.version != subnet.version or ip not in subnet:
            raise ValidationError(f"address {ip} is outside subnet {subnet}", obj=str(ip), step=step)
        value = int(ip)
        if not self._lo <= value <= self._hi:
            raise ValidationError(f"address {ip} is the network or broadcast address of {subnet}",
                                  obj=str(ip), step=step)
        if value == self._gateway:
            raise AlreadyExistsError(f"address {ip} is the gateway of {subnet}", obj=str(ip), step=step)
        if value in self._taken:
            raise AlreadyExistsError(f"address {ip} is already in use in {subnet}", obj=str(ip), step=step)
        return ip

    def allocate(self, address: IPAddr | str | None = None) -> IPAddr:
        """Take ``address`` (validated as :meth:`check` does) or the next free one of the range."""
        if address is not None:
            ip = self.check(address)
            self._taken.add(int(ip))
            self._taken_in_range += self._counts(int(ip))
            return ip
        if self.available <= 0:
            raise ExhaustedError(f"no free address left in {self.plan.range} (subnet {self.plan.network})",
                                 obj=str(self.plan.network), step="allocate address")
        value = self._cursor
        while True:
            if value > self._rhi:
                value = self._rlo
            if value != self._gateway and value not in self._taken:
                break
            value += 1
        self._taken.add(value)
        self._taken_in_range += 1
        self._cursor = value + 1
        return ipaddress.ip_address(value)

    def release(self, address: IPAddr | str) -> bool:
        """Give an address back; False if it was not taken (releasing twice is harmless)."""
        ip = parse_ip(address, what="released address")
        value = int(ip)
        if value in self._taken:
            self._taken.remove(value)
            self._taken_in_range -= self._counts(value)
            return True
        return False

    @property
    def cursor(self) -> int:
        """Where the next automatic allocation starts looking (an address as an int)."""
        return self._cursor

    def load(self, taken: Iterable[IPAddr | str], cursor: int | None = None) -> None:
        """Replace what is taken (and the cursor) with a view shared by several processes
        (see :meth:`netns_kit.network.Network.open`)."""
        self._taken = {int(parse_ip(a, what="taken address")) for a in taken}
        self._taken_in_range = sum(1 for i in self._taken if self._counts(i))
        if cursor is not None and self._rlo <= cursor <= self._rhi + 1:
            self._cursor = cursor

    def interface(self, address: IPAddr) -> IPInterface:
        """``address`` with the subnet's prefix length, as it goes on the endpoint's interface."""
        cls = ipaddress.IPv4Interface if address.version == 4 else ipaddress.IPv6Interface
        return cls((int(address), self.plan.network.prefixlen))  # from its integer: no parsing at all

    def __repr__(self) -> str:
        return f"AddressAllocator({self.plan.network}, gateway={self.gateway}, in_use={len(self._taken)})"
