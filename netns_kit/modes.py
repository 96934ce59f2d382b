"""Docker's five network modes, and :class:`Endpoint`: a container's network side.

``Endpoint("web", mode=...)`` is what ``docker run --network=MODE --name web`` sets up, without
the container: a network namespace (or the host's, or another endpoint's) wired as the mode
says. Run programs in it with :meth:`Endpoint.run` / :meth:`Endpoint.popen`.

========================  ===================================================================
mode                      what the endpoint gets
========================  ===================================================================
``BridgeMode()``          its own namespace on the default network ``bridge`` (bridge ``nk0``,
  (``"bridge"``,          the docker0 analogue): made on first use with a subnet from the
  the default)            address pools, removed when its last endpoint goes; an address from
                          IPAM, the gateway as default route, outbound masquerade, and the
                          ports in ``publish``.
``HostMode()``            no namespace of its own: it runs in the host's.
  (``"host"``)
``NoneMode()``            its own namespace with only ``lo``, up.
  (``"none"``)
``ContainerMode(other)``  the very namespace of endpoint ``other`` (same interfaces, addresses,
  (``"container:NAME"``)  localhost). The namespace lives while any of its users does.
``CustomMode(network)``   its own namespace on a user-defined :class:`~netns_kit.Network`, with
  (a network's name)      an automatic or fixed address (``ip=``, ``ip6=``), aliases, ports.
========================  ===================================================================

As in Docker, options that make no sense in a mode are refused before anything is made:
published ports in host, none and container mode, a fixed address outside custom mode, and
anything of its own (address, MAC, aliases, networks) in container mode.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

from . import _procs, _state, _sys
from ._hostsfile import drop_namespace_file
from ._journal import EphemeralScope, atomic_step, record
from ._netconfig import DEFAULT_BRIDGE, DEFAULT_NETWORK_NAME, parse_ports, validate_name
from ._registry import current_host, forget_host_if_empty, host_state, peek_host_state
from .connection import Connection
from .errors import AlreadyExistsError, Failures, NotFoundError, StateError, ValidationError
from .model import ADDR_TYPES, IPAddr, IPInterface, check_args, parse_ip, parse_mac, validate_netns_name
from .namespace import Namespace
from .network import Network, connect_parsed
from .ports import PROTOCOLS, PortBinding, PortSpec

log = logging.getLogger("netns_kit")

__all__ = [
    "BridgeMode",
    "ContainerMode",
    "CustomMode",
    "Endpoint",
    "EndpointInfo",
    "HostMode",
    "NetworkMode",
    "NoneMode",
    "default_network",
    "endpoints",
]


@dataclass(frozen=True)
class NetworkMode:
    """Base of the five modes. ``NetworkMode.parse("bridge" | "host" | "none" | "container:NAME" |
    NETWORK_NAME)`` reads Docker's ``--network`` syntax; names are looked up when the endpoint is
    created.
    """

    kind: ClassVar[str] = ""
    own_namespace: ClassVar[bool] = True

    @staticmethod
    def parse(value: NetworkMode | Network | str) -> NetworkMode:
        """A mode from Docker's ``--network`` string, a :class:`NetworkMode`, or a
        :class:`~netns_kit.Network` object (its :class:`CustomMode`)."""
        if isinstance(value, Network):
            return CustomMode(value)
        if isinstance(value, NetworkMode):
            if type(value) is NetworkMode:
                raise ValidationError("NetworkMode is abstract: use BridgeMode(), HostMode(), NoneMode(), "
                                      "ContainerMode(other) or CustomMode(network)", obj=repr(value))
            return value
        check_args("NetworkMode.parse", value=(value, str))
        if value in ("bridge", "default"):
            return BridgeMode()
        if value == "host":
            return HostMode()
        if value == "none":
            return NoneMode()
        if value.startswith("container:"):
            return ContainerMode(value.split(":", 1)[1])
        return CustomMode(value)

    def __str__(self) -> str:
        return self.kind


@dataclass(frozen=True)
class BridgeMode(NetworkMode):
    """The default: own namespace on the default ``bridge`` network (see the module docstring)."""

    kind: ClassVar[str] = "bridge"


@dataclass(frozen=True)
class HostMode(NetworkMode):
    """No namespace of its own: the endpoint's programs run in the host's namespace."""

    kind: ClassVar[str] = "host"
    own_namespace: ClassVar[bool] = False


@dataclass(frozen=True)
class NoneMode(NetworkMode):
    """Own namespace, nothing configured but ``lo``."""

    kind: ClassVar[str] = "none"


@dataclass(frozen=True)
class ContainerMode(NetworkMode):
    """The namespace of another endpoint (an :class:`Endpoint` or its name)."""

    target: Endpoint | str
    kind: ClassVar[str] = "container"
    own_namespace: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_args("ContainerMode", target=(self.target, Endpoint, str))
        if isinstance(self.target, str):
            validate_name(self.target, what="container mode target")

    @property
    def target_name(self) -> str:
        return self.target if isinstance(self.target, str) else self.target.name

    def __str__(self) -> str:
        return f"container:{self.target_name}"


@dataclass(frozen=True)
class CustomMode(NetworkMode):
    """Own namespace on a user-defined :class:`~netns_kit.Network` (or a network's name)."""

    network: Network | str
    kind: ClassVar[str] = "custom"

    def __post_init__(self) -> None:
        check_args("CustomMode", network=(self.network, Network, str))
        if isinstance(self.network, str):
            if self.network in ("host", "none", "bridge", "default"):
                raise ValidationError(f"{self.network!r} names a predefined mode, not a network",
                                      obj=self.network)
            validate_name(self.network, what="network name")

    @property
    def network_name(self) -> str:
        return self.network if isinstance(self.network, str) else self.network.name

    def __str__(self) -> str:
        return f"custom:{self.network_name}"


def _check_container_port(port: object, name: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValidationError(f"container port {port!r} must be an integer from 1 to 65535", obj=name)
    return port


def _exposed(value: object, name: str) -> tuple[int, str]:
    """An exposed port, ``80`` or ``"53/udp"``, as (port, protocol)."""
    if isinstance(value, str):
        text, _, proto = value.partition("/")
        proto = proto or "tcp"
        if not text.isdigit() or proto not in PROTOCOLS:
            raise ValidationError(f"exposed port {value!r} must look like 80 or '53/udp'", obj=name)
        return _check_container_port(int(text), name), proto
    return _check_container_port(value, name), "tcp"


# -- the default network ----------------------------------------------------------------------------


def default_network(host: Namespace | None = None) -> Network | None:
    """The default ``bridge`` network of ``host`` (default: the current namespace), if it exists now."""
    check_args("default_network", host=(host, Namespace, None))
    host = host if host is not None else current_host()
    st = peek_host_state(host)
    return st.default_network if st is not None else None


def _acquire_default(host: Namespace) -> Network:
    """Use the default network, creating it on first use. Undo: :func:`_release_default`."""
    st = host_state(host)
    with st.lock:
        net = st.default_network
        if net is None:
            net = Network(DEFAULT_NETWORK_NAME, bridge=DEFAULT_BRIDGE, resolve_names=False, host=host,
                          _default=True)
            with atomic_step():  # the network's own undo is taken over by _release_default
                net.create()
            st.default_network = net
        st.default_users += 1
    record(f"release default network in {host.label}", lambda: _release_default(host))
    return net


def _release_default(host: Namespace) -> None:
    st = host_state(host)
    with st.lock:
        if st.default_users <= 0:
            return
        st.default_users -= 1
        if st.default_users == 0 and st.default_network is not None:
            net, st.default_network = st.default_network, None
            net.remove(force=True)
    forget_host_if_empty(host)


# -- finding endpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointInfo:
    """One named namespace as the kernel and the state directory show it (``docker ps -a``).

    ``owner``: the netns_kit process that made it (``"<pid>.<start time>"``, from the mark on its
    ``lo``), None if netns_kit did not; ``owner_alive``: that process still runs; ``endpoint``: the
    :class:`Endpoint` object when this process made it; ``addresses``: what the kernel has on its
    interfaces (no loopback, no link-local); ``networks``: the netns_kit networks of the host
    whose subnets hold those addresses.

    An endpoint of this process is removed with ``info.endpoint.remove()``; a namespace whose owner
    is dead with :func:`netns_kit.recover` (if it was ephemeral) or
    ``Namespace.open(info.name).adopt().remove()``.
    """

    name: str
    path: str
    owner: str | None
    owner_alive: bool
    endpoint: Endpoint | None
    addresses: tuple[IPInterface, ...]
    networks: tuple[str, ...]


def endpoints(host: Namespace | None = None) -> list[EndpointInfo]:
    """Every named namespace in /run/netns with what it is attached to, sorted by name: this
    process's endpoints and the namespaces of other processes (and of no netns_kit process).
    Reads the kernel and the state directory; changes nothing."""
    check_args("endpoints", host=(host, Namespace, None))
    host = host if host is not None else current_host()
    st = peek_host_state(host)
    mine: dict[tuple[int, int], Endpoint] = {}
    if st is not None:
        for ep in list(st.endpoints.values()):
            if ep.created and ep.mode.own_namespace and ep.namespace.exists:
                mine[ep.namespace.identity] = ep
    subnets: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    directory = os.path.dirname(_state.network_file(host.identity, "x"))
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(directory)):
            data = _state.read_json(os.path.join(directory, entry)) if entry.endswith(".json") else None
            for key in ("subnet", "subnet6"):
                if data is not None and data.get(key):
                    subnets.append((str(data["name"]), ipaddress.ip_network(str(data[key]))))
    out: list[EndpointInfo] = []
    try:
        names = sorted(os.listdir(_sys.NETNS_RUN_DIR))
    except FileNotFoundError:
        names = []
    for name in names:
        try:
            ns = Namespace.open(name)
            links = ns.links()
            addrs = tuple(a.interface for a in ns.addresses()
                          if not a.interface.ip.is_loopback and not a.interface.ip.is_link_local)
        except (NotFoundError, ValidationError):
            continue  # gone meanwhile, or not a namespace
        lo = next((link for link in links if link.name == "lo"), None)
        alias = lo.alias if lo is not None else None
        owner = alias[len(_state.MARK_PREFIX):] if alias and alias.startswith(_state.MARK_PREFIX) else None
        nets = tuple(dict.fromkeys(n for n, net in subnets for a in addrs if a.ip in net))
        out.append(EndpointInfo(name, ns.path, owner, owner is not None and _state.owner_alive(owner),
                                mine.get(ns.identity), addrs, nets))
    return out


# -- the namespace an endpoint lives in --------------------------------------------------------------


class _Sandbox:
    """A namespace and its users: removed (with its attachments) when the last user leaves."""

    def __init__(self, namespace: Namespace, *, owned: bool, host: Namespace, uses_default: bool) -> None:
        self.namespace = namespace
        self.owned = owned
        self.host = host
        self.uses_default = uses_default
        self.users = 1

    def release(self) -> tuple[str, ...]:
        """One user fewer; the last one removes the namespace. Returns what had vanished already
        (a namespace deleted behind netns_kit's back, and what went with it)."""
        self.users -= 1
        if self.users > 0:
            return ()
        failures = Failures()
        gone: list[str] = []
        if self.owned:
            st = host_state(self.host)
            vanished = not self.namespace.exists
            # every network attachment of this namespace, also those made with Network.connect(ns);
            # by the identity recorded at creation, so also when the namespace was deleted behind our back
            for att in reversed(st.connections_of(self.namespace.identity)):
                with failures.step():
                    att.disconnect()
                gone += [g for g in att.already_gone if g not in gone]
            if vanished and not gone:
                gone.append(f"namespace {self.namespace.label} (deleted outside netns_kit)")
                log.warning("endpoint namespace %s was already gone (deleted outside netns_kit)",
                            self.namespace.label)
            with failures.step():
                self.namespace.remove()
            if self.namespace.name is not None:
                drop_namespace_file(self.namespace.name)
        if self.uses_default:
            with failures.step():
                _release_default(self.host)
        failures.raise_first()
        return tuple(gone)


class Endpoint(EphemeralScope):
    """The network side of a container: ``Endpoint("web", mode="bridge", publish=["8080:80"])``.

    - ``mode``: a :class:`NetworkMode`, Docker's ``--network`` string (default ``"bridge"``), or a
      :class:`~netns_kit.Network` (its custom mode).
    - ``publish``: Docker ``-p`` specs (``[host_ip:][host_port[-end]:]container_port[-end][/proto]``);
      bridge and custom mode only. Without a host address a port is published for every family
      the endpoint has (IPv4, and IPv6 on a dual-stack network); ``[::]:8080:80`` and
      ``[fd00::1]:8080:80`` publish for IPv6 only, ``0.0.0.0:8080:80`` for IPv4 only. Without a
      host port (``"80"``, ``"127.0.0.1::80"``) a free one of the host's ephemeral range is picked.
    - ``expose``: container ports (``80``, ``"53/udp"``), Docker's ``EXPOSE``; with
      ``publish_all=True`` (Docker's ``-P``) each exposed port not in ``publish`` is published on
      a picked host port. :meth:`port` says which.
    - ``ip``, ``ip6``: fixed addresses (custom mode only, as Docker's ``--ip``).
    - ``aliases``: extra names other endpoints of the network resolve (custom mode).
    - ``mac``: the MAC address of ``eth0`` (bridge and custom mode).
    - ``host``: the host namespace (default: the calling thread's at construction).

    :meth:`create` builds it (everything validated first), :meth:`remove` undoes it; as a context
    manager it is created on enter and removed on exit; inside a :class:`~netns_kit.Transaction`
    a rollback removes it. Its namespace is the named namespace ``name`` (``ip netns exec NAME``
    works) except in host mode (the host's) and container mode (the other endpoint's).
    """

    def __init__(
        self,
        name: str,
        mode: NetworkMode | Network | str = "bridge",
        *,
        publish: Sequence[str] = (),
        ip: IPAddr | str | None = None,
        ip6: IPAddr | str | None = None,
        aliases: Sequence[str] = (),
        mac: str | None = None,
        host: Namespace | None = None,
        expose: Sequence[int | str] = (),
        publish_all: bool = False,
    ) -> None:
        check_args("Endpoint", name=(name, str), mode=(mode, NetworkMode, Network, str), publish=(publish, [str]),
                   ip=(ip, str, *ADDR_TYPES, None), ip6=(ip6, str, *ADDR_TYPES, None), aliases=(aliases, [str]),
                   mac=(mac, str, None), host=(host, Namespace, None))
        self.name = validate_name(name, what="endpoint name")
        validate_netns_name(name)
        self.mode = NetworkMode.parse(mode)
        self.publish = tuple(publish)
        self.ip = parse_ip(ip, what="fixed address") if ip is not None else None
        self.ip6 = parse_ip(ip6, what="fixed IPv6 address") if ip6 is not None else None
        self.aliases = tuple(validate_name(a, what="alias") for a in aliases)
        self.mac = parse_mac(mac) if mac is not None else None
        kind = self.mode.kind
        conflicts = []
        if not isinstance(publish_all, bool):
            raise ValidationError("publish_all must be True or False", obj=name)
        if isinstance(expose, str | int):
            raise ValidationError("expose must be a list of ports, not one port", obj=name)
        self.expose = tuple(_exposed(p, name) for p in expose)
        self.publish_all = publish_all
        if (self.publish or publish_all) and kind in ("host", "none", "container"):
            conflicts.append("port publishing")
        if (self.ip is not None or self.ip6 is not None) and kind != "custom":
            conflicts.append("a fixed address (only on a user-defined network, as Docker's --ip)")
        if self.aliases and kind != "custom":
            conflicts.append("aliases (only on a user-defined network)")
        if self.mac is not None and kind in ("host", "none", "container"):
            conflicts.append("a MAC address")
        if conflicts:
            raise ValidationError(f"conflicting options: {' and '.join(conflicts)} cannot be used with the "
                                  f"{self.mode} network mode", obj=name, step="validate endpoint")
        # the port specs themselves (bound to the endpoint's addresses at create)
        specs = parse_ports(self.publish)
        if publish_all:  # Docker's -P: exposed ports without a -p of their own, on picked host ports
            given = {(s.container_port, s.proto) for s in specs}
            specs += tuple(PortSpec(container_port=p, proto=proto)  # type: ignore[arg-type]
                           for p, proto in dict.fromkeys(self.expose) if (p, proto) not in given)
        self._specs = specs
        if kind == "bridge" and any(s.family == 6 for s in specs):
            raise ValidationError("the default bridge network has no IPv6 subnet: an IPv6 host address "
                                  "cannot be published from it", obj=name, step="validate endpoint")
        if self.ip is not None and self.ip.version != 4:
            raise ValidationError(f"ip {self.ip} must be IPv4 (use ip6= for IPv6)", obj=name)
        if self.ip6 is not None and self.ip6.version != 6:
            raise ValidationError(f"ip6 {self.ip6} must be IPv6", obj=name)
        self.host = host if host is not None else current_host()
        self._sandbox: _Sandbox | None = None
        self._removed = False
        self._processes: list[subprocess.Popen[bytes]] = []
        self.already_gone: tuple[str, ...] = ()
        """After :meth:`remove`: what had vanished before it (its namespace deleted with ``ip netns del``)."""

    # -- finding endpoints -----------------------------------------------------------------------

    @classmethod
    def lookup(cls, name: str, *, host: Namespace | None = None, missing_ok: bool = False) -> Endpoint | None:
        """The created endpoint ``name`` of this process in ``host`` (default: the calling thread's
        namespace), as ``docker ps --filter name=`` finds a container. NotFoundError if there is none
        (None with ``missing_ok``); :func:`netns_kit.endpoints` also lists other processes' endpoints."""
        validate_name(name, what="endpoint name")
        st = peek_host_state(host if host is not None else current_host())
        found = st.endpoints.get(name) if st is not None else None
        if found is not None and found.created:
            return found
        if missing_ok:
            return None
        raise NotFoundError(f"no endpoint named {name!r} in this process (netns_kit.endpoints() lists those of "
                            "other processes too)", obj=name, step="look up endpoint")

    # -- state -----------------------------------------------------------------------------------

    @property
    def created(self) -> bool:
        return self._sandbox is not None and not self._removed

    def _live(self, step: str) -> _Sandbox:
        if self._sandbox is None or self._removed:
            raise StateError(f"endpoint {self.name!r} is not created (or was removed)", obj=self.name,
                             step=step)
        return self._sandbox

    @property
    def namespace(self) -> Namespace:
        """The namespace the endpoint's programs run in (the host's in host mode)."""
        return self._live("namespace").namespace

    @property
    def connections(self) -> list[Connection]:
        """The endpoint's network connections (those of the shared namespace in container mode)."""
        sb = self._live("connections")
        if not sb.namespace.exists or sb.namespace.same_as(self.host):
            return []
        st = peek_host_state(self.host)
        return st.connections_of(sb.namespace.identity) if st is not None else []

    @property
    def addresses(self) -> list[IPInterface]:
        """The addresses the kernel has in the endpoint's namespace, minus loopback and link-local."""
        out = []
        for a in self.namespace.addresses():
            ip = a.interface.ip
            if not ip.is_loopback and not ip.is_link_local:
                out.append(a.interface)
        return out

    @property
    def address(self) -> ipaddress.IPv4Address | None:
        """The IPv4 address on the first network (None in host and none mode)."""
        for att in self.connections:
            ip = att.address.ip
            assert isinstance(ip, ipaddress.IPv4Address)
            return ip
        return None

    @property
    def ports(self) -> list[PortBinding]:
        """Every published port of the endpoint, on all its networks, as the kernel has it."""
        return [b for c in self.connections for b in c.ports]

    def port(self, container_port: int, proto: str = "tcp") -> list[PortBinding]:
        """Where ``container_port`` is published on the host (``docker port web 80``): one
        :class:`~netns_kit.ports.PortBinding` per family and host address, picked ports included.
        Read from the kernel's dnat maps; empty if it is not published."""
        _check_container_port(container_port, self.name)
        return [b for b in self.ports if b.container_port == container_port and b.proto == proto]

    def inspect(self) -> dict[str, Any]:
        """``docker inspect``'s ``.NetworkSettings`` for this endpoint (Networks, Ports, SandboxKey,
        ...), read from the kernel (fields: docs/modes.md). StateError before create. Changes nothing."""
        from ._dockerjson import network_settings

        return network_settings(self)

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r}, mode={str(self.mode)!r})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the mode, then the namespace's interfaces, addresses and routes."""
        from .views import endpoint_html

        return endpoint_html(self)

    def describe(self) -> str:
        """One line per attachment: what the endpoint has."""
        head = f"endpoint {self.name} ({self.mode})"
        if not self.created:
            return head + ": not created"
        head += f": namespace {self.namespace.label}"
        return "\n".join([head] + [f"  {a}" for a in self.connections])

    # -- lifecycle ---------------------------------------------------------------------------------

    def _check_new(self) -> None:
        st = peek_host_state(self.host)
        if self.created:
            raise StateError(f"endpoint {self.name!r} was already created", obj=self.name, step="create endpoint")
        if st is not None and self.name in st.endpoints:
            raise AlreadyExistsError(f"an endpoint named {self.name!r} already exists", obj=self.name,
                                     namespace=self.host.label, step="create endpoint")
        if self.mode.own_namespace and os.path.lexists(f"{_sys.NETNS_RUN_DIR}/{self.name}"):
            raise AlreadyExistsError(f"namespace {self.name!r} already exists", obj=self.name,
                                     step="create endpoint")

    def _resolve_target(self) -> Endpoint:
        assert isinstance(self.mode, ContainerMode)
        target = self.mode.target
        if isinstance(target, str):
            st = peek_host_state(self.host)
            found = st.endpoints.get(target) if st is not None else None
            if not isinstance(found, Endpoint):
                raise NotFoundError(f"no endpoint named {target!r} to share a namespace with", obj=self.name,
                                    step="create endpoint")
            target = found
        if not target.created:
            raise StateError(f"endpoint {target.name!r} is not running: its namespace cannot be shared",
                             obj=self.name, step="create endpoint")
        if target is self:
            raise ValidationError("an endpoint cannot share its own namespace", obj=self.name)
        if not target.host.same_as(self.host):
            raise ValidationError(f"endpoint {target.name!r} belongs to another host namespace", obj=self.name)
        return target

    def _resolve_network(self) -> Network:
        assert isinstance(self.mode, CustomMode)
        net = self.mode.network
        if isinstance(net, str):
            st = peek_host_state(self.host)
            found = st.networks.get(net) if st is not None else None
            if found is None:
                raise NotFoundError(f"no network named {net!r}", obj=self.name, step="create endpoint")
            net = found
        if not net.created:
            raise StateError(f"network {net.name!r} is not created", obj=self.name, step="create endpoint")
        if not net.host.same_as(self.host):
            raise ValidationError(f"network {net.name!r} belongs to another host namespace", obj=self.name)
        if net.internal and self._specs:
            raise ValidationError(f"network {net.name!r} is internal: ports cannot be published",
                                  obj=self.name, step="create endpoint")
        if net.subnet6 is None and any(s.family == 6 for s in self._specs):
            raise ValidationError(f"network {net.name!r} has no IPv6 subnet: an IPv6 host address cannot be "
                                  "published from it", obj=self.name, step="create endpoint")
        if self.ip6 is not None and net.subnet6 is None:
            raise ValidationError(f"network {net.name!r} has no IPv6 subnet for ip6 {self.ip6}", obj=self.name)
        if self.ip is not None or self.ip6 is not None:
            net.check_addresses(self.ip, self.ip6)
        return net

    def create(self) -> Endpoint:
        """Build the endpoint as its mode says. Validated first; on failure nothing is left.

        Kernel, by mode: bridge and custom: a named namespace, a veth pair into the network's
        bridge, address, default route, published ports (bridge: the default network is made
        first if needed); none: a named namespace, ``lo`` up; host and container: nothing (the
        namespace is the host's or shared). Undo: :meth:`remove`.
        """
        self._check_new()
        mode = self.mode
        target = self._resolve_target() if isinstance(mode, ContainerMode) else None
        network = self._resolve_network() if isinstance(mode, CustomMode) else None
        st = host_state(self.host)
        with st.lock:
            st.endpoints[self.name] = self  # reserve the name; released on failure below
            try:
                with atomic_step():
                    self._sandbox = self._build(mode, target, network)
                    self._removed = False
            except BaseException:
                st.endpoints.pop(self.name, None)
                self._sandbox = None
                forget_host_if_empty(self.host)
                raise
        record(f"remove endpoint {self.name}", self.remove)
        return self

    def _build(self, mode: NetworkMode, target: Endpoint | None, network: Network | None) -> _Sandbox:
        host = self.host
        if isinstance(mode, HostMode):
            return _Sandbox(host, owned=False, host=host, uses_default=False)
        if isinstance(mode, ContainerMode):
            assert target is not None and target._sandbox is not None
            sb = target._sandbox
            sb.users += 1
            record(f"stop sharing {sb.namespace.label} with {self.name}", sb.release)
            return sb
        uses_default = isinstance(mode, BridgeMode)
        if uses_default:
            network = _acquire_default(host)
        ns = Namespace(self.name)
        ns.create()
        sb = _Sandbox(ns, owned=True, host=host, uses_default=uses_default)
        if network is not None:
            # the namespace was just made: its first interface is eth0 and it has no route yet
            # every argument was checked by the constructor: the network checks only its own part
            names = [self.name]
            names += [a for a in self.aliases if a not in names]
            connect_parsed(network, ns, names=tuple(names), ip=self.ip, ip6=self.ip6, ifname="eth0", mac=self.mac,
                           ports=self._specs, default_route=None if network.internal else True)
        return sb

    def remove(self) -> None:
        """Undo :meth:`create`. The namespace goes when its last user does (container mode shares it);
        in bridge mode the default network goes with its last endpoint. Idempotent.

        A namespace deleted behind netns_kit's back (``ip netns del``) is no obstacle: everything the
        endpoint owned outside it goes (published ports, host end of the veth, address lease, hosts
        files), and :attr:`already_gone` says what had vanished (also logged as a warning)."""
        if self._sandbox is None or self._removed:
            return
        self._removed = True
        for proc in self._processes:  # started through this endpoint: they go with it
            _procs.stop(proc)
        self._processes.clear()
        st = host_state(self.host)
        with st.lock:
            if st.endpoints.get(self.name) is self:
                del st.endpoints[self.name]
            try:
                self.already_gone = self._sandbox.release()
            finally:
                forget_host_if_empty(self.host)

    def __enter__(self) -> Endpoint:
        if not self.created:
            self._enter_ephemeral(self.create)  # ephemeral: recover() undoes it after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
        self._settle_ephemeral()

    # -- more networks ----------------------------------------------------------------------------------

    def _check_connectable(self, step: str) -> Namespace:
        sb = self._live(step)
        if isinstance(self.mode, HostMode | ContainerMode | NoneMode):
            raise ValidationError(
                f"an endpoint in {self.mode} mode cannot be connected to or disconnected from networks, as in "
                "Docker (Network.connect(endpoint.namespace) attaches a namespace by hand)", obj=self.name,
                step=step)
        return sb.namespace

    def connect(self, network: Network, *, ip: IPAddr | str | None = None, ip6: IPAddr | str | None = None,
                aliases: Sequence[str] = (), publish: Sequence[str | PortSpec] = ()) -> Connection:
        """Attach the endpoint to one more network (``docker network connect``): next ``ethN``."""
        check_args("Endpoint.connect", network=(network, Network))
        ns = self._check_connectable("connect")
        return network.connect(ns, ip=ip, ip6=ip6, name=self.name, aliases=aliases, publish=publish)

    def disconnect(self, network: Network) -> None:
        """Detach the endpoint from ``network`` (``docker network disconnect``)."""
        check_args("Endpoint.disconnect", network=(network, Network))
        ns = self._check_connectable("disconnect")
        network.disconnect(ns)

    # -- programs -----------------------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, check: bool = False, input: str | None = None,
            timeout: float | None = 30, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (no shell) in the endpoint's namespace (see :meth:`Namespace.run`)."""
        return self.namespace.run(argv, check=check, input=input, timeout=timeout, env=env, cwd=cwd)

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` (no shell) in the endpoint's namespace (see :meth:`Namespace.popen`).

        The process is stopped when this endpoint is removed, also in host and container mode
        (where the namespace itself outlives the endpoint).
        """
        proc = self.namespace.popen(argv, **kwargs)
        self._processes.append(proc)
        return proc
