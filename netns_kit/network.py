"""User-defined bridge networks (Docker's ``docker network create``) and their endpoints.

A :class:`Network` is a bridge in the host namespace with a subnet (IPv4, optionally IPv6), a
gateway address on the bridge, an address allocator (:mod:`netns_kit.ipam`) and a firewall
policy (:class:`~netns_kit.firewall.NetworkPolicy`: isolation from other networks, ``internal``,
``icc``, ``masquerade``) installed by the host's :class:`~netns_kit.firewall.Firewall`.

:meth:`Network.connect` attaches any existing :class:`~netns_kit.Namespace` at any time: a veth
pair whose namespace end is born inside it as ``eth0`` (``eth1``, … for further networks), an
address from IPAM (or a fixed one), the gateway as default route (unless ``internal``), and
optionally published ports. It returns a :class:`Connection`; :meth:`Connection.disconnect`
undoes it.

Name resolution: for every named namespace attached to a network, netns_kit writes
``/etc/netns/NAME/hosts`` (the iproute2 convention: ``ip netns exec NAME`` and
:meth:`Namespace.run`/:meth:`Namespace.popen` bind it over ``/etc/hosts`` for the command they
start). It lists the namespace's own names and, on networks with ``resolve_names`` (every
user-defined network; not the default ``bridge`` network, as in Docker), the names of the other
endpoints. The file is rewritten in place when endpoints come and go, so long-running processes
see the change. A file netns_kit did not write is left alone.

Everything a create/connect does is undone in reverse by remove/disconnect, and recorded in
the active :class:`~netns_kit.Transaction`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _sys, batch
from . import state as _state
from .errors import (
    AlreadyExistsError,
    NotFoundError,
    OwnershipError,
    StateError,
    ValidationError,
    attach_rollback_failures,
)
from .ipam import DEFAULT_POOLS, AddressAllocator, AddressPool, ExhaustedError, SubnetPlan, pick_subnet
from .journal import EphemeralScope, atomic_step, record
from .links import Bridge, VethPair
from .model import IPAddr, IPInterface, IPNet, Route, parse_mac, validate_ifname, validate_mtu
from .namespace import Namespace

if TYPE_CHECKING:
    from .firewall import Firewall, NetworkPolicy
    from .nat import PublishedPort

__all__ = ["Connection", "Network", "NetworkConfig"]

log = logging.getLogger("netns_kit")

ETC_NETNS_DIR = _sys.ETC_NETNS_DIR
HOSTS_RUN_DIR = _sys.HOSTS_RUN_DIR  # the shared hosts file of each network with name resolution
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RESERVED_NETWORK_NAMES = frozenset({"bridge", "host", "none", "default"})
DEFAULT_NETWORK_NAME = "bridge"
DEFAULT_BRIDGE = "nk0"

Identity = tuple[int, int]


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


def _firewall(host: Namespace) -> Firewall:
    from .firewall import Firewall

    return Firewall.for_namespace(host)


def parse_ports(specs: Iterable[str], *, container_ip: str, bridge: str,
                bridge_port: str | None = None) -> tuple[PublishedPort, ...]:
    """Docker ``-p`` specs as :class:`~netns_kit.nat.PublishedPort` objects (ValidationError if bad)."""
    from .nat import PublishedPort

    if isinstance(specs, str):
        raise ValidationError("publish must be a list of port specs, not one str", obj=specs)
    out = []
    for spec in specs:
        if not isinstance(spec, str):
            raise ValidationError(f"port spec must be a str like '8080:80', got {type(spec).__name__}",
                                  obj=repr(spec))
        out.append(PublishedPort.parse(spec, container_ip=container_ip, bridge=bridge, bridge_port=bridge_port))
    return tuple(out)


# -- per-host registry -------------------------------------------------------------------------------


class _HostState:
    """What netns_kit built in one host namespace: networks by name, endpoints by name."""

    def __init__(self, host: Namespace) -> None:
        self.host = host
        self.lock = threading.RLock()
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, object] = {}  # name -> modes.Endpoint
        self.default_network: Network | None = None
        self.default_users = 0

        self.by_ns: dict[Identity, list[Connection]] = {}  # every live connection, by namespace

    def connections_of(self, ident: Identity) -> list[Connection]:
        return list(self.by_ns.get(ident, ()))

    def add_connection(self, conn: Connection) -> None:
        self.by_ns.setdefault(conn._identity, []).append(conn)

    def drop_connection(self, conn: Connection) -> None:
        conns = self.by_ns.get(conn._identity)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.by_ns[conn._identity]

    @property
    def empty(self) -> bool:
        return not self.networks and not self.endpoints and self.default_network is None


_hosts: dict[Identity, _HostState] = {}
_hosts_lock = threading.Lock()


def host_state(host: Namespace) -> _HostState:
    with _hosts_lock:
        st = _hosts.get(host.identity)
        if st is None:
            st = _hosts[host.identity] = _HostState(host)
        return st


def peek_host_state(host: Namespace) -> _HostState | None:
    """The registry of ``host`` if netns_kit has anything there (never creates one)."""
    with _hosts_lock:
        return _hosts.get(host.identity)


def current_host() -> Namespace:
    """The calling thread's namespace, as the host of new networks and endpoints.

    While netns_kit has objects in it, every new object shares one :class:`Namespace` for it
    (``Namespace.current()`` holds a descriptor: one per object would exhaust the fd limit at
    a thousand endpoints).
    """
    ident = _sys.stat_identity(_sys.current_netns_path())
    with _hosts_lock:
        st = _hosts.get(ident)
        if st is not None:
            return st.host
    return Namespace.current()


def forget_host_if_empty(host: Namespace) -> None:
    with _hosts_lock:
        ident = host.identity
        st = _hosts.get(ident)
        if st is not None and st.empty:
            del _hosts[ident]


# -- hosts files -------------------------------------------------------------------------------------

_owned_hosts_files: set[str] = set()
_owned_dirs: set[str] = set()
_files_lock = threading.Lock()


def _hosts_path(ns_name: str) -> str:
    return os.path.join(ETC_NETNS_DIR, ns_name, "hosts")


_LOCALHOST = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]


def _entries(conn: Connection, comment: str) -> list[str]:
    if not conn.names:
        return []
    out = [f"{conn.address.ip}\t{' '.join(conn.names)}\t# {comment}"]
    if conn.address6 is not None:
        out.append(f"{conn.address6.ip}\t{' '.join(conn.names)}\t# {comment}")
    return out


def _render_network_hosts(net: Network) -> str:
    lines = [f"{_sys.HOSTS_HEADER}network {net.name}: every endpoint on it", *_LOCALHOST]
    for conn in net._connections:
        lines += _entries(conn, net.name)
    return "\n".join(lines) + "\n"


def _render_hosts(ns_name: str, conns: list[Connection]) -> str:
    """The union for a namespace on several networks (or on one without name resolution)."""
    lines = [f"{_sys.HOSTS_HEADER}namespace {ns_name}; rewritten when its networks change",
             *_LOCALHOST]
    seen: set[str] = set()
    for conn in conns:
        for line in _entries(conn, f"self on {conn.network.name}"):
            if line.split("\t#")[0] not in seen:
                seen.add(line.split("\t#")[0])
                lines.append(line)
    for conn in conns:
        if not conn.network.config.resolve_names:
            continue
        for peer in conn.network._connections:
            if peer._identity == conn._identity:
                continue
            for line in _entries(peer, peer.network.name):
                if line.split("\t#")[0] not in seen:
                    seen.add(line.split("\t#")[0])
                    lines.append(line)
    return "\n".join(lines) + "\n"


def refresh_hosts(st: _HostState, net: Network, changed: Identity) -> None:
    """Bring the hosts files up to date after namespace ``changed`` joined or left ``net``.

    A network with name resolution keeps one shared file listing all its endpoints (rewritten in
    place: one write per change). A namespace on exactly that one network has a symlink to it as
    its /etc/netns/NAME/hosts; a namespace on several networks gets a file of its own, the union,
    re-rendered when any of its networks changes. So a change costs O(endpoints of the network),
    not O(endpoints squared).
    """
    if net.config.resolve_names and not net._removing:
        net._write_shared_hosts()
        for conn in net._connections:
            if conn._identity != changed and len(st.by_ns.get(conn._identity, ())) > 1:
                _write_ns_hosts(conn.namespace, st.connections_of(conn._identity))
    conns = st.connections_of(changed)
    if conns:
        _write_ns_hosts(conns[0].namespace, conns)


def _write_ns_hosts(ns: Namespace, conns: list[Connection]) -> None:
    if ns.name is None:
        return
    ns_name = ns.name
    path = _hosts_path(ns_name)
    directory = os.path.dirname(path)
    shared = conns[0].network._shared_hosts_path if len(conns) == 1 else None
    with _files_lock:
        if path not in _owned_hosts_files:
            if os.path.lexists(path):
                log.warning("%s exists and was not written by netns_kit: left alone (no name resolution "
                            "for namespace %s)", path, ns_name)
                return
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o755)
                _owned_dirs.add(directory)
            _owned_hosts_files.add(path)
        if shared is not None:
            if os.path.islink(path) and os.readlink(path) == shared:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.symlink(shared, path)
            return
        if os.path.islink(path):
            os.unlink(path)
        # in place, not replace: a bind mount made by `ip netns exec` keeps seeing the same inode
        with open(path, "w", encoding="utf-8") as f:
            f.write(_render_hosts(ns_name, conns))


def drop_hosts_file(ns_name: str) -> None:
    """Delete the hosts file netns_kit wrote for ``ns_name`` (and its directory, if netns_kit made it)."""
    path = _hosts_path(ns_name)
    directory = os.path.dirname(path)
    with _files_lock:
        if path not in _owned_hosts_files:
            return
        _owned_hosts_files.discard(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if directory in _owned_dirs:
            _owned_dirs.discard(directory)
            with contextlib.suppress(OSError):  # someone else put files there: leave it
                os.rmdir(directory)


# -- Network -------------------------------------------------------------------------------------------


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
        if name in RESERVED_NETWORK_NAMES and not _default:
            raise ValidationError(f"network name {name!r} is reserved for the predefined networks "
                                  f"({', '.join(sorted(RESERVED_NETWORK_NAMES))})", obj=name)
        self.config = NetworkConfig(
            name=name, bridge=bridge, subnet=subnet, gateway=gateway, ip_range=ip_range, subnet6=subnet6,
            gateway6=gateway6, ip_range6=ip_range6, mtu=mtu, internal=internal, icc=icc,
            masquerade=masquerade, resolve_names=resolve_names, pools=tuple(pools))
        self.host = host if host is not None else current_host()
        self._alloc: AddressAllocator | None = None
        self._alloc6: AddressAllocator | None = None
        self._bridge: Bridge | None = None
        self._connections: list[Connection] = []
        self._shared_hosts_path: str | None = None
        self._removing = False  # remove() is disconnecting everything: no shared-file rewrites
        self._created = False
        self._removed = False
        self._attached_fw = False
        self._owned = True  # False for Network.open() until adopt()
        self._state_path: str | None = None  # the shared state file (config and IPAM), once created

    # -- read-only views ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def bridge(self) -> str:
        """The bridge interface's name in the host namespace."""
        return self.config.bridge_name

    @property
    def internal(self) -> bool:
        return self.config.internal

    @property
    def created(self) -> bool:
        return self._created and not self._removed

    def _check_live(self, step: str) -> None:
        if not self.created:
            raise StateError(f"network {self.name!r} is not created (or was removed)", obj=self.name,
                             namespace=self.host.label, step=step)

    @property
    def subnet(self) -> IPNet:
        """The IPv4 subnet (chosen at :meth:`create` when none was given)."""
        if self._alloc is None:
            if self.config.plan is not None:
                return self.config.plan.network
            raise StateError(f"network {self.name!r} has no subnet until it is created", obj=self.name)
        return self._alloc.subnet

    @property
    def gateway(self) -> IPAddr:
        if self._alloc is None:
            if self.config.plan is not None:
                return self.config.plan.gateway_ip
            raise StateError(f"network {self.name!r} has no gateway until it is created", obj=self.name)
        return self._alloc.gateway

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
        for att in self._connections:
            for n in att.names:
                out.setdefault(n, []).extend(att.ips)
        return out

    def resolve(self, name: str) -> IPAddr:
        """The IPv4 address of endpoint ``name`` on this network (LookupError if none)."""
        for att in self._connections:
            if name in att.names:
                return att.address.ip
        from .errors import NotFoundError

        raise NotFoundError(f"no endpoint named {name!r} on network {self.name!r}", obj=name)

    def policy(self) -> NetworkPolicy:
        """The :class:`~netns_kit.firewall.NetworkPolicy` this network installs."""
        from .firewall import NetworkPolicy

        subnets: list[IPNet] = [self.subnet]
        if self.subnet6 is not None:
            subnets.append(self.subnet6)
        return NetworkPolicy(bridge=self.bridge, subnets=tuple(subnets), internal=self.config.internal,
                             icc=self.config.icc, masquerade=self.config.masquerade and not self.config.internal)

    def describe(self) -> str:
        """A few lines for humans: subnet, gateway, bridge, options and endpoints."""
        state = "created" if self.created else "not created"
        opts = [f"internal={self.config.internal}", f"icc={self.config.icc}",
                f"masquerade={self.config.masquerade and not self.config.internal}"]
        try:
            sub = f"{self.subnet} gw {self.gateway}"
        except StateError:
            sub = "subnet chosen at create()"
        if self.subnet6 is not None:
            sub += f", {self.subnet6} gw {self.gateway6}"
        lines = [f"network {self.name} ({state}): bridge {self.bridge}, {sub}, {', '.join(opts)}"]
        for att in self._connections:
            lines.append(f"  {att}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Network({self.name!r}, bridge={self.bridge!r})"

    def _repr_html_(self) -> str:
        """Jupyter's view: settings and one row per endpoint (see :func:`netns_kit.views.network_html`)."""
        from .views import network_html

        return network_html(self)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _in_use_networks(self, st: _HostState) -> list[IPNet]:
        used: list[IPNet] = [a.interface.network for a in self.host.addresses()
                             if not a.interface.network.is_loopback]
        used += [r.dst for r in self.host.routes() if not r.is_default and not r.dst.is_loopback
                 and not r.dst.is_link_local]
        for net in st.networks.values():
            if net is not self and net._alloc is not None:
                used.append(net._alloc.subnet)
                if net._alloc6 is not None:
                    used.append(net._alloc6.subnet)
        return used

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
                if self.name in st.networks:
                    raise AlreadyExistsError(f"a network named {self.name!r} already exists", obj=self.name,
                                             namespace=host.label, step="create network")
                if host.has_link(self.bridge):
                    raise AlreadyExistsError(f"interface {self.bridge!r} already exists", obj=self.name,
                                             namespace=host.label, step="create network")
                path = _state.network_file(host.identity, self.name)
                if _live_state(host, _state.read_json(path)) is not None:
                    raise AlreadyExistsError(f"a network named {self.name!r} already exists (made by another "
                                             "process; Network.open() it)", obj=self.name, namespace=host.label,
                                             step="create network")
                plan = self.config.plan
                if plan is None:
                    plan = SubnetPlan(pick_subnet(self._in_use_networks(st), pools=self.config.pools))
                for other in st.networks.values():
                    for mine in (plan, self.config.plan6):
                        if mine is None:
                            continue
                        for theirs in (other._alloc, other._alloc6):
                            if theirs is not None and theirs.subnet.version == mine.version and \
                                    mine.network.overlaps(theirs.subnet):
                                raise AlreadyExistsError(
                                    f"subnet {mine.network} overlaps {theirs.subnet} of network {other.name!r}",
                                    obj=self.name, namespace=host.label, step="create network")
                alloc = AddressAllocator(plan)
                alloc6 = AddressAllocator(self.config.plan6) if self.config.plan6 is not None else None
                addrs: list[IPInterface] = [plan.gateway_interface()]
                if self.config.plan6 is not None:
                    addrs.append(self.config.plan6.gateway_interface())
                self._alloc, self._alloc6 = alloc, alloc6
                try:
                    with atomic_step():
                        self._bridge = Bridge(self.bridge, namespace=host, addresses=addrs, mtu=self.config.mtu)
                        self._bridge.create()
                        _firewall(host).attach_network(self.policy())
                        self._attached_fw = True
                        _state.write_json(path, self._state_record(plan))
                        self._state_path = path
                except BaseException:
                    self._state_path = None
                    self._alloc = self._alloc6 = None
                    self._bridge = None
                    self._attached_fw = False
                    raise
                self._created, self._removed = True, False
                st.networks[self.name] = self
        except BaseException:
            forget_host_if_empty(host)
            raise
        record(f"remove network {self.name} in {host.label}", lambda: self.remove(force=True))
        return self

    def remove(self, *, force: bool = False) -> None:
        """Disconnect every endpoint (only with ``force``; else StateError if any remain), remove the
        firewall policy and the bridge (all the veths and the bridge in one kernel request, see
        :func:`~netns_kit.removal_batch`). Idempotent; keeps going past failures and raises the
        first with the others attached.
        """
        if not self._created or self._removed:
            return
        if not self._owned:
            raise OwnershipError(f"network {self.name!r} was opened, not created, by this process; adopt() it "
                                 "first (or close() to disconnect what this process connected)", obj=self.name,
                                 namespace=self.host.label, step="remove network")
        st = host_state(self.host)
        with st.lock:
            if self._connections and not force:
                names = ", ".join(str(a) for a in self._connections)
                raise StateError(f"network {self.name!r} still has endpoints ({names}); disconnect them or "
                                 "remove(force=True)", obj=self.name, namespace=self.host.label,
                                 step="remove network")
            if not force:
                others = self._foreign_addresses()
                if others:
                    raise StateError(f"network {self.name!r} still has endpoints connected by other processes "
                                     f"({', '.join(others[:5])}{', …' if len(others) > 5 else ''}); "
                                     "remove(force=True) removes it anyway", obj=self.name,
                                     namespace=self.host.label, step="remove network")
            failures: list[BaseException] = []
            self._removing = True
            with batch.collecting() as pending:  # every veth and the bridge in one kernel request
                for att in reversed(list(self._connections)):
                    try:
                        att.disconnect()
                    except Exception as exc:
                        failures.append(exc)
                if self._attached_fw:
                    try:
                        _firewall(self.host).detach_network(self.bridge)
                        self._attached_fw = False
                    except Exception as exc:
                        failures.append(exc)
                if self._bridge is not None:
                    try:
                        self._bridge.remove()
                    except Exception as exc:
                        failures.append(exc)
            failures += pending.flush()
            self._removed = True
            self._removing = False
            self._drop_shared_hosts()
            if self._state_path is not None:
                with _state.host_lock(self.host.identity):
                    _state.delete_json(self._state_path)
                self._state_path = None
            if st.networks.get(self.name) is self:
                del st.networks[self.name]
        forget_host_if_empty(self.host)
        if failures:
            first = failures[0]
            attach_rollback_failures(first, failures[1:])
            raise first

    # -- sharing between processes ----------------------------------------------------------------------

    @classmethod
    def open(cls, name: str, *, host: Namespace | None = None) -> Network:
        """The network ``name`` that a netns_kit process (this one or another) created in ``host``
        (default: the calling thread's namespace).

        Its settings and address plan come from the network's state file
        (``/run/netns-kit/networks/<host>/<name>.json``, written by :meth:`create`). The object is
        not the network's owner: :meth:`connect`/:meth:`disconnect` work (addresses are allocated
        through the shared file under the host lock, so processes never hand out one address
        twice), but :meth:`remove` raises OwnershipError until :meth:`adopt`; its ``with`` block
        disconnects what it connected (:meth:`close`). Within one process, the network object that
        created (or adopted) it is returned. NotFoundError if there is no such network.
        """
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
        net._alloc = AddressAllocator(net.config.plan)
        net._alloc6 = AddressAllocator(net.config.plan6) if net.config.plan6 is not None else None
        net._bridge = Bridge.open(net.bridge, namespace=host)
        net._state_path = path
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
            _firewall(self.host).adopt_network(self.policy())
            self._attached_fw = True
            self._owned = True
            st.networks[self.name] = self
        return self

    def close(self) -> None:
        """Disconnect every endpoint this object connected; the network itself stays."""
        failures: list[BaseException] = []
        for att in reversed(list(self._connections)):
            try:
                att.disconnect()
            except Exception as exc:
                failures.append(exc)
        if failures:
            attach_rollback_failures(failures[0], failures[1:])
            raise failures[0]

    def _state_record(self, plan: SubnetPlan) -> dict[str, object]:
        """What another process needs to :meth:`open` the network (and the shared IPAM state)."""
        c = self.config
        p6 = c.plan6
        assert self._bridge is not None
        ipam: dict[str, object] = {}
        for key, a in (("4", self._alloc), ("6", self._alloc6)):
            if a is not None:
                ipam[key] = {"taken": {}, "cursor": a.cursor}
        return {
            "name": self.name, "bridge": self.bridge, "bridge_index": self._bridge.index,
            "owner": _state.owner_id(), "subnet": str(plan.network), "gateway": str(plan.gateway_ip),
            "ip_range": str(plan.range), "subnet6": str(p6.network) if p6 is not None else None,
            "gateway6": str(p6.gateway_ip) if p6 is not None else None,
            "ip_range6": str(p6.range) if p6 is not None else None, "mtu": c.mtu, "internal": c.internal,
            "icc": c.icc, "masquerade": c.masquerade, "resolve_names": c.resolve_names, "ipam": ipam,
        }

    @contextlib.contextmanager
    def _shared_ipam(self, *, write: bool = True, link: str | None = None) -> Iterator[None]:
        """Run the body with the allocators loaded from the network's state file, under the host
        lock (across processes and threads), and write what they hold back (``write``).

        ``link``: the host-side interface of the addresses this body allocates, written next to
        them (``links``), so that the address of a process that died can be reclaimed once that
        interface is gone (see :meth:`_reclaim_dead`)."""
        path = self._state_path
        if path is None:
            yield
            return
        with _state.host_lock(self.host.identity):
            data = _state.read_json(path)
            if data is None:
                if self._removed:  # our own remove() deleted it: nothing is shared any more
                    yield
                    return
                raise StateError(f"network {self.name!r} was removed (its state file {path} is gone)",
                                 obj=self.name, namespace=self.host.label, step="allocate address")
            ipam = data.setdefault("ipam", {})
            pairs = [(k, a) for k, a in (("4", self._alloc), ("6", self._alloc6)) if a is not None]
            for key, a in pairs:
                entry = ipam.get(key) or {}
                a.load(entry.get("taken", {}), entry.get("cursor"))
            yield
            if write:
                me = _state.owner_id()
                for key, a in pairs:
                    entry = ipam.get(key) or {}
                    old, old_links = entry.get("taken", {}), entry.get("links", {})
                    taken = {str(ip): old.get(str(ip), me) for ip in sorted(a.in_use)}
                    links = {ip: old_links[ip] if ip in old else link for ip in taken
                             if (old_links.get(ip) if ip in old else link) is not None}
                    ipam[key] = {"taken": taken, "links": links, "cursor": a.cursor}
                _state.write_json(path, data)

    def _reclaim_dead(self) -> bool:
        """Give back the addresses of netns_kit processes that died, once their host-side
        interface is gone (``recover()`` removed it, or its namespace went); True if any.

        An address whose owner is dead but whose interface is still on the host (an endpoint the
        owner kept on purpose) stays taken. Addresses recorded without their interface (by a
        netns_kit version that did not write ``links``) are never reclaimed.
        """
        if self._state_path is None:
            return False
        reclaimed = False
        alive: dict[str, bool] = {}
        with _state.host_lock(self.host.identity):
            data = _state.read_json(self._state_path)
            if data is None:
                return False
            for entry in (data.get("ipam") or {}).values():
                taken, links = entry.get("taken") or {}, entry.get("links") or {}
                for ip, owner in list(taken.items()):
                    if owner == _state.owner_id() or ip not in links:
                        continue
                    if owner not in alive:
                        alive[owner] = _state.owner_alive(owner)
                    if alive[owner] or self.host.has_link(links[ip]):
                        continue
                    log.info("network %s: address %s of dead process %s is free again", self.name, ip, owner)
                    del taken[ip]
                    del links[ip]
                    reclaimed = True
            if reclaimed:
                _state.write_json(self._state_path, data)
        return reclaimed

    def _foreign_addresses(self) -> list[str]:
        """Addresses of the network's shared IPAM state that are not this object's endpoints'."""
        if self._state_path is None:
            return []
        mine = {str(ip) for c in self._connections for ip in c.ips}
        with _state.host_lock(self.host.identity):
            data = _state.read_json(self._state_path) or {}
        out = []
        for entry in (data.get("ipam") or {}).values():
            for ip, owner in (entry.get("taken") or {}).items():
                if ip not in mine:
                    out.append(f"{ip} of process {owner}")
        return out

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

    def _write_shared_hosts(self) -> None:
        """(Re)write the network's shared hosts file in place (see :func:`refresh_hosts`)."""
        if self._shared_hosts_path is None:
            os.makedirs(HOSTS_RUN_DIR, mode=0o755, exist_ok=True)
            suffix = "" if self._owned else f"-{_state.owner_id()}"  # an opened network: this process's endpoints
            self._shared_hosts_path = os.path.join(HOSTS_RUN_DIR, f"{self.host.identity[1]}-{self.name}{suffix}")
        with open(self._shared_hosts_path, "w", encoding="utf-8") as f:
            f.write(_render_network_hosts(self))

    def _drop_shared_hosts(self) -> None:
        if self._shared_hosts_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._shared_hosts_path)
            self._shared_hosts_path = None
            with contextlib.suppress(OSError):  # only if no other network's file is there
                os.rmdir(HOSTS_RUN_DIR)

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
        publish: Sequence[str] = (),
        default_route: bool | None = None,
    ) -> Connection:
        """Attach ``namespace`` to this network (``docker network connect``).

        Kernel: a veth pair (host end ``vnk…`` on the bridge, the other end born in ``namespace``
        as ``ifname``, default the first free ``ethN``), the address (``ip`` or the next free one;
        ``ip6`` too on a dual-stack network), a default route via the gateway when the namespace
        has none yet and the network is not internal (``default_route`` forces it either way),
        and ``publish`` (Docker ``-p`` specs) as DNAT rules. ``name`` (default: the namespace's
        name) and ``aliases`` are what other endpoints resolve. Everything is checked before the
        first change. Undo: :meth:`Connection.disconnect`.
        """
        step = "connect"
        self._check_live(step)
        alloc = self._alloc
        assert alloc is not None
        host = self.host
        if not isinstance(namespace, Namespace):
            raise ValidationError(f"expected a Namespace, got {type(namespace).__name__}", obj=repr(namespace))
        if namespace.same_as(host):
            raise ValidationError("the host namespace itself cannot be an endpoint of its own network "
                                  "(use host mode to share it)", obj=self.name, namespace=host.label, step=step)
        if name is None:
            name = namespace.name
        names: list[str] = []
        if name is not None:
            names.append(validate_name(name, what="endpoint name"))
        if isinstance(aliases, str):
            raise ValidationError("aliases must be a list of names, not one str", obj=aliases)
        names += [validate_name(a, what="alias") for a in aliases if a not in names]
        if ifname is not None:
            validate_ifname(ifname, what="interface name")
        if mac is not None:
            mac = parse_mac(mac)
        if ip6 is not None and self._alloc6 is None:
            raise ValidationError(f"network {self.name!r} has no IPv6 subnet; ip6 {ip6} cannot be used",
                                  obj=self.name, step=step)
        if publish and self.config.internal:
            raise ValidationError(f"network {self.name!r} is internal: ports cannot be published from it",
                                  obj=self.name, step=step)
        # validate the port specs now (placeholder address), bind them to the real one later
        parse_ports(publish, container_ip="192.0.2.2", bridge=self.bridge)
        st = host_state(host)
        with st.lock:
            self._prune()

            def check() -> None:
                if any(a._identity == ident for a in self._connections):
                    raise AlreadyExistsError(f"namespace {namespace.label!r} is already connected to "
                                             f"{self.name!r}", obj=self.name, namespace=namespace.label, step=step)
                for other in self._connections:
                    taken = set(other.names) & set(names)
                    if taken:
                        raise AlreadyExistsError(f"name {sorted(taken)[0]!r} is already used on network "
                                                 f"{self.name!r} (by {other.namespace.label})", obj=self.name,
                                                 step=step)
                for a, want in ((alloc, ip), (self._alloc6, ip6)):
                    if a is None:
                        continue
                    if want is not None:
                        a.check(want)
                    elif a.available <= 0:
                        raise ExhaustedError(f"no free address left in {a.plan.range} (subnet {a.subnet})",
                                             obj=self.name, step=step)

            ident = namespace.identity
            try:
                with self._shared_ipam(write=False):
                    check()
            except (AlreadyExistsError, ExhaustedError):
                # a namespace removed by other means than its Namespace object, or a process that
                # died, may hold what we need
                pruned = self._prune(thorough=True)
                if not self._reclaim_dead() and not pruned:
                    raise
                with self._shared_ipam(write=False):
                    check()
            if ifname is None:
                ifname = self._next_ifname(namespace)
            elif namespace.has_link(ifname):
                raise AlreadyExistsError(f"interface {ifname!r} already exists", obj=ifname,
                                         namespace=namespace.label, step=step)
            # -- apply --------------------------------------------------------------------------------
            host_ifname = Connection.new_host_ifname()
            with self._shared_ipam(link=host_ifname):
                addr = alloc.allocate(ip)
                try:
                    addr6 = self._alloc6.allocate(ip6) if self._alloc6 is not None else None
                except BaseException:
                    alloc.release(addr)
                    raise
            att = Connection(self, namespace, ifname=ifname, names=tuple(names), address=alloc.interface(addr),
                             address6=self._alloc6.interface(addr6) if self._alloc6 is not None and
                             addr6 is not None else None, host_ifname=host_ifname)
            try:
                with atomic_step():
                    att._apply(host, mac=mac, publish=publish, default_route=default_route)
            except BaseException:
                with self._shared_ipam():
                    alloc.release(addr)
                    if addr6 is not None and self._alloc6 is not None:
                        self._alloc6.release(addr6)
                raise
            self._connections.append(att)
            st.add_connection(att)
            try:
                refresh_hosts(st, self, att._identity)
            except OSError as exc:
                log.warning("could not write hosts files for network %s: %s", self.name, exc)
        record(f"disconnect {namespace.label} from network {self.name}", att.disconnect)
        return att

    def disconnect(self, namespace: Namespace) -> None:
        """Detach ``namespace`` (``docker network disconnect``); nothing happens if it is not attached."""
        ident = namespace.identity
        for att in list(self._connections):
            if att._identity == ident:
                att.disconnect()

    def _prune(self, *, thorough: bool = False) -> bool:
        """Disconnect endpoints whose namespace was removed behind the network's back (their
        addresses come back, their names leave the hosts files); True if there were any.

        Each connect notices namespaces removed through their :class:`Namespace` object (free);
        ``thorough`` (when a connect would fail for want of an address or a name) also checks
        every namespace file (one stat each), catching e.g. ``ip netns del``.
        """
        pruned = False
        for att in list(self._connections):
            ns = att.namespace
            gone = not ns.exists if thorough else bool(getattr(ns, "_removed", False))
            if gone:
                pruned = True
                try:
                    att.disconnect()
                except Exception as exc:  # the veth went with the namespace: nothing to undo
                    log.debug("pruning %s: %s", att, exc)
        return pruned


class Connection:
    """One namespace connected to one network: its interface, addresses, names and published ports.

    Made by :meth:`Network.connect`; :meth:`disconnect` deletes the veth pair (by the index
    recorded at creation), withdraws the published ports, gives the addresses back to IPAM,
    updates the hosts files, and moves the default route to another network of the namespace if
    this one carried it. Idempotent.
    """

    def __init__(self, network: Network, namespace: Namespace, *, ifname: str, names: tuple[str, ...],
                 address: IPInterface, address6: IPInterface | None, host_ifname: str | None = None) -> None:
        self.network = network
        self.namespace = namespace
        self.ifname = ifname
        self.names = names
        self.address = address
        self.address6 = address6
        self.host_ifname = host_ifname or self.new_host_ifname()
        self.published: tuple[PublishedPort, ...] = ()
        self.has_default_route = False
        self.has_default_route6 = False
        self._identity = namespace.identity
        self._veth: VethPair | None = None
        self._gone = False

    @property
    def ip(self) -> IPAddr:
        """The IPv4 address (no prefix)."""
        return self.address.ip

    @property
    def ips(self) -> list[IPAddr]:
        return [self.address.ip] + ([self.address6.ip] if self.address6 is not None else [])

    @property
    def connected(self) -> bool:
        return not self._gone

    @staticmethod
    def new_host_ifname() -> str:
        """A fresh name for the host end of a connection's veth pair (``vnk`` + 8 hex digits)."""
        return "vnk" + secrets.token_hex(4)

    def __repr__(self) -> str:
        six = f" {self.address6}" if self.address6 is not None else ""
        name = self.names[0] if self.names else self.namespace.label
        ports = f" publish {','.join(p.spec for p in self.published)}" if self.published else ""
        return f"{name}: {self.ifname} {self.address}{six} (host end {self.host_ifname}){ports}"

    def _apply(self, host: Namespace, *, mac: str | None, publish: Sequence[str],
               default_route: bool | None) -> None:
        net = self.network
        ns = self.namespace
        assert net._bridge is not None
        # IPv4-only network: no IPv6 link-local on either end (as Docker does since 26.0.1 for
        # --ipv6=false networks), so the endpoint sends nothing the bridge floods to every port.
        pair = VethPair(self.host_ifname, self.ifname, namespace=host, peer_namespace=ns, master=net._bridge,
                        mtu=net.config.mtu, peer_mac=mac, ipv6_link_local=net.config.subnet6 is not None)
        pair.create()
        self._veth = pair
        sock = ns.rtnl()
        peer = pair.peer_index
        # addresses and routes on the peer go away with it: the veth's undo covers them
        sock.add_address(peer, self.address, obj=f"{self.address} on {self.ifname}")
        if self.address6 is not None:
            sock.add_address(peer, self.address6, obj=f"{self.address6} on {self.ifname}")
        if not net.config.internal or default_route:
            if default_route or (default_route is None and not _has_default(ns, 4)):
                sock.add_route(Route("default", gateway=str(net.gateway)), peer)
                self.has_default_route = True
            if net.gateway6 is not None and (default_route or (default_route is None and not _has_default(ns, 6))):
                sock.add_route(Route("default6", gateway=str(net.gateway6)), peer)
                self.has_default_route6 = True
        if publish:
            # with the bridge port, so the firewall can turn hairpin on (the endpoint reaching itself)
            ports = parse_ports(publish, container_ip=str(self.address.ip), bridge=net.bridge,
                                bridge_port=self.host_ifname)
            fw = _firewall(host)
            if not net._owned:  # the owner's policy is in the shared table: use it, never add or remove it
                fw.join_network(net.policy())
            for port in ports:
                fw.publish(port)
                self.published += (port,)

    def disconnect(self) -> None:
        """Undo :meth:`Network.connect` (see the class docstring). Idempotent."""
        if self._gone:
            return
        net = self.network
        st = host_state(net.host)
        failures: list[BaseException] = []
        with st.lock:
            self._gone = True
            if self.published:
                try:
                    _firewall(net.host).unpublish(*reversed(self.published))  # one nft batch
                except Exception as exc:
                    failures.append(exc)
            if self._veth is not None:
                try:
                    self._veth.remove()
                except Exception as exc:
                    failures.append(exc)

            def give_back() -> None:
                with st.lock, net._shared_ipam():
                    if net._alloc is not None:
                        net._alloc.release(self.address.ip)
                    if net._alloc6 is not None and self.address6 is not None:
                        net._alloc6.release(self.address6.ip)

            pending = batch.current()
            if pending is not None:  # only once the veth is really gone: never one address twice
                pending.after(f"giving {self.address.ip} back to network {net.name}", give_back)
            else:
                try:
                    give_back()
                except Exception as exc:
                    failures.append(exc)
            if self in net._connections:
                net._connections.remove(self)
            st.drop_connection(self)
            try:
                self._move_default_route(st)
            except Exception as exc:
                failures.append(exc)
            try:
                refresh_hosts(st, net, self._identity)
                if not st.connections_of(self._identity) and self.namespace.name is not None:
                    drop_hosts_file(self.namespace.name)
                if not net._owned and not net._connections:
                    net._drop_shared_hosts()
            except OSError as exc:
                failures.append(exc)
        if failures:
            attach_rollback_failures(failures[0], failures[1:])
            raise failures[0]

    def _move_default_route(self, st: _HostState) -> None:
        """If this attachment carried the namespace's default route, hand it to another network."""
        if not (self.has_default_route or self.has_default_route6) or not self.namespace.exists:
            return
        for other in st.connections_of(self._identity):
            if other._gone or other.network.config.internal or other._veth is None:
                continue
            sock = self.namespace.rtnl()
            if self.has_default_route and not other.has_default_route and not _has_default(self.namespace, 4):
                sock.add_route(Route("default", gateway=str(other.network.gateway)), other._veth.peer_index)
                other.has_default_route = True
            gw6 = other.network.gateway6
            if self.has_default_route6 and gw6 is not None and not _has_default(self.namespace, 6):
                sock.add_route(Route("default6", gateway=str(gw6)), other._veth.peer_index)
                other.has_default_route6 = True
            return


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


def _has_default(ns: Namespace, family: int) -> bool:
    return any(r.is_default for r in ns.routes(family))

