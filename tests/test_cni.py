"""netns_kit as a CNI plugin: the executable fed the CNI environment and stdin as runtimes do, every
verb and error, chains with the reference plugins (Debian containernetworking-plugins), traffic.

The plugin is the ``netns-kit-cni`` console script beside this interpreter when the package is
installed, else a launcher with the same lines (see :func:`plugin_dir`). Each test runs in its own
throwaway host namespace (the ``host`` fixture); the plugin inherits it from the test's thread.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from outside_world import HOST_IP, OUTSIDE_IP, outside_world
from traffic import serve, wait_connect

from netns_kit import Namespace
from netns_kit._sys import STATE_DIR

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = "/usr/lib/cni"


@pytest.fixture(scope="module")
def plugin_dir() -> Iterator[str]:
    """A CNI bin directory holding ``netns-kit-cni``."""
    d = tempfile.mkdtemp(prefix="nk-cni-bin-", dir="/run")
    path = os.path.join(d, "netns-kit-cni")
    installed = os.path.join(os.path.dirname(sys.executable), "netns-kit-cni")
    if os.access(installed, os.X_OK):
        os.symlink(installed, path)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {REPO!r})\n"
                    "from netns_kit.cni import main\nsys.exit(main())\n")
        os.chmod(path, 0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def conf(name: str = "nk", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"cniVersion": "1.0.0", "name": name, "type": "netns-kit-cni", "bridge": f"{name}-br",
                            "isDefaultGateway": True, "ipMasq": True, "subnet": "10.89.0.0/24"}
    base.update(extra)
    return base


class Cni:
    """Runs plugins the way libcni does: one process per call, CNI_* in the environment."""

    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir

    def __call__(self, command: str, config: dict[str, Any] | bytes, *, cid: str = "c1", netns: str = "",
                 ifname: str = "eth0", plugin: str = "netns-kit-cni", env: dict[str, str] | None = None,
                 ) -> tuple[int, Any]:
        environ = {"CNI_COMMAND": command, "CNI_PATH": f"{self.bin_dir}:{REFERENCE}",
                   "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if command not in ("VERSION", "GC", "STATUS"):
            environ.update(CNI_CONTAINERID=cid, CNI_NETNS=netns, CNI_IFNAME=ifname)
        environ.update(env or {})
        exe = os.path.join(self.bin_dir if plugin == "netns-kit-cni" else REFERENCE, plugin)
        data = config if isinstance(config, bytes) else json.dumps(config).encode()
        proc = subprocess.run([exe], input=data, env=environ, capture_output=True, timeout=60)
        out = proc.stdout.decode().strip()
        return proc.returncode, (json.loads(out) if out else None)

    def ok(self, command: str, config: dict[str, Any], **kw: Any) -> Any:
        rc, out = self(command, config, **kw)
        assert rc == 0, out
        return out


@pytest.fixture
def cni(plugin_dir: str, host: Namespace) -> Cni:
    return Cni(plugin_dir)


def nft_comments() -> str:
    """netns_kit's table as nft lists it ("" if there is none)."""
    res = subprocess.run(["nft", "list", "table", "inet", "netns_kit"], capture_output=True, text=True)
    return res.stdout if res.returncode == 0 else ""


def links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [ln.split(": ")[1].split("@")[0] for ln in out.splitlines()]


def state(name: str) -> list[str]:
    d = os.path.join(STATE_DIR, "cni", name)
    return sorted(os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs)


@pytest.fixture
def containers() -> Iterator[list[Namespace]]:
    made: list[Namespace] = []
    yield made
    for ns in made:
        if ns.exists:
            ns.remove()


def container(made: list[Namespace], name: str) -> Namespace:
    ns = Namespace(name).create()
    made.append(ns)
    return ns


# -- VERSION and errors ------------------------------------------------------------------------------

def test_version_lists_the_spec_versions(cni: Cni) -> None:
    out = cni.ok("VERSION", {"cniVersion": "1.0.0"})
    assert out == {"cniVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]}


@pytest.mark.parametrize(("stdin", "env", "code"), [
    (b'{"cniVersion": "0.3.1", "name": "nk", "subnet": "10.89.0.0/24"}', {}, 1),  # incompatible version
    (b"not json", {}, 6),  # failed to decode
    (json.dumps(conf(subnet="10.89.0.0/33")).encode(), {}, 7),  # invalid configuration
    (json.dumps(conf(ipam={"type": "dhcp"})).encode(), {}, 2),  # unsupported field
    (json.dumps(conf()).encode(), {"CNI_NETNS": ""}, 4),  # a variable missing
    (json.dumps(conf()).encode(), {"CNI_NETNS": "/run/netns/no-such"}, 3),  # no such container
    (json.dumps(conf()).encode(), {"CNI_COMMAND": "FROB"}, 4),
    (json.dumps(conf(runtimeConfig={"ips": ["10.1.1.1"]})).encode(), {}, 7),  # address outside the ranges
])
def test_errors_are_the_specs_json_and_change_nothing(cni: Cni, stdin: bytes, env: dict[str, str],
                                                        code: int) -> None:
    before = links()
    rc, out = cni("ADD", stdin, netns=env.pop("CNI_NETNS", "/proc/self/ns/net"), env=env)
    assert rc != 0
    assert out["code"] == code, out
    assert isinstance(out["msg"], str) and out["msg"]
    assert out["cniVersion"] in ("0.3.1", "1.0.0", "1.1.0")  # the reference framework leaves it out
    assert links() == before and nft_comments() == "" and state("nk") == []


def test_the_plugin_path_never_imports_pyroute2(cni: Cni, host: Namespace, containers: list[Namespace]) -> None:
    """ADD, CHECK and DEL with a published port: the requests are netns_kit's own fast encodings, so
    the ~300 ms import of pyroute2 is never paid by a runtime's call."""
    a = container(containers, "cni-imp")
    env = {**os.environ, "CNI_CONTAINERID": "imp", "CNI_NETNS": a.path, "CNI_IFNAME": "eth0", "PYTHONPATH": REPO}
    code = ("import json, os, sys\nfrom netns_kit.cni import handle\n"
            "for verb in ('ADD', 'CHECK', 'DEL'):\n"
            "    out, rc = handle({**os.environ, 'CNI_COMMAND': verb}, sys.argv[1].encode())\n"
            "    assert rc == 0, out\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'pyroute2')))\n")
    ports = {"portMappings": [{"hostPort": 8084, "containerPort": 80, "protocol": "tcp"}]}
    res = subprocess.run([sys.executable, "-c", code, json.dumps(conf(runtimeConfig=ports))], env=env,
                         capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []
    assert nft_comments() == "" and state("nk") == []


@pytest.mark.pure
def test_configuration_is_checked_before_anything_happens() -> None:
    """parse_conf and handle() on bad input: the spec's codes, no kernel access (a pure test)."""
    from netns_kit.cni import handle, parse_conf

    c = parse_conf(json.dumps(conf(ranges=[[{"subnet": "10.89.0.0/24", "rangeStart": "10.89.0.100"}],
                                           [{"subnet": "fd00:89::/64"}]],
                                   routes=[{"dst": "10.0.0.0/8"}], runtimeConfig={"mac": "02:00:00:00:00:01"})
                              ).encode(), command="ADD")
    assert [str(r.plan.network) for r in c.ranges] == ["10.89.0.0/24", "fd00:89::/64"]
    assert [(str(r.network), str(r.gateway_ip)) for r in c.routes] == [
        ("10.0.0.0/8", "10.89.0.1"), ("0.0.0.0/0", "10.89.0.1"), ("::/0", "fd00:89::1")]
    assert c.is_gateway and c.mac == "02:00:00:00:00:01" and str(c.ranges[0].start) == "10.89.0.100"
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "x", "CNI_NETNS": "/nonexistent", "CNI_IFNAME": "eth0"}
    for bad, code in ((conf(mtu=10), 7), (conf(bridge="x" * 20), 7), (conf(name=""), 7),
                      (conf(subnet=None), 7),
                      (conf(ranges=[[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]), 2),
                      (conf(runtimeConfig={"portMappings": [{"hostPort": "80"}]}), 7),
                      (conf(runtimeConfig={"bandwidth": {"ingressRate": -1}}), 7),
                      (conf(cniVersion="1.1.0", runtimeConfig={"mac": "zz"}), 7),
                      ({"cniVersion": "1.0.0", "name": "nk"}, 7), (conf(cniVersion="0.4.0"), 1)):
        out, rc = handle(env, json.dumps(bad).encode())
        assert rc == 1 and out is not None and out["code"] == code, (bad, out)
        assert out["cniVersion"] == bad["cniVersion"]
    out, rc = handle({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.1.0"}')
    assert (rc, out) == (0, {"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]})
    out, rc = handle({"CNI_COMMAND": "STATUS"}, json.dumps(conf()).encode())
    assert rc == 1 and out is not None and out["code"] == 1  # STATUS is 1.1.0


# -- ADD, CHECK, DEL with traffic ----------------------------------------------------------------------

def test_add_gives_a_complete_result_and_traffic_flows(cni: Cni, host: Namespace,
                                                       containers: list[Namespace]) -> None:
    a, b = container(containers, "cni-a"), container(containers, "cni-b")
    ports = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    with outside_world(host) as out:
        res = cni.ok("ADD", conf(runtimeConfig=ports, dns={"nameservers": ["10.89.0.1"]}), cid="a", netns=a.path)
        assert res["cniVersion"] == "1.0.0"
        names = [i["name"] for i in res["interfaces"]]
        assert names[0] == "nk-br" and names[2] == "eth0" and res["interfaces"][2]["sandbox"] == a.path
        assert names[1] in links()
        assert res["ips"] == [{"address": "10.89.0.2/24", "gateway": "10.89.0.1", "interface": 2}]
        assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.89.0.1"}]
        assert res["dns"] == {"nameservers": ["10.89.0.1"]}
        assert res["interfaces"][2]["mac"] == a.link("eth0").mac
        rb = cni.ok("ADD", conf(runtimeConfig={"ips": ["10.89.0.77/24"], "mac": "02:00:00:00:00:77"}), cid="b",
                    netns=b.path)
        assert rb["ips"][0]["address"] == "10.89.0.77/24" and b.link("eth0").mac == "02:00:00:00:00:77"
        # from outside into the published port
        with serve(a, "0.0.0.0", 80):
            assert wait_connect(out, HOST_IP, 8080) == "hello from cni-a\n"
            # the other container reaches it directly, and through the published port (hairpin-free path)
            assert wait_connect(b, "10.89.0.2", 80) == "hello from cni-a\n"
        # out through masquerade: the far end sees the host's address
        with serve(out, OUTSIDE_IP, 9000) as srv:
            assert wait_connect(b, OUTSIDE_IP, 9000) == "hello from outside\n"
            assert srv.peers[0][0] == HOST_IP
        assert cni("CHECK", conf(runtimeConfig=ports, prevResult=res), cid="a", netns=a.path)[0] == 0
        for cid, ns in (("a", a), ("b", b)):
            cni.ok("DEL", conf(), cid=cid, netns=ns.path)
        assert a.links()[-1].name == "lo" and len(a.links()) == 1
    assert nft_comments() == "" and state("nk") == [] and "nk-br" not in links()


def test_dual_stack(cni: Cni, host: Namespace, containers: list[Namespace]) -> None:
    """An IPv4 and an IPv6 range set: one address of each, both default routes, masquerade of both."""
    from outside_world import HOST_IP6, OUTSIDE_IP6

    a = container(containers, "cni-v6")
    ranges = [[{"subnet": "10.89.0.0/24"}], [{"subnet": "fd00:89::/64"}]]
    with outside_world(host) as out:
        res = cni.ok("ADD", conf(subnet=None, ranges=ranges), cid="v6", netns=a.path)
        assert [ip["address"] for ip in res["ips"]] == ["10.89.0.2/24", "fd00:89::2/64"]
        assert [r["dst"] for r in res["routes"]] == ["0.0.0.0/0", "::/0"]
        with serve(out, OUTSIDE_IP6, 9006) as srv:
            assert wait_connect(a, OUTSIDE_IP6, 9006) == "hello from outside\n"
            assert srv.peers[0][0] == HOST_IP6
        assert cni("CHECK", conf(subnet=None, ranges=ranges, prevResult=res), cid="v6", netns=a.path) == (0, None)
        cni.ok("DEL", conf(subnet=None, ranges=ranges), cid="v6", netns=a.path)
    assert nft_comments() == "" and state("nk") == []


def test_a_port_published_on_loopback_is_reachable_from_the_host_only(cni: Cni, host: Namespace,
                                                                       containers: list[Namespace]) -> None:
    from traffic import connect

    a = container(containers, "cni-lo")
    ports = {"portMappings": [{"hostPort": 8087, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]}
    with outside_world(host) as out:
        cni.ok("ADD", conf(runtimeConfig=ports), cid="lo", netns=a.path)
        with serve(a, "0.0.0.0", 80):
            assert wait_connect(host, "127.0.0.1", 8087) == "hello from cni-lo\n"
            assert connect(out, HOST_IP, 8087) is None  # not from other hosts (moby#41872)
        cni.ok("DEL", conf(), cid="lo", netns=a.path)
    assert nft_comments() == "" and state("nk") == []


def test_del_without_the_namespace_or_prevresult_removes_everything(cni: Cni, host: Namespace,
                                                                    containers: list[Namespace]) -> None:
    a = container(containers, "cni-gone")
    ports = {"portMappings": [{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]}
    res = cni.ok("ADD", conf(runtimeConfig=ports), cid="gone", netns=a.path)
    host_if = res["interfaces"][1]["name"]
    assert "netns-kit-cni:" in nft_comments() and host_if in links() and state("nk")
    a.remove()  # the container's namespace is gone before DEL (the reference bridge plugin then
    # leaves its per-container masquerade rule behind)
    rc, out = cni("DEL", conf(), cid="gone", netns="/run/netns/cni-gone")
    assert (rc, out) == (0, None)
    assert nft_comments() == "" and host_if not in links() and state("nk") == []
    assert cni("DEL", conf(), cid="gone", netns="")[0] == 0  # again, and without a namespace at all


def test_check_fails_when_something_was_removed(cni: Cni, host: Namespace, containers: list[Namespace]) -> None:
    a = container(containers, "cni-chk")
    ports = {"portMappings": [{"hostPort": 8082, "containerPort": 80, "protocol": "tcp"}]}
    res = cni.ok("ADD", conf(runtimeConfig=ports), cid="chk", netns=a.path)
    args: dict[str, Any] = {"cid": "chk", "netns": a.path}
    assert cni("CHECK", conf(prevResult=res), **args) == (0, None)
    # a firewall entry: the published port's dnat element
    subprocess.run(["nft", "delete", "element", "inet", "netns_kit", "dnat4", "{ tcp . 8082 }"], check=True)
    rc, out = cni("CHECK", conf(prevResult=res), **args)
    assert rc != 0 and out["code"] == 101 and "dnat4" in out["msg"], out
    cni.ok("DEL", conf(), **args)
    res = cni.ok("ADD", conf(), **args)
    # the address inside the namespace
    subprocess.run(["ip", "-n", "cni-chk", "addr", "del", res["ips"][0]["address"], "dev", "eth0"], check=True)
    rc, out = cni("CHECK", conf(prevResult=res), **args)
    assert out["code"] == 101 and "address 10.89.0.2/24 is missing" in out["msg"], out
    cni.ok("DEL", conf(), **args)
    res = cni.ok("ADD", conf(), **args)
    # the address reservation
    os.unlink(os.path.join(STATE_DIR, "cni", "nk", "leases", "10.89.0.2"))
    rc, out = cni("CHECK", conf(prevResult=res), **args)
    assert out["code"] == 101 and "reservation of 10.89.0.2" in out["msg"], out
    # the host end of the veth
    subprocess.run(["ip", "link", "del", res["interfaces"][1]["name"]], check=True)
    rc, out = cni("CHECK", conf(prevResult=res), **args)
    assert out["code"] == 101 and "is gone" in out["msg"], out
    cni.ok("DEL", conf(), **args)
    rc, out = cni("CHECK", conf(), **args)  # nothing added: the container is unknown
    assert out["code"] == 3
    assert nft_comments() == "" and state("nk") == []


def test_recover_leaves_attachments_alone(cni: Cni, host: Namespace, containers: list[Namespace]) -> None:
    """Every plugin process has exited when recover() runs: what ADD made is kept on purpose, and its
    nft elements carry no process's owner mark, so crash recovery leaves it all in place."""
    import netns_kit as nk

    a = container(containers, "cni-rec")
    ports = {"portMappings": [{"hostPort": 8085, "containerPort": 80, "protocol": "tcp"}]}
    res = cni.ok("ADD", conf(runtimeConfig=ports), cid="rec", netns=a.path)
    before = (links(), nft_comments(), state("nk"))
    nk.recover()
    assert (links(), nft_comments(), state("nk")) == before
    assert cni("CHECK", conf(runtimeConfig=ports, prevResult=res), cid="rec", netns=a.path) == (0, None)
    cni.ok("DEL", conf(), cid="rec", netns=a.path)
    assert nft_comments() == "" and state("nk") == []


@pytest.mark.parametrize("step", ["_attachment_elements", "_result"])
def test_a_killed_add_is_undone_by_del_and_by_gc(cni: Cni, host: Namespace, containers: list[Namespace],
                                                 step: str) -> None:
    """The plugin SIGKILLed halfway through ADD (after the veth and lease, or after the nft elements
    too): the DEL a runtime sends after a failed ADD removes all of it, and so does GC."""
    ports = {"portMappings": [{"hostPort": 8086, "containerPort": 80, "protocol": "tcp"}]}
    code = ("import os, signal, sys\nimport netns_kit.cni as c\n"
            f"setattr(c, {step!r}, lambda *a: os.kill(os.getpid(), signal.SIGKILL))\n"
            "c.handle({**os.environ, 'CNI_COMMAND': 'ADD'}, sys.argv[1].encode())\n")
    for verb in ("DEL", "GC"):
        a = container(containers, f"cni-kill-{verb.lower()}")
        env = {**os.environ, "CNI_CONTAINERID": "kill", "CNI_NETNS": a.path, "CNI_IFNAME": "eth0", "PYTHONPATH": REPO}
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(conf(runtimeConfig=ports))], env=env)
        assert proc.returncode == -9
        assert "eth0" in [ln.name for ln in a.links()] and "leases/10.89.0.2" in state("nk")
        assert ("8086" in nft_comments()) == (step == "_result")
        if verb == "DEL":
            cni.ok("DEL", conf(), cid="kill", netns=a.path)
        else:
            gc: dict[str, Any] = {"cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
            cni.ok("GC", conf(**gc))
        assert nft_comments() == "" and state("nk") == [] and [ln.name for ln in a.links()] == ["lo"]


def test_an_add_that_fails_leaves_nothing(cni: Cni, host: Namespace, containers: list[Namespace]) -> None:
    a, b = container(containers, "cni-f1"), container(containers, "cni-f2")
    ports = {"portMappings": [{"hostPort": 8083, "containerPort": 80, "protocol": "tcp"}]}
    cni.ok("ADD", conf(runtimeConfig=ports), cid="f1", netns=a.path)
    before = (links(), nft_comments(), state("nk"))
    rc, out = cni("ADD", conf(runtimeConfig=ports), cid="f2", netns=b.path)  # the host port is taken
    assert rc != 0 and out["code"] == 102, out
    assert (links(), nft_comments(), state("nk")) == before and [ln.name for ln in b.links()] == ["lo"]
    rc, out = cni("ADD", conf(), cid="f1", netns=a.path)  # ADD twice without DEL
    assert out["code"] == 102
    cni.ok("DEL", conf(), cid="f1", netns=a.path)
    assert nft_comments() == "" and state("nk") == []


# -- GC and STATUS (spec 1.1) ----------------------------------------------------------------------------

def test_gc_removes_every_attachment_not_listed(cni: Cni, host: Namespace, containers: list[Namespace]) -> None:
    nss = [container(containers, f"cni-gc{i}") for i in range(3)]
    results = [cni.ok("ADD", conf(cniVersion="1.1.0"), cid=f"gc{i}", netns=ns.path) for i, ns in enumerate(nss)]
    _, out = cni("GC", conf(cniVersion="1.0.0"))
    assert out["code"] == 1  # GC is 1.1.0
    keep: dict[str, Any] = {"cniVersion": "1.1.0",
                            "cni.dev/valid-attachments": [{"containerID": "gc1", "ifname": "eth0"}]}
    cni.ok("GC", conf(**keep))
    left = [r["interfaces"][1]["name"] for r in results]
    assert [n in links() for n in left] == [False, True, False]
    assert [ln.name for ln in nss[0].links()] == ["lo"] and "eth0" in [ln.name for ln in nss[1].links()]
    assert cni("CHECK", conf(cniVersion="1.1.0"), cid="gc1", netns=nss[1].path)[0] == 0
    assert state("nk") == sorted(["network.json", "leases/10.89.0.3",
                                  f"attachments/{os.listdir(os.path.join(STATE_DIR, 'cni/nk/attachments'))[0]}"])
    none: dict[str, Any] = {"cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
    cni.ok("GC", conf(**none))
    assert nft_comments() == "" and state("nk") == [] and "nk-br" not in links()


def test_status(cni: Cni, host: Namespace, containers: list[Namespace]) -> None:
    small = conf(cniVersion="1.1.0", subnet="10.89.0.0/30")  # room for one address beside the gateway
    assert cni("STATUS", small) == (0, None)
    a = container(containers, "cni-st")
    cni.ok("ADD", small, cid="st", netns=a.path)
    rc, out = cni("STATUS", small)
    assert rc != 0 and out["code"] == 50, out
    cni.ok("DEL", small, cid="st", netns=a.path)
    assert cni("STATUS", small) == (0, None)


# -- chains with the reference plugins ---------------------------------------------------------------

def test_first_in_a_chain_before_portmap_bandwidth_tuning_firewall(cni: Cni, host: Namespace,
                                                                    containers: list[Namespace]) -> None:
    """The conflist a cluster would use: netns-kit-cni makes the interface, the reference plugins
    publish the port (portmap, iptables), shape (bandwidth), tune (tuning) and filter (firewall)."""
    a = container(containers, "cni-ch")
    chain: list[dict[str, Any]] = [
        conf(),
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True,
         "runtimeConfig": {"portMappings": [{"hostPort": 8090, "containerPort": 80, "protocol": "tcp"}]}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True},
         "runtimeConfig": {"bandwidth": {"ingressRate": 10_000_000, "ingressBurst": 100_000,
                                         "egressRate": 10_000_000, "egressBurst": 100_000}}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}},
        {"type": "firewall", "backend": "iptables"},
    ]
    prev: dict[str, Any] | None = None
    with outside_world(host) as out:
        for plugin in chain:
            c = {"cniVersion": "1.0.0", "name": "nk", **plugin}
            if prev is not None:
                c["prevResult"] = prev
            prev = cni.ok("ADD", c, cid="ch", netns=a.path, plugin=c["type"])
        assert prev is not None and prev["ips"][0]["address"] == "10.89.0.2/24"
        assert a.read_sysctl("net.ipv4.conf.eth0.accept_redirects") == "0"
        qdiscs = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True, check=True).stdout
        assert "tbf" in qdiscs
        with serve(a, "0.0.0.0", 80):
            assert wait_connect(out, HOST_IP, 8090) == "hello from cni-ch\n"  # through portmap's DNAT
        # (portmap 1.1.1's own CHECK fails on an IPv4-only container: it looks for its IPv6 chain too)
        for plugin in [p for p in chain if p["type"] != "portmap"]:
            c = {"cniVersion": "1.0.0", "name": "nk", **plugin, "prevResult": prev}
            rc, res = cni("CHECK", c, cid="ch", netns=a.path, plugin=c["type"])
            assert rc == 0, (c["type"], res)
        for plugin in reversed(chain):
            c = {"cniVersion": "1.0.0", "name": "nk", **plugin, "prevResult": prev}
            cni.ok("DEL", c, cid="ch", netns=a.path, plugin=c["type"])
    assert nft_comments() == "" and state("nk") == [] and [ln.name for ln in a.links()] == ["lo"]


def test_later_in_a_chain_passes_the_previous_result_on(cni: Cni, host: Namespace,
                                                         containers: list[Namespace]) -> None:
    """After the reference bridge plugin (eth0), netns-kit-cni adds eth1 and merges its result into the
    prevResult it was given; its own bandwidth capability shapes eth1."""
    a = container(containers, "cni-late")
    data = tempfile.mkdtemp(prefix="nk-hl-", dir="/run")
    try:
        first = {"cniVersion": "1.0.0", "name": "ref", "type": "bridge", "bridge": "ref-br", "isGateway": True,
                 "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.90.0.0/24"}]]}}
        prev = cni.ok("ADD", first, cid="late", netns=a.path, plugin="bridge")
        mine = conf(isDefaultGateway=False, isGateway=True, prevResult=prev,
                    runtimeConfig={"bandwidth": {"ingressRate": 8_000_000, "egressRate": 8_000_000}})
        res = cni.ok("ADD", mine, cid="late", netns=a.path, ifname="eth1")
        n = len(prev["interfaces"])
        assert res["interfaces"][:n] == prev["interfaces"] and res["ips"][0] == prev["ips"][0]
        assert res["ips"][-1] == {"address": "10.89.0.2/24", "gateway": "10.89.0.1", "interface": n + 2}
        assert res["interfaces"][n + 2]["name"] == "eth1"
        assert "tbf" in subprocess.run(["ip", "netns", "exec", "cni-late", "tc", "qdisc", "show", "dev", "eth1"],
                                       capture_output=True, text=True, check=True).stdout
        assert cni("CHECK", {**mine, "prevResult": res}, cid="late", netns=a.path, ifname="eth1") == (0, None)
        cni.ok("DEL", {**mine, "prevResult": res}, cid="late", netns=a.path, ifname="eth1")
        cni.ok("DEL", {**first, "prevResult": prev}, cid="late", netns=a.path, plugin="bridge")
    finally:
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run(["ip", "link", "del", "ref-br"], capture_output=True)
    assert [ln.name for ln in a.links()] == ["lo"] and state("nk") == [] and nft_comments() == ""


def test_the_benchmark_runs_and_leaves_nothing(tmp_path: Any) -> None:
    """`python -m benchmarks.cni_plugin`, tiny: both chains run in their workers and leave nothing behind."""
    raw = tmp_path / "cni.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cni_plugin", "-n", "3", "--runs", "1", "--json",
                           str(raw)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(raw.read_text())
    assert set(data["runs"]) == {"cni", "netns_kit_cni"}
    for runs in data["runs"].values():
        assert runs[0]["n"] == 3 and runs[0]["leftovers"] == [], runs
    assert "ratio netns-kit-cni / reference" in proc.stdout
