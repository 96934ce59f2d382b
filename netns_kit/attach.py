"""Fixed-IP attachment: pipework's ``pipework br0 test01 192.168.0.123/24@192.168.0.1`` as one typed call.

:class:`Attachment` plugs a target network namespace (a named namespace, a PID, a
/proc or bind-mount path, or a running Docker/Podman container) into the host's
network with a fixed address:

- **bridge mode** (default): a veth pair; the host end becomes a port of a bridge, the
  other end is born inside the target under its final name (``eth0``);
- **macvlan mode** (``macvlan="eth0"``): a macvlan of a host interface, born inside the
  target (pipework's mode for physical NICs).

Then addresses (IPv4 and IPv6), an optional default gateway and extra routes, and an
announcement of each address (gratuitous ARP, unsolicited neighbour advertisement) so
that peers update their caches at once, as pipework does with ``arping -A``.

Every input is checked before the first kernel change; a request that cannot be applied
changes nothing. :meth:`Attachment.remove` deletes exactly what :meth:`Attachment.create`
made (the link, which takes its addresses and routes with it, and the bridge only if the
attachment created it). Inside a :class:`~netns_kit._journal.Transaction` the attachment is
one undo entry; a failure halfway through undoes the steps already done.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import logging
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TypeAlias

from . import _wiring
from ._journal import EphemeralScope, atomic_step, intent, record
from .engines import Container, container_pid
from .errors import (
    AlreadyExistsError,
    NotFoundError,
    OwnershipError,
    StateError,
    UnsupportedError,
    ValidationError,
)
from .links import Bridge, VethPair
from .model import (
    IFACE_TYPES,
    IPInterface,
    LinkInfo,
    Route,
    check_args,
    check_usable_subnet,
    parse_interface,
    parse_ip,
    parse_mac,
    validate_ifname,
    validate_mtu,
)
from .namespace import Namespace

__all__ = ["Attachment", "Target", "attach", "mac_from_seed"]

log = logging.getLogger("netns_kit")

Target: TypeAlias = "Namespace | Container | int | str | os.PathLike[str]"
"""What can be attached: a Namespace, a Container, a PID, a path, or a string naming a
named namespace (``/run/netns/NAME``) or, failing that, a running container."""

MACVLAN_MODES = _wiring.MACVLAN_MODES
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
SIOCGIFFLAGS = 0x8913
IFF_RUNNING = 0x40
_ALL_NODES_MAC = bytes.fromhex("333300000001")
_ALL_NODES = ipaddress.IPv6Address("ff02::1").packed


def mac_from_seed(seed: str | bytes) -> str:
    """A MAC address derived from ``seed``: the same seed gives the same MAC on every run and machine.

    Locally administered (bit 1 of the first byte set) and unicast (bit 0 clear), so it can
    never collide with a vendor-assigned address.
    """
    check_args("mac_from_seed", seed=(seed, str, bytes))
    if isinstance(seed, str):
        seed = seed.encode("utf-8")
    if not seed:
        raise ValidationError("MAC seed must be a non-empty str or bytes", obj=repr(seed))
    raw = bytearray(hashlib.sha256(b"netns_kit-mac\0" + seed).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def resolve_target(target: Target) -> Namespace:
    """Turn any accepted target into a :class:`Namespace` (NotFoundError if it is missing or exited)."""
    if isinstance(target, Namespace):
        return target
    if isinstance(target, Container):
        return target.namespace()
    if isinstance(target, bool):
        raise ValidationError(f"target {target!r} is not a namespace, PID, path or container", obj=repr(target))
    if isinstance(target, int):
        return Namespace.from_pid(target)
    if isinstance(target, os.PathLike):
        return Namespace.from_path(os.fspath(target))
    if isinstance(target, str):
        if target.startswith(("/", "./", "../")):
            return Namespace.from_path(target)
        if target.isdigit():
            return Namespace.from_pid(int(target))
        named: str | None = None
        try:
            return Namespace.open(target)
        except ValidationError:
            named = "not a valid namespace name"
        except NotFoundError:
            named = "no such file under /run/netns"
        try:
            _, pid = container_pid(target)
        except NotFoundError as exc:
            raise NotFoundError(f"target {target!r} is neither a named namespace ({named}) nor a running "
                                f"container ({exc.message})", obj=target, step="resolve target") from exc
        ns = Namespace.from_pid(pid)
        ns.label = f"container:{target}"
        return ns
    raise ValidationError(f"target {target!r} is not a namespace, PID, path or container", obj=repr(target))


def _split_pipework(address: str | IPInterface | None, gateway: str | None) -> tuple[object, str | None]:
    if isinstance(address, str) and "@" in address:
        addr, _, gw = address.partition("@")
        if gateway is not None and gateway != gw:
            raise ValidationError(f"address {address!r} names gateway {gw} but gateway={gateway!r} was also given",
                                  obj=address)
        return addr, gw
    return address, gateway


def _check_host_address(iface: IPInterface, what: str) -> None:
    net = iface.network
    if iface.version == 4 and net.prefixlen <= 30:
        if iface.ip == net.network_address:
            raise ValidationError(f"{what} {iface} is the network address of {net}; pick a host address "
                                  f"such as {net.network_address + 1}", obj=str(iface), step="validate")
        if iface.ip == net.broadcast_address:
            raise ValidationError(f"{what} {iface} is the broadcast address of {net}; pick a host address "
                                  f"such as {net.broadcast_address - 1}", obj=str(iface), step="validate")
    if iface.version == 6 and net.prefixlen <= 126 and iface.ip == net.network_address:
        raise ValidationError(f"{what} {iface} is the subnet-router anycast address of {net}",
                              obj=str(iface), step="validate")
    kind = "multicast" if iface.ip.is_multicast else "loopback" if iface.ip.is_loopback else \
        "unspecified" if iface.ip.is_unspecified else None
    if kind is not None:
        raise ValidationError(f"{what} {iface} is not a unicast host address (it is {kind})", obj=str(iface),
                              step="validate")
    check_usable_subnet(net, what=f"{what} {iface}: its subnet")


def _check_gateway(gw: str, addresses: Sequence[IPInterface], what: str) -> ipaddress.IPv4Address | \
        ipaddress.IPv6Address:
    ip = parse_ip(gw, what=what)
    same = [a for a in addresses if a.version == ip.version]
    if not same:
        raise ValidationError(f"{what} {ip} is IPv{ip.version} but no IPv{ip.version} address is configured",
                              obj=str(ip), step="validate")
    if any(ip == a.ip for a in same):
        raise ValidationError(f"{what} {ip} is the attachment's own address", obj=str(ip), step="validate")
    if not any(ip in a.network for a in same):
        subnets = ", ".join(str(a.network) for a in same)
        first = same[0]
        raise ValidationError(
            f"{what} {ip} is outside {subnets}, the subnet of address {first}: a route via it cannot be "
            f"installed (the classic recipe's 'ip route add default via 192.168.1.1' after "
            f"'ip addr add 192.168.0.123/24' is this mistake); use a gateway inside {first.network}, "
            f"e.g. {first.network.network_address + 1}",
            obj=str(ip), step="validate")
    return ip


class Attachment(EphemeralScope):
    """A target namespace attached to the host network with a fixed address.

    Bridge mode (``bridge=``): veth pair, host end ``host_ifname`` enslaved to the bridge,
    container end ``ifname`` created inside the target. Macvlan mode (``macvlan=``): a
    macvlan of host interface ``macvlan`` created inside the target as ``ifname``.

    - ``address``: ``"ADDR/PREFIX"`` (IPv4 or IPv6); pipework's ``"ADDR/PREFIX@GATEWAY"`` is accepted.
    - ``gateway`` / ``gateway6``: default route via this address (must be inside the subnet).
    - ``ipv6``: more addresses (any family, despite the name; IPv6 skips duplicate detection).
    - ``routes``: extra :class:`~netns_kit.model.Route` objects, installed on ``ifname``.
    - ``mac`` or ``mac_seed`` (stable, see :func:`mac_from_seed`); neither: the kernel picks one.
    - ``mtu``: default the bridge's (or the macvlan parent's) MTU.
    - ``create_bridge``: create the bridge if it is missing (and delete it on remove), with the
      gateway(s) on it (``gateway``/``gateway6`` with the address's prefix), so the default route
      works at once; they go with the bridge. A gateway the host already has on another interface
      stays there only (a warning is logged).
    - ``vlan``: macvlan mode only: put the macvlan on the 802.1Q device ``PARENT.VLAN`` (reused if
      present, else created and deleted on remove), as pipework's ``[macaddr]@VLAN``.
    - ``announce``: send gratuitous ARP / unsolicited NA after addressing (default True).
    - ``host``: the namespace holding the bridge or parent interface (default: the calling
      thread's namespace; a :class:`~netns_kit.links.Bridge` object brings its own).

    Pure checks (addresses, gateway, MAC, names) happen here; checks needing the kernel
    happen in :meth:`create` before its first change.
    """

    def __init__(
        self,
        target: Target,
        *,
        bridge: Bridge | str | None = None,
        macvlan: str | None = None,
        macvlan_mode: str = "bridge",
        vlan: int | None = None,
        address: str | IPInterface | None = None,
        gateway: str | None = None,
        ipv6: Sequence[str | IPInterface] = (),
        gateway6: str | None = None,
        routes: Sequence[Route] = (),
        mac: str | None = None,
        mac_seed: str | bytes | None = None,
        ifname: str = "eth0",
        host_ifname: str | None = None,
        mtu: int | None = None,
        create_bridge: bool = False,
        announce: bool = True,
        host: Namespace | None = None,
    ) -> None:
        check_args("Attachment", target=(target, Namespace, Container, int, str, os.PathLike),
                   bridge=(bridge, Bridge, str, None), macvlan=(macvlan, str, None), macvlan_mode=(macvlan_mode, str),
                   vlan=(vlan, int, None), address=(address, str, *IFACE_TYPES, None), gateway=(gateway, str, None),
                   ipv6=(ipv6, [str, *IFACE_TYPES]), gateway6=(gateway6, str, None), routes=(routes, [Route]),
                   mac=(mac, str, None), mac_seed=(mac_seed, str, bytes, None), ifname=(ifname, str),
                   host_ifname=(host_ifname, str, None), mtu=(mtu, int, None), create_bridge=(create_bridge, bool),
                   announce=(announce, bool), host=(host, Namespace, None))
        if (bridge is None) == (macvlan is None):
            raise ValidationError("give exactly one of bridge= (veth into a bridge) and macvlan= (a host "
                                  "interface)", step="validate")
        self.target = target
        self.bridge = bridge
        self.macvlan = validate_ifname(macvlan, what="macvlan parent") if macvlan is not None else None
        if macvlan_mode not in MACVLAN_MODES:
            raise ValidationError(f"macvlan mode {macvlan_mode!r} must be one of {sorted(MACVLAN_MODES)}",
                                  obj=macvlan_mode)
        self.macvlan_mode = macvlan_mode
        if vlan is not None:
            if not isinstance(vlan, int) or isinstance(vlan, bool) or not 1 <= vlan <= 4094:
                raise ValidationError(f"VLAN id {vlan!r} must be an integer from 1 to 4094", obj=repr(vlan))
            if macvlan is None:
                raise ValidationError("vlan= applies to macvlan mode (as in pipework, which refuses VLAN tags "
                                      "on a Linux bridge too)", obj=str(vlan), step="validate")
        self.vlan = vlan
        if isinstance(bridge, str):
            validate_ifname(bridge, what="bridge name")
        if create_bridge and bridge is None:
            raise ValidationError("create_bridge=True needs bridge=", step="validate")
        addr_in, gateway = _split_pipework(address, gateway)
        addrs: list[IPInterface] = []
        if addr_in is not None:
            addrs.append(parse_interface(addr_in))
        addrs += [parse_interface(a, what="IPv6 address") for a in ipv6]
        for a in addrs:
            _check_host_address(a, "address")
        if len({a.ip for a in addrs}) != len(addrs):
            raise ValidationError("the same address is given twice", obj=", ".join(map(str, addrs)))
        self.addresses: tuple[IPInterface, ...] = tuple(addrs)
        self.gateway = _check_gateway(gateway, addrs, "gateway") if gateway is not None else None
        self.gateway6 = _check_gateway(gateway6, addrs, "gateway6") if gateway6 is not None else None
        if self.gateway6 is not None and self.gateway6.version != 6:
            raise ValidationError(f"gateway6 {self.gateway6} is not an IPv6 address", obj=str(self.gateway6))
        if self.gateway is not None and self.gateway6 is not None and self.gateway.version == 6:
            raise ValidationError("two IPv6 default gateways given (gateway and gateway6)", step="validate")
        self.ifname = validate_ifname(ifname, what="interface name inside the target")
        self.routes: tuple[Route, ...] = tuple(self._check_route(r) for r in routes)
        if mac is not None and mac_seed is not None:
            raise ValidationError("give mac= or mac_seed=, not both", step="validate")
        self.requested_mac: str | None = parse_mac(mac) if mac is not None else (
            mac_from_seed(mac_seed) if mac_seed is not None else None)
        self.mac: str | None = self.requested_mac
        """The interface's MAC: the requested one, and after :meth:`create` the one the kernel reports."""
        self.host_ifname = validate_ifname(host_ifname, what="host interface name") if host_ifname else None
        if self.host_ifname is not None and self.macvlan is not None:
            raise ValidationError("host_ifname= applies to bridge mode only (a macvlan has no host end)")
        self.mtu = validate_mtu(mtu) if mtu is not None else None
        self.create_bridge = create_bridge
        self.announce = announce
        self.host = host
        self.namespace: Namespace | None = None
        self._link: VethPair | None = None
        self._macvlan: _wiring.MacvlanLink | None = None
        self._made_bridge: Bridge | None = None
        self._vlan_name: str | None = None
        self._made_vlan: int | None = None
        self._created = False
        self._removed = False

    def _check_route(self, route: Route) -> Route:
        if not isinstance(route, Route):
            raise ValidationError(f"routes must be Route objects, got {type(route).__name__}", obj=repr(route))
        if route.dev is not None and route.dev != self.ifname:
            raise ValidationError(f"route to {route.dst} names dev {route.dev!r}; attachment routes go through "
                                  f"{self.ifname!r}", obj=f"route {route.dst}")
        if route.gateway_ip is not None:
            _check_gateway(str(route.gateway_ip), self.addresses, f"route {route.dst} gateway")
        return Route(route.dst, gateway=route.gateway, dev=self.ifname, metric=route.metric, table=route.table)

    # -- planning ----------------------------------------------------------------------------------

    @property
    def created(self) -> bool:
        return self._created and not self._removed

    @property
    def mode(self) -> str:
        return "bridge" if self.bridge is not None else "macvlan"

    def _all_routes(self) -> list[Route]:
        out: list[Route] = []
        for gw in (self.gateway, self.gateway6):
            if gw is not None:
                out.append(Route("default" if gw.version == 4 else "default6", gateway=str(gw), dev=self.ifname))
        return out + list(self.routes)

    def _plan(self) -> tuple[Namespace, Namespace, LinkInfo | None, LinkInfo | None, str | None, int]:
        """Kernel-side checks, no change: (host, target, bridge or None, macvlan parent or None, veth name, mtu)."""
        host = self.host
        if isinstance(self.bridge, Bridge):
            host = self.bridge.namespace
        if host is None:
            host = Namespace.current()
        target = resolve_target(self.target)
        if not target.exists:
            raise NotFoundError(f"target namespace {target.label!r} does not exist (or has exited)",
                                obj=target.label, step="validate")
        if target.same_as(host):
            raise ValidationError(f"target {target.label!r} is the host namespace itself", obj=target.label,
                                  step="validate")
        if target.has_link(self.ifname):
            raise AlreadyExistsError(f"interface {self.ifname!r} already exists in the target; choose another "
                                     f"ifname (e.g. eth1)", obj=self.ifname, namespace=target.label,
                                     step="validate")
        present = {a.address: a for a in target.addresses()}
        for a in self.addresses:
            if a.ip in present:
                raise AlreadyExistsError(f"address {a.ip} is already on {present[a.ip].ifname!r} in the target",
                                         obj=str(a), namespace=target.label, step="validate")
        for r in self._all_routes():
            if r.network.prefixlen == 0 and any(x.is_default and x.dst.version == r.family
                                                for x in target.routes(r.family)):
                raise AlreadyExistsError(f"the target already has an IPv{r.family} default route; leave the "
                                         f"gateway out or remove it first", obj=f"route {r.dst}",
                                         namespace=target.label, step="validate")
        bridge_info: LinkInfo | None = None
        parent: LinkInfo | None = None
        veth_name: str | None = None
        if self.bridge is not None:
            name = self.bridge.name if isinstance(self.bridge, Bridge) else self.bridge
            bridge_info = host.rtnl().get_link(name=name)
            if bridge_info is None and not self.create_bridge:
                raise NotFoundError(f"bridge {name!r} does not exist (pass create_bridge=True to create it)",
                                    obj=name, namespace=host.label, step="validate")
            if bridge_info is not None and bridge_info.kind != "bridge":
                raise ValidationError(f"{name!r} is not a bridge (kind {bridge_info.kind or 'none'}); use "
                                      f"macvlan={name!r} to attach to a plain interface", obj=name,
                                      namespace=host.label, step="validate")
            veth_name = self.host_ifname or self._default_host_ifname(target)
            if host.has_link(veth_name):
                raise AlreadyExistsError(f"host interface {veth_name!r} already exists", obj=veth_name,
                                         namespace=host.label, step="validate")
            mtu = self.mtu or (bridge_info.mtu if bridge_info is not None else 1500)
        else:
            assert self.macvlan is not None
            parent = host.rtnl().get_link(name=self.macvlan)
            if parent is None:
                raise NotFoundError(f"host interface {self.macvlan!r} does not exist", obj=self.macvlan,
                                    namespace=host.label, step="validate")
            if parent.kind == "macvlan":
                raise ValidationError(f"{self.macvlan!r} is itself a macvlan; attach to its parent",
                                      obj=self.macvlan, namespace=host.label, step="validate")
            mtu = self.mtu or parent.mtu
            if mtu > parent.mtu:
                raise ValidationError(f"MTU {mtu} exceeds the MTU {parent.mtu} of {self.macvlan!r}",
                                      obj=self.macvlan, step="validate")
            if self.vlan is not None:
                vname = f"{parent.name}.{self.vlan}"
                validate_ifname(vname, what="VLAN device name")
                existing = host.rtnl().get_link(name=vname)
                if existing is not None and existing.kind != "vlan":
                    raise ValidationError(f"{vname!r} exists but is not a VLAN device (kind {existing.kind})",
                                          obj=vname, namespace=host.label, step="validate")
        return host, target, bridge_info, parent, veth_name, mtu

    def _bridge_gateways(self, host: Namespace, bridge: str) -> list[IPInterface]:
        """The gateway addresses a bridge made by this attachment carries (with the prefix of the
        attachment's address in the same subnet), so the gateway answers; none the host already
        has on another interface (that one keeps it, as before)."""
        taken = {a.address: a.ifname for a in host.addresses()}
        out: list[IPInterface] = []
        for gw in (self.gateway, self.gateway6):
            if gw is None:
                continue
            if gw in taken:
                log.warning("gateway %s is already on %s in %s: not put on the new bridge %s", gw, taken[gw],
                            host.label, bridge)
                continue
            for a in self.addresses:
                if a.version == gw.version and gw in a.network:
                    out.append(ipaddress.ip_interface(f"{gw}/{a.network.prefixlen}"))
                    break
        return out

    def _default_host_ifname(self, target: Namespace) -> str:
        dev, ino = target.identity
        return _wiring.host_ifname_for(f"{dev}:{ino}:{self.ifname}")

    # -- lifecycle ---------------------------------------------------------------------------------

    def create(self) -> Attachment:
        """Attach. Kernel: [bridge], veth pair or macvlan born in the target, addresses, routes, announcements.

        Undo: :meth:`remove`. Nothing is changed if any check fails; a kernel failure halfway
        undoes the steps already made.
        """
        if self._created and not self._removed:
            raise StateError("attachment was already created", obj=self.ifname, step="attach")
        host, target, bridge_info, parent, veth_name, mtu = self._plan()
        self._link, self._macvlan, self._made_bridge = None, None, None
        self._vlan_name, self._made_vlan = None, None
        self.namespace = target
        self.host = host
        with atomic_step():
            self._created, self._removed = True, False
            record(f"detach {self.ifname} from {target.label}", self.remove)
            if self.bridge is not None:
                assert veth_name is not None
                br: Bridge | str
                if bridge_info is None:
                    name = self.bridge.name if isinstance(self.bridge, Bridge) else self.bridge
                    self._made_bridge = Bridge(name, namespace=host,
                                               addresses=self._bridge_gateways(host, name)).create()
                    br = self._made_bridge
                else:
                    br = bridge_info.name
                port = _wiring.BridgePort(br, self.ifname, veth_name, addresses=tuple(self.addresses),
                                          routes=tuple(self._all_routes()), mac=self.requested_mac, mtu=mtu)
                self._link = _wiring.plug(host, target, port)
                self.host_ifname = veth_name
            else:
                assert parent is not None
                lower = parent.index
                if self.vlan is not None:
                    lower = self._ensure_vlan(host, parent, mtu)
                mport = _wiring.MacvlanPort(lower, self.ifname, self.macvlan_mode, addresses=tuple(self.addresses),
                                            routes=tuple(self._all_routes()), mac=self.requested_mac, mtu=mtu)
                self._macvlan = _wiring.plug_macvlan(host, target, mport)
            info = target.link(self.ifname)
            self.mac = info.mac
            if self.announce and self.addresses and info.mac:
                ends = [(target, self.ifname)]
                if self.host_ifname is not None and self.bridge is not None:
                    ends.append((host, self.host_ifname))
                _announce(target, self.ifname, info.mac, self.addresses, wait_for=ends)
        record(f"detach {self.ifname} from {target.label}", self.remove)
        return self

    def remove(self) -> None:
        """Detach: delete the link this attachment made (its addresses and routes go with it) and the
        bridge if it created one. Idempotent; a target that has exited counts as already detached."""
        if not self._created:
            raise OwnershipError("attachment was never created", obj=self.ifname, step="detach")
        if self._removed:
            return
        self._removed = True
        errors: list[BaseException] = []
        if self._link is not None:
            try:
                self._link.remove()
            except NotFoundError:
                pass
            except Exception as exc:
                errors.append(exc)
        if self._macvlan is not None:
            try:
                self._macvlan.remove()
            except NotFoundError:
                pass
            except Exception as exc:
                errors.append(exc)
        if self._made_vlan is not None and self.host is not None:
            try:
                self._delete_vlan(self.host)
            except NotFoundError:
                pass
            except Exception as exc:
                errors.append(exc)
        if self._made_bridge is not None:
            self._made_bridge.remove()
        if errors:
            raise errors[0]

    def _ensure_vlan(self, host: Namespace, parent: LinkInfo, mtu: int) -> int:
        """The 802.1Q device PARENT.VLAN under the macvlan (pipework's ``@VLAN``): reused if present,
        else created (and then deleted on :meth:`remove`). UnsupportedError without kernel 802.1Q."""
        assert self.vlan is not None
        vname = f"{parent.name}.{self.vlan}"
        self._vlan_name = vname
        sock = host.rtnl()
        existing = sock.get_link(name=vname)
        if existing is not None:
            return existing.index
        with intent(f"delete VLAN device {vname} in {host.label}", lambda: self._delete_vlan(host)):
            try:
                sock.create_link(vname, "vlan", up=True, link=parent.index, mtu=mtu,
                                 info_data=[("IFLA_VLAN_ID", self.vlan)])
            except UnsupportedError as exc:
                raise UnsupportedError(f"the kernel has no 802.1Q VLAN support (module 8021q), so VLAN "
                                       f"{self.vlan} on {parent.name!r} cannot be made ({exc.message})",
                                       obj=vname, namespace=host.label, step="create VLAN device",
                                       errno=exc.errno) from exc
            info = sock.get_link(name=vname)
            assert info is not None
            self._made_vlan = info.index
        return info.index

    def _delete_vlan(self, host: Namespace) -> None:
        if self._vlan_name is None or not host.exists:
            return
        sock = host.rtnl()
        cur = sock.get_link(index=self._made_vlan) if self._made_vlan is not None else \
            sock.get_link(name=self._vlan_name)
        if cur is not None and cur.name == self._vlan_name and cur.kind == "vlan":
            sock.delete_link(cur.index, obj=self._vlan_name)

    def __enter__(self) -> Attachment:
        if not self.created:
            self._enter_ephemeral(self.create)  # ephemeral: recover() undoes it after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._created:
            self.remove()
        self._settle_ephemeral()

    def __repr__(self) -> str:
        where = f"bridge {self._bridge_name()!r}" if self.bridge is not None else f"macvlan of {self.macvlan!r}"
        addrs = ", ".join(map(str, self.addresses)) or "no address"
        return f"Attachment({self.ifname} in {self._target_label()} -> {where}, {addrs})"

    def _bridge_name(self) -> str | None:
        return self.bridge.name if isinstance(self.bridge, Bridge) else self.bridge

    def _target_label(self) -> str:
        if self.namespace is not None:
            return self.namespace.label
        return repr(self.target)


def attach(target: Target, bridge: Bridge | str | None = None, address: str | IPInterface | None = None,
           **options: object) -> Attachment:
    """Create an :class:`Attachment` at once: ``attach("test01", "br0", "192.168.0.123/24@192.168.0.1")``.

    Same options as :class:`Attachment`; returns it created (undo: ``.remove()``).
    """
    return Attachment(target, bridge=bridge, address=address, **options).create()  # type: ignore[arg-type]


# -- announcements ---------------------------------------------------------------------------------

def _arp_frame(mac: bytes, ip: bytes, op: int) -> bytes:
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    tha = mac if op == ARPOP_REPLY else b"\x00" * 6
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, ip, tha, ip)
    return (eth + arp).ljust(60, b"\x00")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _na_frame(mac: bytes, ip: bytes) -> bytes:
    """Unsolicited neighbour advertisement (RFC 4861 7.2.6): to all-nodes, Override set, target LL option."""
    body = struct.pack("!BBHI16sBB6s", 136, 0, 0, 0x20000000, ip, 2, 1, mac)
    pseudo = ip + _ALL_NODES + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", _checksum(pseudo + body)) + body[4:]
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(body), 58, 255, ip, _ALL_NODES)
    return _ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6) + ip6 + body


def _running(ns: Namespace, ifname: str) -> bool:
    """IFF_RUNNING (operationally up) of ``ifname`` in ``ns``, by SIOCGIFFLAGS on a UDP socket made there."""
    with ns.enter():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        res = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", ifname.encode(), 0))
    except OSError:
        return False
    finally:
        s.close()
    return bool(struct.unpack_from("16sH", res)[1] & IFF_RUNNING)


def _wait_running(ends: Sequence[tuple[Namespace, str]], timeout: float = 2.0) -> bool:
    """Wait until each (namespace, interface) is operationally up.

    A link brought up has a no-op queueing discipline (which drops what is sent) until the kernel's
    link-watch work activates it, a moment later and asynchronously; a bridge port starts forwarding
    in that same step. Frames sent before that are lost, so the announcement waits for it.
    """
    deadline = time.monotonic() + timeout
    pending = list(ends)
    while pending:
        pending = [(ns, name) for ns, name in pending if not _running(ns, name)]
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _announce(ns: Namespace, ifname: str, mac: str, addresses: Sequence[IPInterface], *,
              wait_for: Sequence[tuple[Namespace, str]] = ()) -> int:
    """Send one ARP announcement (request) and one gratuitous ARP reply per IPv4 address, one
    unsolicited NA per IPv6 address, from a packet socket made inside ``ns``, once every link in
    ``wait_for`` is operationally up (at most 2 s). Returns the number of frames sent."""
    hw = bytes.fromhex(mac.replace(":", ""))
    frames: list[bytes] = []
    for a in addresses:
        if a.version == 4:
            frames.append(_arp_frame(hw, a.ip.packed, ARPOP_REQUEST))
            frames.append(_arp_frame(hw, a.ip.packed, ARPOP_REPLY))
        elif not a.ip.is_link_local:
            frames.append(_na_frame(hw, a.ip.packed))
    if not frames:
        return 0
    _wait_running(wait_for)
    with ns.enter():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, 0))
        for frame in frames:
            sock.send(frame)
    finally:
        _close_later(sock)
    return len(frames)


_closing: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
_closer: threading.Thread | None = None
_closer_lock = threading.Lock()


def _close_later(sock: socket.socket) -> None:
    """Close a packet socket off the caller's path: the kernel waits for an RCU grace period
    (synchronize_net, 8-19 ms measured) when one is released, which would triple an attach's cost.
    The frames are already sent; one daemon thread does the closing."""
    global _closer
    _closing.put(sock)
    with _closer_lock:
        if _closer is None or not _closer.is_alive():
            _closer = threading.Thread(target=_close_loop, name="netns_kit-packet-closer", daemon=True)
            _closer.start()


def _close_loop() -> None:
    while True:
        _closing.get().close()
