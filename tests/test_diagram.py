"""Topology diagrams: ranks in traffic order, no crossings on a star, groups for large topologies.

Pure: the DOT source comes from the graphviz Python package; the layout checks run Graphviz's
``dot`` program (scripts/setup.sh installs it) on that source, no kernel involved.
"""

from __future__ import annotations

import pathlib
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest

import netns_kit as nk
from netns_kit.topology import Topology
from netns_kit.views import InterfaceView, NamespaceView, PortView, TopologyView, VethLink

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _star(n: int, *, ports: int = 1) -> Topology:
    topo = Topology("two containers" if n == 2 else f"star of {n}")
    topo.bridge("br-nb", addresses=["10.40.0.1/16"], nat=True)
    for i in range(n):
        name = ("web", "db")[i] if n == 2 else f"n{i}"
        topo.endpoint(name, bridge="br-nb", address=f"10.40.{i // 250}.{i % 250 + 2}/16", gateway="10.40.0.1",
                      publish=[f"{8080 + i}:80/tcp"] if i < ports else [])
    return topo


def _docs_star() -> Topology:
    """The topology docs/jupyter.md plans and draws (docs/topology-example.svg)."""
    topo = Topology("two containers")
    topo.bridge("br-nb", addresses=["10.40.0.1/24"], nat=True)
    topo.endpoint("web", bridge="br-nb", address="10.40.0.2/24", gateway="10.40.0.1", publish=["8080:80/tcp"])
    topo.endpoint("db", bridge="br-nb", address="10.40.0.3/24", gateway="10.40.0.1")
    return topo


def _subgraphs(dot: str) -> dict[str, list[str]]:
    """Each subgraph's name -> the node ids declared directly in it (nested subgraphs excluded)."""
    out: dict[str, list[str]] = {}
    stack: list[str] = []
    for line in dot.splitlines():
        text = line.strip()
        if m := re.match(r"subgraph (\S+) \{", text):
            stack.append(m[1])
            out[m[1]] = []
        elif text == "}" and stack:
            stack.pop()
        elif stack and (m := re.match(r'("[^"]+"|\w+) \[', text)) and "--" not in text:
            out[stack[-1]].append(m[1].strip('"'))
    return out


def _edges(dot: str) -> list[tuple[str, str]]:
    return [(a.strip('"'), b.strip('"')) for a, b in re.findall(r'^\s*("[^"]+"|\w+) -- ("[^"]+"|\w+)', dot, re.M)]


def _layout(dot: str) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str]]]:
    """Node centres and edges as Graphviz's ``dot`` places them (``-Tplain``)."""
    assert shutil.which("dot"), "Graphviz's dot is needed (scripts/setup.sh installs graphviz)"
    plain = subprocess.run(["dot", "-Tplain"], input=dot, capture_output=True, text=True, check=True).stdout
    nodes: dict[str, tuple[float, float]] = {}
    edges: list[tuple[str, str]] = []
    for line in plain.splitlines():
        words = shlex.split(line)
        if words[0] == "node":
            nodes[words[1]] = (float(words[2]), float(words[3]))
        elif words[0] == "edge" and "invis" not in words:
            edges.append((words[1], words[2]))
    return nodes, edges


def _crossings(nodes: dict[str, tuple[float, float]], edges: list[tuple[str, str]]) -> list[tuple[Any, Any]]:
    """Pairs of edges between the same two ranks (columns, left to right) whose ends are in opposite
    orders: on a layered drawing, exactly the pairs that cross."""
    found = []
    for i, (a1, b1) in enumerate(edges):
        for a2, b2 in edges[i + 1:]:
            (xa1, ya1), (xb1, yb1), (xa2, ya2), (xb2, yb2) = nodes[a1], nodes[b1], nodes[a2], nodes[b2]
            if (round(xa1), round(xb1)) == (round(xa2), round(xb2)) and (ya1 - ya2) * (yb1 - yb2) < 0:
                found.append(((a1, b1), (a2, b2)))
    return found



def test_star_ranks_follow_the_traffic() -> None:
    dot = _docs_star().view().to_dot()
    groups = _subgraphs(dot)
    assert groups["rank_outside"] == ["port_0"]
    assert groups["rank_host"] == ["host/"]
    assert groups["rank_bridges"] == ["host/br-nb"]
    assert groups["rank_veths"] == ["host/vweb", "host/vdb"]
    assert groups["cluster_ns_0"] == ["web/eth0"] and groups["cluster_ns_1"] == ["db/eth0"]
    assert all(f"subgraph {r} {{\n\t\t\trank=same" in dot or f"subgraph {r} {{\n\t\trank=same" in dot
               for r in ("rank_outside", "rank_host", "rank_bridges", "rank_veths"))
    # every edge goes one rank onwards: port -> host -> bridge -> host end -> namespace end
    assert _edges(dot) == [("port_0", "host/"), ("host/", "host/br-nb"), ("host/br-nb", "host/vweb"),
                           ("host/br-nb", "host/vdb"), ("host/vweb", "web/eth0"), ("host/vdb", "db/eth0")]
    assert "→ web 10.40.0.2:80" in dot   # the published port names where it leads


def test_star_is_drawn_in_columns_without_crossings() -> None:
    nodes, edges = _layout(_star(6, ports=3).view().to_dot())
    columns = [nodes[n][0] for n in ("port_0", "host/", "host/br-nb", "host/vn0", "n0/eth0")]
    assert columns == sorted(columns) and len(set(columns)) == 5       # five ranks, left to right
    assert len({round(nodes[f"host/vn{i}"][0]) for i in range(6)}) == 1  # host ends in one column
    assert len({round(nodes[f"n{i}/eth0"][0]) for i in range(6)}) == 1   # namespaces in one column
    assert _crossings(nodes, edges) == []


def test_the_docs_picture_is_what_the_code_draws() -> None:
    """docs/topology-example.svg has the nodes and edges of today's drawing, in its ranks."""
    svg = (DOCS / "topology-example.svg").read_text()
    assert "(topology-example.svg)" in (DOCS / "jupyter.md").read_text()
    fresh = _docs_star().view().to_svg()

    def titles(text: str) -> set[str]:
        return set(re.findall(r"<title>([^<]*)</title>", text))

    assert titles(svg) == titles(fresh)
    nodes, edges = _layout(_docs_star().view().to_dot())
    assert _crossings(nodes, edges) == []


def test_hundreds_of_endpoints_collapse_into_groups() -> None:
    view = _star(300, ports=3).view()
    dot = view.to_dot()
    groups = _subgraphs(dot)
    assert groups["rank_veths"] == ["group_0_ends"]
    assert groups["cluster_ns_0"] == ["group_0"] and "cluster_ns_1" not in groups
    assert "300 namespaces" in dot and "n0 … n299" in dot and "300 veth pairs" in dot
    assert groups["rank_outside"] == ["port_0"] and "3 published ports" in dot
    assert dot.count(" -- ") == 4 and len(dot) < 3000   # a handful of edges, not 600
    # the limit is the caller's: at max_namespaces=300 every namespace is drawn
    assert _subgraphs(view.to_dot(max_namespaces=300))["rank_veths"][:2] == ["host/vn0", "host/vn1"]
    with pytest.raises(nk.ValidationError, match="max_namespaces"):
        view.to_dot(max_namespaces=0)


def test_groups_per_bridge_and_unattached() -> None:
    host = NamespaceView("host", (InterfaceView("br-a", "bridge", ("10.1.0.1/24",)),
                                  InterfaceView("br-b", "bridge", ("10.2.0.1/24",)),
                                  *(InterfaceView(f"va{i}", "veth", master="br-a") for i in range(3)),
                                  *(InterfaceView(f"vb{i}", "veth", master="br-b") for i in range(2))), is_host=True)
    spaces = [NamespaceView(f"a{i}", (InterfaceView("lo"), InterfaceView("eth0", "veth", (f"10.1.0.{i + 2}/24",))))
              for i in range(3)]
    spaces += [NamespaceView(f"b{i}", (InterfaceView("lo"), InterfaceView("eth0", "veth", (f"10.2.0.{i + 2}/24",))))
               for i in range(2)]
    spaces += [NamespaceView("lonely", (InterfaceView("lo"),))]
    veths = tuple(VethLink(("host", f"va{i}"), (f"a{i}", "eth0")) for i in range(3)) + \
        tuple(VethLink((f"b{i}", "eth0"), ("host", f"vb{i}")) for i in range(2))
    view = TopologyView("t", (host, *spaces), veths, (PortView("80->10.1.0.2:80/tcp", "a0 10.1.0.2:80"),))
    dot = view.to_dot(max_namespaces=4)
    groups = _subgraphs(dot)
    assert groups["rank_veths"] == ["group_0_ends", "group_1_ends"]
    assert [groups[f"cluster_ns_{n}"] for n in range(3)] == [["group_0"], ["group_1"], ["group_2"]]
    assert 'label="3 namespaces on br-a"' in dot and 'label="2 namespaces on br-b"' in dot
    assert 'label="1 namespaces"' in dot    # the one on no bridge
    nodes, edges = _layout(dot)
    assert _crossings(nodes, edges) == []
    # drawn in full, a host end given second in a VethLink is still drawn from the host outwards
    assert ("host/vb0", "b0/eth0") in _edges(view.to_dot())


def test_links_between_namespaces_stay_in_their_rank() -> None:
    topo = _docs_star().link("web:eth1", "db:eth1", addresses=["10.60.0.1/30", "10.60.0.2/30"])
    dot = topo.view().to_dot()
    nodes, _ = _layout(dot)
    assert round(nodes["web/eth1"][0]) == round(nodes["db/eth1"][0]) == round(nodes["web/eth0"][0])
    assert re.search(r'"web/eth1" -- "db/eth1" \[constraint=false', dot)
