"""Teaching views: a topology as typed data, an HTML table and a Graphviz diagram. Pure: no kernel.

:func:`netns_kit._inspection.observe` reads what is really there (namespaces, their interfaces,
addresses and routes, which veth end is paired with which, bridge ports, published ports) into a
:class:`TopologyView`; :meth:`netns_kit.Namespace.view` reads one namespace into a
:class:`NamespaceView`. A planned :class:`~netns_kit.topology.Topology` produces the same view
before anything exists. Rendering is pure (no root): :meth:`TopologyView.to_html` (what Jupyter shows through
``_repr_html_``), :meth:`TopologyView.to_dot` (Graphviz source) and :meth:`TopologyView.diagram`
(a ``graphviz.Graph`` that Jupyter draws as SVG; needs the ``graphviz`` Python package, and
Graphviz's ``dot`` program to render).

The diagram follows the traffic, left to right, one rank each: published ports (subgraph
``rank_outside``), the host's routing and NAT (``rank_host``), its bridges (``rank_bridges``) and
the host ends of veth pairs (``rank_veths``, all three inside ``cluster_host``), then one cluster
per namespace (``cluster_ns_N``). Above ``max_namespaces`` namespaces, those on one bridge are one
``group_N`` node (and their host ends one ``group_N_ends`` node).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import NetnsKitError, UnsupportedError, ValidationError
from .model import LinkInfo

__all__ = [
    "InterfaceView",
    "NamespaceView",
    "PortView",
    "TopologyView",
    "VethLink",
    "namespace_html",
    "pair_veths",
    "port_target",
    "route_text",
]


@dataclass(frozen=True)
class InterfaceView:
    """One interface: its name, kind (``bridge``, ``veth``, ``macvlan``, None for ``lo``...), addresses."""

    name: str
    kind: str | None = None
    addresses: tuple[str, ...] = ()
    master: str | None = None
    up: bool = True
    mtu: int | None = None
    mac: str | None = None


@dataclass(frozen=True)
class NamespaceView:
    """One namespace: its label, interfaces and routes (as ``ip route`` would print them)."""

    label: str
    interfaces: tuple[InterfaceView, ...] = ()
    routes: tuple[str, ...] = ()
    is_host: bool = False
    kind: str | None = None  # a Namespace's kind (named, pid, path, current), if known


@dataclass(frozen=True)
class VethLink:
    """The two ends of one veth pair: (namespace label, interface name) each."""

    a: tuple[str, str]
    b: tuple[str, str]


@dataclass(frozen=True)
class PortView:
    """A published port: ``spec`` as Docker writes it and where it leads."""

    spec: str
    target: str


@dataclass(frozen=True)
class TopologyView:
    """Namespaces, veth pairs and published ports, ready to be shown."""

    title: str
    namespaces: tuple[NamespaceView, ...] = ()
    veths: tuple[VethLink, ...] = ()
    ports: tuple[PortView, ...] = ()
    notes: tuple[str, ...] = field(default=())

    # -- HTML ----------------------------------------------------------------------------------

    def to_html(self) -> str:
        """One HTML table: a row per interface (namespace, interface, kind, state, addresses, peer)."""
        peers: dict[tuple[str, str], tuple[str, str]] = {}
        for v in self.veths:
            peers[v.a] = v.b
            peers[v.b] = v.a
        rows = []
        for ns in self.namespaces:
            ifaces = [i for i in ns.interfaces if i.name != "lo" or len(ns.interfaces) == 1]
            for n, iface in enumerate(ifaces):
                peer = peers.get((ns.label, iface.name))
                cells = [
                    f'<td rowspan="{len(ifaces)}"><b>{_e(ns.label)}</b></td>' if n == 0 else "",
                    f"<td><code>{_e(iface.name)}</code></td>",
                    f"<td>{_e(iface.kind or '')}</td>",
                    f"<td>{'up' if iface.up else 'down'}</td>",
                    f"<td>{'<br>'.join(_e(a) for a in iface.addresses)}</td>",
                    f"<td>{_e(iface.master or '')}</td>",
                    f"<td>{_e(f'{peer[1]} in {peer[0]}') if peer else ''}</td>",
                ]
                rows.append("<tr>" + "".join(cells) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("namespace", "interface", "kind", "state", "addresses",
                                                  "bridge", "veth peer"))
        out = [f"<div><b>{_e(self.title)}</b>",
               f'<table class="netns-kit"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>']
        if self.ports:
            prow = "".join(f"<tr><td><code>{_e(p.spec)}</code></td><td>{_e(p.target)}</td></tr>" for p in self.ports)
            out.append(f"<table><thead><tr><th>published port</th><th>leads to</th></tr></thead>"
                       f"<tbody>{prow}</tbody></table>")
        out.extend(f"<p>{_e(n)}</p>" for n in self.notes)
        out.append("</div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        lines = [self.title]
        for ns in self.namespaces:
            lines.append(f"  {ns.label}")
            for i in ns.interfaces:
                extra = f" master {i.master}" if i.master else ""
                lines.append(f"    {i.name} ({i.kind or 'loopback'}){extra} {' '.join(i.addresses)}".rstrip())
        for p in self.ports:
            lines.append(f"  publish {p.spec} -> {p.target}")
        return "\n".join(lines)

    # -- Graphviz --------------------------------------------------------------------------------

    def _build(self, graph: Any, max_namespaces: int) -> Any:
        """Lay the diagram out as traffic flows, left to right, one rank each: published ports (from
        outside), the host, its bridges, the host ends of veth pairs, then the namespaces. Every
        edge joins neighbouring ranks, so a star (one bridge, N namespaces) has no crossings.
        More than ``max_namespaces`` namespaces collapse into one group per bridge."""
        graph.attr(rankdir="LR", fontname="Helvetica", nodesep="0.25", ranksep="0.6", newrank="true")
        graph.attr("node", fontname="Helvetica", fontsize="10")
        graph.attr("edge", fontname="Helvetica", fontsize="9", arrowhead="none")
        d = _Layout.of(self, max_namespaces)
        if d.ports:
            with graph.subgraph(name="rank_outside") as sub:
                sub.attr(rank="same")
                for nid, label in d.ports:
                    sub.node(nid, label=label, shape="cds", style="filled", fillcolor="palegreen")
        with graph.subgraph(name="cluster_host") as host:
            host.attr(label=d.host_label, style="rounded", color="gray40")
            for rank, nodes in (("rank_host", d.host), ("rank_bridges", d.bridges), ("rank_veths", d.host_ends)):
                if not nodes:
                    continue
                with host.subgraph(name=rank) as sub:
                    sub.attr(rank="same")
                    for nid, label, kind in nodes:
                        sub.node(nid, label=label, **_NODE_STYLE[kind])
        for n, (label, nodes) in enumerate(d.spaces):
            with graph.subgraph(name=f"cluster_ns_{n}") as sub:
                sub.attr(label=label, style="rounded", color="steelblue")
                for nid, text, kind in nodes:
                    sub.node(nid, label=text, **_NODE_STYLE[kind])
        for a, b, attrs in d.edges:
            graph.edge(a, b, **attrs)
        return graph

    def diagram(self, *, max_namespaces: int = 24) -> Any:
        """A ``graphviz.Graph`` (Jupyter draws it as SVG), laid out as traffic flows (see the
        module docstring). Above ``max_namespaces`` namespaces, those on one bridge are drawn
        as one group. UnsupportedError without the graphviz package."""
        if isinstance(max_namespaces, bool) or not isinstance(max_namespaces, int) or max_namespaces < 1:
            raise ValidationError(f"max_namespaces {max_namespaces!r} must be a positive integer",
                                  obj=repr(max_namespaces), step="diagram")
        try:
            import graphviz  # type: ignore[import-untyped, import-not-found, unused-ignore]
        except ImportError as exc:
            raise UnsupportedError("diagrams need the graphviz Python package (pip install 'netns-kit[jupyter]') "
                                   "and Graphviz's dot program", step="diagram") from exc
        return self._build(graphviz.Graph(name=re.sub(r"\W", "_", self.title) or "topology"), max_namespaces)

    def to_dot(self, *, max_namespaces: int = 24) -> str:
        """The diagram's Graphviz source (needs the graphviz Python package, not the dot program)."""
        return str(self.diagram(max_namespaces=max_namespaces).source)

    def to_svg(self, *, max_namespaces: int = 24) -> str:
        """The diagram rendered as SVG (needs Graphviz's ``dot`` program)."""
        graph = self.diagram(max_namespaces=max_namespaces)
        try:
            return str(graph.pipe(format="svg").decode("utf-8"))
        except Exception as exc:  # graphviz.ExecutableNotFound and friends
            raise UnsupportedError(f"rendering the diagram failed: {exc} (is Graphviz's dot installed?)",
                                   step="diagram") from exc


_NODE_STYLE: dict[str, dict[str, str]] = {
    "host": {"shape": "box", "style": "rounded,filled", "fillcolor": "gray92"},
    "bridge": {"shape": "box3d", "style": "filled", "fillcolor": "lightyellow"},
    "veth": {"shape": "box", "style": "filled", "fillcolor": "white"},
    "group": {"shape": "folder", "style": "filled", "fillcolor": "aliceblue"},
    "lo": {"shape": "plaintext"},
}


@dataclass
class _Layout:
    """What the diagram shows, rank by rank (node id, label, style), and its edges. Pure data."""

    host_label: str = "host"
    ports: list[tuple[str, str]] = field(default_factory=list)
    host: list[tuple[str, str, str]] = field(default_factory=list)
    bridges: list[tuple[str, str, str]] = field(default_factory=list)
    host_ends: list[tuple[str, str, str]] = field(default_factory=list)
    spaces: list[tuple[str, list[tuple[str, str, str]]]] = field(default_factory=list)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @classmethod
    def of(cls, view: TopologyView, max_namespaces: int) -> _Layout:
        d = cls()
        host = next((ns for ns in view.namespaces if ns.is_host), NamespaceView("host", is_host=True))
        others = [ns for ns in view.namespaces if not ns.is_host]
        d.host_label = host.label if host.label == "host" else f"{host.label} (host)"
        peer: dict[tuple[str, str], tuple[str, str]] = {}
        for v in view.veths:
            peer[v.a], peer[v.b] = v.b, v.a
        bridges = [i for i in host.interfaces if i.kind == "bridge"]
        names = {b.name for b in bridges}
        ends = [i for i in host.interfaces
                if (host.label, i.name) in peer or (i.master in names and i.kind != "bridge")]
        own = [i for i in host.interfaces if i not in bridges and i not in ends and i.name != "lo"]
        hid = _node_id(host.label, "")
        d.host.append((hid, r"\n".join(["routing, NAT", *(f"{i.name} {' '.join(i.addresses)}".strip()
                                                           for i in own)]), "host"))
        for k, p in enumerate(view.ports[:8] if len(others) <= max_namespaces else []):
            d.ports.append((f"port_{k}", rf"{p.spec}\n→ {p.target}"))
        if view.ports and not d.ports:
            d.ports.append(("port_0", rf"{len(view.ports)} published ports\n{view.ports[0].spec} …"))
        elif len(view.ports) > len(d.ports):
            d.ports.append((f"port_{len(d.ports)}", f"… {len(view.ports) - len(d.ports)} more published ports"))
        for nid, _label in d.ports:
            d.edges.append((nid, hid, {"label": "DNAT" if nid == "port_0" else "", "style": "dotted"}))
        for b in bridges:
            d.bridges.append((_node_id(host.label, b.name), r"\n".join([b.name, *b.addresses]), "bridge"))
            d.edges.append((hid, _node_id(host.label, b.name), {}))
        if len(others) > max_namespaces:
            d._groups(host, others, ends, peer)
            return d
        for i in ends:
            nid = _node_id(host.label, i.name)
            d.host_ends.append((nid, r"\n".join([i.name, *i.addresses]), "veth"))
            if i.master in names:
                d.edges.append((_node_id(host.label, i.master), nid, {"style": "dashed", "label": "port"}))
            else:
                d.edges.append((hid, nid, {"minlen": "2"}))
        for ns in others:
            shown = [i for i in ns.interfaces if i.name != "lo"] or list(ns.interfaces[:1]) or [InterfaceView("lo")]
            nodes = [(_node_id(ns.label, i.name), r"\n".join([i.name, *i.addresses]), "lo" if i.name == "lo" else
                      "veth") for i in shown]
            d.spaces.append((ns.label, nodes))
            for i in shown:  # an interface not paired with the host stays in the namespaces' rank
                if peer.get((ns.label, i.name), (host.label,))[0] != host.label:
                    d.edges.append((hid, _node_id(ns.label, i.name), {"style": "invis", "minlen": "3"}))
        for v in view.veths:
            near, far = (v.b, v.a) if v.b[0] == host.label else (v.a, v.b)  # drawn from the host outwards
            between = host.label not in (v.a[0], v.b[0])  # two namespaces: drawn within their rank
            d.edges.append((_node_id(*near), _node_id(*far), {"penwidth": "2", "constraint": "false"} if between
                            else {"label": "veth", "penwidth": "2"}))
        return d

    def _groups(self, host: NamespaceView, others: list[NamespaceView], ends: list[InterfaceView],
                peer: dict[tuple[str, str], tuple[str, str]]) -> None:
        """One group of namespaces (and one of host ends) per bridge; the rest in one more group."""
        master = {i.name: i.master for i in ends}
        by_bridge: dict[str, list[NamespaceView]] = {}
        for ns in others:
            key = next((m for i in ns.interfaces if (p := peer.get((ns.label, i.name))) and p[0] == host.label
                        and (m := master.get(p[1]))), "")
            by_bridge.setdefault(key, []).append(ns)
        hid = _node_id(host.label, "")
        for n, (bridge, members) in enumerate(sorted(by_bridge.items(), key=lambda kv: kv[0] == "")):
            first, last = members[0], members[-1]
            addrs = [a for a in (next((i.addresses[0] for i in ns.interfaces if i.addresses), None)
                                 for ns in (first, last)) if a]
            names = first.label if len(members) == 1 else f"{first.label} … {last.label}"
            gid = f"group_{n}"
            text = r"\n".join([f"{len(members)} namespaces", names, " … ".join(dict.fromkeys(addrs))])
            self.spaces.append((f"{len(members)} namespaces" + (f" on {bridge}" if bridge else ""),
                                [(gid, text, "group")]))
            if bridge:
                eid = f"group_{n}_ends"
                self.host_ends.append((eid, f"{len(members)} host ends", "group"))
                self.edges.append((_node_id(host.label, bridge), eid, {"style": "dashed", "label": "ports"}))
                self.edges.append((eid, gid, {"label": f"{len(members)} veth pairs", "penwidth": "2"}))
            else:
                self.edges.append((hid, gid, {"style": "invis", "minlen": "3"}))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _node_id(ns: str, ifname: str) -> str:
    return f"{ns}/{ifname}"


# -- reading the kernel ---------------------------------------------------------------------------


def route_text(r: Any) -> str:
    """A route as ``ip route`` prints it (``default via 10.0.0.1 dev eth0``)."""
    dst = "default" if r.dst.prefixlen == 0 else str(r.dst)
    via = f" via {r.gateway}" if r.gateway is not None else ""
    dev = f" dev {r.ifname}" if r.ifname else ""
    return f"{dst}{via}{dev}"


class _Viewable(Protocol):
    label: str

    def view(self) -> NamespaceView: ...


def namespace_html(ns: NamespaceView | _Viewable) -> str:
    """The HTML table Jupyter shows for a :class:`~netns_kit.Namespace` (or its :class:`NamespaceView`)."""
    if isinstance(ns, NamespaceView):
        view = ns
    else:
        try:
            view = ns.view()
        except NetnsKitError as exc:
            return f"<div><b>{_e(ns.label)}</b>: {_e(exc)}</div>"
    rows = "".join(
        f"<tr><td><code>{_e(i.name)}</code></td><td>{_e(i.kind or '')}</td><td>{'up' if i.up else 'down'}</td>"
        f"<td>{i.mtu}</td><td>{_e(i.mac or '')}</td><td>{'<br>'.join(_e(a) for a in i.addresses)}</td>"
        f"<td>{_e(i.master or '')}</td></tr>" for i in view.interfaces)
    routes = "".join(f"<li><code>{_e(r)}</code></li>" for r in view.routes)
    head = "".join(f"<th>{h}</th>" for h in ("interface", "kind", "state", "mtu", "mac", "addresses", "bridge"))
    return (f"<div><b>Namespace {_e(view.label)}</b> ({_e(view.kind or '')})"
            f'<table class="netns-kit"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
            + (f"<div>routes:<ul>{routes}</ul></div>" if routes else "") + "</div>")


def pair_veths(spaces: Sequence[tuple[str, Sequence[LinkInfo]]]) -> list[VethLink]:
    """Match veth ends across namespaces (label, links): each end's IFLA_LINK is its peer's ifindex."""
    ends: list[tuple[str, LinkInfo]] = []
    for label, links in spaces:
        ends.extend((label, link) for link in links if link.kind == "veth")
    out: list[VethLink] = []
    used: set[int] = set()
    for i, (la, a) in enumerate(ends):
        if i in used:
            continue
        for j in range(i + 1, len(ends)):
            lb, b = ends[j]
            if j not in used and a.peer_index == b.index and b.peer_index == a.index and \
                    (la != lb or a.index != b.index):
                out.append(VethLink((la, a.name), (lb, b.name)))
                used.update((i, j))
                break
    return out


def port_target(port: Any, views: Sequence[NamespaceView]) -> str:
    """Where a published port leads: ``"<namespace> <ip>:<port>"`` if a namespace shown has the address."""
    ip = str(getattr(port, "container_ip", ""))
    cport = getattr(port, "container_port", "")
    for v in views:
        for i in v.interfaces:
            if any(a.split("/")[0] == ip for a in i.addresses):
                return f"{v.label} {ip}:{cport}"
    return f"{ip}:{cport}"


# -- networks and endpoints ---------------------------------------------------------------------------


def network_html(net: Any) -> str:
    """The HTML table Jupyter shows for a :class:`~netns_kit.Network`: settings, then one row per endpoint."""
    cfg = net.config
    try:
        sub = f"{net.subnet} (gateway {net.gateway})"
        if net.subnet6 is not None:
            sub += f", {net.subnet6} (gateway {net.gateway6})"
    except NetnsKitError:
        sub = "chosen at create()"
    state = "created" if net.created else "not created"
    flags = ", ".join(f"{k}={v}" for k, v in (("internal", cfg.internal), ("icc", cfg.icc),
                                              ("masquerade", cfg.masquerades)))
    rows = "".join(
        f"<tr><td>{_e(', '.join(c.names) or c.namespace.label)}</td><td>{_e(c.namespace.label)}</td>"
        f"<td><code>{_e(c.ifname)}</code></td><td>{_e(c.address)}</td>"
        f"<td>{_e(c.address6) if c.address6 is not None else ''}</td><td><code>{_e(c.host_ifname)}</code></td>"
        f"<td>{'<br>'.join(_e(p.spec) for p in c.published)}</td></tr>"
        for c in net.connections)
    head = "".join(f"<th>{h}</th>" for h in ("endpoint", "namespace", "interface", "address", "IPv6",
                                              "host end", "published"))
    return (f"<div><b>Network {_e(net.name)}</b> ({state}): bridge <code>{_e(net.bridge)}</code>, "
            f"subnet {_e(sub)}, {_e(flags)}"
            f'<table class="netns-kit"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')


def endpoint_html(ep: Any) -> str:
    """The HTML Jupyter shows for an :class:`~netns_kit.Endpoint`: its mode, then its namespace's table."""
    head = f"<div><b>Endpoint {_e(ep.name)}</b> (mode {_e(ep.mode)})"
    if not ep.created:
        return head + ": not created</div>"
    return head + namespace_html(ep.namespace) + "</div>"
