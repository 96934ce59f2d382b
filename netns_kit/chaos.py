"""Network partitions between endpoints or groups of endpoints, for distributed-system tests.

``Partition([a, b], [c])`` cuts every endpoint of one group off from every endpoint of the
others, in both directions, and :meth:`Partition.heal` puts it back. Endpoints are
:class:`~netns_kit.Namespace` objects or anything with a ``namespace`` attribute (an attachment
made by ``Network.connect``); their addresses are read when the partition is made (an
attachment's own addresses, or every global address of a namespace).

Kernel: inside each endpoint's namespace, one nftables table of its own
(``table inet netns_kit_part_<id>``) with a set of the other groups' addresses and two chains
(input and output hooks) that drop packets from and to them. One atomic nft batch per
namespace. Undo (``heal``): that table is deleted, by its unique name, in each namespace; no
other table is touched. Traffic between endpoints of the same group is never affected.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import _nft
from ._journal import intent
from .errors import NotFoundError, StateError, ValidationError
from .model import IPAddr
from .namespace import Namespace

__all__ = ["Partition", "endpoint_addresses"]

FAMILY = "inet"


def _namespace_of(endpoint: object) -> Namespace:
    if isinstance(endpoint, Namespace):
        return endpoint
    ns = getattr(endpoint, "namespace", None)
    if isinstance(ns, Namespace):
        return ns
    raise ValidationError(f"{endpoint!r} is not an endpoint (a Namespace or an object with a .namespace)",
                          obj=repr(endpoint), step="partition")


def endpoint_addresses(endpoint: object) -> list[IPAddr]:
    """The addresses an endpoint is reached at: an attachment's ``ips``, else the namespace's global ones."""
    ips = getattr(endpoint, "ips", None)
    if isinstance(ips, list) and ips:
        return [ipaddress.ip_address(str(ip)) for ip in ips]
    ns = _namespace_of(endpoint)
    return [a.interface.ip for a in ns.addresses()
            if not a.interface.ip.is_loopback and not a.interface.ip.is_link_local]


class Partition:
    """Endpoints in different groups cannot reach each other while the partition is in place.

    ``Partition(a, b)`` separates two endpoints; ``Partition([a, b], [c, d, e])`` separates
    groups (a and b still talk to each other). As a context manager it is made on enter and
    healed on exit; inside a :class:`~netns_kit.Transaction` a rollback heals it.
    """

    def __init__(self, *groups: object | Sequence[object]) -> None:
        if len(groups) < 2:
            raise ValidationError("a partition needs at least two groups of endpoints", step="partition")
        self.groups: list[list[object]] = []
        for g in groups:
            members = list(g) if isinstance(g, list | tuple) else [g]
            if not members:
                raise ValidationError("a partition group is empty", step="partition")
            self.groups.append(members)
        self.table = "netns_kit_part_" + secrets.token_hex(4)
        self._made: list[Namespace] = []
        self._healed = False

    @property
    def active(self) -> bool:
        return bool(self._made) and not self._healed

    def _plan(self) -> list[tuple[Namespace, list[IPAddr]]]:
        """For each namespace: the addresses of the other groups. Validates; changes nothing."""
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
        out = []
        for ident, ns in spaces.items():
            others = [ip for j, group_ips in enumerate(addrs) if j != owner[ident] for ip in group_ips]
            out.append((ns, sorted(set(others), key=lambda ip: (ip.version, int(ip)))))
        return out

    def _commands(self, peers: list[IPAddr]) -> list[dict[str, Any]]:
        t = {"family": FAMILY, "table": self.table}
        cmds: list[dict[str, Any]] = [{"add": {"table": {"family": FAMILY, "name": self.table}}}]
        for ver in (4, 6):
            name = f"peers{ver}"
            cmds.append({"add": {"set": {**t, "name": name, "type": f"ipv{ver}_addr"}}})
            elems = [str(ip) for ip in peers if ip.version == ver]
            if elems:
                cmds.append({"add": {"element": {**t, "name": name, "elem": elems}}})
        for chain, hook, field in (("input", "input", "saddr"), ("output", "output", "daddr")):
            cmds.append({"add": {"chain": {**t, "name": chain, "type": "filter", "hook": hook, "prio": -5,
                                           "policy": "accept"}}})
            for ver, proto in ((4, "ip"), (6, "ip6")):
                cmds.append({"add": {"rule": {**t, "chain": chain, "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": field}},
                               "right": f"@peers{ver}"}},
                    {"drop": None}]}}})
        return cmds

    def plan(self) -> list[tuple[str, list[str]]]:
        """(namespace, addresses it will stop talking to), without changing anything."""
        return [(ns.label, [str(ip) for ip in peers]) for ns, peers in self._plan()]

    def commands(self) -> list[str]:
        """The equivalent nft command lines (for reading; netns_kit sends JSON batches instead)."""
        lines = []
        for ns, peers in self._plan():
            pre = f"ip netns exec {ns.label} " if ns.name else ""
            v4 = ", ".join(str(ip) for ip in peers if ip.version == 4)
            v6 = ", ".join(str(ip) for ip in peers if ip.version == 6)
            lines.append(f"{pre}nft add table inet {self.table}")
            for ver, elems in ((4, v4), (6, v6)):
                body = f"type ipv{ver}_addr;" + (f" elements = {{ {elems} }};" if elems else "")
                lines.append(f"{pre}nft add set inet {self.table} peers{ver} '{{ {body} }}'")
            for chain, field in (("input", "saddr"), ("output", "daddr")):
                lines.append(f"{pre}nft add chain inet {self.table} {chain} "
                             f"'{{ type filter hook {chain} priority -5; policy accept; }}'")
                lines.append(f"{pre}nft add rule inet {self.table} {chain} ip {field} @peers4 drop")
                lines.append(f"{pre}nft add rule inet {self.table} {chain} ip6 {field} @peers6 drop")
        return lines

    def create(self) -> Partition:
        """Cut the groups off from each other (one nft batch per namespace). Undo: :meth:`heal`."""
        if self._made and not self._healed:
            raise StateError("partition is already in place", obj=self.table, step="partition")
        plan = self._plan()
        self._made = []
        self._healed = False
        with intent(f"heal partition {self.table}", self.heal):
            for ns, peers in plan:
                ctx = _nft.context_for(ns)
                self._made.append(ns)
                ctx.run_json(self._commands(peers), obj=f"table inet {self.table}", step="partition")
        return self

    def heal(self) -> None:
        """Delete the partition's table in every namespace it was put in. Idempotent."""
        if self._healed:
            return
        self._healed = True
        for ns in reversed(self._made):
            if not ns.exists:
                continue
            with contextlib.suppress(NotFoundError):
                _nft.context_for(ns).run_json([{"delete": {"table": {"family": FAMILY, "name": self.table}}}],
                                              obj=f"table inet {self.table}", step="heal partition")

    remove = heal

    def __enter__(self) -> Partition:
        self.create()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.heal()

    def __repr__(self) -> str:
        labels = [[_namespace_of(e).label for e in g] for g in self.groups]
        state = "active" if self.active else ("healed" if self._healed else "not made")
        return f"Partition({' | '.join(', '.join(g) for g in labels)}, {state})"
