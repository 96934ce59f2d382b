"""Topology files, pure: parsing both formats, validation naming the field, save -> load round trips.

Nothing here touches the kernel; tests/test_topology_files.py builds the same files.
"""

from __future__ import annotations

import pathlib

import pytest

import netns_kit as nk
from netns_kit.topofile import (
    EndpointSpec,
    ImpairmentSpec,
    LinkSpec,
    NetworkSpec,
    TopologySpec,
    dump_topology,
    parse_topology,
    read_topology,
)
from netns_kit.topology import Topology

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

NATIVE = """
name: lab
namespaces: [spare]
networks:
  br-lab: {addresses: [10.50.0.1/24, "fd00:50::1/64"], nat: true, icc: false, mtu: 1400}
endpoints:
  web: {network: br-lab, address: [10.50.0.2/24, "fd00:50::2/64"], gateway: 10.50.0.1,
        publish: ["8080:80/tcp", "127.0.0.1:8443:443"], mac: "02:00:00:00:00:02"}
  db:
    - {network: br-lab, address: 10.50.0.3/24, host_ifname: vdb0}
links:
  - endpoints: ["web:eth1", "db:eth1"]
    addresses: [10.60.0.1/30, [10.60.0.2/30, "fd00:60::2/64"]]
    mtu: 9000
  - endpoints: ["host:vup", "db:eth2"]
impairments:
  - {interface: "web:eth1", rate: 10000kbit}
  - {interface: "db:eth1", delay_ms: 20, jitter_ms: 5, loss_percent: 1.5}
"""


def test_native_file_reads_into_a_spec() -> None:
    spec = parse_topology(NATIVE)
    assert spec.name == "lab" and spec.namespaces == ("spare",)
    assert spec.networks == (NetworkSpec("br-lab", ("10.50.0.1/24", "fd00:50::1/64"), 1400, True, True, False),)
    assert spec.endpoints == (
        EndpointSpec("web", "br-lab", ("10.50.0.2/24", "fd00:50::2/64"), "10.50.0.1", mac="02:00:00:00:00:02",
                     publish=("8080:80/tcp", "127.0.0.1:8443:443/tcp")),
        EndpointSpec("db", "br-lab", ("10.50.0.3/24",), host_ifname="vdb0"))
    assert spec.links == (LinkSpec("web:eth1", "db:eth1", ("10.60.0.1/30",), ("10.60.0.2/30", "fd00:60::2/64"), 9000),
                          LinkSpec("host:vup", "db:eth2"))
    assert spec.impairments == (ImpairmentSpec("web:eth1", "10mbit"),
                                ImpairmentSpec("db:eth1", None, 20.0, 5.0, 1.5))
    assert spec.endpoints[1].where == "endpoints.db[0]"    # where each part came from, for errors


def test_save_then_load_is_equal(tmp_path: pathlib.Path) -> None:
    spec = parse_topology(NATIVE)
    assert parse_topology(dump_topology(spec)) == spec
    topo = Topology.from_spec(spec)
    topo.save(tmp_path / "t.yaml")
    again = Topology.load(tmp_path / "t.yaml")
    assert again.to_spec() == topo.to_spec() == spec
    assert again.plan().commands() == topo.plan().commands()
    # a topology written in Python saves and loads the same way
    py = (Topology("py").bridge("br-py", addresses=["10.70.0.1/24"], nat=True)
          .endpoint("a", bridge="br-py", address="10.70.0.2/24", gateway="10.70.0.1", publish=["0.0.0.0:9000:90/udp"])
          .link("a:eth1", "b:eth1", addresses=["10.71.0.1/30", None]).impair("b:eth1", rate="1mbit"))
    py.save(tmp_path / "py.yaml")
    assert Topology.load(tmp_path / "py.yaml").to_spec() == py.to_spec()
    assert Topology.load(tmp_path / "py.yaml").plan().commands() == py.plan().commands()


def test_plan_and_view_include_links_and_impairments() -> None:
    topo = Topology.from_spec(parse_topology(NATIVE))
    cmds = topo.commands()
    assert "ip -n web link add eth1 mtu 9000 type veth peer name eth1 netns db" in cmds
    assert "ip link add vup type veth peer name eth2 netns db" in cmds          # made from the host end
    assert "ip -n db addr add fd00:60::2/64 dev eth1" in cmds
    assert "ip netns exec web tc qdisc add dev eth1 root tbf rate 10mbit burst 16000 latency 50ms" in cmds
    assert "ip netns exec db tc qdisc add dev eth1 root netem delay 20ms 5ms loss 1.5%" in cmds
    view = topo.view()
    assert {(v.a, v.b) for v in view.veths} >= {(("web", "eth1"), ("db", "eth1")), (("host", "vup"), ("db", "eth2"))}
    assert "spare" in [ns.label for ns in view.namespaces]


@pytest.mark.parametrize(("text", "field", "words"), [
    ("networks: [br0]", "networks", "must be a mapping"),
    ("nme: x", "nme", "unknown field"),
    ("version: 2", "version", "schema version"),
    ("networks: {b: {addresses: [10.0.0.300/24]}}", "networks.b.addresses[0]", "not a valid IP"),
    ("networks: {b: {nat: 'yes'}}", "networks.b.nat", "true or false"),
    ("networks: {b: {mtu: 1.5}}", "networks.b.mtu", "an integer"),
    ("endpoints: {web: {network: b, adress: 10.0.0.2/24}}", "endpoints.web.adress", "unknown field"),
    ("endpoints: {web: {address: 10.0.0.2/24}}", "endpoints.web.network", "required"),
    ("endpoints: {web: [{network: b}]}", "endpoints.web[0].address", "required"),
    ("endpoints: {web: {network: b, address: 10.0.0.2/24, gateway: nope}}", "endpoints.web.gateway", "not a valid"),
    ("endpoints: {web: {network: b, address: 10.0.0.2/24, mac: 'ff:ff:ff:ff:ff:ff'}}", "endpoints.web.mac",
     "multicast"),
    ("links: [{endpoints: [a]}]", "links[0].endpoints", "exactly two"),
    ("links: [{endpoints: [a, 'b:eth0']}]", "links[0].endpoints[0]", "NAMESPACE:INTERFACE"),
    ("links: [{endpoints: ['a:e', 'b:e'], addresses: [10.0.0.1/30]}]", "links[0].addresses", "one entry per end"),
    ("impairments: [{rate: 1mbit}]", "impairments[0].interface", "required"),
    ("endpoints: {web: {network: b, address: 10.0.0.2/24, publish: [80]}}", "endpoints.web.publish[0]",
     "a string"),
    ("endpoints: {web: {network: b, address: 10.0.0.2/24, publish: ['80']}}", "endpoints.web.publish[0]",
     "concrete host port"),
    ("endpoints: {web: {network: b, address: 10.0.0.2/24, publish: ['8080:80/icmp']}}",
     "endpoints.web.publish[0]", "protocol"),
    ("impairments: [{interface: 'a:e', rate: fast}]", "impairments[0].rate", "rate"),
    ("endpoints: [", "line 1, column 13", "not valid YAML"),
    ("- a\n- b", "(document)", "mapping at the top level"),
])
def test_structural_errors_name_the_field(text: str, field: str, words: str) -> None:
    with pytest.raises(nk.TopologyFileError) as info:
        parse_topology(text, source="lab.yaml")
    assert info.value.field == field and words in str(info.value)
    assert str(info.value).startswith(f"lab.yaml: {field}: ")
    assert isinstance(info.value, nk.ValidationError) and isinstance(info.value, ValueError)


BASE = "networks: {br0: {addresses: [10.0.0.1/24]}}\n"


@pytest.mark.parametrize(("text", "field", "words"), [
    ("endpoints: {web: {network: br9, address: 10.0.0.2/24}}", "endpoints.web", "not in the topology"),
    ("endpoints: {web: {network: br0, address: 10.0.0.2/24, gateway: 10.1.0.1}}", "endpoints.web", "not inside"),
    ("endpoints: {web: {network: br0, address: 10.0.0.2/24, publish: ['80:80']}}", "endpoints.web", "nat=True"),
    ("endpoints: {web: {network: br0, address: 10.0.0.1/24}}", "endpoints.web", "already used by bridge"),
    ("endpoints: {web: {network: br0, address: 127.0.0.2/8}}", "endpoints.web", "loopback"),
    ("endpoints: {web: {network: br0, address: 10.0.0.2/24}}\nlinks: [{endpoints: ['web:eth0', 'db:eth0']}]",
     "links[0]", "already has an interface 'eth0'"),
    ("links: [{endpoints: ['a:e', 'a:e']}]", "links[0]", "two different ends"),
    ("links: [{endpoints: ['a:e', 'host:br0']}]", "links[0]", "already has an interface 'br0'"),
    ("impairments: [{interface: 'web:eth0', rate: 1mbit}]", "impairments[0]", "no veth end"),
    ("links: [{endpoints: ['a:e', 'b:e']}]\nimpairments: [{interface: 'a:e', rate: 1mbit, delay_ms: 5}]",
     "impairments[0]", "one of the two"),
    ("links: [{endpoints: ['a:e', 'b:e']}]\nimpairments: [{interface: 'a:e', jitter_ms: 5}]",
     "impairments[0]", "jitter_ms needs a delay_ms"),
    ("namespaces: [host]", "namespaces[0]", "host namespace"),
])
def test_topology_checks_name_the_field(text: str, field: str, words: str) -> None:
    spec = parse_topology(BASE + text, source="t.yaml")
    with pytest.raises(nk.TopologyFileError) as info:
        Topology.from_spec(spec)
    assert info.value.field == field and words in str(info.value), str(info.value)


CLAB = """
name: srl01
prefix: ignored
mgmt: {network: clab}
topology:
  kinds: {linux: {image: alpine:3}}
  nodes:
    r1: {kind: linux, image: alpine:3, exec: ["ip addr add 192.168.0.1/24 dev eth1"]}
    r2:
      kind: linux
      mgmt-ipv4: 172.20.20.3
      exec:
        - ip -4 address add 192.168.0.2/24 dev eth1
        - ip link set dev eth1 up
    r3:
      exec: ["ip addr add 10.9.0.2/24 dev eth1", "ip route add default via 10.9.0.1"]
    lone: {kind: linux}
    br1: {kind: bridge}
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
    - endpoints: ["br1:r3-eth1", "r3:eth1"]
    - endpoints: ["r1:eth9", "host:r1-eth9"]
"""


def test_containerlab_subset_maps_to_a_topology() -> None:
    spec = parse_topology(CLAB)
    assert spec.name == "srl01" and spec.namespaces == ("lone",)
    assert spec.networks == (NetworkSpec("br1"),)
    assert spec.endpoints == (EndpointSpec("r3", "br1", ("10.9.0.2/24",), "10.9.0.1", "eth1", "r3-eth1"),)
    assert spec.links == (LinkSpec("r1:eth1", "r2:eth1", ("192.168.0.1/24",), ("192.168.0.2/24",)),
                          LinkSpec("r1:eth9", "host:r1-eth9"))
    topo = Topology.from_spec(spec)
    assert "ip -n r1 link add eth1 type veth peer name eth1 netns r2" in topo.commands()
    assert "ip link add r3-eth1 type veth peer name eth1 netns r3" in topo.commands()
    # written out, it is netns_kit's schema, and reads back equal
    assert parse_topology(dump_topology(spec)) == spec
    # the example file in examples/ reads too
    assert [e.namespace for e in read_topology(EXAMPLES / "lab.clab.yml").endpoints] == ["r2", "r3"]


@pytest.mark.parametrize(("text", "field", "words"), [
    ("name: x\ntopology: {nodes: {a: {kind: nokia_srlinux}}}", "topology.nodes.a.kind", "not supported"),
    ("name: x\ntopology: {defaults: {kind: ceos}, nodes: {a: {}}}", "topology.nodes.a.kind", "'ceos'"),
    ("topology: {nodes: {}}", "name", "required"),
    ("name: x\ntopology: {nodes: {a: {startup-config: x, ports: ['80:80']}}}", "topology.nodes.a.ports",
     "unknown field"),
    ("name: x\ntopology: {nodes: {a: {}}, links: [{endpoints: ['a:e1', 'b:e1']}]}",
     "topology.links[0].endpoints[1]", "not in topology.nodes"),
    ("name: x\ntopology: {nodes: {a: {exec: ['sysctl -w x=1']}}}", "topology.nodes.a.exec[0]", "only 'ip addr add'"),
    ("name: x\ntopology: {nodes: {a: {exec: ['ip addr add 10.0.0.1/24 dev eth1']}}}", "topology.nodes.a.exec[0]",
     "no link in topology.links"),
    ("name: x\ntopology: {nodes: {a: {exec: ['ip addr add 10.0.0.999/24 dev eth1']}}}",
     "topology.nodes.a.exec[0]", "not a valid IP"),
    ("name: x\ntopology: {nodes: {a: {exec: ['ip route add default via 10.0.0.1']}}}",
     "topology.nodes.a.exec[0]", "inside no address"),
    ("name: x\ntopology: {nodes: {a: {exec: ['ip addr add 10.0.0.1/24 dev e', 'ip route add default via 10.0.0.9']},"
     " b: {}}, links: [{endpoints: ['a:e', 'b:e']}]}", "topology.nodes.a.exec[1]", "point-to-point"),
    ("name: x\ntopology: {nodes: {b1: {kind: bridge}, b2: {kind: bridge}}, links: [{endpoints: ['b1:x', 'b2:y']}]}",
     "topology.links[0].endpoints", "two bridges"),
    ("name: x\ntopology: {nodes: {host: {}}}", "topology.nodes.host", "host namespace"),
])
def test_containerlab_errors_name_the_field(text: str, field: str, words: str) -> None:
    with pytest.raises(nk.TopologyFileError) as info:
        parse_topology(text)
    assert info.value.field == field and words in str(info.value), str(info.value)


def test_containerlab_bridge_link_without_address_is_named_at_build_time() -> None:
    spec = parse_topology("name: x\ntopology: {nodes: {a: {}, br: {kind: bridge}}, "
                          "links: [{endpoints: ['a:eth1', 'br:a-eth1']}]}")
    with pytest.raises(nk.TopologyFileError, match=r"topology\.links\[0\]: an endpoint needs at least one address"):
        Topology.from_spec(spec)


def test_missing_file_is_a_topology_file_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(nk.TopologyFileError, match="cannot be read") as info:
        read_topology(tmp_path / "nope.yaml")
    assert info.value.source == str(tmp_path / "nope.yaml")
    with pytest.raises(nk.ValidationError, match="spec"):
        Topology.from_spec("name: x")  # type: ignore[arg-type]
    assert TopologySpec() == parse_topology("{}")
