"""A declarative topology: plan it without root, read it as iproute2/nft commands, then build it.

::

    topo = Topology("demo")
    topo.bridge("br-demo", addresses=["10.30.0.1/24"], nat=True)   # masqueraded, under the firewall
    topo.endpoint("web", bridge="br-demo", address="10.30.0.2/24", gateway="10.30.0.1",
                  publish=["8080:80/tcp"])
    print(topo.plan())        # numbered steps, each with the command it replaces and its undo
    topo.commands()           # ['ip netns add web', 'ip -n web link set lo up', ...]
    with topo:                # built in one Transaction: all of it, or nothing
        ...
    topo.view()               # the same as a table / diagram (Jupyter shows it)

:meth:`Topology.plan` is pure: it validates every value and orders the steps, touching no
kernel and needing no privileges. :meth:`Topology.create` applies the same steps through the
library's objects (namespaces, bridges, veth pairs, addresses, routes, NAT rules) inside one
:class:`~netns_kit.Transaction`, so a failure at any step undoes the earlier ones.
:meth:`Topology.remove` tears everything down, newest first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import _batch, _progress, _wiring
from . import _nft_render as render
from ._journal import Transaction, intent
from ._progress import ProgressArg
from .errors import Failures, NetnsKitError, StateError, TopologyFileError, ValidationError
from .firewall import Firewall, NetworkPolicy
from .links import Bridge, VethPair
from .model import (
    IFACE_TYPES,
    IPInterface,
    Route,
    check_args,
    check_usable_subnet,
    format_rate,
    parse_interface,
    parse_ip,
    parse_mac,
    parse_rate,
    validate_ifname,
    validate_mtu,
    validate_netns_name,
)
from .namespace import Namespace
from .nat import PublishedPort
from .ports import PortSpec
from .topofile import EndpointSpec, ImpairmentSpec, LinkSpec, NetworkSpec, TopologySpec, read_topology, write_topology
from .views import InterfaceView, NamespaceView, PortView, TopologyView, VethLink

__all__ = ["Plan", "Step", "Topology"]

HOST = "host"


@dataclass(frozen=True)
class Step:
    """One change a build will make: what, where, the equivalent command(s) and how it is undone."""

    action: str
    target: str
    namespace: str
    commands: tuple[str, ...]
    undo: str
    detail: dict[str, str] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target, "namespace": self.namespace,
                "commands": list(self.commands), "undo": self.undo, **({"detail": self.detail} if self.detail else {})}


class Plan(Sequence[Step]):
    """The ordered steps of a build, as data. Printing it, or showing it in Jupyter, lists them."""

    def __init__(self, title: str, steps: Sequence[Step]) -> None:
        self.title = title
        self.steps = tuple(steps)

    def __getitem__(self, i: Any) -> Any:
        return self.steps[i]

    def __len__(self) -> int:
        return len(self.steps)

    def commands(self) -> list[str]:
        """Every step as the iproute2 / nft command it replaces, in order (never run by netns_kit)."""
        return [c for s in self.steps for c in s.commands]

    def script(self) -> str:
        """The commands as a shell script, for reading and auditing."""
        return "#!/bin/sh\n# what netns_kit does for: " + self.title + "\nset -e\n" + "\n".join(self.commands()) + "\n"

    def to_dicts(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.steps]

    def __str__(self) -> str:
        lines = [f"plan for {self.title}: {len(self.steps)} steps"]
        for n, s in enumerate(self.steps, 1):
            where = "" if s.namespace == HOST else f" (in {s.namespace})"
            lines.append(f"{n:3}. {s.action} {s.target}{where}")
            lines.extend(f"       $ {c}" for c in s.commands)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Plan({self.title!r}, {len(self.steps)} steps)"

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{n}</td><td>{e(s.action)}</td><td><code>{e(s.target)}</code></td><td>{e(s.namespace)}</td>"
            f"<td><code>{'<br>'.join(e(c) for c in s.commands)}</code></td><td>{e(s.undo)}</td></tr>"
            for n, s in enumerate(self.steps, 1))
        head = "".join(f"<th>{h}</th>" for h in ("#", "action", "target", "namespace", "equivalent command",
                                                  "undo"))
        return (f"<div><b>plan for {e(self.title)}</b>"
                f'<table class="netns-kit"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')


@dataclass
class _Bridge:
    name: str
    addresses: tuple[IPInterface, ...]
    mtu: int | None
    nat: bool
    masquerade: bool
    icc: bool


class _Attached:
    """A bridge attached to the host's firewall; ``remove()`` detaches it."""

    def __init__(self, fw: Any, bridge: str) -> None:
        self.fw = fw
        self.bridge = bridge

    def remove(self) -> None:
        self.fw.detach_network(self.bridge)


@dataclass
class _Endpoint:
    namespace: str
    bridge: str
    ifname: str
    host_ifname: str
    addresses: tuple[IPInterface, ...]
    gateway: str | None
    mac: str | None
    publish: tuple[Any, ...]  # nat.PublishedPort
    link_local: bool


@dataclass
class _Link:
    a: tuple[str, str]  # (namespace or "host", interface)
    b: tuple[str, str]
    a_addresses: tuple[IPInterface, ...]
    b_addresses: tuple[IPInterface, ...]
    mtu: int | None


@dataclass
class _Impairment:
    end: tuple[str, str]
    rate: int | None
    delay_ms: float
    jitter_ms: float
    loss_percent: float

    def qdisc(self) -> tuple[str, dict[str, Any]]:
        """The root qdisc's kind and pyroute2 options: tbf for a rate, netem otherwise."""
        if self.rate is not None:
            return "tbf", {"rate": f"{self.rate}bit", "burst": max(self.rate // 8 // 100, 16000),
                           "latency": "50000us"}
        return "netem", {"delay": int(self.delay_ms * 1000), "jitter": int(self.jitter_ms * 1000),
                         "loss": self.loss_percent}

    def command(self) -> str:
        ns, ifname = self.end
        pre = "" if ns == HOST else f"ip netns exec {ns} "
        if self.rate is not None:
            burst = max(self.rate // 8 // 100, 16000)
            return f"{pre}tc qdisc add dev {ifname} root tbf rate {format_rate(self.rate)} burst {burst} latency 50ms"
        parts = [f"{pre}tc qdisc add dev {ifname} root netem"]
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms:g}ms" + (f" {self.jitter_ms:g}ms" if self.jitter_ms else ""))
        if self.loss_percent:
            parts.append(f"loss {self.loss_percent:g}%")
        return " ".join(parts)


class _Qdisc:
    """A root qdisc made by a build; ``remove()`` deletes it (it also goes with its interface)."""

    def __init__(self, ns: Namespace, index: int, ifname: str) -> None:
        self.ns, self.index, self.ifname = ns, index, ifname

    def remove(self) -> None:
        if self.ns.exists:
            self.ns.rtnl().delete_qdisc(self.index, obj=self.ifname)

    def __repr__(self) -> str:
        return f"root qdisc of {self.ifname} in {self.ns.label}"


def _p_spec(p: PublishedPort) -> str:
    """A publication as the ``-p`` spec that makes it (``[HOST_IP:]8080:80/tcp``)."""
    return PortSpec(p.container_port, p.host_port, p.host_port_end, p.host_ip, p.proto).text


def _end(text: str, what: str) -> tuple[str, str]:
    """``"NS:IFNAME"`` as (namespace, interface), both validated (``host`` is the host namespace)."""
    ns, sep, ifname = text.partition(":")
    if not sep:
        raise ValidationError(f"{what} {text!r} must be 'NAMESPACE:INTERFACE'", obj=text)
    if ns != HOST:
        validate_netns_name(ns)
    return ns, validate_ifname(ifname)


def _same_host_port(a: PublishedPort, b: PublishedPort) -> bool:
    """True if two publications would take the same host port (same protocol and family, ranges
    overlapping, and the same host address or either on every address)."""
    if a.proto != b.proto or a.family != b.family:
        return False
    if a.host_address is not None and b.host_address is not None and a.host_address != b.host_address:
        return False
    a_end = a.host_port_end if a.host_port_end is not None else a.host_port
    b_end = b.host_port_end if b.host_port_end is not None else b.host_port
    return a.host_port <= b_end and b.host_port <= a_end


class _Published:
    """Ports published in one batch; ``remove()`` unpublishes them in one batch."""

    def __init__(self, fw: Any, ports: Sequence[Any]) -> None:
        self.fw = fw
        self.ports = tuple(ports)

    def remove(self) -> None:
        self.fw.unpublish(*self.ports)

    def __repr__(self) -> str:
        return f"{len(self.ports)} published ports"


def _ns_flag(ns: str) -> str:
    return "" if ns == HOST else f"-n {ns} "


class Topology:
    """Namespaces and bridges, endpoints wired to them, NAT: planned first, then built or torn down.

    Builder methods return the topology, so they chain. Nothing touches the kernel until
    :meth:`create` (or ``with topo:``).
    """

    def __init__(self, title: str = "topology") -> None:
        check_args("Topology", title=(title, str))
        self.title = title
        self._namespaces: list[str] = []
        self._bridges: list[_Bridge] = []
        self._endpoints: list[_Endpoint] = []
        self._links: list[_Link] = []
        self._impairments: list[_Impairment] = []
        self._made: list[Any] | None = None
        self._objects: dict[str, Any] = {}

    # -- building the description (pure) -----------------------------------------------------------

    def namespace(self, name: str) -> Topology:
        """A named namespace with only ``lo`` (Docker's ``--network none``)."""
        check_args("Topology.namespace", name=(name, str))
        validate_netns_name(name)
        if name == HOST:
            raise ValidationError(f"{HOST!r} names the host namespace in a topology", obj=name)
        if name in self._namespaces:
            raise ValidationError(f"namespace {name!r} is already in the topology", obj=name)
        self._namespaces.append(name)
        return self

    def bridge(self, name: str, *, addresses: Sequence[str] = (), mtu: int | None = None, nat: bool = False,
               masquerade: bool = True, icc: bool = True) -> Topology:
        """A bridge in the host namespace, with its addresses (the gateways of its subnets).

        ``nat=True`` puts it under netns_kit's firewall (needed to publish ports of its endpoints):
        ``masquerade`` its subnets on the way out, ``icc`` lets its endpoints reach each other.
        """
        check_args("Topology.bridge", name=(name, str), addresses=(addresses, [str, *IFACE_TYPES]),
                   mtu=(mtu, int, None), nat=(nat, bool), masquerade=(masquerade, bool), icc=(icc, bool))
        validate_ifname(name, what="bridge name")
        if mtu is not None:
            validate_mtu(mtu)
        if any(b.name == name for b in self._bridges):
            raise ValidationError(f"bridge {name!r} is already in the topology", obj=name)
        addrs = tuple(parse_interface(a) for a in addresses)
        for a in addrs:
            check_usable_subnet(a.network, what=f"bridge {name} address {a}: its subnet")
        if nat:
            NetworkPolicy(name, tuple(a.network for a in addrs), masquerade=masquerade, icc=icc)  # validates
        self._bridges.append(_Bridge(name, addrs, mtu, nat, masquerade, icc))
        return self

    def endpoint(
        self,
        namespace: str,
        *,
        bridge: str,
        address: str | Sequence[str],
        gateway: str | None = None,
        ifname: str = "eth0",
        host_ifname: str | None = None,
        mac: str | None = None,
        publish: Sequence[str] = (),
        ipv6_link_local: bool | None = None,
    ) -> Topology:
        """A namespace (created if not yet in the topology) on ``bridge`` through a veth pair.

        ``address``: one or more ``ADDR/PREFIX``; ``gateway``: the default route (must be inside
        one of them); ``publish``: Docker ``-p`` specs (``"8080:80/tcp"``) as DNAT on the host.
        ``ipv6_link_local``: see :class:`~netns_kit.VethPair`; by default only endpoints with an
        IPv6 address get link-local addresses (as a Docker network without IPv6 does).
        """
        check_args("Topology.endpoint", namespace=(namespace, str), bridge=(bridge, str),
                   address=(address, str, *IFACE_TYPES, [str, *IFACE_TYPES]), gateway=(gateway, str, None),
                   ifname=(ifname, str), host_ifname=(host_ifname, str, None), mac=(mac, str, None),
                   publish=(publish, [str]), ipv6_link_local=(ipv6_link_local, bool, None))
        if namespace not in self._namespaces:
            self.namespace(namespace)
        br = next((b for b in self._bridges if b.name == bridge), None)
        if br is None:
            raise ValidationError(f"bridge {bridge!r} is not in the topology (add it with .bridge())", obj=bridge)
        if publish and not br.nat:
            raise ValidationError(f"publishing ports needs the bridge under the firewall: .bridge({bridge!r}, "
                                  "nat=True)", obj=bridge)
        validate_ifname(ifname)
        host_if = host_ifname or f"v{namespace}"[:15]
        validate_ifname(host_if, what="host-side veth name")
        if any(e.host_ifname == host_if for e in self._endpoints):
            raise ValidationError(f"host-side veth name {host_if!r} is used twice; pass host_ifname=", obj=host_if)
        if any(e.namespace == namespace and e.ifname == ifname for e in self._endpoints):
            raise ValidationError(f"{namespace!r} already has an interface {ifname!r}", obj=ifname)
        addrs = tuple(parse_interface(a) for a in ([address] if isinstance(address, (str, *IFACE_TYPES)) else address))
        if not addrs:
            raise ValidationError("an endpoint needs at least one address", obj=namespace)
        for a in addrs:
            check_usable_subnet(a.network, what=f"endpoint {namespace} address {a}: its subnet")
        for a in addrs:
            if a.version == 4 and a.network.prefixlen < 31 and a.ip in (a.network.network_address,
                                                                        a.network.broadcast_address):
                raise ValidationError(f"{a} is the network or broadcast address of {a.network}", obj=str(a))
        if gateway is not None:
            gw = parse_ip(gateway, what="gateway")
            if not any(gw in a.network for a in addrs):
                raise ValidationError(f"gateway {gw} is not inside {', '.join(str(a.network) for a in addrs)}",
                                      obj=f"route default via {gw}")
        if mac is not None:
            mac = parse_mac(mac)
        ip = next((a.ip for a in addrs if a.version == 4), addrs[0].ip)
        ports = tuple(PublishedPort.parse(spec, container_ip=str(ip), bridge=bridge, bridge_port=host_if)
                      for spec in publish)
        self._check_conflicts(namespace, br, host_if, addrs, mac, ports)
        link_local = any(a.version == 6 for a in addrs) if ipv6_link_local is None else ipv6_link_local
        self._endpoints.append(_Endpoint(namespace, bridge, ifname, host_if, addrs, gateway, mac, ports,
                                         link_local))
        return self

    def link(self, a: str, b: str, *, addresses: Sequence[str | Sequence[str] | None] = (),
             mtu: int | None = None) -> Topology:
        """A veth pair between two namespaces, ``"NS:IFNAME"`` each (``"host:IFNAME"``: the end is
        in the host namespace), as containerlab's links are. Namespaces not yet in the topology are
        added. ``addresses``: one entry per end (an address, a list of them, or None)."""
        check_args("Topology.link", a=(a, str), b=(b, str), mtu=(mtu, int, None))
        ea, eb = _end(a, "link end"), _end(b, "link end")
        if ea == eb:
            raise ValidationError(f"a link needs two different ends, got {a!r} twice", obj=a)
        if mtu is not None:
            validate_mtu(mtu)
        if isinstance(addresses, str) or len(addresses) not in (0, 2):
            raise ValidationError("addresses: give one entry per end (2), or none", obj=repr(addresses))
        per_end: list[tuple[IPInterface, ...]] = []
        for (ns, _), value in zip((ea, eb), addresses or (None, None), strict=True):
            items = () if value is None else (value,) if isinstance(value, (str, *IFACE_TYPES)) else tuple(value)
            addrs = tuple(parse_interface(x) for x in items)
            for x in addrs:
                check_usable_subnet(x.network, what=f"link end {ns} address {x}: its subnet")
            per_end.append(addrs)
        used = self._interfaces()
        for ns, ifname in (ea, eb):
            if (ns, ifname) in used:
                raise ValidationError(f"{ns!r} already has an interface {ifname!r} in the topology", obj=ifname)
        for ns, _ in (ea, eb):
            if ns != HOST and ns not in self._namespaces:
                self.namespace(ns)
        self._links.append(_Link(ea, eb, per_end[0], per_end[1], mtu))
        return self

    def impair(self, interface: str, *, rate: int | str | None = None, delay_ms: float = 0.0,
               jitter_ms: float = 0.0, loss_percent: float = 0.0) -> Topology:
        """Shape what leaves ``interface`` (``"NS:IFNAME"``, an interface of the topology): ``rate``
        (a tbf root qdisc, e.g. ``"10mbit"``) or delay/jitter/loss (a netem root qdisc, where the
        kernel has sch_netem; UnsupportedError at build time where it does not). One per interface."""
        check_args("Topology.impair", interface=(interface, str), rate=(rate, int, str, None),
                   delay_ms=(delay_ms, int, float), jitter_ms=(jitter_ms, int, float),
                   loss_percent=(loss_percent, int, float))
        end = _end(interface, "interface")
        if end not in self._interfaces(bridges=False):
            raise ValidationError(f"{interface!r} is no veth end of the topology (endpoints and links)", obj=interface)
        if any(i.end == end for i in self._impairments):
            raise ValidationError(f"{interface!r} is impaired twice (one root qdisc per interface)", obj=interface)
        for what, value, high in (("delay_ms", delay_ms, 60_000), ("jitter_ms", jitter_ms, 60_000),
                                  ("loss_percent", loss_percent, 100)):
            if not 0 <= value <= high:
                raise ValidationError(f"{what} {value!r} must be a number from 0 to {high}", obj=interface)
        if jitter_ms and not delay_ms:
            raise ValidationError("jitter_ms needs a delay_ms", obj=interface)
        bits = parse_rate(rate) if rate is not None else None
        netem = bool(delay_ms or loss_percent)
        if (bits is None) == (not netem):
            raise ValidationError(f"{interface!r}: give a rate (tbf) or delay/loss (netem), one of the two",
                                  obj=interface)
        self._impairments.append(_Impairment(end, bits, float(delay_ms), float(jitter_ms), float(loss_percent)))
        return self

    def _interfaces(self, *, bridges: bool = True) -> set[tuple[str, str]]:
        """Every (namespace, interface) the topology makes (veth ends, and bridges unless told not)."""
        used = {(HOST, b.name) for b in self._bridges} if bridges else set()
        for e in self._endpoints:
            used.update({(e.namespace, e.ifname), (HOST, e.host_ifname)})
        for lk in self._links:
            used.update({lk.a, lk.b})
        return used

    # -- as data (see netns_kit.topofile) ------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: TopologySpec) -> Topology:
        """A topology from a :class:`~netns_kit.topofile.TopologySpec` (pure). Every check of the
        builder methods runs; a failure is a TopologyFileError naming the file's field."""
        check_args("Topology.from_spec", spec=(spec, TopologySpec))
        topo = cls(spec.name)

        def add(where: str, call: Any, *args: Any, **kwargs: Any) -> None:
            try:
                call(*args, **kwargs)
            except TopologyFileError:
                raise
            except NetnsKitError as exc:
                raise TopologyFileError(exc.message, field=where, source=spec.source) from exc

        for i, name in enumerate(spec.namespaces):
            add(f"namespaces[{i}]", topo.namespace, name)
        for n in spec.networks:
            add(n.where or f"networks.{n.name}", topo.bridge, n.name, addresses=n.addresses, mtu=n.mtu, nat=n.nat,
                masquerade=n.masquerade, icc=n.icc)
        for e in spec.endpoints:
            add(e.where or f"endpoints.{e.namespace}", topo.endpoint, e.namespace, bridge=e.network,
                address=e.addresses, gateway=e.gateway, ifname=e.ifname, host_ifname=e.host_ifname, mac=e.mac,
                publish=e.publish, ipv6_link_local=e.ipv6_link_local)
        for i, lk in enumerate(spec.links):
            add(lk.where or f"links[{i}]", topo.link, lk.a, lk.b, mtu=lk.mtu,
                addresses=(lk.a_addresses, lk.b_addresses) if lk.a_addresses or lk.b_addresses else ())
        for i, im in enumerate(spec.impairments):
            add(im.where or f"impairments[{i}]", topo.impair, im.interface, rate=im.rate, delay_ms=im.delay_ms,
                jitter_ms=im.jitter_ms, loss_percent=im.loss_percent)
        return topo

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Topology:
        """A topology from a YAML file: netns_kit's schema or a containerlab topology (see
        docs/topology-files.md). TopologyFileError naming the field if anything is wrong; pure."""
        return cls.from_spec(read_topology(path))

    def to_spec(self) -> TopologySpec:
        """The topology as plain data (:meth:`save` writes it as YAML; :meth:`from_spec` reads it back)."""
        own = {e.namespace for e in self._endpoints} | {n for lk in self._links for n, _ in (lk.a, lk.b)}

        def addrs(values: tuple[IPInterface, ...]) -> tuple[str, ...]:
            return tuple(map(str, values))

        return TopologySpec(
            self.title, tuple(n for n in self._namespaces if n not in own),
            tuple(NetworkSpec(b.name, addrs(b.addresses), b.mtu, b.nat, b.masquerade, b.icc) for b in self._bridges),
            tuple(EndpointSpec(e.namespace, e.bridge, addrs(e.addresses), e.gateway, e.ifname,
                               None if e.host_ifname == f"v{e.namespace}"[:15] else e.host_ifname, e.mac,
                               tuple(_p_spec(p) for p in e.publish),
                               None if e.link_local == any(a.version == 6 for a in e.addresses) else e.link_local)
                  for e in self._endpoints),
            tuple(LinkSpec(":".join(lk.a), ":".join(lk.b), addrs(lk.a_addresses), addrs(lk.b_addresses), lk.mtu)
                  for lk in self._links),
            tuple(ImpairmentSpec(":".join(i.end), format_rate(i.rate) if i.rate is not None else None, i.delay_ms,
                                 i.jitter_ms, i.loss_percent) for i in self._impairments))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_spec` as YAML in netns_kit's schema (:meth:`load` reads it back, equal)."""
        write_topology(self.to_spec(), path)

    def _check_conflicts(self, namespace: str, br: _Bridge, host_if: str, addrs: tuple[IPInterface, ...],
                         mac: str | None, ports: tuple[PublishedPort, ...]) -> None:
        """ValidationError if a new endpoint would clash with what the topology already holds: an
        address taken on its bridge (by another endpoint or the bridge itself), a host-side name
        that is a bridge's, a MAC taken on its bridge, or a host port published twice."""
        if any(b.name == host_if for b in self._bridges):
            raise ValidationError(f"host-side veth name {host_if!r} is a bridge's name; pass host_ifname=",
                                  obj=host_if)
        taken = {a.ip: f"bridge {br.name}" for a in br.addresses}
        for e in self._endpoints:
            if e.bridge == br.name:
                taken.update({a.ip: f"endpoint {e.namespace}" for a in e.addresses})
                if mac is not None and e.mac == mac:
                    raise ValidationError(f"MAC {mac} is already used by endpoint {e.namespace} on bridge "
                                          f"{br.name}", obj=mac)
        for a in addrs:
            if a.ip in taken:
                raise ValidationError(f"address {a.ip} of endpoint {namespace} is already used by {taken[a.ip]} "
                                      f"on bridge {br.name}", obj=str(a))
        published = [(e.namespace, p) for e in self._endpoints for p in e.publish]
        for i, port in enumerate(ports):
            for owner, other in published + [(namespace, p) for p in ports[:i]]:
                if _same_host_port(port, other):
                    raise ValidationError(f"host port {port.spec} of endpoint {namespace} is already published by "
                                          f"{owner} ({other.spec})", obj=port.spec)

    # -- plan (pure) ---------------------------------------------------------------------------------

    def plan(self) -> Plan:
        """Every change :meth:`create` will make, in order, as data. No kernel access, no root."""
        steps: list[Step] = []
        for name in self._namespaces:
            steps.append(Step("create namespace", name, HOST,
                              (f"ip netns add {name}", f"ip -n {name} link set lo up"),
                              f"ip netns del {name}"))
        for b in self._bridges:
            cmds = [f"ip link add {b.name} type bridge" + (f" mtu {b.mtu}" if b.mtu else "")]
            cmds += [f"ip addr add {a} dev {b.name}" for a in b.addresses]
            cmds.append(f"ip link set {b.name} up")
            steps.append(Step("create bridge", b.name, HOST, tuple(cmds), f"ip link del {b.name}",
                              {"addresses": ", ".join(map(str, b.addresses))}))
            if b.nat:
                steps.append(Step("attach bridge to the firewall", b.name, HOST, tuple(_attach_commands(b)),
                                  "nft delete element (the same elements); sysctls restored"))
        for e in self._endpoints:
            mac = f" address {e.mac}" if e.mac else ""
            create = f"ip link add {e.host_ifname} type veth peer name {e.ifname} netns {e.namespace}{mac}"
            if e.link_local:
                veth_cmds: tuple[str, ...] = (create, f"ip link set {e.host_ifname} master {e.bridge} up",
                        f"ip -n {e.namespace} link set {e.ifname} up")
            else:  # no IPv6 link-local: the mode is set on each end before it comes up
                veth_cmds = (create, f"ip link set {e.host_ifname} master {e.bridge} addrgenmode none up",
                             f"ip -n {e.namespace} link set {e.ifname} addrgenmode none",
                             f"ip -n {e.namespace} link set {e.ifname} up")
            steps.append(Step("create veth pair", f"{e.host_ifname} <-> {e.ifname}", HOST, veth_cmds,
                              f"ip link del {e.host_ifname}"))
            for a in e.addresses:
                steps.append(Step("add address", f"{a} on {e.ifname}", e.namespace,
                                  (f"ip -n {e.namespace} addr add {a} dev {e.ifname}",),
                                  f"ip -n {e.namespace} addr del {a} dev {e.ifname}"))
            if e.gateway is not None:
                steps.append(Step("add route", f"default via {e.gateway}", e.namespace,
                                  (f"ip -n {e.namespace} route add default via {e.gateway}",),
                                  f"ip -n {e.namespace} route del default via {e.gateway}"))
            for port in e.publish:
                steps.append(Step("publish port", f"{port.spec} -> {port.container_ip}", HOST,
                                  (_dnat_command(port),), "nft delete element (the same element)",
                                  {"container_ip": port.container_ip, "bridge": e.bridge}))
        for lk in self._links:
            (na, ia), (nb, ib) = (lk.b, lk.a) if lk.b[0] == HOST else (lk.a, lk.b)  # made from the host end
            mtu = f" mtu {lk.mtu}" if lk.mtu else ""
            steps.append(Step("create veth pair", f"{lk.a[0]}:{lk.a[1]} <-> {lk.b[0]}:{lk.b[1]}", HOST,
                              (f"ip {_ns_flag(na)}link add {ia}{mtu} type veth peer name {ib}"
                               + ("" if nb == na else f" netns {nb}"),
                               f"ip {_ns_flag(na)}link set {ia} up", f"ip {_ns_flag(nb)}link set {ib} up"),
                              f"ip {_ns_flag(na)}link del {ia}"))
            for (ns, ifname), addrs in ((lk.a, lk.a_addresses), (lk.b, lk.b_addresses)):
                for a in addrs:
                    steps.append(Step("add address", f"{a} on {ifname}", ns,
                                      (f"ip {_ns_flag(ns)}addr add {a} dev {ifname}",),
                                      f"ip {_ns_flag(ns)}addr del {a} dev {ifname}"))
        for im in self._impairments:
            steps.append(Step("add root qdisc", f"{im.qdisc()[0]} on {im.end[1]}", im.end[0], (im.command(),),
                              f"tc qdisc del dev {im.end[1]} root"))
        return Plan(self.title, steps)

    def commands(self) -> list[str]:
        """The plan as the iproute2 and nft commands of the classic recipe (netns_kit runs none of them)."""
        return self.plan().commands()

    # -- apply ---------------------------------------------------------------------------------------

    @property
    def created(self) -> bool:
        return self._made is not None

    def create(self, *, progress: ProgressArg = None) -> Topology:
        """Build it, step by step as planned, in one Transaction (all or nothing). Undo: :meth:`remove`.

        All published ports go in one nft batch, after the endpoints (a failure there, as anywhere,
        undoes everything). ``progress``: a callable ``(done, total)`` called as namespaces, bridges
        and endpoints are made, ``True`` for a progress bar (tqdm), or ``None`` (silent, the default).
        """
        if self._made is not None:
            raise StateError("topology is already built", obj=self.title, step="create topology")
        _progress.check(progress, step="create topology")
        self.plan()  # validates everything before the first change
        objs: dict[str, Any] = {}
        made: list[Any] = []
        has_ports = any(e.publish for e in self._endpoints)
        report = _progress.reporter(progress, len(self._namespaces) + len(self._bridges) + len(self._endpoints)
                                    + int(has_ports), desc=f"building {self.title}", unit="object")
        with contextlib.ExitStack() as closing, Transaction():
            closing.callback(report.close)
            for name in self._namespaces:
                objs[f"ns:{name}"] = Namespace(name).create()
                made.append(objs[f"ns:{name}"])
                report.advance()
            for b in self._bridges:
                objs[f"br:{b.name}"] = Bridge(b.name, addresses=b.addresses, mtu=b.mtu).create()
                made.append(objs[f"br:{b.name}"])
                if b.nat:
                    fw = Firewall.for_namespace()
                    fw.attach_network(NetworkPolicy(b.name, tuple(a.network for a in b.addresses),
                                                    masquerade=b.masquerade, icc=b.icc))
                    made.append(_Attached(fw, b.name))
                report.advance()
            host = Namespace.current()
            for e in self._endpoints:
                routes = (Route("default", gateway=e.gateway),) if e.gateway is not None else ()
                port = _wiring.BridgePort(objs[f"br:{e.bridge}"], e.ifname, e.host_ifname, addresses=e.addresses,
                                          routes=routes, mac=e.mac, ipv6_link_local=e.link_local,
                                          hairpin=bool(e.publish))
                made.append(_wiring.plug(host, objs[f"ns:{e.namespace}"], port))
                report.advance()
            for lk in self._links:
                made.append(self._make_link(lk, objs, host))
            for im in self._impairments:
                made.append(_impair(objs[f"ns:{im.end[0]}"] if im.end[0] != HOST else host, im))
            # hairpin mode was set on each publishing endpoint's bridge port by the wiring
            ports = [dataclasses.replace(port, bridge_port=None) for e in self._endpoints for port in e.publish]
            if ports:
                fw = Firewall.for_namespace()
                fw.publish(*ports)
                made.append(_Published(fw, ports))
                report.advance()
        self._made = made
        self._objects = objs
        return self

    @staticmethod
    def _make_link(lk: _Link, objs: dict[str, Any], host: Namespace) -> VethPair:
        """One link's veth pair with its addresses (journaled; on a failure the pair is deleted)."""
        ns_a, ns_b = (objs[f"ns:{n}"] if n != HOST else host for n in (lk.a[0], lk.b[0]))
        pair = VethPair(lk.a[1], lk.b[1], namespace=ns_a, peer_namespace=ns_b, mtu=lk.mtu,
                        ipv6_link_local=any(a.version == 6 for a in lk.a_addresses + lk.b_addresses)).create()
        try:
            for ns, index, addrs in ((ns_a, pair.index, lk.a_addresses), (ns_b, pair.peer_index, lk.b_addresses)):
                for a in addrs:
                    ns.rtnl().add_address(index, a, obj=f"{a} on link end in {ns.label}")
        except BaseException:
            pair.remove()
            raise
        return pair

    def remove(self, *, progress: ProgressArg = None) -> None:
        """Remove everything :meth:`create` made, newest first (addresses and routes go with their
        namespace, veth pairs with their namespace end), interfaces in one request per namespace
        (a :func:`~netns_kit.removal_batch`). Idempotent. ``progress``: as for :meth:`create`,
        reported as the batch removes interfaces and namespaces."""
        _progress.check(progress, step="remove topology")
        made, self._made = self._made, None
        self._objects = {}
        failures = Failures()
        with _batch.collecting() as pending:
            for obj in reversed(made or []):
                try:
                    obj.remove()
                except Exception as exc:  # keep going: everything else still gets removed
                    exc.add_note(f"while removing {obj!r} of topology {self.title!r}")
                    failures.append(exc)
        failures.extend(pending.flush(progress))
        failures.raise_first()

    def namespaces(self) -> dict[str, Any]:
        """The built namespaces by name (empty before :meth:`create`)."""
        return {k[3:]: v for k, v in self._objects.items() if k.startswith("ns:")}

    def __enter__(self) -> Topology:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    # -- views ---------------------------------------------------------------------------------------

    def view(self) -> TopologyView:
        """As planned (before create) or as it is in the kernel (after create), as a TopologyView."""
        if self._made is not None:
            from ._inspection import observe

            return observe(self.namespaces().values(), title=self.title)
        host_ifaces = [InterfaceView(b.name, "bridge", tuple(map(str, b.addresses))) for b in self._bridges]
        host_ifaces += [InterfaceView(e.host_ifname, "veth", (), master=e.bridge) for e in self._endpoints]
        ends = [(end, addrs) for lk in self._links for end, addrs in ((lk.a, lk.a_addresses), (lk.b, lk.b_addresses))]
        host_ifaces += [InterfaceView(i, "veth", tuple(map(str, a))) for (n, i), a in ends if n == HOST]
        spaces = [NamespaceView(HOST, tuple(host_ifaces), is_host=True)]
        for name in self._namespaces:
            eps = [e for e in self._endpoints if e.namespace == name]
            ifaces = (InterfaceView("lo"),
                      *(InterfaceView(e.ifname, "veth", tuple(map(str, e.addresses))) for e in eps),
                      *(InterfaceView(i, "veth", tuple(map(str, a))) for (n, i), a in ends if n == name))
            routes = tuple(f"default via {e.gateway}" for e in eps if e.gateway)
            spaces.append(NamespaceView(name, ifaces, routes))
        veths = tuple(VethLink((HOST, e.host_ifname), (e.namespace, e.ifname)) for e in self._endpoints) + \
            tuple(VethLink(lk.a, lk.b) for lk in self._links)
        ports = tuple(PortView(p.spec, f"{e.namespace} {p.container_ip}:{p.container_port}")
                      for e in self._endpoints for p in e.publish)
        return TopologyView(self.title + " (planned)", tuple(spaces), veths, ports)

    def _repr_html_(self) -> str:
        return self.view().to_html()

    def diagram(self) -> Any:
        """The topology as a graphviz diagram (see :meth:`TopologyView.diagram`)."""
        return self.view().diagram()

    def __repr__(self) -> str:
        state = "built" if self._made is not None else "planned"
        links = f", {len(self._links)} links" if self._links else ""
        return (f"Topology({self.title!r}, {len(self._namespaces)} namespaces, {len(self._bridges)} bridges, "
                f"{len(self._endpoints)} endpoints{links}, {state})")


def _impair(ns: Namespace, im: _Impairment) -> _Qdisc:
    """Install one impairment's root qdisc (journaled: deleted on rollback)."""
    index = ns.link(im.end[1]).index
    sock = ns.rtnl()
    kind, options = im.qdisc()
    with intent(f"delete root qdisc of {im.end[1]} in {ns.label}", lambda: sock.delete_qdisc(index, obj=im.end[1])):
        sock.add_qdisc(index, kind, options=options, obj=im.end[1])
    return _Qdisc(ns, index, im.end[1])


def _dnat_command(port: Any) -> str:
    """The nft element netns_kit's firewall adds for a published port (spelled by nftables_render)."""
    return "\n".join(render.port_text(port))


def _attach_commands(b: _Bridge) -> list[str]:
    """What attaching a bridge to netns_kit's firewall adds (elements of its fixed table, sysctls)."""
    cmds = ["nft -f - <<< \"$(netns_kit's fixed table inet netns_kit)\"  # first use only"]
    cmds += render.element_text(render.network_elements(
        b.name, [a.network for a in b.addresses], internal=False, icc=b.icc, masquerade=b.masquerade))
    if any(a.version == 4 for a in b.addresses):
        cmds += [f"sysctl -w net.ipv4.conf.{b.name}.route_localnet=1", "sysctl -w net.ipv4.ip_forward=1"]
    if any(a.version == 6 for a in b.addresses):
        cmds.append("sysctl -w net.ipv6.conf.all.forwarding=1")
    return cmds
