"""Topologies as files: a lab in netns_kit's YAML schema and one in containerlab's format, loaded,
planned (no root), drawn, built, checked by traffic, saved and loaded back.

The files are examples/lab.yaml and examples/lab.clab.yml; docs/topology-files.md describes both formats.
"""

from __future__ import annotations

import pathlib
import tempfile

import netns_kit as nk
import netns_kit.testing
from netns_kit.topofile import dump_topology, parse_topology
from netns_kit.topology import Topology

HERE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    lab = Topology.load(HERE / "lab.yaml")             # validated, nothing built yet
    print(lab)
    print(lab.plan())
    print("Graphviz source:", len(lab.view().to_dot()), "characters")

    with tempfile.TemporaryDirectory() as tmp:         # save, load again: the same topology
        lab.save(pathlib.Path(tmp) / "saved.yaml")
        again = Topology.load(pathlib.Path(tmp) / "saved.yaml")
        print("saved and loaded back, equal:", again.to_spec() == lab.to_spec())

    bad = (HERE / "lab.yaml").read_text().replace("gateway: 10.52.0.1", "gateway: 10.99.0.1", 1)
    try:
        Topology.from_spec(parse_topology(bad, source="lab.yaml, edited"))
    except nk.TopologyFileError as exc:                 # names the field; nothing was built
        print("refused:", exc)

    with lab:                                          # one transaction: all of it, or nothing
        ns = lab.namespaces()
        for src, dst in (("db", "10.52.0.2"), ("backup", "10.53.0.1")):
            ok = ns[src].run(["ping", "-c1", "-W2", dst]).returncode == 0
            print(f"{src} pings {dst}:", "ok" if ok else "FAILED")

    clab = Topology.load(HERE / "lab.clab.yml")        # containerlab: nodes, links, exec addresses
    print(clab)
    with clab:
        ns = clab.namespaces()
        for src, dst in (("r1", "10.54.0.2"), ("r3", "10.55.0.2")):
            ok = ns[src].run(["ping", "-c1", "-W2", dst]).returncode == 0
            print(f"{src} pings {dst}:", "ok" if ok else "FAILED")
        print("as netns_kit's schema:\n" + dump_topology(clab.to_spec()))
    print("torn down: namespaces left:", sorted(nk.testing.named_namespaces()) or "none")


if __name__ == "__main__":
    main()
