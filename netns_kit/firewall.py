"""The host's firewall and NAT for netns_kit networks: one owned nft table, data in sets and maps.

:class:`Firewall` (one per host namespace: :meth:`Firewall.for_namespace`) keeps everything in
``table inet netns_kit`` (see :mod:`netns_kit._nft_render` for its sets, maps and fixed
rules). It never flushes the ruleset and never reads or edits another table's rules (it only
lists other tables' base chains to warn about a ``policy drop`` on the forward hook).

What each call does to the kernel, and how it is undone:

- :meth:`Firewall.attach_network` (undo: :meth:`Firewall.detach_network`): creates the table on
  first use (one transaction, with all its fixed rules), adds the network's elements (bridge,
  icc, internal, masquerade) in one batch, sets ``net.ipv4.conf.BRIDGE.route_localnet=1`` (for
  ports published to 127.0.0.1; the table's ``guard`` chain drops 127.0.0.0/8 arriving from
  bridges) and turns IP forwarding on for the families that need it.
- :meth:`Firewall.publish` (undo: :meth:`Firewall.unpublish`): one batch that creates the dnat
  map elements (one per host port) and, for the first port of a container, its hairpin element.
- :meth:`Firewall.detach_network`: one batch removing the network's elements and those of every
  port still published on it; route_localnet and forwarding go back to what they were before
  netns_kit changed them (forwarding is reference-counted over networks). When nothing is left,
  the table is deleted (only if no element of anyone else's remains in it).

Errors from libnftables arrive as netns_kit errors naming the object, namespace and step;
a port that is already published (by anyone) raises :class:`AlreadyExistsError`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import _nft, _state, _sys
from . import _nft_render as render
from ._journal import record, record_made, recording
from .errors import AlreadyExistsError, ExhaustedError, NotFoundError, OwnershipError, ValidationError
from .model import NET_TYPES, IPNet, check_args, overlap, parse_network, validate_ifname
from .namespace import Namespace, journal_ref
from .ports import PortBinding, PublishedPort

__all__ = ["ACCEPT_MARK", "Firewall", "NetworkPolicy"]

log = logging.getLogger("netns_kit")

ACCEPT_MARK = render.ACCEPT_MARK
Identity = tuple[int, int]

_FORWARDING = {4: "net/ipv4/ip_forward", 6: "net/ipv6/conf/all/forwarding"}


@dataclass(frozen=True)
class NetworkPolicy:
    """How the firewall treats one bridge network.

    - ``bridge``: the bridge interface in the host namespace;
    - ``subnets``: its IPv4 and/or IPv6 subnets (strings are parsed);
    - ``internal``: no way out: forwarding to and from other interfaces is dropped, no masquerade;
    - ``icc``: inter-container communication on the bridge (off: peers cannot reach each other);
    - ``masquerade``: source NAT for traffic of the subnets leaving through another interface;
    - ``dns``: ``(gateway, port)``: DNS queries to the gateway's port 53 (UDP, TCP) go to ``port``
      on the gateway instead (the network's name service, see docs/dns.md).
    """

    bridge: str
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    dns: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        check_args("NetworkPolicy", bridge=(self.bridge, str), subnets=(self.subnets, [str, *NET_TYPES]),
                   internal=(self.internal, bool), icc=(self.icc, bool), masquerade=(self.masquerade, bool))
        validate_ifname(self.bridge, what="bridge name")
        nets: list[IPNet] = [parse_network(s) for s in self.subnets]
        clash = overlap(nets)
        if clash is not None:
            raise ValidationError(f"subnets {clash[0]} and {clash[1]} overlap", obj=self.bridge)
        for flag in ("internal", "icc", "masquerade"):
            if not isinstance(getattr(self, flag), bool):
                raise ValidationError(f"{flag} must be a bool", obj=self.bridge)
        object.__setattr__(self, "subnets", tuple(nets))
        if self.dns is not None:
            try:
                gw, port = str(ipaddress.IPv4Address(self.dns[0])), int(self.dns[1])
            except (ValueError, TypeError, IndexError) as exc:
                raise ValidationError(f"dns must be (IPv4 gateway, port), got {self.dns!r}", obj=self.bridge) from exc
            if not 0 < port < 65536:
                raise ValidationError(f"dns port {port} is out of range", obj=self.bridge)
            object.__setattr__(self, "dns", (gw, port))

    @property
    def masquerades(self) -> bool:
        """True if the subnets are masqueraded (``masquerade`` and not ``internal``)."""
        return self.masquerade and not self.internal

    def families(self) -> set[int]:
        return {n.version for n in self.subnets}

    def elements(self) -> render.Elements:
        """The nft elements that attach this network (see :func:`netns_kit._nft_render.network_elements`)."""
        return render.network_elements(self.bridge, self.subnets, internal=self.internal, icc=self.icc,
                                       masquerade=self.masquerades, dns=self.dns)




def _what(ports: Sequence[PublishedPort]) -> Callable[[], str]:
    """How errors name a publication of ``ports`` (formatted on an error only)."""
    return lambda: f"published port {ports[0].spec}" if len(ports) == 1 else f"{len(ports)} published ports"

class _Guard:
    """The ``with`` block of :meth:`Firewall._guard`: the host's lock, then the firewall's thread
    lock (a class: cheaper than a generator on the path of every change)."""

    __slots__ = ("host", "lock")

    def __init__(self, host: contextlib.AbstractContextManager[None], lock: threading.RLock | threading.Lock) -> None:
        self.host = host
        self.lock = lock

    def __enter__(self) -> None:
        self.host.__enter__()
        try:
            self.lock.acquire()
        except BaseException:
            self.host.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self.lock.release()
        finally:
            self.host.__exit__(None, None, None)

class Firewall:
    """netns_kit's NAT and filtering in one host namespace (get it with :meth:`for_namespace`)."""

    ACCEPT_MARK = ACCEPT_MARK

    _registry: dict[Identity, Firewall] = {}  # noqa: RUF012 - class-level registry on purpose
    _registry_lock = threading.Lock()

    def __init__(self, ns: Namespace) -> None:
        check_args("Firewall", ns=(ns, Namespace))
        self.namespace = ns
        self._lock = threading.RLock()
        self._networks: dict[str, NetworkPolicy] = {}
        self._joined: dict[str, NetworkPolicy] = {}  # networks another process attached (join_network)
        self._ports: dict[PublishedPort, None] = {}
        self._per_ip: dict[str, int] = {}  # publications per container address (hairpin element)
        self._per_family: dict[int, int] = {4: 0, 6: 0}
        self._keys: dict[tuple[int, str, int], dict[str | None, PublishedPort]] = {}
        self._masq: dict[IPNet, str | None] = {}
        self._table = False
        self._v6 = False  # the table's IPv6 part is there (see ensure_family6)
        self._saved_forwarding: dict[int, str] = {}
        self._saved_localnet: dict[str, str] = {}
        self._hairpin: dict[str, int] = {}

    @classmethod
    def for_namespace(cls, ns: Namespace | None = None) -> Firewall:
        """The firewall of host namespace ``ns`` (default: the calling thread's). One per namespace."""
        check_args("Firewall.for_namespace", ns=(ns, Namespace, None))
        ns = ns if ns is not None else Namespace.current()
        ident = ns.identity
        with cls._registry_lock:
            for key, other in list(cls._registry.items()):  # forget firewalls of vanished namespaces
                if key != ident and not other.namespace.exists:
                    del cls._registry[key]
                    _nft.drop_context(key)
            fw = cls._registry.get(ident)
            if fw is None:
                fw = cls(ns)
                cls._registry[ident] = fw
            return fw

    def __repr__(self) -> str:
        return (f"Firewall({self.namespace.label!r}, networks={sorted(self._networks)}, "
                f"ports={len(self._ports)})")

    # -- introspection of our own state ------------------------------------------------------------

    @property
    def networks(self) -> dict[str, NetworkPolicy]:
        return dict(self._networks)

    @property
    def published(self) -> list[PublishedPort]:
        return list(self._ports)

    def _ctx(self) -> _nft.NftContext:
        return _nft.context_for(self.namespace)

    def _guard(self) -> _Guard:
        """Serialize changes: across processes (the host's lock, see :mod:`netns_kit._state`), then threads."""
        return _Guard(_state.host_lock(self.namespace.identity), self._lock)

    # -- the table ------------------------------------------------------------------------------

    def _ensure_table(self) -> None:
        if self._table:
            return
        if not ensure_table(self._ctx(), self.namespace.label):
            log.info("reusing existing table %s %s in %s", render.FAMILY, render.TABLE, self.namespace.label)
            self._table = True
            self._recover_journaled()
        self._table = True
        self._warn_foreign_drop()

    def _ensure_sets(self, names: Iterable[str]) -> None:
        """Before the first batch with an element in an IPv6 set or map: the table's IPv6 part
        (:func:`ensure_family6`)."""
        if not self._v6 and render.needs_v6(names):
            ensure_family6(self._ctx())
            self._v6 = True

    def _ensure_sets_or_drop(self, names: Iterable[str], created_table: bool) -> None:
        """:meth:`_ensure_sets`; if that fails, a table made just now for this change goes again."""
        try:
            self._ensure_sets(names)
        except BaseException:
            if created_table:
                self._maybe_drop_table()
            raise

    def recover_leftovers(self, *, everything: bool = False) -> int:
        """Undo firewall changes of netns_kit processes that died; returns how many elements went.

        Each change is written to the dead process's on-disk journal (see :mod:`netns_kit._state`)
        before it is confirmed, and settled when it is undone or kept. Changes still unsettled in the
        journal of a process that is no longer running are undone here: their elements (only those
        still carrying that process's owner mark) are deleted and the sysctls they changed are put
        back. Networks and ports a dead process *kept* on purpose stay. :func:`netns_kit._recovery.recover`
        does the same (and more); this runs by itself when a firewall finds an existing table.

        ``everything=True`` also deletes every other element whose owner mark names a dead process
        (e.g. networks it kept), for a clean slate. Elements without a mark (added by hand) and
        elements of live processes are never touched. The table goes if nothing is left in it.
        """
        with self._guard():
            n = self._recover_journaled()
            if everything:
                n += self._recover_all_dead()
            if not (self._networks or self._ports or self._masq):
                self._table = True
                self._maybe_drop_table()
            return n

    def _recover_journaled(self) -> int:
        ident = list(self.namespace.identity)
        total = 0
        for owner, path in _state.dead_journals():
            try:
                entries = _state.read_journal(path, owner)
            except OSError:
                continue
            for e in reversed(entries):
                if e.op != "nft" or not e.confirmed or list(e.args.get("ns", {}).get("id", [])) != ident:
                    continue
                with self.namespace.enter():
                    what = recover_change(self.namespace.label, _state.MARK_PREFIX + owner, e.args)
                if what:
                    log.warning("recovered %s (left by dead process %s)", what, owner)
                    total += sum(len(v) for v in (e.args.get("keys") or {}).values())
        return total

    def _recover_all_dead(self) -> int:
        objs = self._ctx().list_table(render.FAMILY, render.TABLE, step="recover leftovers") or []
        marks: set[str] = set()
        for o in objs:
            for kind in ("set", "map"):
                for elem in (o.get(kind) or {}).get("elem", []):
                    comment = render.element_key(kind, elem)[1]
                    if comment and comment.startswith(_state.MARK_PREFIX) and comment != _state.mark():
                        marks.add(comment)
        n = 0
        for mark in sorted(marks):
            if not _state.owner_alive(mark[len(_state.MARK_PREFIX):]):
                n += delete_marked(self._ctx(), mark, None, step="recover leftovers")
        return n

    def _warn_foreign_drop(self) -> None:
        for desc in self.foreign_drop_policies():
            log.warning(
                "%s in namespace %s drops forwarded packets that netns_kit accepts; add "
                "'meta mark & %#010x == %#010x accept' to it (see docs/nat.md)",
                desc, self.namespace.label, ACCEPT_MARK, ACCEPT_MARK)

    def foreign_drop_policies(self) -> list[str]:
        """Other tables' forward base chains with ``policy drop`` (they drop what netns_kit accepts).

        Only lists chains; never reads or changes their rules.
        """
        out = []
        for o in self._ctx().run_json([{"list": {"chains": None}}], obj="chains", step="list chains"):
            ch = o.get("chain")
            if not ch or (ch.get("table") == render.TABLE and ch.get("family") == render.FAMILY):
                continue
            if ch.get("hook") == "forward" and ch.get("policy") == "drop":
                out.append(f"chain {ch.get('family')} {ch.get('table')} {ch.get('name')} (policy drop)")
        return out

    def _maybe_drop_table(self) -> None:
        """Delete our table if nothing of ours is left and no element of anyone else is in it."""
        if self._networks or self._ports or self._masq:
            return
        ctx = self._ctx()
        if self._table:
            objs = ctx.list_table(render.FAMILY, render.TABLE, step="inspect table before delete") or []
            leftovers = [o for o in objs for kind in ("set", "map") if kind in o and o[kind].get("elem")]
            if leftovers:
                log.info("keeping table %s: it holds elements netns_kit did not add here", render.TABLE)
            else:
                with contextlib.suppress(NotFoundError):
                    ctx.run_json([render.delete_table()], obj=f"table {render.FAMILY} {render.TABLE}",
                                 step="delete firewall table")
            self._table = False
            self._v6 = False
        del ctx  # the cache's reference is the last one: drop_context frees it off this thread
        with self._registry_lock:
            if self._registry.get(self.namespace.identity) is self:
                del self._registry[self.namespace.identity]
        _nft.drop_context(self.namespace.identity)

    def _delete_elements(self, elements: render.Elements, *, obj: str | Callable[[], str], step: str) -> None:
        """Delete elements in one batch; if some are already gone, delete the rest one by one."""
        ctx = self._ctx()
        try:
            ctx.run_json(render.element_cmds("delete", elements), obj=obj, step=step)
            return
        except NotFoundError:
            pass
        for name, elems in elements.items():
            for e in elems:
                with contextlib.suppress(NotFoundError):
                    ctx.run_json(render.element_cmds("delete", {name: [e]}), obj=obj, step=step)

    # -- sysctls --------------------------------------------------------------------------------

    def _sysctl(self, rel: str, value: str | None = None) -> str | None:
        """Read (and with ``value`` write) /proc/sys/REL in the host namespace; None if absent."""
        key = _sys.PROC_SYS + rel
        with self.namespace.enter():
            return _sys.read_sysctl(key) if value is None else _sys.write_sysctl(key, value)

    def _sync_forwarding(self) -> list[dict[str, str]]:
        """Turn forwarding on/off per family as needed; returns the changes made ({path, old, new})."""
        changes: list[dict[str, str]] = []
        need: set[int] = set()
        for pol in self._networks.values():
            if not pol.internal:
                need |= pol.families()
        need |= {n.version for n in self._masq}
        need |= {v for v, n in self._per_family.items() if n}
        for v, rel in _FORWARDING.items():
            if v in need and v not in self._saved_forwarding:
                old = self._sysctl(rel, "1")
                if old is not None:
                    self._saved_forwarding[v] = old
                    if old != "1":
                        changes.append({"path": "/proc/sys/" + rel, "old": old, "new": "1"})
            elif v not in need and v in self._saved_forwarding:
                self._sysctl(rel, self._saved_forwarding.pop(v))
        return changes

    def _write_ahead(self, keys: render.Elements) -> int:
        """Journal the elements on disk *before* the batch adds them: a crash right after the batch
        must still find them (recovery deletes only those carrying this process's mark). Settled
        once the full record (with the sysctls changed) is written after the change."""
        op, args = self._durable(keys, [])
        return _state.intend(op, **args)

    def _made(self, description: str, undo: Callable[[], None], keys: render.Elements,
              sysctls: list[dict[str, str]], pre: int) -> None:
        """Record a change written ahead as ``pre`` (see :meth:`_write_ahead`) once it was made:
        ``pre`` itself when no sysctl changed with it (its record says all), else a full record
        with the sysctls to put back, and ``pre`` settled."""
        if not sysctls:
            record_made(description, undo, pre)
            return
        record(description, undo, durable=self._durable(keys, sysctls))
        _state.done([pre])

    def _durable(self, keys: render.Elements, sysctls: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
        """The on-disk journal record of a change: what crash recovery must delete and put back."""
        return ("nft", {"ns": journal_ref(self.namespace), "family": render.FAMILY, "table": render.TABLE,
                        "keys": render.element_keys(keys), "sysctls": sysctls})

    def _localnet_rel(self, bridge: str) -> str:
        return f"net/ipv4/conf/{bridge}/route_localnet"

    # -- networks --------------------------------------------------------------------------------

    def attach_network(self, policy: NetworkPolicy) -> None:
        """Apply ``policy`` to its bridge: one nft batch, route_localnet, forwarding. Journaled.

        Raises AlreadyExistsError if the bridge is attached already or a subnet is masqueraded
        already, NotFoundError if the bridge does not exist in the namespace.
        """
        check_args("Firewall.attach_network", policy=(policy, NetworkPolicy))
        ns = self.namespace
        with self._guard():
            if policy.bridge in self._networks:
                raise AlreadyExistsError(f"bridge {policy.bridge!r} is already attached", obj=policy.bridge,
                                         namespace=ns.label, step="attach network")
            for other in self._networks.values():
                clash = overlap(policy.subnets, other.subnets)
                if clash is not None:
                    raise AlreadyExistsError(
                        f"subnet {clash[0]} overlaps {clash[1]} of bridge {other.bridge!r}", obj=policy.bridge,
                        namespace=ns.label, step="attach network")
            if policy.masquerades:
                for a in policy.subnets:
                    if a in self._masq:
                        raise AlreadyExistsError(f"subnet {a} is masqueraded already", obj=policy.bridge,
                                                 namespace=ns.label, step="attach network")
            if not ns.has_link(policy.bridge):
                raise NotFoundError(f"bridge {policy.bridge!r} does not exist", obj=policy.bridge,
                                    namespace=ns.label, step="attach network")
            elements = policy.elements()
            created_table = not self._table
            self._ensure_table()
            self._ensure_sets_or_drop(elements, created_table)
            self._networks[policy.bridge] = policy
            pre = self._write_ahead(elements)
            try:
                self._ctx().run_json(render.element_cmds("add", elements, comment=_state.mark()),
                                     obj=f"network {policy.bridge}", step="attach network")
                sysctls = []
                if 4 in policy.families():
                    rel = self._localnet_rel(policy.bridge)
                    old = self._sysctl(rel, "1")
                    if old is not None:
                        self._saved_localnet[policy.bridge] = old
                        if old != "1":
                            sysctls.append({"path": "/proc/sys/" + rel, "old": old, "new": "1"})
                sysctls += self._sync_forwarding()
            except BaseException:
                try:
                    self._detach(policy.bridge)
                except Exception as undo_exc:  # pragma: no cover - reported, original error wins
                    log.warning("undo of failed attach of %s also failed: %s", policy.bridge, undo_exc)
                if created_table:
                    self._maybe_drop_table()
                _state.done([pre])
                raise
        self._made(f"detach network {policy.bridge} from firewall in {ns.label}",
                   lambda: self.detach_network(policy.bridge), elements, sysctls, pre)

    def join_network(self, policy: NetworkPolicy) -> None:
        """Know a network another process attached, so that ports can be published on it here.

        Adds and removes nothing: its policy elements stay the attaching process's (only that
        process, or one that :meth:`adopt_network` it, detaches it). Idempotent.
        """
        check_args("Firewall.join_network", policy=(policy, NetworkPolicy))
        with self._guard():
            if policy.bridge not in self._networks:
                self._joined[policy.bridge] = policy

    def adopt_network(self, policy: NetworkPolicy) -> None:
        """Take over a network another process attached: :meth:`detach_network` will remove its elements."""
        check_args("Firewall.adopt_network", policy=(policy, NetworkPolicy))
        with self._guard():
            if policy.bridge in self._networks:
                return
            self._ensure_table()
            self._joined.pop(policy.bridge, None)
            self._networks[policy.bridge] = policy

    def detach_network(self, bridge: str) -> None:
        """Remove the network's elements and its published ports (one batch); restore sysctls. Idempotent."""
        check_args("Firewall.detach_network", bridge=(bridge, str))
        with self._guard():
            self._detach(bridge)
            self._maybe_drop_table()

    def _detach(self, bridge: str) -> None:
        policy = self._networks.get(bridge)
        if policy is None:
            return
        ports = [p for p in self._ports if p.bridge == bridge]
        elements = policy.elements()
        parts = [elements, *(render.port_elements(p) for p in ports)]
        gone = {p.container_ip: 0 for p in ports}
        for p in ports:
            gone[p.container_ip] += 1
        parts += [render.hairpin_elements(ip) for ip, n in gone.items() if self._per_ip.get(ip, 0) == n]
        if self._table:
            self._delete_elements(render.merged(parts), obj=f"network {bridge}", step="detach network")
        for p in ports:
            self._forget_port(p)
            self._hairpin_ref(p.bridge_port, -1, p.bridge)
        del self._networks[bridge]
        old = self._saved_localnet.pop(bridge, None)
        if old is not None:
            self._sysctl(self._localnet_rel(bridge), old)
        self._sync_forwarding()

    # -- masquerade (standalone NatRule) -----------------------------------------------------------

    def add_masquerade(self, subnet: str | IPNet, *, bridge: str | None = None) -> None:
        """Masquerade ``subnet`` when it leaves through any interface but ``bridge``. Journaled."""
        check_args("Firewall.add_masquerade", subnet=(subnet, str, *NET_TYPES), bridge=(bridge, str, None))
        net = parse_network(subnet)
        if bridge is not None:
            validate_ifname(bridge, what="bridge name")
        with self._guard():
            taken = net in self._masq or any(
                net in pol.subnets for pol in self._networks.values() if pol.masquerades)
            if taken:
                raise AlreadyExistsError(f"subnet {net} is masqueraded already", obj=str(net),
                                         namespace=self.namespace.label, step="add masquerade")
            created_table = not self._table
            self._ensure_table()
            elements = render.masquerade_elements(net, bridge)
            self._ensure_sets_or_drop(elements, created_table)
            pre = self._write_ahead(elements)
            try:
                self._ctx().run_json(render.element_cmds("add", elements, comment=_state.mark()),
                                     obj=f"masquerade {net}", step="add masquerade")
            except BaseException:
                if created_table:
                    self._maybe_drop_table()
                _state.done([pre])
                raise
            self._masq[net] = bridge
            sysctls = self._sync_forwarding()
        self._made(f"remove masquerade {net} in {self.namespace.label}", lambda: self.remove_masquerade(net),
                   elements, sysctls, pre)

    def remove_masquerade(self, subnet: str | IPNet) -> None:
        """Undo :meth:`add_masquerade`. Idempotent."""
        check_args("Firewall.remove_masquerade", subnet=(subnet, str, *NET_TYPES))
        net = parse_network(subnet)
        with self._guard():
            if net not in self._masq:
                return
            bridge = self._masq.pop(net)
            if self._table:
                self._delete_elements(render.masquerade_elements(net, bridge), obj=f"masquerade {net}",
                                      step="remove masquerade")
            self._sync_forwarding()
            self._maybe_drop_table()

    def _hairpin_ref(self, bridge_port: str | None, delta: int, bridge_name: str) -> None:
        """Reference-count hairpin mode on a container's bridge port (on at 1, off at 0)."""
        if bridge_port is None:
            return
        count = self._hairpin.get(bridge_port, 0) + delta
        if count > 0:
            self._hairpin[bridge_port] = count
        else:
            self._hairpin.pop(bridge_port, None)
        if (delta > 0 and count == 1) or (delta < 0 and count == 0):
            sock = self.namespace.rtnl()
            info = sock.get_link(name=bridge_port)
            if info is None:
                if delta > 0:
                    self._hairpin.pop(bridge_port, None)
                    raise NotFoundError(f"bridge port {bridge_port!r} does not exist", obj=bridge_port,
                                        namespace=self.namespace.label, step="set hairpin")
                return
            if delta > 0:
                bridge = sock.get_link(name=bridge_name)
                if bridge is None or info.master != bridge.index:
                    self._hairpin.pop(bridge_port, None)
                    raise ValidationError(f"{bridge_port!r} is not a port of bridge {bridge_name!r}",
                                          obj=bridge_port, namespace=self.namespace.label, step="set hairpin")
            sock.set_bridge_port(info.index, hairpin=delta > 0, obj=bridge_port)

    # -- published ports ----------------------------------------------------------------------------

    def _conflict(self, port: PublishedPort,
                  keys: dict[tuple[int, str, int], dict[str | None, PublishedPort]],
                  slots: list[tuple[int, str, int]] | None = None) -> PublishedPort | None:
        """A publication in ``keys`` that would take a host port of ``port`` (same family and protocol;
        ``slots``: its :func:`~netns_kit._nft_render.port_slots`, if the caller has them).

        Every-address and one-address publications of the same port conflict, as sockets would.
        """
        for key in slots if slots is not None else render.port_slots(port):
            taken = keys.get(key)
            if not taken:
                continue
            if port.host_ip is None:
                return next(iter(taken.values()))
            hit = taken.get(port.host_ip) or taken.get(None)
            if hit is not None:
                return hit
        return None

    def _forget_port(self, port: PublishedPort) -> None:
        if self._ports.pop(port, False) is None:
            self._per_family[port.family] -= 1
            left = self._per_ip.get(port.container_ip, 0) - 1
            if left > 0:
                self._per_ip[port.container_ip] = left
            else:
                self._per_ip.pop(port.container_ip, None)
        for key in render.port_slots(port):
            taken = self._keys.get(key)
            if taken is not None and taken.get(port.host_ip) == port:
                del taken[port.host_ip]
                if not taken:
                    del self._keys[key]

    def publish(self, *ports: PublishedPort) -> None:
        """Publish ``ports``: one batch creating all their dnat elements (and the hairpin element
        of each container not yet published). Journaled; undone by :meth:`unpublish` of the same ports.

        Every bridge must be attached (:meth:`attach_network`) and every container address inside
        one of its bridge's subnets. A host port already published (by this firewall, by another
        port of the same call, or found in the kernel's map) raises AlreadyExistsError; if any port
        is refused, none is published.
        """
        check_args("Firewall.publish", ports=(ports, [PublishedPort]))
        if not ports:
            return
        ns = self.namespace
        with self._guard():
            pending: dict[tuple[int, str, int], dict[str | None, PublishedPort]] = {}
            slots = [render.port_slots(port) for port in ports]
            for port, port_slots in zip(ports, slots, strict=True):
                self._check_publish(port, pending, port_slots)
                for key in port_slots:
                    pending.setdefault(key, {})[port.host_ip] = port
            mark = _state.mark()
            parts = [render.port_elements(port) for port in ports]
            cmds = [c for part in parts for c in render.element_cmds("create", part, comment=mark)]
            for ip, version in dict.fromkeys((port.container_ip, port.family) for port in ports):
                if ip not in self._per_ip:
                    hairpin = render.hairpin_elements(ip, version)
                    cmds += render.element_cmds("add", hairpin, comment=mark)
                    parts.append(hairpin)
            added = render.merged(parts)
            what = _what(ports)
            self._ensure_table()
            self._ensure_sets(added)
            # kept at once and made by the one batch (no hairpin mode to turn on, no forwarding to
            # change): nothing to write ahead (see netns_kit._journal.recording)
            one_batch = (not recording()
                         and all(p.bridge_port is None or self._hairpin.get(p.bridge_port) for p in ports)
                         and all(p.family in self._saved_forwarding for p in ports))
            pre = None if one_batch else self._write_ahead(added)
            try:
                self._ctx().run_json(cmds, obj=what, step="publish port")  # (what: formatted on an error only)
            except BaseException:
                if pre is not None:
                    _state.done([pre])
                raise
            hairpinned: list[PublishedPort] = []
            try:
                for port in ports:
                    self._hairpin_ref(port.bridge_port, +1, port.bridge)
                    hairpinned.append(port)
            except BaseException:
                for port in hairpinned:
                    self._hairpin_ref(port.bridge_port, -1, port.bridge)
                self._delete_elements(added, obj=what, step="undo publish port")
                if pre is not None:
                    _state.done([pre])
                raise
            # forwarding follows the families with ports: only a family's first port can change it
            first = any(not self._per_family[port.family] for port in ports)
            for port, port_slots in zip(ports, slots, strict=True):
                self._ports[port] = None
                self._per_family[port.family] += 1
                self._per_ip[port.container_ip] = self._per_ip.get(port.container_ip, 0) + 1
                for key in port_slots:
                    self._keys.setdefault(key, {})[port.host_ip] = port
            sysctls = self._sync_forwarding() if first else []
        if pre is None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("change: published %s in %s", [p.spec for p in ports], ns.label)
        elif recording():
            self._made(f"unpublish {', '.join(p.spec for p in ports)} in {ns.label}",
                       lambda: self.unpublish(*ports), added, sysctls, pre)
        else:  # outside any journal the change is kept at once: one line settles it
            log.debug("change: published %s in %s", [p.spec for p in ports], ns.label)
            _state.keep([pre])

    def _check_publish(self, port: PublishedPort,
                       pending: dict[tuple[int, str, int], dict[str | None, PublishedPort]],
                       slots: list[tuple[int, str, int]] | None = None) -> None:
        """Refuse ``port`` (typed error, nothing changed) unless it can be published now."""
        ns = self.namespace
        policy = self._networks.get(port.bridge) or self._joined.get(port.bridge)
        if policy is None:
            raise ValidationError(
                f"bridge {port.bridge!r} is not attached to the firewall; attach_network() it first",
                obj=port.spec, namespace=ns.label, step="publish port")
        if policy.internal:
            raise ValidationError(f"bridge {port.bridge!r} is internal: nothing from outside it can reach "
                                  "a published port", obj=port.spec, namespace=ns.label, step="publish port")
        if policy.subnets and not any(port.container_address in n for n in policy.subnets):
            raise ValidationError(
                f"container address {port.container_ip} is not in any subnet of bridge {port.bridge!r} "
                f"({', '.join(map(str, policy.subnets))})", obj=port.spec, namespace=ns.label,
                step="publish port")
        if port in self._ports:
            raise AlreadyExistsError(f"{port.spec} is already published", obj=port.spec, namespace=ns.label,
                                     step="publish port")
        clash = self._conflict(port, self._keys, slots) or self._conflict(port, pending, slots)
        if clash is not None:
            raise AlreadyExistsError(f"host port of {port.spec} is already published as {clash.spec}",
                                     obj=port.spec, namespace=ns.label, step="publish port")

    def unpublish(self, *ports: PublishedPort) -> None:
        """Delete the dnat (and, for a container's last port, hairpin) elements of ``ports``.

        All of them go in one nft batch, however many are given; ports not published here are
        skipped (idempotent). Ports published by another process are not touched.
        """
        check_args("Firewall.unpublish", ports=(ports, [PublishedPort]))
        with self._guard():
            todo = [p for p in dict.fromkeys(ports) if p in self._ports]
            if not todo:
                return
            parts = []
            for port in todo:
                self._forget_port(port)
                parts.append(render.port_elements(port))
            parts += [render.hairpin_elements(ip, v) for ip, v in dict.fromkeys((p.container_ip, p.family)
                                                                                 for p in todo)
                      if ip not in self._per_ip]
            if self._table:
                what = _what(todo)
                self._delete_elements(render.merged(parts), obj=what, step="unpublish port")
            for port in todo:
                self._hairpin_ref(port.bridge_port, -1, port.bridge)
            self._sync_forwarding()
            self._maybe_drop_table()

    # -- picked host ports (Docker's -p 80 and -P) -----------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the host's lock (across processes and threads) for the body: a host port picked by
        :meth:`pick_host_ports` stays free for a :meth:`publish` in the same body."""
        with self._guard():
            yield

    def ephemeral_range(self) -> tuple[int, int]:
        """The host namespace's ``net.ipv4.ip_local_port_range`` (Docker picks host ports from it)."""
        text = self._sysctl("net/ipv4/ip_local_port_range") or ""
        try:
            lo, hi = (int(x) for x in text.split())
        except ValueError:
            lo, hi = 32768, 60999  # the kernel's default
        return lo, hi

    def _published_slots(self) -> set[tuple[str, int]]:
        """``(proto, host port)`` of every dnat element in the kernel (any process, family, address)."""
        taken = {(key[1], key[2]) for key in self._keys}
        objs = self._ctx().list_table(render.FAMILY, render.TABLE, step="pick host port")
        for name, elems in render.listed_elements(objs or []).items():
            for e in elems:
                pe = render.parse_port_element(name, e)
                if pe is not None:
                    taken.add((pe.proto, pe.host_port))
        return taken

    def _bound(self, proto: str, family: int, host_ip: str | None, port: int) -> bool:
        """True if a socket of the host namespace holds ``port`` (a bind of our own there fails)."""
        kind = {"tcp": (socket.SOCK_STREAM, 0), "udp": (socket.SOCK_DGRAM, 0),
                "sctp": (socket.SOCK_STREAM, socket.IPPROTO_SCTP)}[proto]
        fam = socket.AF_INET if family == 4 else socket.AF_INET6
        try:
            with self.namespace.enter():
                sock = socket.socket(fam, kind[0], kind[1])
        except OSError:  # no SCTP in this kernel: nothing can hold an SCTP port
            return False
        with sock:
            if family == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((host_ip or ("0.0.0.0" if family == 4 else "::"), port))
            except OSError as exc:
                return exc.errno == errno.EADDRINUSE or host_ip is None
        return False

    def pick_host_ports(self, wants: Sequence[tuple[str, frozenset[int], str | None]], *,
                        avoid: Iterable[tuple[int, str, int]] = ()) -> list[int]:
        """One free host port per ``(proto, families, host_ip)`` in ``wants``, from the host's
        ephemeral range (:meth:`ephemeral_range`), lowest first as Docker's allocator does: never a
        port published in the kernel's dnat maps (by any process, of any family or address), nor
        one a socket of the host holds, nor one of ``avoid`` (``(family, proto, port)``), nor one
        picked earlier in the same call. Changes nothing: hold :meth:`locked` until the ports are
        published. ExhaustedError (naming the range) if none is free."""
        if not wants:
            return []
        with self._guard():
            lo, hi = self.ephemeral_range()
            taken = self._published_slots() | {(proto, port) for _f, proto, port in avoid}
            out: list[int] = []
            for proto, families, host_ip in wants:
                for port in range(lo, hi + 1):
                    if (proto, port) in taken:
                        continue
                    if any(self._bound(proto, f, host_ip, port) for f in sorted(families)):
                        continue
                    taken.add((proto, port))
                    out.append(port)
                    break
                else:
                    raise ExhaustedError(
                        f"no free host port for {proto} in the ephemeral range {lo}-{hi} "
                        "(net.ipv4.ip_local_port_range)", obj=f"{proto} port", namespace=self.namespace.label,
                        step="pick host port")
            return out

    def bindings(self) -> list[PortBinding]:
        """Every published port in the kernel's dnat maps, of every process (host address and port ->
        container address and port), read now. Changes nothing."""
        objs = self._ctx().list_table(render.FAMILY, render.TABLE, step="list published ports") or []
        out = []
        for name, elems in render.listed_elements(objs).items():
            for e in elems:
                pe = render.parse_port_element(name, e)
                if pe is not None and pe.host_ip != pe.container_ip:  # (not a gateway's DNS redirect)
                    out.append(PortBinding(pe.proto, pe.host_ip, pe.host_port, pe.container_ip, pe.container_port))
        return sorted(out, key=lambda b: (b.container_ip, b.container_port, b.proto, b.family, b.host_port))

    # -- inspection -------------------------------------------------------------------------------

    def describe(self, *, rules: bool = False) -> str:
        """A readable view of netns_kit's NAT and filter state, read back from the kernel.

        The equivalent of ``iptables -t nat -nL`` for what netns_kit installed (its own table only).
        ``rules=True`` appends the table as ``nft list table`` prints it.
        """
        ctx = self._ctx()
        objs = ctx.list_table(render.FAMILY, render.TABLE, step="describe firewall")
        head = f"netns_kit firewall in namespace {self.namespace.label!r}"
        if objs is None:
            return f"{head}: no table (nothing attached)"
        sets = render.listed_elements(objs)
        lines = [f"{head}: table {render.FAMILY} {render.TABLE}", "",
                 "Networks (chain forward, priority -10; accepted packets get mark "
                 f"{ACCEPT_MARK:#010x})",
                 f"  {'bridge':<16}{'icc':<6}{'internal':<10}subnets"]
        icc = {render.value_text(e).split(" . ")[0] for e in sets.get("icc", [])}
        internal = {render.value_text(e) for e in sets.get("internal", [])}
        for br in sorted(render.value_text(e) for e in sets.get("bridges", [])):
            pol = self._networks.get(br)
            subnets = ", ".join(map(str, pol.subnets)) if pol else "?"
            lines.append(f"  {br:<16}{'yes' if br in icc else 'no':<6}{'yes' if br in internal else 'no':<10}"
                         f"{subnets}")
        lines += ["", "Chain POSTROUTING (nat)", f"  {'target':<12}{'prot':<6}{'source':<28}destination"]
        lines.append(f"  {'MASQUERADE':<12}{'all':<6}{'127.0.0.0/8':<28}out: any attached bridge")
        for v in (4, 6):
            for e in sets.get(f"hairpin{v}", []):
                a = render.value_text(e).split(" . ")[0]
                lines.append(f"  {'MASQUERADE':<12}{'all':<6}{a:<28}{a} (to its own published port)")
            skip: dict[str, list[str]] = {}
            for e in sets.get(f"masq{v}_skip", []):
                net, br = render.value_text(e).split(" . ")
                skip.setdefault(net, []).append(br)
            for e in sets.get(f"masq{v}", []):
                net = render.value_text(e)
                out = "out: not " + ",".join(skip[net]) if net in skip else "out: any"
                lines.append(f"  {'MASQUERADE':<12}{'all':<6}{net:<28}{out}")
        lines += ["", "Chain DNAT (nat prerouting + output)",
                  f"  {'target':<12}{'prot':<6}{'host address':<28}{'dport':<8}to"]
        rows: list[tuple[str, str, int, str, int]] = []
        for v in (4, 6):
            anyaddr = "0.0.0.0/0" if v == 4 else "::/0"
            for name in (f"dnat{v}", f"dnat{v}_addr"):
                for e in sets.get(name, []):
                    pe = render.parse_port_element(name, e)
                    if pe is not None:
                        rows.append((pe.proto, pe.host_ip or anyaddr, pe.host_port, pe.container_ip,
                                     pe.container_port))
        for proto, addr, hport, ip, cport in sorted(rows, key=lambda r: (r[1], r[0], r[2])):
            to = f"[{ip}]:{cport}" if ":" in ip else f"{ip}:{cport}"
            lines.append(f"  {'DNAT':<12}{proto:<6}{addr:<28}{hport:<8}{to}")
        foreign = self.foreign_drop_policies()
        if foreign:
            lines += ["", "Warning: other tables drop forwarded packets netns_kit accepts; add "
                      f"'meta mark & {ACCEPT_MARK:#010x} == {ACCEPT_MARK:#010x} accept' to:"]
            lines += [f"  {d}" for d in foreign]
        if rules:
            text = ctx.table_text(render.FAMILY, render.TABLE, step="describe firewall") or ""
            lines += ["", text.rstrip()]
        return "\n".join(lines)



def ensure_table(ctx: _nft.NftContext, label: str) -> bool:
    """Create netns_kit's table with its fixed chains (True), or find it made already (False).

    A table of that name without netns_kit's comment raises OwnershipError. Undo: the table is
    deleted once no element is left in it.
    """
    # the comment must come with the creating command: a later "table ... { comment }" in the
    # same batch does not set it, and without it the next process would take the table for foreign
    script = (f'create table {render.FAMILY} {render.TABLE} {{ comment "{render.TABLE_COMMENT}"; }}\n'
              + render.skeleton_text())
    try:
        ctx.run_text(script, obj=f"table {render.FAMILY} {render.TABLE}", step="create firewall table")
    except AlreadyExistsError:
        # (libnftables 1.0.6 leaves a table's comment out of its JSON listing: read the text)
        text = ctx.table_text(render.FAMILY, render.TABLE, step="inspect existing table") or ""
        head = text.split("\n", 3)[:3]
        if f'comment "{render.TABLE_COMMENT}"' not in "\n".join(head):
            raise OwnershipError(
                f"table {render.FAMILY} {render.TABLE} exists but was not made by this version of netns_kit "
                "(its comment differs); delete it or leave netns_kit out", obj=render.TABLE,
                namespace=label, step="create firewall table") from None
        return False
    return True

def ensure_family6(ctx: _nft.NftContext) -> bool:
    """Add the IPv6 part of netns_kit's table, made by :func:`ensure_table` without it (True), or
    find it there already (False): one transaction that starts by creating the ``dnat6`` map, so
    that two processes never add it twice (see :func:`netns_kit._nft_render.skeleton6_text`).
    Undo: it goes with the table."""
    try:
        ctx.run_text(render.skeleton6_text(), obj=f"table {render.FAMILY} {render.TABLE}",
                     step="add IPv6 to firewall table")
    except AlreadyExistsError:
        return False
    return True


def delete_marked(ctx: _nft.NftContext, mark: str | None, keys: dict[str, list[Any]] | None, *,
                  step: str) -> int:
    """Delete the elements of netns_kit's table whose comment is ``mark`` (any netns_kit owner mark
    if None) and, with ``keys`` (set name -> element keys), only those keys. One batch; returns how
    many were deleted."""
    objs = ctx.list_table(render.FAMILY, render.TABLE, step=step)
    if objs is None:
        return 0
    wanted = None if keys is None else {
        name: {json.dumps(k, sort_keys=True) for k in ks} for name, ks in keys.items()}
    doomed: render.Elements = {}
    for o in objs:
        for kind in ("set", "map"):
            body = o.get(kind)
            if not body or (wanted is not None and body["name"] not in wanted):
                continue
            for elem in body.get("elem", []):
                key, comment = render.element_key(kind, elem)
                if comment is None or (comment != mark if mark is not None else not comment.startswith(
                        _state.MARK_PREFIX)):
                    continue
                if wanted is not None and json.dumps(key, sort_keys=True) not in wanted[body["name"]]:
                    continue
                doomed.setdefault(body["name"], []).append(key)
    if not doomed:
        return 0
    ctx.run_json(render.element_cmds("delete", doomed), obj=f"table {render.FAMILY} {render.TABLE}", step=step)
    return sum(len(v) for v in doomed.values())


def recover_change(label: str, mark: str, args: dict[str, Any]) -> str | None:
    """Crash recovery of one firewall change (a journal entry ``nft``), in the calling thread's namespace.

    Deletes the elements the change added (``args["keys"]``) that still carry ``mark``, and puts
    back each sysctl it changed (``args["sysctls"]``) whose value is still the one it wrote.
    """
    ctx = _nft.NftContext(None, label=label)
    n = delete_marked(ctx, mark, dict(args.get("keys") or {}), step="recover firewall change")
    restored = []
    for sc in args.get("sysctls") or []:
        now = _sys.write_sysctl(str(sc["path"]), str(sc["old"]), expect=str(sc["new"]))
        if now is not None and now == str(sc["new"]):
            restored.append(f"{sc['path']}={sc['old']}")
    if not n and not restored:
        return None
    return f"deleted {n} nft element(s) of table {args['family']} {args['table']}" + (
        f", restored {', '.join(restored)}" if restored else "")
