"""Faults between endpoints, for distributed-system tests: partitions, packet loss, link flaps.

- :class:`Partition`: ``Partition([a, b], [c])`` cuts every endpoint of one group off from every
  endpoint of the others; ``one_way=True`` only from earlier groups to later ones (``a`` cannot
  send to ``c``, ``c`` can still send to ``a``); ``proto``/``ports`` narrow it to some traffic
  (``Partition(a, b, ports=[80])``: port 80 is cut, every other port still works).
- :class:`PacketLoss`: drop a random share of an endpoint's packets with nftables
  (``numgen random``), which needs no ``sch_netem`` (for delay, jitter, duplication, corruption,
  reordering and rate, see :class:`netns_kit.harness.NetworkEmulation`, where the kernel has netem).
- :class:`LinkFlap`: take an endpoint's interface down and up again on a schedule, from a
  background thread.

Endpoints are :class:`~netns_kit.Namespace` objects or anything with a ``namespace`` attribute
(an :class:`~netns_kit.Endpoint`, a :class:`~netns_kit.Connection`, an attachment); their
addresses are read when a partition is made (an attachment's own addresses, or every global
address of a namespace).

Kernel: a partition or a loss puts one nftables table of its own in each namespace it touches
(``table inet netns_kit_part_<id>`` / ``netns_kit_loss_<id>``, one atomic batch each), whose rules
carry the owner's mark as their comment; undo deletes that table by its unique name and touches no
other. A flap sets the link down and up (rtnetlink) and leaves it up when stopped. Each change is
written to the on-disk journal first: used as a context manager (or inside a
:class:`~netns_kit.Transaction` that never commits), :func:`~netns_kit.recover` undoes it after
the process was killed (deletes the tables, sets a flapped link up again).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal

from . import _nft, _state
from ._journal import EphemeralScope, intent
from ._netlink import RtnlSocket
from .errors import NotFoundError, StateError, ValidationError
from .model import IPAddr, validate_ifname
from .namespace import Namespace, journal_ref

__all__ = ["LinkFlap", "PacketLoss", "Partition", "endpoint_addresses"]

FAMILY = "inet"
_PROTOS = ("tcp", "udp")


def _namespace_of(endpoint: object, step: str = "partition") -> Namespace:
    if isinstance(endpoint, Namespace):
        return endpoint
    ns = getattr(endpoint, "namespace", None)
    if isinstance(ns, Namespace):
        return ns
    raise ValidationError(f"{endpoint!r} is not an endpoint (a Namespace or an object with a .namespace)",
                          obj=repr(endpoint), step=step)


def endpoint_addresses(endpoint: object) -> list[IPAddr]:
    """The addresses an endpoint is reached at: an attachment's ``ips``, else the namespace's global ones."""
    ips = getattr(endpoint, "ips", None)
    if isinstance(ips, list) and ips:
        return [ipaddress.ip_address(str(ip)) for ip in ips]
    ns = _namespace_of(endpoint)
    return [a.interface.ip for a in ns.addresses()
            if not a.interface.ip.is_loopback and not a.interface.ip.is_link_local]


def _ifname_of(endpoint: object) -> str:
    """An endpoint's own interface: a connection's ``ifname``, an Endpoint's first connection's, else eth0."""
    conns = getattr(endpoint, "connections", None)
    conn = conns[0] if isinstance(conns, list) and conns else endpoint
    name = getattr(conn, "ifname", None)
    return name if isinstance(name, str) else "eth0"


class _OwnedTables(EphemeralScope):
    """One nft table of this object's own in each of some namespaces; journaled, deleted by name."""

    table: str
    _made: list[Namespace]
    _removed: bool
    _step: str

    def _install(self, plan: list[tuple[Namespace, list[dict[str, Any]]]]) -> None:
        """Make the table in each namespace (one batch each). Validated before: the plan is built."""
        self._made = []
        self._removed = False
        obj = f"table {FAMILY} {self.table}"
        for ns, cmds in plan:
            ctx = _nft.context_for(ns)
            with intent(f"delete {obj} in {ns.label}", lambda ns=ns: self._delete_in(ns),  # type: ignore[misc]
                        durable=("nft_table", {"ns": journal_ref(ns), "family": FAMILY, "table": self.table})):
                self._made.append(ns)
                ctx.run_json(cmds, obj=obj, step=self._step)

    def _delete_in(self, ns: Namespace) -> None:
        if not ns.exists:
            return
        with contextlib.suppress(NotFoundError):
            _nft.context_for(ns).run_json([{"delete": {"table": {"family": FAMILY, "name": self.table}}}],
                                          obj=f"table {FAMILY} {self.table}", step=f"undo {self._step}")

    def _remove_tables(self) -> None:
        if self._removed:
            return
        self._removed = True
        for ns in reversed(self._made):
            self._delete_in(ns)

    def _table_cmd(self) -> dict[str, Any]:
        return {"add": {"table": {"family": FAMILY, "name": self.table}}}

    def _rule(self, chain: str, expr: list[dict[str, Any]]) -> dict[str, Any]:
        return {"add": {"rule": {"family": FAMILY, "table": self.table, "chain": chain, "expr": expr,
                                 "comment": _state.mark()}}}

    def _chain(self, name: str, hook: str) -> dict[str, Any]:
        return {"add": {"chain": {"family": FAMILY, "table": self.table, "name": name, "type": "filter",
                                  "hook": hook, "prio": -5, "policy": "accept"}}}


def _match(left: dict[str, Any], right: object, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


class Partition(_OwnedTables):
    """Endpoints in different groups cannot reach each other while the partition is in place.

    ``Partition(a, b)`` separates two endpoints; ``Partition([a, b], [c, d, e])`` separates
    groups (a and b still talk to each other). ``one_way=True``: only packets from a group to a
    later one are dropped (from ``a`` to ``b``; ``b`` to ``a`` still passes, though TCP then fails
    both ways, as its handshake needs both). ``proto`` (``"tcp"`` or ``"udp"``) and ``ports``
    (destination ports; TCP and UDP unless ``proto`` says which) limit what is cut.
    As a context manager it is made on enter and healed on exit; inside a
    :class:`~netns_kit.Transaction` a rollback heals it.
    """

    _step = "partition"

    def __init__(self, *groups: object | Sequence[object], one_way: bool = False,
                 proto: Literal["tcp", "udp"] | None = None, ports: Sequence[int] = ()) -> None:
        if len(groups) < 2:
            raise ValidationError("a partition needs at least two groups of endpoints", step="partition")
        self.groups: list[list[object]] = []
        for g in groups:
            members = list(g) if isinstance(g, list | tuple) else [g]
            if not members:
                raise ValidationError("a partition group is empty", step="partition")
            self.groups.append(members)
        if not isinstance(one_way, bool):
            raise ValidationError(f"one_way {one_way!r} must be True or False", obj=repr(one_way), step="partition")
        if proto is not None and proto not in _PROTOS:
            raise ValidationError(f"proto {proto!r} must be 'tcp', 'udp' or None", obj=repr(proto), step="partition")
        if isinstance(ports, str | bytes) or not all(
                isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports):
            raise ValidationError(f"ports {ports!r} must be port numbers from 1 to 65535", obj=repr(ports),
                                  step="partition")
        self.one_way = one_way
        self.proto = proto
        self.ports = tuple(sorted(set(ports)))
        self.table = "netns_kit_part_" + secrets.token_hex(4)
        self._made = []
        self._removed = False

    @property
    def active(self) -> bool:
        return bool(self._made) and not self._removed

    @property
    def _healed(self) -> bool:
        return self._removed

    def _plan(self) -> list[tuple[Namespace, list[IPAddr], list[IPAddr]]]:
        """For each namespace: the addresses it may not send to and may not receive from."""
        owner: dict[tuple[int, int], int] = {}
        spaces: dict[tuple[int, int], Namespace] = {}
        addrs: list[list[IPAddr]] = []
        for i, group in enumerate(self.groups):
            mine: list[IPAddr] = []
            for ep in group:
                ns = _namespace_of(ep)
                if owner.setdefault(ns.identity, i) != i:
                    raise ValidationError(f"namespace {ns.label!r} is in two groups of the partition: endpoints "
                                          "that share a namespace cannot be separated", obj=ns.label,
                                          step="partition")
                spaces[ns.identity] = ns
                mine.extend(endpoint_addresses(ep))
            addrs.append(mine)

        def of(groups: Callable[[int], bool]) -> list[IPAddr]:
            found = {ip for j, ips in enumerate(addrs) if groups(j) for ip in ips}
            return sorted(found, key=lambda ip: (ip.version, int(ip)))

        out = []
        for ident, ns in spaces.items():
            i = owner[ident]
            if self.one_way:
                out.append((ns, of(lambda j, i=i: j > i), of(lambda j, i=i: j < i)))  # type: ignore[misc]
            else:
                both = of(lambda j, i=i: j != i)  # type: ignore[misc]
                out.append((ns, both, both))
        return out

    def _filter(self) -> list[dict[str, Any]]:
        expr: list[dict[str, Any]] = []
        if self.proto is not None or self.ports:
            protos = [self.proto] if self.proto else list(_PROTOS)
            expr.append(_match({"meta": {"key": "l4proto"}}, protos[0] if len(protos) == 1 else {"set": protos}))
        if self.ports:
            expr.append(_match({"payload": {"protocol": "th", "field": "dport"}},
                               self.ports[0] if len(self.ports) == 1 else {"set": list(self.ports)}))
        return expr

    def _commands(self, to: list[IPAddr], frm: list[IPAddr]) -> list[dict[str, Any]]:
        t = {"family": FAMILY, "table": self.table}
        cmds: list[dict[str, Any]] = [self._table_cmd()]
        for chain, hook, field, peers in (("input", "input", "saddr", frm), ("output", "output", "daddr", to)):
            if not peers:
                continue
            cmds.append(self._chain(chain, hook))
            for ver, proto in ((4, "ip"), (6, "ip6")):
                name = f"{chain}{ver}"
                elems = [str(ip) for ip in peers if ip.version == ver]
                if not elems:
                    continue
                cmds.append({"add": {"set": {**t, "name": name, "type": f"ipv{ver}_addr"}}})
                cmds.append({"add": {"element": {**t, "name": name, "elem": elems}}})
                cmds.append(self._rule(chain, [_match({"payload": {"protocol": proto, "field": field}}, f"@{name}"),
                                               *self._filter(), {"drop": None}]))
        return cmds

    def plan(self) -> list[tuple[str, list[str]]]:
        """(namespace, addresses it will stop talking to, in either direction), without changing anything."""
        return [(ns.label, [str(ip) for ip in sorted(set(to) | set(frm), key=lambda ip: (ip.version, int(ip)))])
                for ns, to, frm in self._plan()]

    def commands(self) -> list[str]:
        """The equivalent nft command lines (for reading; netns_kit sends JSON batches instead)."""
        what = ""
        if self.proto is not None or self.ports:
            protos = [self.proto] if self.proto else list(_PROTOS)
            what = f"meta l4proto {protos[0] if len(protos) == 1 else '{ ' + ', '.join(protos) + ' }'} "
        if self.ports:
            ports = ", ".join(map(str, self.ports))
            what += f"th dport {ports if len(self.ports) == 1 else '{ ' + ports + ' }'} "
        lines = []
        for ns, to, frm in self._plan():
            pre = f"ip netns exec {ns.label} " if ns.name else ""
            lines.append(f"{pre}nft add table inet {self.table}")
            for chain, field, peers in (("input", "saddr", frm), ("output", "daddr", to)):
                if not peers:
                    continue
                lines.append(f"{pre}nft add chain inet {self.table} {chain} "
                             f"'{{ type filter hook {chain} priority -5; policy accept; }}'")
                for ver, proto in ((4, "ip"), (6, "ip6")):
                    elems = ", ".join(str(ip) for ip in peers if ip.version == ver)
                    if elems:
                        lines.append(f"{pre}nft add set inet {self.table} {chain}{ver} "
                                     f"'{{ type ipv{ver}_addr; elements = {{ {elems} }}; }}'")
                        lines.append(f"{pre}nft add rule inet {self.table} {chain} {proto} {field} @{chain}{ver} "
                                     f"{what}drop")
        return lines

    def create(self) -> Partition:
        """Cut the groups off from each other (one nft batch per namespace). Undo: :meth:`heal`."""
        if self.active:
            raise StateError("partition is already in place", obj=self.table, step="partition")
        plan = [(ns, self._commands(to, frm)) for ns, to, frm in self._plan()]
        self._install(plan)
        return self

    def heal(self) -> None:
        """Delete the partition's table in every namespace it was put in. Idempotent."""
        self._remove_tables()

    remove = heal

    def __enter__(self) -> Partition:
        self._enter_ephemeral(self.create)  # ephemeral: recover() heals it after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.heal()
        self._settle_ephemeral()

    def __repr__(self) -> str:
        labels = [[_namespace_of(e).label for e in g] for g in self.groups]
        state = "active" if self.active else ("healed" if self._removed else "not made")
        sep = " -> " if self.one_way else " | "
        extra = (f", proto={self.proto}" if self.proto else "") + (f", ports={list(self.ports)}" if self.ports else "")
        return f"Partition({sep.join(', '.join(g) for g in labels)}{extra}, {state})"


class PacketLoss(_OwnedTables):
    """Drop ``percent`` % of an endpoint's packets at random, without netem.

    ``direction``: ``"egress"`` (what the endpoint sends), ``"ingress"`` (what it receives) or
    ``"both"``. ``ifname``: only that interface of the endpoint's namespace (default: every
    interface but ``lo``). ``percent`` from 0.01 to 100, in steps of 0.01.

    Kernel: ``table inet netns_kit_loss_<id>`` in the endpoint's namespace, with a prerouting
    and/or postrouting chain holding ``numgen random mod 10000 < N drop``. Undo: the table is
    deleted. As a context manager it is made on enter and removed on exit.
    """

    _step = "packet loss"

    def __init__(self, endpoint: object, percent: float, *, ifname: str | None = None,
                 direction: Literal["ingress", "egress", "both"] = "both") -> None:
        self.namespace = _namespace_of(endpoint, "packet loss")
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0.01 <= percent <= 100 \
                or math.isnan(percent):
            raise ValidationError(f"percent {percent!r} must be a number from 0.01 to 100", obj=repr(percent),
                                  step="packet loss")
        if direction not in ("ingress", "egress", "both"):
            raise ValidationError(f"direction {direction!r} must be 'ingress', 'egress' or 'both'",
                                  obj=repr(direction), step="packet loss")
        self.percent = float(percent)
        self.ifname = validate_ifname(ifname) if ifname is not None else None
        self.direction = direction
        self.table = "netns_kit_loss_" + secrets.token_hex(4)
        self._made = []
        self._removed = False

    @property
    def active(self) -> bool:
        return bool(self._made) and not self._removed

    def _hooks(self) -> list[tuple[str, str]]:
        """(hook, interface key) of each chain."""
        out = []
        if self.direction in ("ingress", "both"):
            out.append(("prerouting", "iifname"))
        if self.direction in ("egress", "both"):
            out.append(("postrouting", "oifname"))
        return out

    def _commands(self) -> list[dict[str, Any]]:
        threshold = round(self.percent * 100)
        cmds = [self._table_cmd()]
        for hook, key in self._hooks():
            cmds.append(self._chain(hook, hook))
            iface = (_match({"meta": {"key": key}}, self.ifname) if self.ifname is not None
                     else _match({"meta": {"key": key}}, "lo", "!="))
            chance = [] if threshold >= 10000 else [  # 100 %: every packet
                _match({"numgen": {"mode": "random", "mod": 10000, "offset": 0}}, threshold, "<")]
            cmds.append(self._rule(hook, [iface, *chance, {"drop": None}]))
        return cmds

    def commands(self) -> list[str]:
        """The equivalent nft command lines (for reading; netns_kit sends one JSON batch instead)."""
        pre = f"ip netns exec {self.namespace.label} " if self.namespace.name else ""
        lines = [f"{pre}nft add table inet {self.table}"]
        for hook, key in self._hooks():
            iface = f'{key} "{self.ifname}"' if self.ifname is not None else f'{key} != "lo"'
            lines.append(f"{pre}nft add chain inet {self.table} {hook} "
                         f"'{{ type filter hook {hook} priority -5; policy accept; }}'")
            threshold = round(self.percent * 100)
            chance = f"numgen random mod 10000 < {threshold} " if threshold < 10000 else ""
            lines.append(f"{pre}nft add rule inet {self.table} {hook} {iface} {chance}drop")
        return lines

    def create(self) -> PacketLoss:
        """Start dropping (one nft batch). Undo: :meth:`remove`."""
        if self.active:
            raise StateError("packet loss is already in place", obj=self.table, namespace=self.namespace.label,
                             step="packet loss")
        if self.ifname is not None:
            self.namespace.link(self.ifname)  # NotFoundError before any change
        self._install([(self.namespace, self._commands())])
        return self

    def remove(self) -> None:
        """Delete the table: no more loss. Idempotent."""
        self._remove_tables()

    def __enter__(self) -> PacketLoss:
        self._enter_ephemeral(self.create)  # ephemeral: recover() removes it after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
        self._settle_ephemeral()

    def __repr__(self) -> str:
        on = f" on {self.ifname}" if self.ifname else ""
        state = "active" if self.active else ("removed" if self._removed else "not made")
        return f"PacketLoss({self.namespace.label}{on}, {self.percent:g}%, {self.direction}, {state})"


class LinkFlap(EphemeralScope):
    """Take an endpoint's interface down for ``down`` seconds, then up for ``up`` seconds, ``count``
    times (``None``: until stopped), from a background thread.

    ``ifname``: default the endpoint's own interface (a connection's, else ``eth0``).
    ``on_change(up)`` is called from that thread after each change. :attr:`changes` lists them
    as ``(time.monotonic(), up)``. :meth:`stop` (``__exit__``) ends the schedule and sets the
    link up again if it was up before; :meth:`wait` waits for a finite schedule to end.

    Kernel: rtnetlink link set down/up on the interface (an rtnetlink socket of the flap's own,
    opened in the namespace). Undo: the link is set up; the journal records it, so
    :func:`~netns_kit.recover` sets it up if the process dies mid-flap.
    """

    def __init__(self, endpoint: object, ifname: str | None = None, *, down: float = 1.0, up: float = 1.0,
                 count: int | None = None, on_change: Callable[[bool], object] | None = None) -> None:
        self.namespace = _namespace_of(endpoint, "link flap")
        self.ifname = validate_ifname(ifname if ifname is not None else _ifname_of(endpoint))
        for what, value in (("down", down), ("up", up)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
                raise ValidationError(f"{what} {value!r} must be seconds, more than 0 and at most 3600",
                                      obj=repr(value), step="link flap")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValidationError(f"count {count!r} must be a positive integer or None", obj=repr(count),
                                  step="link flap")
        if on_change is not None and not callable(on_change):
            raise ValidationError("on_change must be callable", obj=repr(on_change), step="link flap")
        self.down, self.up, self.count = float(down), float(up), count
        self.on_change = on_change
        self.changes: list[tuple[float, bool]] = []
        self.error: BaseException | None = None
        """What ended the schedule early (a kernel error in the thread), if anything."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: RtnlSocket | None = None
        self._index = 0
        self._was_up = True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set(self, up: bool) -> None:
        assert self._sock is not None
        self._sock.set_link(self._index, up=up, obj=self.ifname)
        self.changes.append((time.monotonic(), up))
        if self.on_change is not None:
            self.on_change(up)

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set() and (self.count is None or n < self.count):
                self._set(False)
                if self._stop.wait(self.down):
                    break
                self._set(True)
                n += 1
                if (self.count is None or n < self.count) and self._stop.wait(self.up):
                    break
        except BaseException as exc:  # kept for stop() and the caller
            self.error = exc

    def start(self) -> LinkFlap:
        """Start the schedule (the first change, down, happens at once). Undo: :meth:`stop`."""
        if self._thread is not None:
            raise StateError("the flap was already started", obj=self.ifname, namespace=self.namespace.label,
                             step="link flap")
        link = self.namespace.link(self.ifname)
        self._index, self._was_up = link.index, link.up
        with self.namespace.enter():
            self._sock = RtnlSocket.open(None, label=self.namespace.label)
        with intent(f"set {self.ifname} up in {self.namespace.label}", self._restore,
                    durable=("link_up", {"ns": journal_ref(self.namespace), "index": link.index,
                                         "ifname": self.ifname})):
            self._thread = threading.Thread(target=self._run, name=f"netns-kit-flap-{self.ifname}", daemon=True)
            self._thread.start()
        return self

    create = start

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a finite schedule to end; True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _restore(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if self._was_up and self.namespace.exists:
                current = sock.get_link(index=self._index)
                if current is not None and current.name == self.ifname and not current.up:
                    self._set_restored(sock)
        finally:
            sock.close()

    def _set_restored(self, sock: RtnlSocket) -> None:
        sock.set_link(self._index, up=True, obj=self.ifname)
        self.changes.append((time.monotonic(), True))

    def stop(self) -> None:
        """End the schedule and set the link up again (if it was up before). Idempotent."""
        self._restore()

    remove = stop

    def __enter__(self) -> LinkFlap:
        self._enter_ephemeral(self.start)  # ephemeral: recover() sets the link up after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._settle_ephemeral()

    def __repr__(self) -> str:
        times = "until stopped" if self.count is None else f"{self.count} times"
        state = "running" if self.running else "stopped"
        return (f"LinkFlap({self.namespace.label}:{self.ifname}, down {self.down:g}s / up {self.up:g}s {times}, "
                f"{state}, {len(self.changes)} changes)")
