"""Network namespaces: named (``/run/netns/NAME``), from a PID, from a path, or the current one.

A :class:`Namespace` is the place every other object lives in. It opens one
rtnetlink socket per namespace on demand (kept in a small bounded pool, so
thousands of namespaces never hold thousands of descriptors) and never forks
to reach a namespace: the calling thread enters it with ``setns`` and leaves.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _batch, _procs, _state, _sys
from ._journal import EphemeralScope, atomic_step, intent, record, recording
from ._netlink import OWNER_PROTO, RtnlSocket, address_marks_kept
from .errors import (
    AlreadyExistsError,
    KernelError,
    NetnsKitError,
    NotFoundError,
    OwnershipError,
    RootlessError,
    StateError,
    ValidationError,
)
from .model import (
    IFACE_TYPES,
    AddressInfo,
    IPInterface,
    LinkInfo,
    Route,
    RouteInfo,
    check_args,
    check_items,
    parse_interface,
    parse_mac,
    validate_ifname,
    validate_mtu,
    validate_netns_name,
)

if TYPE_CHECKING:
    from .views import NamespaceView

__all__ = ["Namespace"]

Identity = tuple[int, int]



class _FdBlock:
    """The ``with`` block of :meth:`Namespace.open_fd`: gives the descriptor, closes it on exit if
    it was opened for the block (a class: cheaper than a generator on the path of every veth)."""

    __slots__ = ("close", "fd")

    def __init__(self, fd: int, *, close: bool) -> None:
        self.fd = fd
        self.close = close

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self.close:
            os.close(self.fd)

class _SocketPool:
    """At most ``size`` open rtnetlink sockets, least recently used closed first."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._socks: OrderedDict[Identity, RtnlSocket] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ident: Identity, opener: Callable[[], RtnlSocket]) -> RtnlSocket:
        with self._lock:
            sock = self._socks.get(ident)
            if sock is not None:
                self._socks.move_to_end(ident)
                return sock
        sock = opener()
        with self._lock:
            old = self._socks.get(ident)
            if old is not None:
                sock.close()
                return old
            self._socks[ident] = sock
            while len(self._socks) > self.size:
                _, evicted = self._socks.popitem(last=False)
                evicted.close()
        return sock

    def drop(self, ident: Identity) -> None:
        with self._lock:
            sock = self._socks.pop(ident, None)
        if sock is not None:
            sock.close()

    def clear(self) -> None:
        with self._lock:
            socks = list(self._socks.values())
            self._socks.clear()
        for s in socks:
            s.close()


class _Opener:
    def __init__(self, ns: Namespace) -> None:
        self.ns = ns

    def __call__(self) -> RtnlSocket:
        with self.ns.open_fd() as fd:
            _check_reachable(fd, self.ns.label)
            return RtnlSocket.open(fd, label=self.ns.label)


def _check_reachable(fd: int, label: str) -> None:
    """RootlessError, before any change, if the namespace lies outside this process's user namespace
    (in rootless mode: the machine's own network, which only root may change)."""
    if not _sys.userns_reaches(fd):
        raise RootlessError(
            f"namespace {label!r} belongs to the machine, outside this process's user namespace (rootless "
            "mode): netns_kit can change only namespaces made inside it; build inside "
            "netns_kit.testing.isolated_host(), or run as root", obj=label, namespace=label,
            step="open namespace")


_pool = _SocketPool()

# Called with a named namespace's (dev, inode) identity once netns_kit removed it: the network
# registry forgets the namespace's connections at its next change (see netns_kit._registry).
_removal_listeners: list[Callable[[tuple[int, int]], None]] = []


def on_removal(listener: Callable[[tuple[int, int]], None]) -> None:
    """Call ``listener(identity)`` whenever netns_kit removes a named namespace (in this process)."""
    _removal_listeners.append(listener)


def journal_ref(ns: Namespace) -> dict[str, object]:
    """How the on-disk journal names ``ns`` (for the objects that journal changes made inside it);
    made once per identity of the namespace object (callers only encode it)."""
    ident = ns.identity
    cached = ns._journal_ref
    if cached is None or cached[0] != ident:
        cached = ns._journal_ref = (ident, _state.ns_ref(ns.path if ns.kind == "named" else None, ident))
    return cached[1]


def drop_socket(identity: Identity) -> None:
    """Close this process's cached netlink socket into the namespace ``identity``, if it has one."""
    _pool.drop(identity)

class Namespace(EphemeralScope):
    """A network namespace.

    - ``Namespace("web")``: a named namespace under /run/netns (``ip netns`` sees it).
      :meth:`create` makes it, :meth:`remove` deletes it; as a context manager it is
      created on enter and removed on exit.
    - ``Namespace.open("web")``: an existing named namespace (not owned: ``remove()`` refuses
      unless ``adopt()`` was called).
    - ``Namespace.from_pid(pid)``, ``Namespace.from_path(path)``, ``Namespace.current()``:
      existing namespaces, never removed by netns_kit.
    """

    _journal_ref: tuple[Identity, dict[str, object]] | None = None
    _made_as: int | None = None  # the on-disk id of this object's create(), see _dies_with_it()

    def __init__(self, name: str) -> None:
        check_args("Namespace", name=(name, str))
        self.name: str | None = validate_netns_name(name)
        self.path = f"{_sys.NETNS_RUN_DIR}/{name}"  # a valid name has no "/": os.path.join's result
        self.label = name
        self.kind = "named"
        self._owned = False
        self._removed = False
        self._removal_pending = False
        self._identity: Identity | None = None
        self._held_fd: int | None = None

    # -- constructors for existing namespaces -------------------------------------------------------

    @classmethod
    def _existing(cls, path: str, label: str, kind: str, *, hold: bool = False) -> Namespace:
        ns = cls.__new__(cls)
        ns.name = None
        ns.path = path
        ns.label = label
        ns.kind = kind
        ns._owned = False
        ns._removed = False
        ns._removal_pending = False
        ns._held_fd = None
        fd = _sys.open_netns(path, label=label)
        if not _sys.is_netns_fd(fd):
            os.close(fd)
            raise ValidationError(f"{path} is not a network namespace", obj=label)
        ns._identity = _sys.stat_identity(fd)
        if hold:
            ns._held_fd = fd
            weakref.finalize(ns, os.close, fd)
        else:
            os.close(fd)
        return ns

    @classmethod
    def open(cls, name: str) -> Namespace:
        """An existing named namespace from /run/netns. NotFoundError if there is none."""
        check_args("Namespace.open", name=(name, str))
        validate_netns_name(name)
        path = os.path.join(_sys.NETNS_RUN_DIR, name)
        ns = cls._existing(path, name, "named")
        ns.name = name
        return ns

    @classmethod
    def from_pid(cls, pid: int) -> Namespace:
        """The namespace of process ``pid`` (as the classic recipe uses a container's PID).

        The namespace's identity is recorded; if the process exits and the PID is reused,
        later calls raise NotFoundError instead of touching the wrong namespace.
        """
        check_args("Namespace.from_pid", pid=(pid, int))
        if pid <= 0:
            raise ValidationError(f"PID {pid!r} must be a positive integer", obj=repr(pid))
        path = f"/proc/{pid}/ns/net"
        if not os.path.exists(f"/proc/{pid}"):
            raise NotFoundError(f"process {pid} does not exist (or has exited)", obj=f"pid:{pid}",
                                step="open namespace")
        return cls._existing(path, f"pid:{pid}", "pid")

    @classmethod
    def from_path(cls, path: str) -> Namespace:
        """The namespace pinned at ``path`` (a /proc/PID/ns/net file or a bind mount)."""
        check_args("Namespace.from_path", path=(path, str))
        if not path:
            raise ValidationError(f"namespace path {path!r} must be a non-empty str", obj=repr(path))
        return cls._existing(os.path.abspath(path), path, "path")

    @classmethod
    def current(cls) -> Namespace:
        """The calling thread's namespace now (the "host" for everything else). Holds one descriptor."""
        _sys.check_privileges()
        return cls._existing(_sys.current_netns_path(), "host", "current", hold=True)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def owned(self) -> bool:
        """True if this object created the namespace (or adopted it) and so may remove it."""
        return self._owned

    @property
    def exists(self) -> bool:
        if self._held_fd is not None:
            return True
        try:
            return _sys.stat_identity(self.path) == self._identity if self._identity else \
                _sys.is_netns_file(self.path)
        except OSError:
            return False

    def create(self) -> Namespace:
        """Create the named namespace and bring its ``lo`` up.

        Kernel: ``unshare(CLONE_NEWNET)`` in the calling thread, bind-mount at /run/netns/NAME,
        back to the previous namespace. Undo: :meth:`remove` (unmount + unlink).
        """
        if self.kind != "named":
            raise StateError("only named namespaces can be created", obj=self.label, step="create namespace")
        if self._owned and not self._removed:
            raise StateError("namespace was already created by this object", obj=self.label,
                             step="create namespace")
        _sys.check_privileges()
        _state.ensure_run_dir()
        made: list[RtnlSocket] = []

        def mark_inside() -> None:  # runs inside the new namespace, before it is pinned
            made.append(RtnlSocket.open(None, label=self.label))
            made[0].set_link(1, up=True, alias=_state.mark(), obj="lo")

        # a name taken already: the O_EXCL create of /run/netns/NAME refuses it (nothing made)
        with _state.name_lock(self.label), atomic_step():
            with intent(f"remove namespace {self.label}", self._undo_create,
                        durable=("netns", {"name": self.name, "path": self.path})) as did:
                try:
                    self._identity = _sys.create_named_netns(self.path, label=self.label, prepare=mark_inside)
                except BaseException:
                    for m in made:
                        m.close()
                    raise
            self._made_as = did
            self._owned = True
            self._removed = False
            _pool.get(self._identity, lambda: made[0])
        record(f"remove namespace {self.label}", self.remove)
        return self

    def _undo_create(self) -> None:
        if self._identity is not None:
            self._owned = True
            self.remove()
        elif _sys.is_netns_file(self.path):  # made, but the identity was never read
            _sys.remove_named_netns(self.path)

    def adopt(self) -> Namespace:
        """Take ownership of an existing named namespace, so that :meth:`remove` may delete it."""
        if self.kind != "named":
            raise OwnershipError("only named namespaces can be adopted", obj=self.label)
        self._owned = True
        return self

    def remove(self, *, wait: bool = True) -> None:
        """Delete the named namespace (unmount and unlink /run/netns/NAME). Idempotent.

        ``wait=True`` (default) first deletes the veths inside, so that when this returns their
        other ends (e.g. bridge ports on the host) are gone and their names are free again; the
        kernel takes ~30-40 ms per veth for that. ``wait=False`` only unmounts (well under 1 ms):
        the kernel then destroys the namespace and its interfaces in the background, batching
        many namespaces together, and the host ends disappear a moment later.
        """
        if self.kind != "named" or not self._owned:
            raise OwnershipError(f"namespace {self.label!r} was not created by netns_kit; adopt() it first",
                                 obj=self.label, step="remove namespace")
        if self._removed:
            return
        pending = _batch.current()
        if pending is not None:  # once the batch's interfaces are gone
            if not self._removal_pending:
                self._removal_pending = True
                pending.after(f"removing namespace {self.label}", lambda: self._remove_now(wait))
            return
        self._remove_now(wait)

    def _remove_now(self, wait: bool) -> None:
        self._removal_pending = False
        with _state.name_lock(self.label):
            self._remove_locked(wait)

    def _remove_locked(self, wait: bool = True) -> None:
        try:
            self._unmount(wait)
        finally:
            if self._removed and self._identity is not None:
                for listener in list(_removal_listeners):
                    listener(self._identity)

    def _unmount(self, wait: bool) -> None:
        if self._identity is not None:
            _procs.stop_all(self._identity)  # processes started here through netns_kit
            try:
                same = _sys.stat_identity(self.path) == self._identity
            except OSError:
                same = False
            if not same:  # gone, or replaced by someone else's namespace of the same name
                _pool.drop(self._identity)
                self._removed = True
                return
            if wait:
                self._delete_veths()
            _pool.drop(self._identity)
        _sys.remove_named_netns(self.path)
        self._removed = True

    def _delete_veths(self) -> None:
        """Delete the veths inside before the namespace goes. The kernel destroys a namespace (and
        with it the other ends of its veths, e.g. bridge ports in the host) asynchronously, a while
        after its last reference is dropped; deleting them here means that when remove() returns
        the host is as it was and the names are free again."""
        try:
            sock = self.rtnl()
            sock.delete_links([link.index for link in sock.links() if link.kind == "veth"], obj=self.label)
        except NetnsKitError:  # the namespace still goes; its veths then go with it, later
            pass

    def __enter__(self) -> Namespace:
        if self.kind == "named" and not self._owned:
            self._enter_ephemeral(self.create)  # ephemeral: recover() undoes it after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.kind == "named" and self._owned:
            self.remove()
        self._settle_ephemeral()

    def __repr__(self) -> str:
        return f"Namespace({self.label!r}, kind={self.kind})"

    def _repr_html_(self) -> str:
        """Jupyter's view: interfaces, addresses and routes as a table (read from the kernel now)."""
        # views (html tables) are imported when shown: a short-lived process (the CNI plugin) never pays for them
        from .views import namespace_html

        return namespace_html(self)

    def view(self, *, is_host: bool = False) -> NamespaceView:
        """What the namespace holds now (interfaces, addresses but link-local ones, main-table routes),
        read from the kernel, as a :class:`~netns_kit.views.NamespaceView`. Changes nothing."""
        from .views import InterfaceView, NamespaceView, route_text

        links = self.links()
        names = {link.index: link.name for link in links}
        addrs: dict[int, list[str]] = {}
        for a in self.addresses():
            if a.interface.ip.is_link_local:
                continue
            addrs.setdefault(a.index, []).append(str(a.interface))
        ifaces = tuple(
            InterfaceView(name=link.name, kind=link.kind, addresses=tuple(addrs.get(link.index, ())),
                          master=names.get(link.master) if link.master else None, up=link.up, mtu=link.mtu,
                          mac=link.mac)
            for link in links)
        routes = tuple(route_text(r) for r in self.routes() if not r.dst.is_link_local)
        return NamespaceView(label=self.label, interfaces=ifaces, routes=routes, is_host=is_host, kind=self.kind)

    # -- access ------------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._removed:
            raise StateError(f"namespace {self.label!r} was removed", obj=self.label, namespace=self.label)

    def open_fd(self) -> AbstractContextManager[int]:
        """A descriptor of this namespace (for requests that name it, such as a link born inside
        it), checked to be the very namespace this object means; closed on exit of the ``with``
        block. Changes nothing."""
        self._check_usable()
        if self._held_fd is not None:
            return _FdBlock(self._held_fd, close=False)
        fd = _sys.open_netns(self.path, label=self.label)
        try:
            if self._identity is not None and _sys.stat_identity(fd) != self._identity:
                raise NotFoundError(f"namespace {self.label!r} no longer exists (its file now names another)",
                                    obj=self.label, namespace=self.label, step="open namespace")
        except BaseException:
            os.close(fd)
            raise
        return _FdBlock(fd, close=True)

    @property
    def identity(self) -> Identity:
        """(device, inode) of the namespace: equal identities mean the very same namespace."""
        if self._identity is None:
            with self.open_fd() as fd:
                self._identity = _sys.stat_identity(fd)
        return self._identity

    def same_as(self, other: Namespace) -> bool:
        """True if ``other`` is the very same namespace (same device and inode)."""
        check_args("Namespace.same_as", other=(other, Namespace))
        return self.identity == other.identity

    def _undo_rtnl(self) -> RtnlSocket:
        """The socket for an undo, fetched when the undo runs (a pooled socket captured earlier may
        have been closed by the pool since). A namespace already removed or gone: NotFoundError,
        which the journal counts as undone (its contents went with it)."""
        if self._removed or not self.exists:
            raise NotFoundError(f"namespace {self.label!r} is gone", obj=self.label, namespace=self.label,
                                step="undo")
        return self.rtnl()

    def rtnl(self) -> RtnlSocket:
        """The pooled rtnetlink socket of this namespace (internal use by netns_kit objects)."""
        _sys.check_privileges()
        self._check_usable()
        return _pool.get(self.identity, _Opener(self))

    @contextmanager
    def enter(self) -> Iterator[Namespace]:
        """Switch only the calling thread into this namespace for the body, then back.

        Sockets created inside belong to this namespace and stay there. Safe inside a running
        asyncio loop (it is two ``setns`` calls, nothing is awaited).
        """
        _sys.check_privileges()
        with self.open_fd() as fd:
            _check_reachable(fd, self.label)
            with _sys.entered(fd, label=self.label):
                yield self

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = False,
        input: str | None = None,
        timeout: float | None = 30,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (no shell) inside this namespace; returns stdout, stderr and returncode.

        Like ``ip netns exec``, files in /etc/netns/NAME/ (e.g. ``hosts``) are bind-mounted over
        their /etc counterparts in a private mount namespace of the child (named namespaces only).
        """
        argv = _check_argv(argv)
        check_args("Namespace.run", check=(check, bool), input=(input, str, None), timeout=(timeout, int, float, None),
                   env=(env, Mapping, None), cwd=(cwd, str, None))
        if env is not None:
            check_args("Namespace.run", env=(list(env.keys()) + list(env.values()), [str]))
        preexec = self._etc_preexec()
        with self.enter():
            return subprocess.run(list(argv), capture_output=True, text=True, check=check, input=input,
                                  timeout=timeout, env=dict(env) if env is not None else None, cwd=cwd,
                                  preexec_fn=preexec)

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` (no shell) inside this namespace and return the running process.

        The process is registered: when netns_kit removes this namespace, it is stopped first
        (SIGTERM to its process group if it leads one, then SIGKILL). Stop it earlier as you like.
        """
        argv = _check_argv(argv)
        preexec = self._etc_preexec(kwargs.pop("preexec_fn", None))  # type: ignore[arg-type]
        if preexec is not None:
            kwargs["preexec_fn"] = preexec
        with self.enter():
            proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), **kwargs)  # type: ignore[call-overload]
        _procs.register(self.identity, proc)  # stopped when netns_kit removes this namespace
        return proc

    def _etc_preexec(self, then: Callable[[], object] | None = None) -> Callable[[], None] | None:
        """A ``preexec_fn`` binding /etc/netns/NAME/* over /etc/* in the child (None if nothing to bind)."""
        binds = _sys.etc_netns_binds(self.name) if self.name is not None else []
        if not binds:
            return then  # type: ignore[return-value]

        def preexec() -> None:
            _sys.enter_etc_view(binds)
            if then is not None:
                then()

        return preexec

    # -- inspection --------------------------------------------------------------------------------

    def links(self) -> list[LinkInfo]:
        """Every interface in the namespace."""
        return self.rtnl().links()

    def link(self, name: str) -> LinkInfo:
        """One interface by name; NotFoundError if absent."""
        check_args("Namespace.link", name=(name, str))
        validate_ifname(name)
        info = self.rtnl().get_link(name=name)
        if info is None:
            raise NotFoundError(f"no interface {name!r}", obj=name, namespace=self.label, step="get link")
        return info

    def _dies_with_it(self) -> bool:
        """True while this namespace's own creation is still undone by recovery after a crash (made
        in a transaction, a ``with`` block or an atomic step that has not ended): a change inside
        it then needs no on-disk record of its own, as the namespace takes it along."""
        return self._made_as is not None and _state.is_open(self._made_as)

    def _index_of(self, sock: RtnlSocket, name: str) -> int:
        """The index of interface ``name`` (validated); NotFoundError as :meth:`link` raises it."""
        index = sock.link_index(validate_ifname(name))
        if index is None:
            raise NotFoundError(f"no interface {name!r}", obj=name, namespace=self.label, step="get link")
        return index

    def has_link(self, name: str) -> bool:
        """True if the namespace has an interface called ``name``."""
        check_args("Namespace.has_link", name=(name, str))
        return self.rtnl().get_link(name=validate_ifname(name)) is not None

    def addresses(self, ifname: str | None = None) -> list[AddressInfo]:
        """Addresses in the namespace (of one interface if ``ifname`` is given)."""
        check_args("Namespace.addresses", ifname=(ifname, str, None))
        index = self.link(ifname).index if ifname is not None else None
        return self.rtnl().addresses(index)

    def routes(self, family: int | None = None) -> list[RouteInfo]:
        """Routes of the main table (``family`` 4 or 6 to restrict)."""
        check_args("Namespace.routes", family=(family, int, None))
        if family not in (None, 4, 6):
            raise ValidationError(f"Namespace.routes: argument 'family' must be 4, 6 or None, got {family!r}",
                                  obj=repr(family))
        return self.rtnl().routes(family)

    # -- journaled changes -------------------------------------------------------------------------

    def add_address(self, ifname: str, address: str | IPInterface, *, nodad: bool = True) -> IPInterface:
        """Add ``ADDR/PREFIX`` to interface ``ifname``, marked as netns_kit's (``proto 107``, Linux 6.1+).
        Undo: the address is deleted.

        IPv6 addresses are usable at once (no duplicate-address detection) unless ``nodad=False``.
        """
        check_args("Namespace.add_address", ifname=(ifname, str), address=(address, str, *IFACE_TYPES),
                   nodad=(nodad, bool))
        iface = parse_interface(address)
        sock = self.rtnl()
        index = self._index_of(sock, ifname)
        if not recording():  # kept at once, one request: nothing to journal (see _journal.recording)
            self._add_address(sock, index, iface, ifname, nodad)
            return iface
        text = str(iface)
        self._journaled_one(
            lambda: self._add_address(sock, index, iface, ifname, nodad),
            f"delete address {text} from {ifname} in {self.label}",
            lambda: self._undo_rtnl().delete_address(index, iface),
            lambda: ("address", {"ns": journal_ref(self), "ifname": ifname, "index": index, "address": text,
                                 **({"proto": OWNER_PROTO} if address_marks_kept() else {})}))
        return iface

    def _add_address(self, sock: RtnlSocket, index: int, iface: IPInterface, ifname: str, nodad: bool) -> None:
        try:  # the kernel refuses a duplicate (NLM_F_EXCL) and then changes nothing
            sock.add_address(index, iface, nodad=nodad, obj=lambda: f"{iface} on {ifname}")  # only for an error
        except AlreadyExistsError:
            if any(have == iface for _, have in sock.interfaces(index, iface.version)):
                raise AlreadyExistsError(f"address {iface} is already on {ifname}", obj=str(iface),
                                         namespace=self.label, step="add address") from None
            raise

    def delete_address(self, ifname: str, address: str | IPInterface) -> bool:
        """Delete an address; False if it was not there."""
        check_args("Namespace.delete_address", ifname=(ifname, str), address=(address, str, *IFACE_TYPES))
        iface = parse_interface(address)
        link = self.link(ifname)
        return self.rtnl().delete_address(link.index, iface, obj=f"{iface} on {ifname}")

    def add_route(self, route: Route) -> Route:
        """Install ``route`` with netns_kit's mark as its protocol (``proto 107``). Undo: the route is
        deleted (only a route with that mark: never a same-looking route someone else added).

        A gateway must be reachable through an address already on the namespace's interfaces
        (same subnet); otherwise ValidationError names the gateway and the subnets there are.
        The kernel checks that in the request itself (it refuses an unreachable gateway and
        changes nothing); the subnets are read only to explain a refusal.
        """
        check_args("Namespace.add_route", route=(route, Route))
        sock = self.rtnl()
        oif = self._index_of(sock, route.dev) if route.dev is not None else None
        if not recording():  # kept at once, one request: nothing to journal (see _journal.recording)
            self._add_route(sock, route, oif)
            return route
        self._journaled_one(
            lambda: self._add_route(sock, route, oif), f"delete route {route.dst} in {self.label}",
            lambda: self._undo_rtnl().delete_route(route, oif),
            lambda: ("route", {"ns": journal_ref(self), "dst": route.dst, "gateway": route.gateway,
                               "metric": route.metric, "table": route.table, "oif": oif, "oif_name": route.dev,
                               "proto": OWNER_PROTO}),
            unchanged_on=(AlreadyExistsError, ValidationError))
        return route

    def _journaled_one(self, make: Callable[[], None], description: str, undo: Callable[[], object],
                       durable: Callable[[], tuple[str, dict[str, Any]]],
                       unchanged_on: tuple[type[BaseException], ...] = (AlreadyExistsError,)) -> None:
        """Make a change of one request inside this namespace while a journal is active (outside
        one, the caller makes it and writes nothing: see :func:`netns_kit._journal.recording`).
        Inside a namespace that its own unfinished transaction made, the change gets an undo in
        memory only (recovery removes the namespace, and the change with it); otherwise its intent
        ``durable()`` is written ahead."""
        if self._dies_with_it():
            make()
            record(description, undo)
            return
        with intent(description, undo, durable=durable(), unchanged_on=unchanged_on):
            make()

    def _add_route(self, sock: RtnlSocket, route: Route, oif: int | None) -> None:
        try:
            sock.add_route(route, oif)
        except KernelError as exc:
            if route.gateway_ip is None or exc.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                raise
            addrs = [iface for _, iface in sock.interfaces(oif, route.family)]
            if any(route.gateway_ip in a.network for a in addrs):
                raise
            nets = ", ".join(sorted({str(a.network) for a in addrs})) or "none"
            raise ValidationError(
                f"gateway {route.gateway_ip} is not inside any subnet configured "
                f"{'on ' + route.dev if route.dev else 'in the namespace'} (subnets: {nets})",
                obj=f"route {route.dst}", namespace=self.label, step="add route") from exc

    def delete_route(self, route: Route) -> bool:
        """Delete a route netns_kit added (one with its ``proto 107`` mark); False if there is none."""
        check_args("Namespace.delete_route", route=(route, Route))
        oif = self.link(route.dev).index if route.dev is not None else None
        return self.rtnl().delete_route(route, oif)

    def set_link(
        self,
        ifname: str,
        *,
        up: bool | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        master: str | None = None,
        nomaster: bool = False,
    ) -> LinkInfo:
        """Change link settings (state, MTU, MAC, bridge master) in one request.

        Undo: the previous values are put back.
        """
        check_args("Namespace.set_link", ifname=(ifname, str), up=(up, bool, None), mtu=(mtu, int, None),
                   mac=(mac, str, None), master=(master, str, None), nomaster=(nomaster, bool))
        if mtu is not None:
            validate_mtu(mtu)
        if mac is not None:
            mac = parse_mac(mac)
        link = self.link(ifname)
        master_index: int | None = None
        if master is not None:
            m = self.link(master)
            if m.kind != "bridge":
                raise ValidationError(f"{master!r} is not a bridge (kind {m.kind})", obj=master,
                                      namespace=self.label, step="set master")
            master_index = m.index
        elif nomaster:
            master_index = 0
        sock = self.rtnl()
        old = link
        with intent(f"restore settings of {ifname} in {self.label}", lambda: self._undo_rtnl().set_link(
            old.index,
            up=old.up if up is not None else None,
            mtu=old.mtu if mtu is not None else None,
            mac=old.mac if mac is not None else None,
            master=(old.master or 0) if master_index is not None else None,
            obj=ifname,
        )):
            sock.set_link(link.index, up=up, mtu=mtu, mac=mac, master=master_index, obj=ifname)
        return self.link(ifname)

    def read_sysctl(self, key: str) -> str:
        """Read ``net.*`` sysctl ``key`` (e.g. ``net.ipv4.ip_forward``) as seen in this namespace."""
        check_args("Namespace.read_sysctl", key=(key, str))
        _sys.sysctl_path(key)  # ValidationError before entering the namespace
        with self.enter():
            value = _sys.read_sysctl(key)
        if value is None:
            raise NotFoundError(f"there is no sysctl {key} in this namespace", obj=key, namespace=self.label,
                                step="read sysctl")
        return value

    def write_sysctl(self, key: str, value: str) -> str:
        """Set a ``net.*`` sysctl in this namespace; returns the old value. Undo: the old value comes back.

        ``value`` must be plain digits or words (numbers where the key holds numbers): anything else
        is refused with ValidationError before the kernel is asked.
        """
        check_args("Namespace.write_sysctl", key=(key, str), value=(value, str))
        path = _sys.sysctl_path(key)
        _sys.check_sysctl_value(key, value)
        old = self.read_sysctl(key)
        _sys.check_sysctl_value(key, value, old)
        if old == value:
            return old

        def undo() -> None:
            with self.enter():
                _sys.write_sysctl(key, old)

        # a refused write(2) of a sysctl changes nothing: its journal entry is withdrawn
        with intent(f"restore {key}={old} in {self.label}", undo,
                    durable=("sysctl", {"ns": journal_ref(self), "path": path, "old": old, "new": value}),
                    unchanged_on=(NetnsKitError,)), \
                self.enter():
            _sys.write_sysctl(key, value)
        return old


def _check_argv(argv: Sequence[str]) -> Sequence[str]:
    if isinstance(argv, str | bytes):
        raise ValidationError(f"argument 'argv' must be a list of str (no shell string), got {argv!r}",
                              obj=repr(argv))
    items: tuple[str, ...] = check_items(argv, "argv", str)
    if not items:
        raise ValidationError("argument 'argv' must be a non-empty list of str", obj=repr(argv))
    return items
