"""Teaching views: a topology as typed data, an HTML table and a Graphviz diagram. Pure: no kernel.

:func:`netns_kit._inspection.observe` reads what is really there (namespaces, their interfaces,
addresses and routes, which veth end is paired with which, bridge ports, published ports) into a
:class:`TopologyView`; :meth:`netns_kit.Namespace.view` reads one namespace into a
:class:`NamespaceView`. A planned :class:`~netns_kit.topology.Topology` produces the same view
before anything exists. Rendering is pure (no root): :meth:`TopologyView.to_html` (what Jupyter shows through
``_repr_html_``), :meth:`TopologyView.to_dot` (Graphviz source) and :meth:`TopologyView.diagram`
(a ``graphviz.Graph`` that Jupyter draws as SVG; needs the ``graphviz`` Python package, and
Graphviz's ``dot`` program to render).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import NetnsKitError, UnsupportedError
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

    def _build(self, graph: Any) -> Any:
        graph.attr(rankdir="LR", fontname="Helvetica", compound="true")
        graph.attr("node", fontname="Helvetica", fontsize="10")
        graph.attr("edge", fontname="Helvetica", fontsize="9")
        for n, ns in enumerate(self.namespaces):
            with graph.subgraph(name=f"cluster_{n}") as sub:
                host_label = ns.label if ns.label == "host" else f"{ns.label} (host)"
                sub.attr(label=host_label if ns.is_host else ns.label, style="rounded",
                         color="gray40" if ns.is_host else "steelblue")
                if ns.is_host:  # published ports live on the host
                    for k, p in enumerate(self.ports):
                        sub.node(f"port_{k}", label=p.spec, shape="cds", style="filled", fillcolor="palegreen")
                shown = [i for i in ns.interfaces if i.name != "lo" or len(ns.interfaces) == 1]
                for iface in shown:
                    label = "\n".join([iface.name, *list(iface.addresses)])
                    shape = "box3d" if iface.kind == "bridge" else "box"
                    fill = "lightyellow" if iface.kind == "bridge" else "white"
                    sub.node(_node_id(ns.label, iface.name), label=label, shape=shape, style="filled",
                             fillcolor=fill)
                for iface in shown:
                    if iface.master:
                        sub.edge(_node_id(ns.label, iface.name), _node_id(ns.label, iface.master),
                                 style="dashed", arrowhead="none", label="port")
        for v in self.veths:
            graph.edge(_node_id(*v.a), _node_id(*v.b), label="veth", arrowhead="none", penwidth="2")
        host = next((ns.label for ns in self.namespaces if ns.is_host), None)
        for n, p in enumerate(self.ports):
            pid = f"port_{n}"
            if host is None:
                graph.node(pid, label=p.spec, shape="cds", style="filled", fillcolor="palegreen")
            target_ns = p.target.split(" ", 1)[0]
            target = next((_node_id(ns.label, i.name) for ns in self.namespaces if ns.label == target_ns
                           for i in ns.interfaces if i.name != "lo"), None)
            if target is not None:
                graph.edge(pid, target, style="dotted", label="DNAT")
        return graph

    def diagram(self) -> Any:
        """A ``graphviz.Graph`` (Jupyter draws it as SVG). UnsupportedError without the package."""
        try:
            import graphviz  # type: ignore[import-untyped, import-not-found, unused-ignore]
        except ImportError as exc:
            raise UnsupportedError("diagrams need the graphviz Python package (pip install 'netns-kit[jupyter]') "
                                   "and Graphviz's dot program", step="diagram") from exc
        return self._build(graphviz.Graph(name=re.sub(r"\W", "_", self.title) or "topology"))

    def to_dot(self) -> str:
        """The diagram's Graphviz source (needs the graphviz Python package, not the dot program)."""
        return str(self.diagram().source)

    def to_svg(self) -> str:
        """The diagram rendered as SVG (needs Graphviz's ``dot`` program)."""
        graph = self.diagram()
        try:
            return str(graph.pipe(format="svg").decode("utf-8"))
        except Exception as exc:  # graphviz.ExecutableNotFound and friends
            raise UnsupportedError(f"rendering the diagram failed: {exc} (is Graphviz's dot installed?)",
                                   step="diagram") from exc


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
