"""Topologies as data: a YAML file read into a validated :class:`TopologySpec`, and written back.

Pure: no kernel, no root (it reads and writes files, nothing else). Two formats are read:

- netns_kit's own schema (documented in docs/topology-files.md)::

      name: lab
      networks:                      # bridges on the host
        br-lab: {addresses: [10.50.0.1/24], nat: true}
      endpoints:                     # namespaces on a bridge (one mapping, or a list of them)
        web: {network: br-lab, address: 10.50.0.2/24, gateway: 10.50.0.1, publish: ["8080:80/tcp"]}
      links:                         # point-to-point veth pairs between namespaces
        - endpoints: ["web:eth1", "db:eth1"]
          addresses: [10.60.0.1/30, 10.60.0.2/30]
      impairments:                   # a root qdisc on one interface
        - {interface: "web:eth0", rate: 10mbit}

- a subset of containerlab's topology format (``name``, ``topology.nodes`` of kind ``linux`` or
  ``bridge``, ``topology.links`` with ``endpoints: ["a:eth1", "b:eth1"]``, addresses from the
  nodes' ``exec`` lines ``ip addr add ...``), so existing labs can be brought over.

Every structural mistake raises :class:`~netns_kit.errors.TopologyFileError` naming the field
(``endpoints.web.address``); :meth:`netns_kit.Topology.from_spec` checks the rest (subnets,
gateways, names taken twice) with the same error and field path, before anything is built.
:func:`dump_topology` writes a spec in netns_kit's schema; loading it again gives an equal spec.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from .errors import NetnsKitError, TopologyFileError, ValidationError
from .model import format_rate, parse_interface, parse_ip, parse_mac, parse_rate
from .ports import PortSpec

__all__ = [
    "EndpointSpec",
    "ImpairmentSpec",
    "LinkSpec",
    "NetworkSpec",
    "TopologySpec",
    "dump_topology",
    "parse_topology",
    "publish_text",
    "read_topology",
    "write_topology",
]

HOST = "host"
_T = TypeVar("_T")


@dataclass(frozen=True)
class NetworkSpec:
    """A bridge on the host (``Topology.bridge``): its addresses are the gateways of its subnets."""

    name: str
    addresses: tuple[str, ...] = ()
    mtu: int | None = None
    nat: bool = False
    masquerade: bool = True
    icc: bool = True
    where: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class EndpointSpec:
    """A namespace on a bridge through a veth pair (``Topology.endpoint``)."""

    namespace: str
    network: str
    addresses: tuple[str, ...]
    gateway: str | None = None
    ifname: str = "eth0"
    host_ifname: str | None = None
    mac: str | None = None
    publish: tuple[str, ...] = ()
    ipv6_link_local: bool | None = None
    where: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class LinkSpec:
    """A veth pair between two namespaces (``"NS:IFNAME"`` each; ``host`` is the host namespace)."""

    a: str
    b: str
    a_addresses: tuple[str, ...] = ()
    b_addresses: tuple[str, ...] = ()
    mtu: int | None = None
    where: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class ImpairmentSpec:
    """A root qdisc on ``interface`` (``"NS:IFNAME"``): a rate limit (tbf) or delay/jitter/loss (netem)."""

    interface: str
    rate: str | None = None
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_percent: float = 0.0
    where: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class TopologySpec:
    """A whole topology as plain values; :meth:`netns_kit.Topology.from_spec` plans and builds it."""

    name: str = "topology"
    namespaces: tuple[str, ...] = ()
    networks: tuple[NetworkSpec, ...] = ()
    endpoints: tuple[EndpointSpec, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    impairments: tuple[ImpairmentSpec, ...] = ()
    source: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """netns_kit's schema as plain data (fields at their default are left out)."""
        out: dict[str, Any] = {"name": self.name}
        if self.namespaces:
            out["namespaces"] = list(self.namespaces)
        if self.networks:
            out["networks"] = {n.name: _nondefault(n, ("name",)) for n in self.networks}
        if self.endpoints:
            eps: dict[str, Any] = {}
            for e in self.endpoints:
                d = _nondefault(e, ("namespace", "addresses"))
                d = {"network": d.pop("network"), "address": _one_or_list(e.addresses), **d}
                if e.namespace in eps:
                    prev = eps[e.namespace]
                    eps[e.namespace] = [*(prev if isinstance(prev, list) else [prev]), d]
                else:
                    eps[e.namespace] = d
            out["endpoints"] = eps
        if self.links:
            out["links"] = [{"endpoints": [lk.a, lk.b],
                             **({"addresses": [_one_or_list(lk.a_addresses) or None,
                                               _one_or_list(lk.b_addresses) or None]}
                                if lk.a_addresses or lk.b_addresses else {}),
                             **({"mtu": lk.mtu} if lk.mtu is not None else {})} for lk in self.links]
        if self.impairments:
            out["impairments"] = [{"interface": i.interface, **_nondefault(i, ("interface",))}
                                  for i in self.impairments]
        return out


def _nondefault(obj: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in obj.__dataclass_fields__.values():
        if f.name in skip or f.name == "where" or not f.init:
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out



def publish_text(spec: str) -> str:
    """A ``-p`` spec written the one way a file holds it (``8080:80/tcp``; ``0.0.0.0`` and ``[::]``,
    which a topology reads as every address, left out)."""
    p = PortSpec.parse(spec)
    if p.host_port is None:
        raise ValidationError(f"{spec!r}: a topology publishes a concrete host port (HOST:CONTAINER)", obj=spec)
    return dataclasses.replace(p, family=None).text if p.host_ip is None else p.text


def _one_or_list(values: tuple[str, ...]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


# -- reading ----------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one parsed document; every error names the field's path."""

    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> TopologyFileError:
        return TopologyFileError(message, field=where or "(document)", source=self.source)

    def mapping(self, value: object, where: str, known: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be a mapping, got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"keys must be strings, got {_kind(key)} {key!r}")
            if known is not None and key not in known:
                raise self.fail(_join(where, key), f"unknown field (known: {', '.join(known)})")
        return dict(value)

    def seq(self, value: object, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, got {_kind(value)}")
        return value

    def typed(self, value: object, where: str, types: tuple[type, ...], what: str) -> Any:
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise self.fail(where, f"must be {what}, got {_kind(value)} {value!r}")
        return value

    def string(self, value: object, where: str) -> str:
        return str(self.typed(value, where, (str,), "a string"))

    def opt(self, data: Mapping[str, Any], key: str, where: str, conv: Callable[[object, str], _T],
            default: _T) -> _T:
        return conv(data[key], _join(where, key)) if key in data and data[key] is not None else default

    def check(self, where: str, parse: Callable[[], _T]) -> _T:
        """Run a validator from the model; its ValidationError becomes a TopologyFileError at ``where``."""
        try:
            return parse()
        except TopologyFileError:
            raise
        except NetnsKitError as exc:
            raise self.fail(where, exc.message) from exc

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        """One string or a list of them."""
        if isinstance(value, str):
            return (value,)
        return tuple(self.string(v, f"{where}[{i}]") for i, v in enumerate(self.seq(value, where)))

    def addresses(self, value: object, where: str) -> tuple[str, ...]:
        items = self.strings(value, where)
        out = []
        for i, a in enumerate(items):
            at = where if isinstance(value, str) else f"{where}[{i}]"
            out.append(self.check(at, lambda a=a: str(parse_interface(a))))  # type: ignore[misc]
        return tuple(out)

    def publish(self, value: object, where: str) -> tuple[str, ...]:
        """``-p`` specs (one string or a list), each written the one way (:func:`publish_text`)."""
        items = self.strings(value, where)
        out = []
        for i, spec in enumerate(items):
            at = where if isinstance(value, str) else f"{where}[{i}]"
            out.append(self.check(at, lambda spec=spec: publish_text(spec)))  # type: ignore[misc]
        return tuple(out)

    def boolean(self, value: object, where: str) -> bool:
        return bool(self.typed(value, where, (bool,), "true or false"))

    def integer(self, value: object, where: str) -> int:
        return int(self.typed(value, where, (int,), "an integer"))

    def number(self, value: object, where: str) -> float:
        return float(self.typed(value, where, (int, float), "a number"))

    def end(self, value: object, where: str) -> str:
        """``"NS:IFNAME"``: a link end or an interface."""
        text = self.string(value, where)
        ns, sep, ifname = text.partition(":")
        if not sep or not ns or not ifname:
            raise self.fail(where, f"{text!r} must be 'NAMESPACE:INTERFACE' (e.g. 'web:eth1')")
        return text


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


_TOP = ("name", "version", "namespaces", "networks", "endpoints", "links", "impairments")
_NETWORK = ("addresses", "mtu", "nat", "masquerade", "icc")
_ENDPOINT = ("network", "address", "gateway", "ifname", "host_ifname", "mac", "publish", "ipv6_link_local")
_LINK = ("endpoints", "addresses", "mtu")
_IMPAIR = ("interface", "rate", "delay_ms", "jitter_ms", "loss_percent")


def _native(r: _Reader, doc: dict[str, Any]) -> TopologySpec:
    data = r.mapping(doc, "", _TOP)
    if "version" in data and data["version"] != 1:
        raise r.fail("version", f"{data['version']!r} is not a schema version netns_kit reads (1)")
    name = r.opt(data, "name", "", r.string, "topology")
    namespaces = tuple(r.string(v, f"namespaces[{i}]") for i, v in enumerate(r.seq(data.get("namespaces"),
                                                                                    "namespaces")))
    networks = []
    for bname, body in r.mapping(data.get("networks"), "networks").items():
        w = _join("networks", bname)
        nb = r.mapping(body, w, _NETWORK)
        networks.append(NetworkSpec(bname, r.opt(nb, "addresses", w, r.addresses, ()),
                                    r.opt(nb, "mtu", w, r.integer, None), r.opt(nb, "nat", w, r.boolean, False),
                                    r.opt(nb, "masquerade", w, r.boolean, True),
                                    r.opt(nb, "icc", w, r.boolean, True), where=w))
    endpoints = []
    for ns, body in r.mapping(data.get("endpoints"), "endpoints").items():
        w0 = _join("endpoints", ns)
        bodies = [(w0, body)] if not isinstance(body, list) else [(f"{w0}[{i}]", b) for i, b in enumerate(body)]
        for w, one in bodies:
            e = r.mapping(one, w, _ENDPOINT)
            if "network" not in e:
                raise r.fail(_join(w, "network"), "is required (the bridge this endpoint is on)")
            if "address" not in e:
                raise r.fail(_join(w, "address"), "is required (ADDR/PREFIX, or a list of them)")
            endpoints.append(EndpointSpec(
                ns, r.string(e["network"], _join(w, "network")), r.addresses(e["address"], _join(w, "address")),
                r.opt(e, "gateway", w, lambda v, p: r.check(p, lambda: str(parse_ip(r.string(v, p)))), None),
                r.opt(e, "ifname", w, r.string, "eth0"), r.opt(e, "host_ifname", w, r.string, None),
                r.opt(e, "mac", w, lambda v, p: r.check(p, lambda: parse_mac(r.string(v, p))), None),
                r.opt(e, "publish", w, r.publish, ()), r.opt(e, "ipv6_link_local", w, r.boolean, None), where=w))
    links = []
    for i, body in enumerate(r.seq(data.get("links"), "links")):
        w = f"links[{i}]"
        lk = r.mapping(body, w, _LINK)
        ends = r.seq(lk.get("endpoints"), _join(w, "endpoints"))
        if len(ends) != 2:
            raise r.fail(_join(w, "endpoints"), f"needs exactly two ends ('NS:IFNAME'), got {len(ends)}")
        a, b = (r.end(v, f"{w}.endpoints[{k}]") for k, v in enumerate(ends))
        addrs = r.seq(lk.get("addresses"), _join(w, "addresses"))
        if addrs and len(addrs) != 2:
            raise r.fail(_join(w, "addresses"), f"needs one entry per end (2), got {len(addrs)}")
        a_addr, b_addr = ((r.addresses(v, f"{w}.addresses[{k}]") if v is not None else ())
                          for k, v in enumerate(addrs or [None, None]))
        links.append(LinkSpec(a, b, a_addr, b_addr, r.opt(lk, "mtu", w, r.integer, None), where=w))
    impairments = []
    for i, body in enumerate(r.seq(data.get("impairments"), "impairments")):
        w = f"impairments[{i}]"
        im = r.mapping(body, w, _IMPAIR)
        if "interface" not in im:
            raise r.fail(_join(w, "interface"), "is required ('NS:IFNAME')")
        rate = r.opt(im, "rate", w, lambda v, p: r.check(
            p, lambda: format_rate(parse_rate(r.typed(v, p, (int, str), "a rate such as '10mbit'")))), None)
        impairments.append(ImpairmentSpec(r.end(im["interface"], _join(w, "interface")), rate,
                                          r.opt(im, "delay_ms", w, r.number, 0.0),
                                          r.opt(im, "jitter_ms", w, r.number, 0.0),
                                          r.opt(im, "loss_percent", w, r.number, 0.0), where=w))
    return TopologySpec(name, namespaces, tuple(networks), tuple(endpoints), tuple(links), tuple(impairments),
                        source=r.source)


# -- containerlab ---------------------------------------------------------------------------------------

_CLAB_TOP = ("name", "prefix", "mgmt", "topology", "settings")
_CLAB_TOPOLOGY = ("nodes", "links", "kinds", "defaults", "groups")
_CLAB_NODE_USED = ("kind", "exec")
# accepted and ignored: what configures a container image rather than its network
_CLAB_NODE_IGNORED = ("image", "group", "labels", "mgmt-ipv4", "mgmt-ipv6", "cmd", "entrypoint", "env",
                      "binds", "user", "startup-delay", "image-pull-policy", "restart-policy", "memory",
                      "cpu", "cpu-set", "shm-size", "stages", "startup-config", "license")
_CLAB_LINK = ("endpoints", "mtu")
_CLAB_KINDS = ("linux", "bridge")


def _containerlab(r: _Reader, doc: dict[str, Any]) -> TopologySpec:
    data = r.mapping(doc, "", _CLAB_TOP)
    if "name" not in data:
        raise r.fail("name", "is required (containerlab's lab name)")
    name = r.string(data["name"], "name")
    topo = r.mapping(data.get("topology"), "topology", _CLAB_TOPOLOGY)
    defaults = r.mapping(topo.get("defaults"), "topology.defaults")
    default_kind = r.opt(defaults, "kind", "topology.defaults", r.string, "linux")
    kinds: dict[str, str] = {}
    execs: dict[str, list[tuple[str, list[str]]]] = {}
    for node, body in r.mapping(topo.get("nodes"), "topology.nodes").items():
        w = _join("topology.nodes", node)
        n = r.mapping(body, w, _CLAB_NODE_USED + _CLAB_NODE_IGNORED)
        kind = r.opt(n, "kind", w, r.string, default_kind)
        if kind not in _CLAB_KINDS:
            raise r.fail(_join(w, "kind"), f"kind {kind!r} is not supported (netns_kit reads kinds "
                                           f"{', '.join(_CLAB_KINDS)}: a node is a network namespace)")
        if node == HOST:
            raise r.fail(w, f"{HOST!r} names the host namespace; it is not a node")
        kinds[node] = kind
        execs[node] = [(f"{w}.exec[{i}]", _words(r, line, f"{w}.exec[{i}]"))
                       for i, line in enumerate(r.seq(n.get("exec"), _join(w, "exec")))]
    ends: list[tuple[str, str, str, int | None]] = []  # (where, end a, end b, mtu)
    for i, body in enumerate(r.seq(topo.get("links"), "topology.links")):
        w = f"topology.links[{i}]"
        lk = r.mapping(body, w, _CLAB_LINK)
        pair = r.seq(lk.get("endpoints"), _join(w, "endpoints"))
        if len(pair) != 2:
            raise r.fail(_join(w, "endpoints"), f"needs exactly two ends ('node:ifname'), got {len(pair)}")
        a, b = (r.end(v, f"{w}.endpoints[{k}]") for k, v in enumerate(pair))
        for k, e in enumerate((a, b)):
            node = e.split(":", 1)[0]
            if node != HOST and node not in kinds:
                raise r.fail(f"{w}.endpoints[{k}]", f"node {node!r} is not in topology.nodes")
        ends.append((w, a, b, r.opt(lk, "mtu", w, r.integer, None)))
    # addresses and default routes come from the nodes' exec lines
    addrs: dict[str, list[str]] = {}
    gateways: dict[str, tuple[str, str]] = {}
    for node, lines in execs.items():
        for where, words in lines:
            _exec_line(r, node, where, words, addrs, gateways)
    networks = tuple(NetworkSpec(n, where=_join("topology.nodes", n)) for n, k in kinds.items() if k == "bridge")
    endpoints: list[EndpointSpec] = []
    links: list[LinkSpec] = []
    used: set[str] = set()
    for w, a, b, mtu in ends:
        na, nb = a.split(":", 1)[0], b.split(":", 1)[0]
        bridged = [(x, y) for x, y in ((a, b), (b, a)) if kinds.get(x.split(":", 1)[0]) == "bridge"]
        if len(bridged) == 2:
            raise r.fail(_join(w, "endpoints"), "links two bridges; netns_kit links namespaces to bridges")
        used.update(x for x in (na, nb) if kinds.get(x) == "linux")
        if bridged:
            br_end, ns_end = bridged[0]
            (bname, host_if), (ns, ifname) = br_end.split(":", 1), ns_end.split(":", 1)
            if ns == HOST:
                raise r.fail(_join(w, "endpoints"), "links the host to a bridge; not supported")
            if mtu is not None:
                raise r.fail(_join(w, "mtu"), "an MTU on a bridge link is not supported (set it on the bridge)")
            gw = gateways.pop(ns_end, None)
            endpoints.append(EndpointSpec(ns, bname, tuple(addrs.pop(ns_end, ())), gw[1] if gw else None,
                                          ifname, host_if, where=w))
        else:
            for e in (a, b):
                if e in gateways:
                    raise r.fail(gateways[e][0], "a default route over a point-to-point link is not supported "
                                                 "(only over a link to a bridge)")
            links.append(LinkSpec(a, b, tuple(addrs.pop(a, ())), tuple(addrs.pop(b, ())), mtu, where=w))
    for end, (where, _gw) in gateways.items():
        raise r.fail(where, f"routes through {end!r}, which no link in topology.links makes")
    for end in addrs:
        node, ifname = end.split(":", 1)
        raise r.fail(next(w for w, words in execs[node] if ifname in words),
                     f"adds an address to {ifname!r}, which no link in topology.links gives {node!r}")
    alone = tuple(n for n, k in kinds.items() if k == "linux" and n not in used)
    return TopologySpec(name, alone, networks, tuple(endpoints), tuple(links), (), source=r.source)


def _words(r: _Reader, line: object, where: str) -> list[str]:
    try:
        return shlex.split(r.string(line, where))
    except ValueError as exc:
        raise r.fail(where, f"cannot be split into words: {exc}") from exc


def _exec_line(r: _Reader, node: str, where: str, words: list[str], addrs: dict[str, list[str]],
               gateways: dict[str, tuple[str, str]]) -> None:
    """Read one containerlab ``exec`` line: ``ip addr add A dev IF``, ``ip route add default via GW
    [dev IF]`` and ``ip link set [dev] IF up`` are understood; anything else is refused."""
    w = [x for x in words if x not in ("-4", "-6")]
    if w[:1] != ["ip"] or len(w) < 3:
        raise r.fail(where, "only 'ip addr add', 'ip route add default via' and 'ip link set ... up' exec "
                            f"lines are understood, got {' '.join(words)!r}")
    obj, verb, rest = w[1], w[2], w[3:]
    if obj in ("addr", "address", "a") and verb == "add" and len(rest) == 3 and rest[1] == "dev":
        addr = r.check(where, lambda: str(parse_interface(rest[0])))
        addrs.setdefault(f"{node}:{rest[2]}", []).append(addr)
        return
    if obj in ("link", "l") and verb == "set" and rest[-1:] == ["up"]:
        return  # every interface netns_kit makes is up
    if obj in ("route", "r") and verb in ("add", "replace") and rest[:2] == ["default", "via"] and len(rest) >= 3:
        gw = r.check(where, lambda: str(parse_ip(rest[2], what="gateway")))
        dev = rest[4] if len(rest) == 5 and rest[3] == "dev" else None
        if len(rest) not in (3, 5) or (len(rest) == 5 and dev is None):
            raise r.fail(where, f"cannot read {' '.join(words)!r} (expected 'ip route add default via GW [dev IF]')")
        if dev is None:  # the interface whose address holds the gateway
            dev = next((e.split(":", 1)[1] for e, lst in addrs.items() if e.startswith(f"{node}:")
                        and any(parse_ip(gw) in parse_interface(a).network for a in lst)), None)
        if dev is None:
            raise r.fail(where, f"gateway {gw} is inside no address added to {node!r} before this line")
        gateways[f"{node}:{dev}"] = (where, gw)
        return
    raise r.fail(where, f"cannot read {' '.join(words)!r} (only 'ip addr add A dev IF', "
                        "'ip route add default via GW' and 'ip link set IF up' are understood)")


# -- entry points ---------------------------------------------------------------------------------------


def parse_topology(text: str, *, source: str | None = None) -> TopologySpec:
    """A topology from YAML text: containerlab's format if it has a ``topology:`` section,
    netns_kit's schema otherwise. TopologyFileError naming the field if anything is wrong."""
    r = _Reader(source)
    if not isinstance(text, str):
        raise r.fail("", f"must be YAML text, got {_kind(text)}")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(document)"
        raise r.fail(at, f"is not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(doc, Mapping):
        raise r.fail("", f"must be a mapping at the top level, got {_kind(doc)}")
    if "topology" in doc:
        return _containerlab(r, dict(doc))
    return _native(r, dict(doc))


def read_topology(path: str | os.PathLike[str]) -> TopologySpec:
    """Read a topology file (see :func:`parse_topology`); the error names the file and the field."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise TopologyFileError(f"cannot be read: {exc.strerror}", field="(file)", source=name) from exc
    return parse_topology(text, source=name)


def dump_topology(spec: TopologySpec) -> str:
    """``spec`` as YAML in netns_kit's schema (containerlab files are written in it too)."""
    return str(yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None, width=100))


def write_topology(spec: TopologySpec, path: str | os.PathLike[str]) -> None:
    """Write :func:`dump_topology`'s text to ``path`` (replaced whole: written aside, then renamed)."""
    name = os.fspath(path)
    tmp = f"{name}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(dump_topology(spec))
    os.replace(tmp, name)
