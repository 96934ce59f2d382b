"""Interfaces netns_kit creates: :class:`Bridge` and :class:`VethPair`.

Each is created in one rtnetlink request where the kernel allows it (a veth's
peer is born inside its namespace under its final name, with master and state
set in the same request) and removed by the ifindex recorded at creation.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from . import _batch, _state
from ._journal import EphemeralScope, atomic_step, intent, record
from ._netlink import IN6_ADDR_GEN_MODE_NONE
from .errors import AlreadyExistsError, NetnsKitError, NotFoundError, OwnershipError, StateError, ValidationError
from .model import (
    IFACE_TYPES,
    IPInterface,
    LinkInfo,
    check_args,
    parse_interface,
    parse_mac,
    validate_ifname,
    validate_mtu,
)
from .namespace import Namespace, journal_ref

__all__ = ["Bridge", "VethPair"]


class _OwnedLink(EphemeralScope):
    """Shared lifecycle: create once, remove by recorded (namespace, ifindex, name)."""

    name: str
    namespace: Namespace
    _index: int | None
    _owned: bool
    _removed: bool

    def _init_state(self) -> None:
        self._index = None
        self._owned = False
        self._removed = False

    @property
    def index(self) -> int:
        if self._index is None:
            raise StateError(f"{self.name!r} has not been created", obj=self.name, namespace=self.namespace.label)
        return self._index

    @property
    def created(self) -> bool:
        return self._owned and not self._removed

    def info(self) -> LinkInfo:
        """The interface as the kernel reports it now."""
        info = self.namespace.rtnl().get_link(index=self.index)
        if info is None or info.name != self.name:
            raise NotFoundError(f"{self.name!r} no longer exists", obj=self.name, namespace=self.namespace.label)
        return info

    _kind = "bridge"

    def _undo_create(self) -> None:
        """Undo a creation whose bookkeeping may not have finished (the name was free just before)."""
        if self._index is None:
            info = self.namespace.rtnl().get_link(name=self.name)
            if info is None or info.kind != self._kind:
                return
            self._index = info.index
        self._owned = True
        self.remove()

    def _check_new(self) -> None:
        if self._owned and not self._removed:
            raise StateError(f"{self.name!r} was already created by this object", obj=self.name,
                             namespace=self.namespace.label, step="create")

    def adopt(self) -> _OwnedLink:
        """Take ownership of an existing interface of this name, so that :meth:`remove` may delete it."""
        info = self.namespace.link(self.name)
        self._index = info.index
        self._owned = True
        self._removed = False
        return self

    def remove(self) -> None:
        """Delete the interface by its recorded index (only if the name still matches). Idempotent."""
        if not self._owned:
            raise OwnershipError(f"{self.name!r} was not created by netns_kit; adopt() it first",
                                 obj=self.name, namespace=self.namespace.label, step="remove link")
        if self._removed:
            return
        self._removed = True
        if not self.namespace.exists:
            return
        sock = self.namespace.rtnl()
        current = sock.get_link(index=self.index)
        if current is not None and current.name == self.name:
            _delete(self.namespace, self.index, self.name)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owned:
            self.remove()
        self._settle_ephemeral()


def _delete(ns: Namespace, index: int, name: str) -> None:
    """Delete a link now, or at the end of the active :func:`~netns_kit.removal_batch`."""
    pending = _batch.current()
    if pending is not None:
        pending.delete_link(ns, index, name)
    else:
        ns.rtnl().delete_link(index, obj=name)


def _ensure_absent(ns: Namespace, name: str) -> None:
    if ns.has_link(name):
        raise AlreadyExistsError(f"interface {name!r} already exists", obj=name, namespace=ns.label,
                                 step="create link")


class Bridge(_OwnedLink):
    """A Linux bridge (``ip link add NAME type bridge``), up, with optional addresses, MTU and MAC.

    ``ipv6_link_local=False``: the kernel generates no IPv6 link-local address for the bridge
    (address generation mode "none", set before it comes up), so it never has a *tentative*
    address waiting for duplicate-address detection; give it one in ``addresses`` (e.g.
    ``fe80::1/64``, Docker's) and that one is usable at once (added without DAD, as all
    addresses netns_kit adds). A network with an IPv6 subnet makes its bridge this way.

    Undo: the bridge is deleted (its ports are released, not deleted).
    """

    def __init__(
        self,
        name: str,
        *,
        namespace: Namespace | None = None,
        addresses: Sequence[str | IPInterface] = (),
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = True,
        ipv6_link_local: bool = True,
    ) -> None:
        check_args("Bridge", name=(name, str), namespace=(namespace, Namespace, None),
                   addresses=(addresses, [str, *IFACE_TYPES]), mtu=(mtu, int, None), mac=(mac, str, None),
                   up=(up, bool))
        self.name = validate_ifname(name, what="bridge name")
        self.namespace = namespace if namespace is not None else Namespace.current()
        self.addresses = tuple(parse_interface(a) for a in addresses)
        self.mtu = validate_mtu(mtu) if mtu is not None else None
        self.mac = parse_mac(mac) if mac is not None else None
        self.up = up
        if not isinstance(ipv6_link_local, bool):
            raise ValidationError("ipv6_link_local must be True or False", obj=name)
        self.ipv6_link_local = ipv6_link_local
        self._init_state()

    @classmethod
    def open(cls, name: str, *, namespace: Namespace | None = None) -> Bridge:
        """An existing bridge (not owned). ValidationError if ``name`` is not a bridge."""
        check_args("Bridge.open", name=(name, str), namespace=(namespace, Namespace, None))
        br = cls(name, namespace=namespace)
        info = br.namespace.link(name)
        if info.kind != "bridge":
            raise ValidationError(f"{name!r} is not a bridge (kind {info.kind})", obj=name,
                                  namespace=br.namespace.label)
        br._index = info.index
        return br

    def create(self) -> Bridge:
        """Create the bridge, add its addresses, bring it up. Undo: :meth:`remove`.

        Without ``ipv6_link_local`` it is created down and brought up once its address generation
        mode is set, so no link-local address is ever generated for it."""
        self._check_new()
        ns = self.namespace
        _ensure_absent(ns, self.name)
        sock = ns.rtnl()
        with atomic_step():
            with intent(f"delete bridge {self.name} in {ns.label}", self._undo_create,
                        durable=("link", {"ns": journal_ref(ns), "name": self.name, "kind": "bridge"})):
                sock.create_link(self.name, "bridge", up=self.up and self.ipv6_link_local, mac=self.mac,
                                 group=_state.tag())
            info = sock.get_link(name=self.name)
            assert info is not None
            self._index = info.index
            # The MTU is set as a change, not at creation: only then does the kernel keep it as set by
            # the user (one given at creation is reset to the default when the bridge's last port leaves).
            # Without a link-local address the mode goes in a request before the one that brings it
            # up: a bridge without ports has a carrier, and the kernel would make the address from
            # the flags of a request before it applies that request's IFLA_AF_SPEC.
            gen_mode = None if self.ipv6_link_local else IN6_ADDR_GEN_MODE_NONE
            sock.set_link(info.index, alias=_state.mark(), group=0, mtu=self.mtu, addr_gen_mode=gen_mode,
                          obj=self.name)
            if self.up and gen_mode is not None:
                sock.set_link(info.index, up=True, obj=self.name)
            self._owned = True
            self._removed = False
            for addr in self.addresses:
                ns.add_address(self.name, addr)
        record(f"delete bridge {self.name} in {ns.label}", self.remove)
        return self

    def __enter__(self) -> Bridge:
        if not self._owned:
            self._enter_ephemeral(self.create)  # ephemeral: recover() undoes it after a crash
        return self

    def __repr__(self) -> str:
        return f"Bridge({self.name!r}, namespace={self.namespace.label!r})"


class VethPair(_OwnedLink):
    """A veth pair: ``name`` in ``namespace`` (default: the current one), ``peer`` in ``peer_namespace``.

    The peer is created directly inside its namespace under its final name; ``master``
    (a bridge in ``namespace``), MTU, MACs and state are set in the same request.
    Undo: deleting one end deletes both.

    ``ipv6_link_local=False``: neither end gets an IPv6 link-local address (address generation
    mode "none", set before the end comes up), so the pair sends no duplicate-address probes,
    MLD reports or router solicitations. For IPv4-only endpoints on a shared bridge this matters:
    the bridge floods each such packet to every port, so with link-local addresses the cost of a
    new endpoint grows with the number already there. IPv6 addresses added explicitly still work.

    ``hairpin=True`` (needs ``master``): the bridge sends frames back out of the port they came in
    on, so a container can reach itself through its own published port. Set in the same request
    that names the host end; it goes with the pair.
    """

    def __init__(
        self,
        name: str,
        peer: str,
        *,
        namespace: Namespace | None = None,
        peer_namespace: Namespace | None = None,
        master: Bridge | str | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        peer_mac: str | None = None,
        up: bool = True,
        peer_up: bool = True,
        ipv6_link_local: bool = True,
        hairpin: bool = False,
    ) -> None:
        check_args("VethPair", name=(name, str), peer=(peer, str), namespace=(namespace, Namespace, None),
                   peer_namespace=(peer_namespace, Namespace, None), master=(master, Bridge, str, None),
                   mtu=(mtu, int, None), mac=(mac, str, None), peer_mac=(peer_mac, str, None), up=(up, bool),
                   peer_up=(peer_up, bool), ipv6_link_local=(ipv6_link_local, bool), hairpin=(hairpin, bool))
        self.name = validate_ifname(name, what="veth name")
        self.peer = validate_ifname(peer, what="veth peer name")
        self.namespace = namespace if namespace is not None else Namespace.current()
        self.peer_namespace = peer_namespace if peer_namespace is not None else self.namespace
        if self.peer_namespace is self.namespace and self.peer == self.name:
            raise ValidationError(f"veth ends must differ in name within one namespace ({name!r})", obj=name)
        if isinstance(master, str):
            validate_ifname(master, what="master bridge name")
        self.master = master
        self.mtu = validate_mtu(mtu) if mtu is not None else None
        self.mac = parse_mac(mac) if mac is not None else None
        self.peer_mac = parse_mac(peer_mac) if peer_mac is not None else None
        self.up = up
        self.peer_up = peer_up
        self.ipv6_link_local = ipv6_link_local
        if hairpin and master is None:
            raise ValidationError(f"hairpin mode needs a bridge: {name!r} has no master", obj=name)
        self.hairpin = hairpin
        self._init_state()
        self._peer_index: int | None = None

    _kind = "veth"

    @property
    def peer_index(self) -> int:
        if self._peer_index is None:
            raise StateError(f"{self.name!r} has not been created", obj=self.name)
        return self._peer_index

    def _raise_if_taken(self) -> None:
        _ensure_absent(self.namespace, self.name)
        _ensure_absent(self.peer_namespace, self.peer)

    def _master_index(self) -> int | None:
        if self.master is None:
            return None
        if isinstance(self.master, Bridge):
            if not self.master.namespace.same_as(self.namespace):
                raise ValidationError(f"bridge {self.master.name!r} is in another namespace than {self.name!r}",
                                      obj=self.name)
            return self.master.index
        info = self.namespace.link(self.master)
        if info.kind != "bridge":
            raise ValidationError(f"master {self.master!r} is not a bridge (kind {info.kind})", obj=self.master,
                                  namespace=self.namespace.label, step="create veth")
        return info.index

    def create(self) -> VethPair:
        """Create both ends in one request. Undo: :meth:`remove`."""
        self._check_new()
        ns, pns = self.namespace, self.peer_namespace
        # Both names being free is checked by the kernel itself (NLM_F_EXCL, nothing is made if one
        # is taken); only then are they looked up, to raise the same error a check up front gives.
        try:
            master = self._master_index()
        except NetnsKitError:
            self._raise_if_taken()
            raise
        sock = ns.rtnl()
        same = pns.same_as(ns)
        with atomic_step(), pns.open_fd() as pfd:
            try:
                with intent(f"delete veth {self.name} in {ns.label}", self._undo_create,
                            durable=("link", {"ns": journal_ref(ns), "name": self.name, "kind": "veth",
                                              "peer": self.peer, "peer_ns": journal_ref(pns)})):
                    echoed = sock.create_link(
                        self.name, "veth", up=self.up and self.ipv6_link_local, mtu=self.mtu, mac=self.mac,
                        master=master,
                        peer={"name": self.peer, "ns_fd": None if same else pfd, "mtu": self.mtu,
                              "mac": self.peer_mac, "group": _state.tag()},
                        group=_state.tag(), echo=True,
                    )
            except AlreadyExistsError:
                self._raise_if_taken()
                raise
            if echoed is None:  # a kernel without NLM_F_ECHO for links: ask
                info = sock.get_link(name=self.name)
                assert info is not None
                echoed = (info.index, None)
            self._index = echoed[0]
            # Without link-local addresses both ends are still down here. The kernel applies
            # IFLA_AF_SPEC after the flags of the same request, and starts IPv6 address
            # configuration as soon as an end comes up to a carrier (the other end up): so the
            # host end comes up first, with its mode in the same request (no carrier yet), and the
            # peer gets its mode in a request of its own before it comes up.
            gen_mode = None if self.ipv6_link_local else IN6_ADDR_GEN_MODE_NONE
            sock.set_link(echoed[0], alias=_state.mark(), group=0, addr_gen_mode=gen_mode,
                          up=True if self.up and gen_mode is not None else None,
                          hairpin=True if self.hairpin else None, obj=self.name)
            self._owned = True
            self._removed = False
            peer_index = echoed[1]
            if peer_index is None:
                pinfo = pns.rtnl().get_link(name=self.peer)
                if pinfo is None:
                    raise NotFoundError(f"veth peer {self.peer!r} did not appear", obj=self.peer,
                                        namespace=pns.label)
                peer_index = pinfo.index
            self._peer_index = peer_index
            psock = pns.rtnl()
            if gen_mode is None:
                psock.set_link(peer_index, up=True if self.peer_up else None, alias=_state.mark(), group=0,
                               obj=self.peer)
            else:
                psock.set_link(peer_index, alias=_state.mark(), group=0, addr_gen_mode=gen_mode, obj=self.peer)
                if self.peer_up:
                    psock.set_link(peer_index, up=True, obj=self.peer)
        record(f"delete veth {self.name} in {ns.label}", self.remove)
        return self

    def remove(self) -> None:
        """Delete the pair (by the host end's index; by the peer's if the host end moved away). Idempotent."""
        if not self._owned:
            raise OwnershipError(f"{self.name!r} was not created by netns_kit; adopt() it first",
                                 obj=self.name, namespace=self.namespace.label, step="remove link")
        if self._removed:
            return
        self._removed = True
        for ns, index, name in ((self.namespace, self._index, self.name),
                                (self.peer_namespace, self._peer_index, self.peer)):
            if index is None or not ns.exists:
                continue
            sock = ns.rtnl()
            current = sock.get_link(index=index)
            if current is not None and current.name == name and current.kind == "veth":
                _delete(ns, index, name)
                return

    def __enter__(self) -> VethPair:
        if not self._owned:
            self._enter_ephemeral(self.create)  # ephemeral: recover() undoes it after a crash
        return self

    def __repr__(self) -> str:
        return (f"VethPair({self.name!r} in {self.namespace.label!r} <-> {self.peer!r} in "
                f"{self.peer_namespace.label!r})")
