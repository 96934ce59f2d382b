"""User-defined bridge networks (Docker's ``docker network create``) and their connections.

A :class:`Network` is a bridge in the host namespace with a subnet (IPv4, optionally IPv6), a
gateway address on the bridge, addresses handed out from the subnet (:mod:`netns_kit.ipam`,
shared with other processes through lease files) and a firewall policy
(:class:`~netns_kit.firewall.NetworkPolicy`: isolation from other networks, ``internal``,
``icc``, ``masquerade``) installed by the host's :class:`~netns_kit.firewall.Firewall`.

:meth:`Network.connect` attaches any existing :class:`~netns_kit.Namespace` at any time: a veth
pair whose namespace end is born inside it as ``eth0`` (``eth1``, … for further networks), an
address from IPAM (or a fixed one), the gateway as default route (unless ``internal``), and
optionally published ports. It returns a :class:`Connection`; :meth:`Connection.disconnect`
undoes it. Every step of a connect costs the same however many endpoints the network has.

Name resolution: for every named namespace attached to a network, netns_kit writes
``/etc/netns/NAME/hosts`` (see :mod:`netns_kit._hostsfile`). It lists the namespace's own names
and, on networks with ``resolve_names`` (every user-defined network; not the default ``bridge``
network, as in Docker), the names of the other endpoints. A file netns_kit did not write is left
alone. Networks with ``resolve_names`` also have a DNS service on their gateway (one resolver
process per host, :mod:`netns_kit._dns`), which answers for every endpoint of every process, and
their named endpoints get an ``/etc/netns/NAME/resolv.conf`` pointing at it.

Everything a create/connect does is undone in reverse by remove/disconnect, and recorded in
the active :class:`~netns_kit.Transaction`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import _batch, _dns, _hostsfile, _progress, _state, _wiring
from ._journal import EphemeralScope, atomic_step, record
from ._leases import LeaseBook, NetworkAddresses
from ._netconfig import (
    RESERVED_NETWORK_NAMES,
    NetworkConfig,
    RemovalReport,
    parse_ports,
    validate_name,
)
from ._progress import ProgressArg
from ._registry import HostRegistry, current_host, forget_host_if_empty, host_state, peek_host_state
from .connection import Connection, ConnectRequest, NetworkSide
from .errors import (
    AlreadyExistsError,
    Failures,
    NotFoundError,
    OwnershipError,
    StateError,
    ValidationError,
)
from .firewall import Firewall, NetworkPolicy
from .ipam import DEFAULT_POOLS, AddressAllocator, AddressPool, ExhaustedError, SubnetPlan, pick_subnet
from .links import Bridge
from .model import (
    ADDR_TYPES,
    IPAddr,
    IPInterface,
    IPNet,
    Route,
    check_args,
    overlap,
    parse_ip,
    parse_mac,
    validate_ifname,
)
from .namespace import Namespace
from .ports import PortBinding, PortSpec

# NetworkConfig, RemovalReport live in _netconfig; Connection in connection.py (importable from here too)
__all__ = ["Network", "NetworkConfig", "RemovalReport"]

log = logging.getLogger("netns_kit")

BRIDGE_LINK_LOCAL6 = "fe80::1/64"  # the bridge's IPv6 link-local address on dual-stack networks (Docker's)


# -- Network -------------------------------------------------------------------------------------------


class Network(EphemeralScope):
    """A user-defined bridge network in the host namespace (``docker network create``).

    ``Network("app", subnet="10.20.0.0/24")`` (every option: :class:`NetworkConfig`).
    :meth:`create` makes the bridge (gateway address(es) on it, MTU, up) and installs the
    network's firewall policy; :meth:`remove` disconnects every endpoint and undoes both. As a
    context manager it is created on enter and removed (endpoints included) on exit. Created
    inside a :class:`~netns_kit.Transaction`, a rollback removes it.
    """

    def __init__(
        self,
        name: str,
        *,
        subnet: IPNet | str | None = None,
        gateway: IPAddr | str | None = None,
        ip_range: IPNet | str | None = None,
        subnet6: IPNet | str | None = None,
        gateway6: IPAddr | str | None = None,
        ip_range6: IPNet | str | None = None,
        bridge: str | None = None,
        mtu: int | None = None,
        internal: bool = False,
        icc: bool = True,
        masquerade: bool = True,
        resolve_names: bool = True,
        pools: Sequence[AddressPool] = DEFAULT_POOLS,
        host: Namespace | None = None,
        _default: bool = False,
    ) -> None:
        check_args("Network", name=(name, str), pools=(pools, [AddressPool]), host=(host, Namespace, None))
        if name in RESERVED_NETWORK_NAMES and not _default:
            raise ValidationError(f"network name {name!r} is reserved for the predefined networks "
                                  f"({', '.join(sorted(RESERVED_NETWORK_NAMES))})", obj=name)
        self.config = NetworkConfig(
            name=name, bridge=bridge, subnet=subnet, gateway=gateway, ip_range=ip_range, subnet6=subnet6,
            gateway6=gateway6, ip_range6=ip_range6, mtu=mtu, internal=internal, icc=icc,
            masquerade=masquerade, resolve_names=resolve_names, pools=tuple(pools))
        if host is not None and not isinstance(host, Namespace):
            raise ValidationError(f"host must be a Namespace, got {type(host).__name__}", obj=name)
        self.host = host if host is not None else current_host()
        self._addresses: NetworkAddresses | None = None
        self._bridge: Bridge | None = None
        self._side: NetworkSide | None = None  # what its connections are handed (see _connect_locked)
        self._connections: dict[Connection, None] = {}  # insertion-ordered: oldest first
        self._names: dict[str, Connection] = {}  # every name and alias on the network
        self.hosts_file: _hostsfile.SharedHostsFile | None = None
        self._removing = False  # remove() is disconnecting everything: no shared-file rewrites
        self._created = False
        self._removed = False
        self._attached_fw = False
        self._owned = True  # False for Network.open() until adopt()
        self._state_path: str | None = None  # the shared state file (settings), once created
        self._dns_port: int | None = None  # the name service's port its gateway's port 53 goes to

    # -- read-only views ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def bridge(self) -> str:
        """The bridge interface's name in the host namespace."""
        return self.config.bridge_name

    @property
    def dns_port(self) -> int | None:
        """The host port the name service listens on for this network (its gateway's port 53 is
        redirected there), or None when the network has no name service."""
        return self._dns_port

    @property
    def internal(self) -> bool:
        return self.config.internal

    @property
    def created(self) -> bool:
        return self._created and not self._removed

    def _check_live(self, step: str) -> NetworkAddresses:
        if not self.created or self._addresses is None:
            raise StateError(f"network {self.name!r} is not created (or was removed)", obj=self.name,
                             namespace=self.host.label, step=step)
        return self._addresses

    @property
    def subnet(self) -> IPNet:
        """The IPv4 subnet (chosen at :meth:`create` when none was given)."""
        if self._addresses is None:
            if self.config.plan is not None:
                return self.config.plan.network
            raise StateError(f"network {self.name!r} has no subnet until it is created", obj=self.name)
        return self._addresses.alloc.subnet

    @property
    def gateway(self) -> IPAddr:
        if self._addresses is None:
            if self.config.plan is not None:
                return self.config.plan.gateway_ip
            raise StateError(f"network {self.name!r} has no gateway until it is created", obj=self.name)
        return self._addresses.alloc.gateway

    @property
    def subnet6(self) -> IPNet | None:
        return self.config.plan6.network if self.config.plan6 is not None else None

    @property
    def gateway6(self) -> IPAddr | None:
        return self.config.plan6.gateway_ip if self.config.plan6 is not None else None

    @property
    def connections(self) -> list[Connection]:
        """The endpoints connected now, oldest first."""
        return list(self._connections)

    def endpoints(self) -> dict[str, list[IPAddr]]:
        """Name → addresses of every named endpoint on the network (what its hosts files say)."""
        out: dict[str, list[IPAddr]] = {}
        for conn in self._connections:
            for n in conn.names:
                out.setdefault(n, []).extend(conn.ips)
        return out

    def resolve(self, name: str) -> IPAddr:
        """The IPv4 address of endpoint ``name`` on this network (LookupError if none)."""
        check_args("Network.resolve", name=(name, str))
        conn = self._names.get(name)
        if conn is None:
            raise NotFoundError(f"no endpoint named {name!r} on network {self.name!r}", obj=name)
        return conn.address.ip

    def ports(self, address: IPAddr | str | None = None) -> list[PortBinding]:
        """The published ports of the network's endpoints (``docker port``), of every process: read
        from the kernel's dnat maps (shared state), so a process that opened the network
        (:meth:`open`) sees the host ports another one published or had picked. ``address``: only those leading
        to that endpoint address. Changes nothing."""
        self._check_live("list ports")
        want = parse_ip(address, what="endpoint address") if address is not None else None
        subnets = [self.subnet] + ([self.subnet6] if self.subnet6 is not None else [])
        out = []
        for b in Firewall.for_namespace(self.host).bindings():
            ip = ipaddress.ip_address(b.container_ip)
            if (want is None and any(ip in n for n in subnets)) or ip == want:
                out.append(b)
        return out

    def policy(self) -> NetworkPolicy:
        """The :class:`~netns_kit.firewall.NetworkPolicy` this network installs."""
        subnets: list[IPNet] = [self.subnet]
        if self.subnet6 is not None:
            subnets.append(self.subnet6)
        return NetworkPolicy(bridge=self.bridge, subnets=tuple(subnets), internal=self.config.internal,
                             icc=self.config.icc, masquerade=self.config.masquerades,
                             dns=(str(self.gateway), self._dns_port) if self._dns_port is not None else None)

    def dns_flags(self) -> list[str]:
        """Options for a container engine whose container joins an endpoint's namespace (``podman run
        --network ns:/run/netns/NAME``): ``--dns GATEWAY --dns-option ndots:0`` and the host's search
        domains, so that its resolv.conf points at the network's name service. Changes nothing."""
        self._check_live("dns flags")
        return _dns.engine_flags(str(self.gateway))

    def inspect(self) -> dict[str, Any]:
        """``docker network inspect NAME``'s document (its one element) for this network, read from
        the kernel and the network's state (fields: docs/modes.md). Changes nothing."""
        from ._dockerjson import network_inspect

        return network_inspect(self)

    def describe(self) -> str:
        """A few lines for humans: subnet, gateway, bridge, options and endpoints."""
        state = "created" if self.created else "not created"
        opts = [f"internal={self.config.internal}", f"icc={self.config.icc}",
                f"masquerade={self.config.masquerades}"]
        try:
            sub = f"{self.subnet} gw {self.gateway}"
        except StateError:
            sub = "subnet chosen at create()"
        if self.subnet6 is not None:
            sub += f", {self.subnet6} gw {self.gateway6}"
        lines = [f"network {self.name} ({state}): bridge {self.bridge}, {sub}, {', '.join(opts)}"]
        lines += [f"  {conn}" for conn in self._connections]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Network({self.name!r}, bridge={self.bridge!r})"

    def _repr_html_(self) -> str:
        """Jupyter's view: settings and one row per endpoint (see :func:`netns_kit.views.network_html`)."""
        from .views import network_html

        return network_html(self)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _in_use_networks(self, st: HostRegistry) -> list[IPNet]:
        used: list[IPNet] = [a.interface.network for a in self.host.addresses()
                             if not a.interface.network.is_loopback]
        used += [r.dst for r in self.host.routes() if not r.is_default and not r.dst.is_loopback
                 and not r.dst.is_link_local]
        for net in st.networks.values():
            if net is not self and net._addresses is not None:
                used += [a.subnet for a in net._addresses.allocators()]
        return used

    def _lease_book(self, state_path: str) -> LeaseBook:
        return LeaseBook(state_path[: -len(".json")] + ".leases")

    def create(self) -> Network:
        """Create the bridge (gateway addresses, MTU, up) and install the firewall policy.

        Validated first (name and bridge free, subnet not overlapping another network of this
        host); a refused request changes nothing. Undo: :meth:`remove`.
        """
        if self.created:
            raise StateError(f"network {self.name!r} was already created", obj=self.name, step="create network")
        host = self.host
        st = host_state(host)
        try:
            # the host lock (across processes) makes "pick a free subnet" and "put the gateway on the
            # bridge" one step: two processes creating networks at once never pick the same subnet.
            # Always taken inside st.lock (the order every other path uses: st.lock, then the
            # firewall's host lock).
            with st.lock, _state.host_lock(host.identity):
                self._create_locked(st)
        except BaseException:
            forget_host_if_empty(host)
            raise
        if self._dns_port is not None:
            try:
                _dns.serve(self, self._dns_port)
            except BaseException:
                self.remove(force=True)
                raise
        record(f"remove network {self.name} in {host.label}", lambda: self.remove(force=True))
        return self

    def _create_locked(self, st: HostRegistry) -> None:
        host = self.host
        step = "create network"
        if self.name in st.networks:
            raise AlreadyExistsError(f"a network named {self.name!r} already exists", obj=self.name,
                                     namespace=host.label, step=step)
        if host.has_link(self.bridge):
            raise AlreadyExistsError(f"interface {self.bridge!r} already exists", obj=self.name,
                                     namespace=host.label, step=step)
        path = _state.network_file(host.identity, self.name)
        if _live_state(host, _state.read_json(path)) is not None:
            raise AlreadyExistsError(f"a network named {self.name!r} already exists (made by another "
                                     "process; Network.open() it)", obj=self.name, namespace=host.label, step=step)
        plan = self.config.plan
        if plan is None:
            plan = SubnetPlan(pick_subnet(self._in_use_networks(st), pools=self.config.pools))
        mine = [p.network for p in (plan, self.config.plan6) if p is not None]
        for other in st.networks.values():
            if other._addresses is None:
                continue
            clash = overlap(mine, [a.subnet for a in other._addresses.allocators()])
            if clash is not None:
                raise AlreadyExistsError(f"subnet {clash[0]} overlaps {clash[1]} of network {other.name!r}",
                                         obj=self.name, namespace=host.label, step=step)
        addrs: list[IPInterface] = [plan.gateway_interface()]
        if self.config.plan6 is not None:
            # the bridge's own link-local address is fixed (Docker's fe80::1) and added without DAD,
            # like the gateway: a kernel-made one stays tentative for ~2 s after the first port comes
            # up, and until then the host cannot resolve its endpoints (published IPv6 ports stall)
            addrs += [self.config.plan6.gateway_interface(), ipaddress.ip_interface(BRIDGE_LINK_LOCAL6)]
        book = self._lease_book(path)
        self._addresses = NetworkAddresses(
            AddressAllocator(plan), AddressAllocator(self.config.plan6) if self.config.plan6 is not None else None,
            book)
        if self.config.resolve_names:
            self._dns_port = _dns.reserve_port(host)
        try:
            with atomic_step():
                # a MAC of its own: a bridge without one takes its lowest port's, and changes it when
                # that port goes, leaving every endpoint's ARP entry for the gateway stale for seconds
                self._bridge = Bridge(self.bridge, namespace=host, addresses=addrs, mtu=self.config.mtu,
                                      ipv6_link_local=self.config.plan6 is None, mac=_bridge_mac())
                self._bridge.create()
                Firewall.for_namespace(host).attach_network(self.policy())
                self._attached_fw = True
                _state.write_json(path, self._state_record(plan))
                self._state_path = path
                book.remove_directory()  # leases of an earlier network of that name, whose owner died
                book.create_directory()
        except BaseException:
            if self._state_path is not None:
                _state.delete_json(self._state_path)
            self._state_path = None
            self._addresses = None
            self._bridge = None
            self._attached_fw = False
            self._dns_port = None
            raise
        self._created, self._removed = True, False
        st.networks[self.name] = self

    def remove(self, *, force: bool = False, progress: ProgressArg = None) -> RemovalReport:
        """Disconnect every endpoint (only with ``force``; else StateError if any remain), remove the
        firewall policy and the bridge (all the veths and the bridge in one kernel request, see
        :func:`~netns_kit.removal_batch`), the network's state file and address leases.

        Endpoints whose namespace was deleted behind netns_kit's back (``ip netns del``) do not
        count as remaining: they are disconnected (published ports, lease, host end, hosts files)
        either way. Returns a :class:`RemovalReport` saying what was disconnected, what was left
        in place and why (the endpoints' namespaces), and what was already gone; logged as a
        warning when something was left or missing. Idempotent (an empty report); keeps going
        past failures and raises the first with the others attached. ``progress``: a callable
        ``(done, total)`` called as endpoints are disconnected and once the kernel removed them,
        ``True`` for a progress bar (tqdm), or ``None`` (silent, the default).
        """
        check_args("Network.remove", force=(force, bool))
        _progress.check(progress, step="remove network")
        if not self._created or self._removed:
            return RemovalReport(self.name)
        if not self._owned:
            raise OwnershipError(f"network {self.name!r} was opened, not created, by this process; adopt() it "
                                 "first (or close() to disconnect what this process connected)", obj=self.name,
                                 namespace=self.host.label, step="remove network")
        st = host_state(self.host)
        failures = Failures()
        disconnected: list[str] = []
        left: list[str] = []
        gone: list[str] = []
        with st.lock:
            for conn in list(self._connections):  # namespaces deleted behind our back: not endpoints
                if not conn.namespace.exists:
                    with failures.step():
                        conn.disconnect()
                    gone += conn.already_gone
            outer = _batch.current()
            if outer is not None:
                # endpoints removed earlier in the caller's removal batch: their veths go now and their
                # addresses come back, so they are not mistaken for other processes' endpoints
                failures.extend(outer.flush())
            if self._connections and not force:
                names = ", ".join(str(c) for c in self._connections)
                raise StateError(f"network {self.name!r} still has endpoints ({names}); disconnect them or "
                                 "remove(force=True)", obj=self.name, namespace=self.host.label,
                                 step="remove network")
            others = self._foreign_addresses()
            if not force and others:
                raise StateError(f"network {self.name!r} still has endpoints connected by other processes "
                                 f"({', '.join(others[:5])}{', …' if len(others) > 5 else ''}); "
                                 "remove(force=True) removes it anyway", obj=self.name,
                                 namespace=self.host.label, step="remove network")
            self._removing = True
            left += [f"address {ip}: leased by another process's endpoint, whose veth stays until that process "
                     "disconnects it" for ip in others]
            bar = _progress.reporter(progress, len(self._connections) + 1, desc=f"removing {self.name}",
                                     unit="endpoint")
            with _batch.collecting() as pending:  # every veth and the bridge in one kernel request
                for conn in reversed(list(self._connections)):
                    disconnected.append(str(conn))
                    left += self._left_behind(st, conn)
                    with failures.step():
                        conn.disconnect()
                    gone += conn.already_gone
                    bar.advance()
                if self._attached_fw:
                    with failures.step():
                        Firewall.for_namespace(self.host).detach_network(self.bridge)
                        self._attached_fw = False
                if self._bridge is not None:
                    with failures.step():
                        self._bridge.remove()
            failures.extend(pending.flush())
            bar.finish()
            self._removed = True
            self._removing = False
            if self.hosts_file is not None:
                _dns.forget_network(self)
                self.hosts_file.drop()
            if self._state_path is not None:
                with _state.host_lock(self.host.identity):  # the leases, then the settings, then empty dirs
                    self._lease_book(self._state_path).remove_directory()
                    _state.delete_json(self._state_path)
                self._state_path = None
                if self._dns_port is not None:
                    with failures.step():
                        _dns.release(self.host)  # the last network with name resolution stops the service
            if st.networks.get(self.name) is self:
                del st.networks[self.name]
        forget_host_if_empty(self.host)
        report = RemovalReport(self.name, tuple(reversed(disconnected)), tuple(left), tuple(gone))
        if left or gone:
            log.warning("%s", report)
        failures.raise_first()
        return report

    def _left_behind(self, st: HostRegistry, conn: Connection) -> list[str]:
        """What forced removal leaves of ``conn``: its namespace (a network never owns it), and how to
        remove it."""
        ns = conn.namespace
        if not ns.exists:
            return []
        owner = next((ep for ep in st.endpoints.values() if ep.created and ep.namespace is ns), None)
        if owner is not None:
            return [f"namespace {ns.label}: endpoint {owner.name!r} is still created, now without this network "
                    f"(Endpoint.lookup({owner.name!r}).remove() removes it)"]
        how = "its Namespace object's remove()" if ns.owned else "whoever created it"
        return [f"namespace {ns.label}: connected with Network.connect, not made by the network (removed by {how})"]

    # -- sharing between processes ----------------------------------------------------------------------

    @classmethod
    def open(cls, name: str, *, host: Namespace | None = None) -> Network:
        """The network ``name`` that a netns_kit process (this one or another) created in ``host``
        (default: the calling thread's namespace).

        Its settings come from the network's state file (``/run/netns-kit/networks/<host>/<name>.json``,
        written by :meth:`create`). The object is not the network's owner: :meth:`connect`/
        :meth:`disconnect` work (addresses are taken as lease files that only one process can
        create, so processes never hand out one address twice), but :meth:`remove` raises
        OwnershipError until :meth:`adopt`; its ``with`` block disconnects what it connected
        (:meth:`close`). Within one process, the network object that created (or adopted) it is
        returned. NotFoundError if there is no such network.
        """
        check_args("Network.open", name=(name, str), host=(host, Namespace, None))
        validate_name(name, what="network name")
        host = host if host is not None else current_host()
        st = peek_host_state(host)
        if st is not None:
            with st.lock:
                mine = st.networks.get(name)
                if mine is not None and mine.created:
                    return mine
        path = _state.network_file(host.identity, name)
        with _state.host_lock(host.identity):
            data = _live_state(host, _state.read_json(path))
        if data is None:
            raise NotFoundError(f"no network named {name!r} (none was created by netns_kit in {host.label}, "
                                "or it was removed)", obj=name, namespace=host.label, step="open network")
        net = cls(name, subnet=data["subnet"], gateway=data["gateway"], ip_range=data["ip_range"],
                  subnet6=data.get("subnet6"), gateway6=data.get("gateway6"), ip_range6=data.get("ip_range6"),
                  bridge=data["bridge"], mtu=data.get("mtu"), internal=bool(data.get("internal")),
                  icc=bool(data.get("icc", True)), masquerade=bool(data.get("masquerade", True)),
                  resolve_names=bool(data.get("resolve_names", True)), host=host,
                  _default=name in RESERVED_NETWORK_NAMES)
        assert net.config.plan is not None
        net._addresses = NetworkAddresses(
            AddressAllocator(net.config.plan),
            AddressAllocator(net.config.plan6) if net.config.plan6 is not None else None, net._lease_book(path))
        net._bridge = Bridge.open(net.bridge, namespace=host)
        net._state_path = path
        net._dns_port = int(data["dns_port"]) if data.get("dns_port") else None
        net._owned = False
        net._created = True
        return net

    @property
    def owned(self) -> bool:
        """True if this object created (or adopted) the network: only then may it :meth:`remove` it."""
        return self._owned

    def adopt(self) -> Network:
        """Take ownership of an opened network (e.g. when its creator is gone): :meth:`remove` then
        removes its bridge, its firewall policy and its state file."""
        self._check_live("adopt network")
        if self._owned:
            return self
        st = host_state(self.host)
        with st.lock:
            other = st.networks.get(self.name)
            if other is not None and other is not self and other.created:
                raise AlreadyExistsError(f"this process already has a network named {self.name!r}",
                                         obj=self.name, namespace=self.host.label, step="adopt network")
            assert self._bridge is not None
            self._bridge.adopt()
            Firewall.for_namespace(self.host).adopt_network(self.policy())
            self._attached_fw = True
            self._owned = True
            st.networks[self.name] = self
        return self

    def close(self) -> None:
        """Disconnect every endpoint this object connected; the network itself stays."""
        failures = Failures()
        for conn in reversed(list(self._connections)):
            with failures.step():
                conn.disconnect()
        failures.raise_first()

    def _state_record(self, plan: SubnetPlan) -> dict[str, object]:
        """What another process needs to :meth:`open` the network."""
        c = self.config
        p6 = c.plan6
        assert self._bridge is not None
        return {
            "name": self.name, "bridge": self.bridge, "bridge_index": self._bridge.index,
            "owner": _state.owner_id(), "subnet": str(plan.network), "gateway": str(plan.gateway_ip),
            "ip_range": str(plan.range), "subnet6": str(p6.network) if p6 is not None else None,
            "gateway6": str(p6.gateway_ip) if p6 is not None else None,
            "ip_range6": str(p6.range) if p6 is not None else None, "mtu": c.mtu, "internal": c.internal,
            "icc": c.icc, "masquerade": c.masquerade, "resolve_names": c.resolve_names,
            "dns_port": self._dns_port,
        }

    def _reclaim_dead(self) -> bool:
        """Give back the addresses of netns_kit processes that died, once their host-side interface
        is gone; True if any (see :meth:`netns_kit._leases.NetworkAddresses.reclaim_dead`)."""
        if self._addresses is None:
            return False
        return self._addresses.reclaim_dead(self.host.has_link)

    def _foreign_addresses(self) -> list[str]:
        """Leased addresses of the network that are not this object's endpoints'."""
        if self._addresses is None:
            return []
        mine = {str(ip) for c in self._connections for ip in c.ips}
        return self._addresses.foreign(mine)

    def __enter__(self) -> Network:
        if not self.created:
            self._enter_ephemeral(self.create)  # ephemeral: recover() undoes it after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._owned:
            self.close()
            return
        self.remove(force=True)
        self._settle_ephemeral()

    # -- endpoints ------------------------------------------------------------------------------------

    def _shared_hosts(self) -> _hostsfile.SharedHostsFile | None:
        if not self.config.resolve_names:
            return None
        if self.hosts_file is None:
            # one writer per file (an opened network: this process's endpoints), named after it so
            # that recover() knows whose it is
            dev, ino = self.host.identity
            self.hosts_file = _hostsfile.SharedHostsFile(self, f"{dev}-{ino}-{self.name}@{_state.owner_id()}")
        return self.hosts_file

    def check_addresses(self, ip: IPAddr | None = None, ip6: IPAddr | None = None) -> None:
        """Refuse fixed addresses this network cannot give (outside the subnet: ValidationError;
        the gateway or taken: AlreadyExistsError). Changes nothing."""
        self._check_live("check address").check(ip, ip6, fixed_only=True)

    def _endpoint_mac(self, ip: IPAddr) -> str | None:
        """The MAC an endpoint with address ``ip`` gets when the caller names none (None: the
        kernel's random one; an overlay derives it from the address)."""
        return None

    def _check_fixed(self, want: IPAddr) -> None:
        """Refuse a fixed address this kind of network must not give (nothing here; an overlay
        refuses one from another host's share). Changes nothing."""

    def _next_ifname(self, ns: Namespace) -> str:
        names = {link.name for link in ns.links()}
        i = 0
        while f"eth{i}" in names:
            i += 1
        return f"eth{i}"

    def connect(
        self,
        namespace: Namespace,
        *,
        ip: IPAddr | str | None = None,
        ip6: IPAddr | str | None = None,
        ifname: str | None = None,
        name: str | None = None,
        aliases: Sequence[str] = (),
        mac: str | None = None,
        publish: Sequence[str | PortSpec] = (),
        default_route: bool | None = None,
    ) -> Connection:
        """Attach ``namespace`` to this network (``docker network connect``).

        Kernel: a veth pair (host end ``vnk…`` on the bridge, the other end born in ``namespace``
        as ``ifname``, default the first free ``ethN``), the address (``ip`` or the next free one;
        ``ip6`` too on a dual-stack network), a default route via the gateway when the namespace
        has none yet and the network is not internal (``default_route`` forces it either way),
        and ``publish`` (Docker ``-p`` specs or :class:`~netns_kit.ports.PortSpec`) as DNAT map
        elements: a spec without a host address is published for every family the endpoint has
        (IPv4 and, on a dual-stack network, IPv6), one without a host port (``"80"``,
        ``"127.0.0.1::80"``) on a free port of the host's ephemeral range (see
        :attr:`Connection.ports`). ``name`` (default: the namespace's
        name) and ``aliases`` are what other endpoints resolve. Everything is checked before the
        first change. Undo: :meth:`Connection.disconnect`.
        """
        return self._connect(self._request(namespace, ip=ip, ip6=ip6, ifname=ifname, name=name, aliases=aliases,
                                           mac=mac, publish=publish, default_route=default_route))

    def _connect(self, request: ConnectRequest) -> Connection:
        """:meth:`connect` of a checked request."""
        namespace = request.namespace
        st = host_state(self.host)
        with st.lock:
            for ident in st.take_removed():  # namespaces removed since: their connections go
                for conn in st.connections_of(ident):
                    try:
                        conn.disconnect()
                    except Exception as exc:  # the veth went with the namespace: nothing to undo
                        log.debug("pruning %s: %s", conn, exc)
            try:
                self._check_request(st, request)
            except (AlreadyExistsError, ExhaustedError):
                # a namespace removed by other means than its Namespace object, or a process that
                # died, may hold what we need
                pruned = self._prune()
                if not self._reclaim_dead() and not pruned:
                    raise
                self._check_request(st, request)
            conn = self._connect_locked(st, request)
        record(f"disconnect {namespace.label} from network {self.name}", conn.disconnect)
        return conn

    def _request(self, namespace: Namespace, *, ip: IPAddr | str | None, ip6: IPAddr | str | None,
                 ifname: str | None, name: str | None, aliases: Sequence[str], mac: str | None,
                 publish: Sequence[str | PortSpec], default_route: bool | None) -> ConnectRequest:
        """Every argument of :meth:`connect` checked and parsed once (no kernel access but identity)."""
        step = "connect"
        check_args("Network.connect", namespace=(namespace, Namespace), ip=(ip, str, *ADDR_TYPES, None),
                   ip6=(ip6, str, *ADDR_TYPES, None), ifname=(ifname, str, None), name=(name, str, None),
                   aliases=(aliases, [str]), mac=(mac, str, None), publish=(publish, [str, PortSpec]),
                   default_route=(default_route, bool, None))
        if namespace.same_as(self.host):
            raise ValidationError("the host namespace itself cannot be an endpoint of its own network "
                                  "(use host mode to share it)", obj=self.name, namespace=self.host.label, step=step)
        if name is None:
            name = namespace.name
        names: list[str] = []
        if name is not None:
            names.append(validate_name(name, what="endpoint name"))
        if not isinstance(aliases, tuple | list) and (isinstance(aliases, str)
                                                     or not isinstance(aliases, Sequence | set | frozenset)):
            raise ValidationError("aliases must be a list of names, not one str", obj=repr(aliases), step=step)
        names += [validate_name(a, what="alias") for a in aliases if a not in names]
        if ifname is not None:
            validate_ifname(ifname, what="interface name")
        if mac is not None:
            mac = parse_mac(mac)
        want = parse_ip(ip, what="fixed address") if ip is not None else None
        want6 = parse_ip(ip6, what="fixed IPv6 address") if ip6 is not None else None
        if default_route is not None and not isinstance(default_route, bool):
            raise ValidationError("default_route must be True, False or None", obj=repr(default_route), step=step)
        return self._checked_request(namespace, tuple(names), want, want6, ifname, mac, parse_ports(publish),
                                     default_route)

    def _checked_request(self, namespace: Namespace, names: tuple[str, ...], want: IPAddr | None,
                         want6: IPAddr | None, ifname: str | None, mac: str | None, ports: tuple[PortSpec, ...],
                         default_route: bool | None) -> ConnectRequest:
        """The network's own checks of parsed arguments (it is live, the addresses and ports fit it)."""
        step = "connect"
        self._check_live(step)
        if want is not None:
            self._check_fixed(want)
        if want6 is not None and self.config.plan6 is None:
            raise ValidationError(f"network {self.name!r} has no IPv6 subnet; ip6 {want6} cannot be used",
                                  obj=self.name, step=step)
        if ports and self.config.internal:
            raise ValidationError(f"network {self.name!r} is internal: ports cannot be published from it",
                                  obj=self.name, step=step)
        for spec in ports:
            if spec.family == 6 and self.config.plan6 is None:
                raise ValidationError(f"port spec {spec.text}: network {self.name!r} has no IPv6 subnet",
                                      obj=spec.text, namespace=self.host.label, step=step)
        return ConnectRequest(namespace, namespace.identity, names, want, want6, ifname, mac, ports, default_route)

    def _check_request(self, st: HostRegistry, req: ConnectRequest) -> None:
        step = "connect"
        addresses = self._check_live(step)
        if any(c.network is self for c in st.by_ns.get(req.identity, ())):
            raise AlreadyExistsError(f"namespace {req.namespace.label!r} is already connected to {self.name!r}",
                                     obj=self.name, namespace=req.namespace.label, step=step)
        for n in req.names:
            other = self._names.get(n)
            if other is not None:
                raise AlreadyExistsError(f"name {n!r} is already used on network {self.name!r} (by "
                                         f"{other.namespace.label})", obj=self.name, step=step)
        addresses.check(req.ip, req.ip6)

    def _connect_locked(self, st: HostRegistry, req: ConnectRequest) -> Connection:
        addresses = self._check_live("connect")
        ns = req.namespace
        ifname = req.ifname if req.ifname is not None else self._next_ifname(ns)
        host_ifname = _wiring.new_host_ifname()
        addr, addr6 = addresses.take(req.ip, req.ip6, host_ifname, req.names, req.identity)
        if req.mac is None and (mac := self._endpoint_mac(addr)) is not None:
            req = dataclasses.replace(req, mac=mac)
        try:
            alloc6 = addresses.alloc6
            assert self._bridge is not None
            side = self._side
            if side is None or side.bridge is not self._bridge:  # one per network (and bridge object)
                gw6 = self.gateway6
                side = self._side = NetworkSide(
                    self._bridge, lambda: self._addresses, self._forget, self._hosts_changed,
                    Route("default", gateway=str(self.gateway)),
                    Route("default6", gateway=str(gw6)) if gw6 is not None else None)
            conn = Connection(self, ns, ifname=ifname, names=req.names, side=side,
                              address=addresses.alloc.interface(addr),
                              address6=alloc6.interface(addr6) if alloc6 is not None and addr6 is not None else None,
                              host_ifname=host_ifname)
            with atomic_step():
                conn.apply(req)
        except BaseException:
            addresses.give_back(addr, addr6)
            raise
        self._connections[conn] = None
        for n in conn.names:
            self._names[n] = conn
        st.add_connection(conn)
        try:
            self._shared_hosts()
            _hostsfile.on_connect(st, conn)
            _dns.on_connect(st, conn)
        except OSError as exc:
            log.warning("could not write hosts files for network %s: %s", self.name, exc)
        return conn

    def disconnect(self, namespace: Namespace) -> None:
        """Detach ``namespace`` (``docker network disconnect``); nothing happens if it is not attached."""
        check_args("Network.disconnect", namespace=(namespace, Namespace))
        st = peek_host_state(self.host)
        if st is None:
            return
        for conn in st.connections_of(namespace.identity):
            if conn.network is self:
                conn.disconnect()

    def _prune(self) -> bool:
        """Disconnect endpoints whose namespace was removed behind the network's back (their
        addresses come back, their names leave the hosts files); True if there were any.

        Run when a connect would fail for want of an address or a name: one stat per endpoint,
        catching namespaces removed through their object or by other means (``ip netns del``).
        """
        pruned = False
        for conn in list(self._connections):
            if not conn.namespace.exists:
                pruned = True
                try:
                    conn.disconnect()
                except Exception as exc:  # the veth went with the namespace: nothing to undo
                    log.debug("pruning %s: %s", conn, exc)
        return pruned

    def _forget(self, st: HostRegistry, conn: Connection) -> None:
        """Take ``conn`` out of the network's and the host's books (its names are free again)."""
        self._connections.pop(conn, None)
        for n in conn.names:
            if self._names.get(n) is conn:
                del self._names[n]
        st.drop_connection(conn)

    def _hosts_changed(self, st: HostRegistry, conn: Connection) -> None:
        """The hosts files after ``conn`` left: in a removal batch the shared file is rewritten once
        at the end of the batch, however many endpoints left."""
        shared = self.hosts_file
        pending = _batch.current()
        defer = self._removing or pending is not None
        if pending is not None and shared is not None and shared.exists and not self._removing \
                and not shared.rewrite_pending:
            shared.rewrite_pending = True
            pending.after(f"rewriting the hosts file of network {self.name}",
                          lambda: shared.rewrite() if shared.exists and self.created else None)
        _dns.on_disconnect(st, conn)
        _hostsfile.on_disconnect(st, conn, defer=defer)
        if not self._owned and not self._connections and shared is not None:
            _dns.forget_network(self)
            shared.drop()


def connect_parsed(network: Network, namespace: Namespace, *, names: tuple[str, ...], ip: IPAddr | None,
                   ip6: IPAddr | None, ifname: str | None, mac: str | None, ports: tuple[PortSpec, ...],
                   default_route: bool | None) -> Connection:
    """:meth:`Network.connect` for arguments its caller checked and parsed already (names valid,
    addresses and MAC parsed, port specs parsed and free of clashes, ``namespace`` not the host):
    an :class:`~netns_kit.modes.Endpoint` joining its network. The network's own checks still run."""
    return network._connect(network._checked_request(namespace, names, ip, ip6, ifname, mac, ports, default_route))


def _live_state(host: Namespace, data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``data`` (a network's state file) if its bridge still exists in ``host`` (same name and index)."""
    if data is None:
        return None
    try:
        info = host.rtnl().get_link(index=int(str(data["bridge_index"])))
    except (KeyError, ValueError):
        return None
    if info is None or info.name != data.get("bridge") or info.kind != "bridge":
        return None
    return data


def _bridge_mac() -> str:
    """A random locally administered unicast MAC address (as Docker gives its bridges)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)
