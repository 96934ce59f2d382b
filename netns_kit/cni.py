"""netns_kit as a CNI plugin: the protocol adapter container runtimes execute (not a command line for people).

A runtime (Podman's CNI backend, containerd, CRI-O, Multus) runs the ``netns-kit-cni`` executable
once per container and verb, with ``CNI_COMMAND``, ``CNI_CONTAINERID``, ``CNI_NETNS``,
``CNI_IFNAME``, ``CNI_ARGS`` and ``CNI_PATH`` in the environment and the network configuration on
stdin; the answer (a Result, or the spec's error object) goes to stdout. Verbs: ADD, DEL, CHECK,
VERSION (spec 1.0.0) and GC, STATUS (spec 1.1.0). The work is netns_kit's own: a bridge
(:class:`~netns_kit.Bridge`), one veth per attachment through the bridge driver
(:func:`netns_kit._wiring.plug`), addresses from the subnet's leases (:mod:`netns_kit._leases`),
masquerade, published ports and hairpin as elements of netns_kit's nft table
(:mod:`netns_kit._nft_render`), and bandwidth as root qdiscs (:class:`~netns_kit.BandwidthLimit`).

What is kept, and how DEL finds it
----------------------------------
Each network has a directory ``/run/netns-kit/cni/<name>/``: ``network.json`` (the bridge, its
index, whether this plugin made it, the sysctl it changed), ``leases/`` (one file per address,
naming its attachment) and ``attachments/<hash>.json``, one record per (container id, ifname),
written *before* ADD changes anything. Everything an attachment makes carries its identity: the
host end of its veth is named from a hash of it, its leases name it, and its nft elements carry the
comment ``netns-kit-cni:<hash>``. DEL and GC remove by that identity, so they work without the
container's namespace, without prevResult and after an ADD that died halfway; they never look
inside the namespace. When the last attachment of a network goes, so do the network's own
elements, the bridge (if this plugin made it) and its state.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from . import _nft, _state, _sys
from . import _nft_render as render
from ._leases import LeaseBook
from ._wiring import BridgePort, host_ifname_for, plug
from .errors import (
    AlreadyExistsError,
    NetnsKitError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from .firewall import delete_marked, ensure_family6, ensure_table
from .ipam import AddressAllocator, ExhaustedError, SubnetPlan
from .links import Bridge
from .model import IPAddr, IPInterface, Route, parse_ip, parse_mac, parse_network, validate_ifname
from .namespace import Namespace
from .ports import PublishedPort

__all__ = ["SUPPORTED_VERSIONS", "CniError", "NetConf", "attachment_id", "handle", "main", "parse_conf"]

SUPPORTED_VERSIONS = ("1.0.0", "1.1.0")
"""CNI spec versions this plugin speaks (1.0.0: the runtimes of Debian 12; 1.1.0 adds GC and STATUS)."""

MARK_PREFIX = "netns-kit-cni:"
"""The comment on every nft element the plugin adds; never a process owner mark (``netns-kit:``), so
crash recovery of dead processes leaves attachments alone: only DEL and GC remove them."""

# error codes of the spec (1-99) and this plugin's own (100 and up)
E_VERSION, E_UNSUPPORTED_FIELD, E_UNKNOWN_CONTAINER, E_ENV = 1, 2, 3, 4
E_IO, E_DECODE, E_CONFIG, E_TRY_LATER = 5, 6, 7, 11
E_UNAVAILABLE = 50
E_FAILED = 100  # the kernel or state refused a change (the message says which and why)
E_CHECK = 101  # CHECK found the attachment differs from what ADD made
E_EXISTS = 102  # ADD for an attachment that exists already, or a host port another one publishes


class CniError(NetnsKitError):
    """An error the plugin reports as the spec's error object (``code``, ``msg``, ``details``);
    :func:`handle` turns it (and every other NetnsKitError) into that object and never raises."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg, step="CNI")
        self.code = code
        self.msg = msg
        self.details = details


# -- configuration (validated before anything changes) ------------------------------------------------

@dataclass(frozen=True)
class _Range:
    plan: SubnetPlan
    start: IPAddr | None = None
    end: IPAddr | None = None


@dataclass(frozen=True)
class NetConf:
    """The network configuration of one invocation, parsed and checked (no kernel access)."""

    name: str
    cni_version: str
    bridge: str = "cni0"
    is_gateway: bool = False
    is_default_gateway: bool = False
    ip_masq: bool = False
    mtu: int | None = None
    hairpin: bool = False
    ranges: tuple[_Range, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: dict[str, Any] = field(default_factory=dict)
    ports: tuple[dict[str, Any], ...] = ()
    ips: tuple[IPAddr, ...] = ()
    mac: str | None = None
    bandwidth: dict[str, int] = field(default_factory=dict)
    prev_result: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _want(conf: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = conf.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise CniError(E_CONFIG, f"invalid network configuration: {key!r} has the wrong type",
                       f"{key}={value!r}")
    return value


def _ranges(conf: Mapping[str, Any]) -> tuple[_Range, ...]:
    """The address ranges: top-level ``subnet``/``gateway``/``ranges`` or an ``ipam`` section of the
    host-local shape (``subnet``, ``gateway``, ``rangeStart``, ``rangeEnd``, ``ranges``, ``routes``)."""
    ipam = _want(conf, "ipam", dict, {})
    if ipam.get("type") not in (None, "host-local", "netns-kit"):
        raise CniError(E_UNSUPPORTED_FIELD, "netns_kit hands out addresses itself: ipam.type must be absent, "
                       "'host-local' or 'netns-kit'", f"ipam.type={ipam.get('type')!r}")
    src = ipam or conf
    sets: list[list[dict[str, Any]]] = []
    if src.get("ranges") is not None:
        raw = _want(src, "ranges", list)
        for rs in raw:
            if not isinstance(rs, list) or not rs or not all(isinstance(r, dict) for r in rs):
                raise CniError(E_CONFIG, "invalid network configuration: each entry of 'ranges' must be a "
                               "non-empty list of ranges", repr(rs))
            sets.append(rs)
    elif src.get("subnet") is not None:
        sets.append([{k: src.get(k) for k in ("subnet", "gateway", "rangeStart", "rangeEnd")}])
    if not sets:
        raise CniError(E_CONFIG, "invalid network configuration: a 'subnet' or 'ranges' is needed")
    out: list[_Range] = []
    for rs in sets:
        r = rs[0]  # one address per range set (as host-local); further ranges of a set are refused
        if len(rs) > 1:
            raise CniError(E_UNSUPPORTED_FIELD, "netns_kit takes one range per range set", repr(rs))
        try:
            plan = SubnetPlan(str(r.get("subnet")), gateway=r.get("gateway"))
            start = parse_ip(r["rangeStart"], what="rangeStart") if r.get("rangeStart") else None
            end = parse_ip(r["rangeEnd"], what="rangeEnd") if r.get("rangeEnd") else None
        except NetnsKitError as exc:
            raise CniError(E_CONFIG, f"invalid network configuration: {exc}", repr(r)) from exc
        for a in (start, end):
            if a is not None and a not in plan.network:
                raise CniError(E_CONFIG, f"invalid network configuration: {a} is outside {plan.network}", repr(r))
        out.append(_Range(plan, start, end))
    versions = [r.plan.version for r in out]
    if len(set(versions)) != len(versions):
        raise CniError(E_UNSUPPORTED_FIELD, "netns_kit takes at most one IPv4 and one IPv6 range set",
                       repr(sets))
    return tuple(out)


def parse_conf(data: bytes, *, command: str) -> NetConf:
    """Parse and check the configuration on stdin; :class:`CniError` (nothing changed) if it is bad."""
    try:
        conf = json.loads(data or b"{}")
    except ValueError as exc:
        raise CniError(E_DECODE, f"failed to decode the network configuration: {exc}") from exc
    if not isinstance(conf, dict):
        raise CniError(E_DECODE, "the network configuration must be a JSON object")
    version = conf.get("cniVersion")
    if command == "VERSION":
        return NetConf(name="", cni_version=str(version or SUPPORTED_VERSIONS[-1]), raw=conf)
    if version not in SUPPORTED_VERSIONS:
        raise CniError(E_VERSION, f"incompatible CNI version {version!r} (netns_kit speaks "
                       f"{', '.join(SUPPORTED_VERSIONS)})")
    if command in ("GC", "STATUS") and version == "1.0.0":
        raise CniError(E_VERSION, f"{command} needs CNI version 1.1.0 (the configuration says 1.0.0)")
    name = _want(conf, "name", str, "")
    if not name or len(name) > 128 or "/" in name or name.startswith("."):
        raise CniError(E_CONFIG, "invalid network configuration: 'name' must be a non-empty name", repr(name))
    try:
        bridge = validate_ifname(_want(conf, "bridge", str, "cni0"), what="bridge name")
    except NetnsKitError as exc:
        raise CniError(E_CONFIG, f"invalid network configuration: {exc}") from exc
    mtu = _want(conf, "mtu", int)
    if mtu is not None and not 68 <= mtu <= 65535:
        raise CniError(E_CONFIG, "invalid network configuration: 'mtu' must be 68..65535", repr(mtu))
    ranges = _ranges(conf)
    ipam = _want(conf, "ipam", dict, {})
    routes: list[Route] = []
    for r in _want(ipam, "routes", list, []) + _want(conf, "routes", list, []):
        if not isinstance(r, dict) or not isinstance(r.get("dst"), str):
            raise CniError(E_CONFIG, "invalid network configuration: a route needs 'dst'", repr(r))
        net = parse_network(r["dst"], what="route destination")
        gw = r.get("gw")
        if gw is None:
            gw = next((str(x.plan.gateway_ip) for x in ranges if x.plan.version == net.version), None)
        try:
            routes.append(Route(str(net), gateway=gw))
        except NetnsKitError as exc:
            raise CniError(E_CONFIG, f"invalid network configuration: {exc}", repr(r)) from exc
    is_default = _want(conf, "isDefaultGateway", bool, False)
    if is_default:
        for x in ranges:
            dst = "0.0.0.0/0" if x.plan.version == 4 else "::/0"
            if not any(str(r.network) == dst for r in routes):
                routes.append(Route(dst, gateway=str(x.plan.gateway_ip)))
    rc = _want(conf, "runtimeConfig", dict, {})
    ports = tuple(_want(rc, "portMappings", list, []))
    for p in ports:
        if not isinstance(p, dict) or not isinstance(p.get("hostPort"), int) or not isinstance(
                p.get("containerPort"), int):
            raise CniError(E_CONFIG, "invalid runtimeConfig: a port mapping needs integer hostPort and "
                           "containerPort", repr(p))
    ips: list[IPAddr] = []
    for a in _want(rc, "ips", list, []):
        try:
            ip = ipaddress.ip_interface(str(a)).ip if "/" in str(a) else parse_ip(a, what="runtimeConfig ips")
        except (ValueError, NetnsKitError) as exc:
            raise CniError(E_CONFIG, f"invalid runtimeConfig ips: {a!r}") from exc
        if not any(ip in x.plan.network for x in ranges):
            raise CniError(E_CONFIG, f"invalid runtimeConfig ips: {ip} is in no range of network {name}")
        ips.append(ip)
    mac = _want(rc, "mac", str)
    if mac is not None:
        try:
            mac = parse_mac(mac)
        except NetnsKitError as exc:
            raise CniError(E_CONFIG, f"invalid runtimeConfig mac: {exc}") from exc
    bw = _want(rc, "bandwidth", dict, {})
    for k, v in bw.items():
        if k not in ("ingressRate", "ingressBurst", "egressRate", "egressBurst") or not isinstance(v, int) or v < 0:
            raise CniError(E_CONFIG, "invalid runtimeConfig bandwidth", f"{k}={v!r}")
    prev = conf.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(E_DECODE, "prevResult must be a JSON object")
    return NetConf(
        name=name, cni_version=str(version), bridge=bridge,
        is_gateway=_want(conf, "isGateway", bool, False) or is_default, is_default_gateway=is_default,
        ip_masq=_want(conf, "ipMasq", bool, False), mtu=mtu, hairpin=_want(conf, "hairpinMode", bool, False),
        ranges=ranges, routes=tuple(routes), dns=_want(conf, "dns", dict, {}), ports=ports, ips=tuple(ips),
        mac=mac, bandwidth=dict(bw), prev_result=prev, raw=conf)


# -- state on disk ---------------------------------------------------------------------------------

def _net_dir(name: str) -> str:
    return os.path.join(_sys.STATE_DIR, "cni", name)


def attachment_id(network: str, container_id: str, ifname: str) -> str:
    """The identity of one attachment (hex): names its record, host interface and nft comment."""
    return hashlib.sha256(f"{network}\0{container_id}\0{ifname}".encode()).hexdigest()[:24]


class _Net:
    """One CNI network's state directory. Callers hold its lock (:meth:`locked`)."""

    def __init__(self, conf: NetConf) -> None:
        self.conf = conf
        self.dir = _net_dir(conf.name)
        self.file = os.path.join(self.dir, "network.json")
        self.att_dir = os.path.join(self.dir, "attachments")
        self.leases = LeaseBook(os.path.join(self.dir, "leases"))
        self.mark = MARK_PREFIX + "net-" + hashlib.sha256(conf.name.encode()).hexdigest()[:20]

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return _state.lock("cni-" + hashlib.sha256(self.conf.name.encode()).hexdigest()[:24])

    def record_path(self, att: str) -> str:
        return os.path.join(self.att_dir, att + ".json")

    def attachments(self) -> list[dict[str, Any]]:
        try:
            names = sorted(os.listdir(self.att_dir))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            if n.endswith(".json"):
                rec = _state.read_json(os.path.join(self.att_dir, n))
                if rec is not None:
                    out.append(rec)
        return out


# -- ADD -------------------------------------------------------------------------------------------

def _ensure_network(net: _Net, host: Namespace, ctx: _nft.NftContext) -> dict[str, Any]:
    """The network's bridge and its own nft elements, made on its first attachment. Undo: :func:`_drop_network`."""
    conf = net.conf
    data = _state.read_json(net.file)
    sock = host.rtnl()
    if data is not None:
        info = sock.get_link(index=int(data["bridge_index"]))
        if info is not None and info.name == data["bridge"]:
            return data
        _state.delete_json(net.file)  # its bridge went behind our back: start again
    gateways: list[IPInterface] = [r.plan.gateway_interface() for r in conf.ranges] if conf.is_gateway else []
    info = sock.get_link(name=conf.bridge)
    data = {"bridge": conf.bridge, "made_bridge": info is None, "forwarding": {}, "gateways": []}
    _state.write_json(net.file, {**data, "bridge_index": 0})
    if info is None:
        br = Bridge(conf.bridge, namespace=host, addresses=gateways, mtu=conf.mtu,
                    ipv6_link_local=not any(r.plan.version == 6 for r in conf.ranges)).create()
        data["bridge_index"] = br.index
    else:
        if info.kind != "bridge":
            raise CniError(E_CONFIG, f"interface {conf.bridge!r} exists and is not a bridge ({info.kind})")
        data["bridge_index"] = info.index
        have = {i for _, i in sock.interfaces(info.index)}
        for gw in gateways:
            if gw not in have:
                sock.add_address(info.index, gw, obj=f"{gw} on {conf.bridge}")
                data["gateways"].append(str(gw))
    data["subnets"] = [str(r.plan.network) for r in conf.ranges]
    # route_localnet: a port published on 127.0.0.1 is DNATed onto the bridge (the table's guard chain
    # drops 127.0.0.0/8 arriving from a bridge); forwarding: the way out for a gateway or masquerade
    keys = [f"net/ipv4/conf/{conf.bridge}/route_localnet"] if any(r.plan.version == 4 for r in conf.ranges) else []
    if conf.is_gateway or conf.ip_masq:
        keys += ["net/ipv4/ip_forward" if r.plan.version == 4 else "net/ipv6/conf/all/forwarding"
                 for r in conf.ranges]
    for key in keys:
        with host.enter():
            old = _sys.write_sysctl(_sys.PROC_SYS + key, "1")
        if old is not None and old != "1":
            data["forwarding"][key] = old
    _state.write_json(net.file, data)
    ensure_table(ctx, host.label)
    elements = render.network_elements(conf.bridge, [r.plan.network for r in conf.ranges], internal=False,
                                       icc=True, masquerade=False)
    if render.needs_v6(elements):
        ensure_family6(ctx)
    ctx.run_json(render.element_cmds("add", elements, comment=net.mark), obj=f"network {conf.name}",
                 step="attach network")
    return data


def _take_addresses(net: _Net, att: str, wants: Sequence[IPAddr]) -> list[IPInterface]:
    net.leases.create_directory()
    out: list[IPInterface] = []
    try:
        for r in net.conf.ranges:
            want = next((a for a in wants if a in r.plan.network), None)
            alloc = AddressAllocator(SubnetPlan(r.plan.network, gateway=r.plan.gateway_ip))
            if want is not None:
                alloc.check(want)
                if not net.leases.claim(want, att):
                    raise CniError(E_EXISTS, f"address {want} is already in use on network {net.conf.name}")
                out.append(alloc.interface(want))
                continue
            lo = int(r.start) if r.start is not None else None
            hi = int(r.end) if r.end is not None else None
            while True:
                try:
                    ip = alloc.allocate()
                except ExhaustedError as exc:
                    raise CniError(E_TRY_LATER, f"no free address left on network {net.conf.name} ({exc})") from exc
                if (lo is not None and int(ip) < lo) or (hi is not None and int(ip) > hi):
                    continue
                if net.leases.claim(ip, att):
                    out.append(alloc.interface(ip))
                    break
    except BaseException:
        for iface in out:
            net.leases.release(iface.ip)
        raise
    return out


def _published(conf: NetConf, addrs: Sequence[IPInterface], host_ifname: str) -> list[PublishedPort]:
    out = []
    for p in conf.ports:
        proto = str(p.get("protocol") or "tcp").lower()
        host_ip = p.get("hostIP") or None
        for a in addrs:
            fam = ipaddress.ip_address(host_ip).version if host_ip else a.version
            if fam != a.version:
                continue
            out.append(PublishedPort(host_port=int(p["hostPort"]), container_ip=str(a.ip),
                                     container_port=int(p["containerPort"]), bridge=conf.bridge, host_ip=host_ip,
                                     proto=proto, bridge_port=host_ifname))  # type: ignore[arg-type]
    return out


def _attachment_elements(conf: NetConf, addrs: Sequence[IPInterface], ports: Sequence[PublishedPort]
                         ) -> render.Elements:
    parts: list[render.Elements] = []
    if conf.ip_masq:
        parts += [render.masquerade_elements(ipaddress.ip_network(a.ip), conf.bridge) for a in addrs]
    parts += [render.port_elements(p) for p in ports]
    if ports:
        parts += [render.hairpin_elements(str(a.ip), a.version) for a in addrs]
    return render.merged(parts)


def _add(conf: NetConf, env: Mapping[str, str]) -> dict[str, Any]:
    cid, netns, ifname = _env(env, "CNI_CONTAINERID"), _env(env, "CNI_NETNS"), _env(env, "CNI_IFNAME")
    try:
        validate_ifname(ifname, what="CNI_IFNAME")
    except NetnsKitError as exc:
        raise CniError(E_ENV, f"invalid CNI_IFNAME: {exc}") from exc
    net = _Net(conf)
    att = attachment_id(conf.name, cid, ifname)
    host_ifname = host_ifname_for(att)
    host = Namespace.current()
    try:
        target = Namespace.from_path(netns)
    except NetnsKitError as exc:
        raise CniError(E_UNKNOWN_CONTAINER, f"cannot open the container's namespace {netns}: {exc}") from exc
    ctx = _nft.context_for(host)
    with net.locked():
        path = net.record_path(att)
        if os.path.exists(path):
            raise CniError(E_EXISTS, f"container {cid} already has interface {ifname} on network {conf.name} "
                           "(DEL it first)")
        record: dict[str, Any] = {"containerID": cid, "ifname": ifname, "netns": netns, "id": att,
                                  "host_ifname": host_ifname, "state": "adding"}
        _state.write_json(path, record)  # first: DEL and GC find a half-made attachment by it
        try:
            with _state.host_lock(host.identity):
                data = _ensure_network(net, host, ctx)
            addrs = _take_addresses(net, att, conf.ips)
            record["ips"] = [str(a) for a in addrs]
            _state.write_json(path, record)
            pair = plug(host, target, BridgePort(
                bridge=conf.bridge, ifname=ifname, host_ifname=host_ifname, addresses=tuple(addrs),
                routes=conf.routes, mac=conf.mac, mtu=conf.mtu, hairpin=conf.hairpin,
                ipv6_link_local=any(a.version == 6 for a in addrs)))
            record["host_index"], record["peer_index"] = pair.index, pair.peer_index
            ports = _published(conf, addrs, host_ifname)
            elements = _attachment_elements(conf, addrs, ports)
            if elements:
                record["elements"] = render.element_keys(elements)
                _state.write_json(path, record)
                cmds = render.element_cmds("add", {k: v for k, v in elements.items() if not k.startswith("dnat")},
                                           comment=MARK_PREFIX + att)
                cmds += render.element_cmds("create", {k: v for k, v in elements.items() if k.startswith("dnat")},
                                            comment=MARK_PREFIX + att)
                with _state.host_lock(host.identity):
                    if render.needs_v6(elements):
                        ensure_family6(ctx)
                    ctx.run_json(cmds, obj=f"container {cid}", step="publish ports and masquerade")
            if conf.bandwidth:
                _limit(conf, host, target, host_ifname, ifname)
            result = _result(conf, host, target, data, record, addrs)
            record.update(state="added", result=result, ports=[p.spec for p in ports])
            _state.write_json(path, record)
        except BaseException as exc:
            try:
                _remove(net, host, ctx, record)
            except Exception as undo:  # reported with the original error
                if isinstance(exc, CniError):
                    exc.details = f"{exc.details}; cleaning up also failed: {undo}".lstrip("; ")
            raise
    return _chain(conf, result)


def _limit(conf: NetConf, host: Namespace, target: Namespace, host_ifname: str, ifname: str) -> None:
    """runtimeConfig.bandwidth as token-bucket root qdiscs: ingress (to the container) on the host end,
    egress on the container's interface. They go with the veth."""
    from .harness import BandwidthLimit  # only an invocation with bandwidth pays for it

    bw = conf.bandwidth
    for rate, burst, ns, dev in ((bw.get("ingressRate"), bw.get("ingressBurst"), host, host_ifname),
                                 (bw.get("egressRate"), bw.get("egressBurst"), target, ifname)):
        if rate:
            BandwidthLimit(dev, rate, namespace=ns, burst=max((burst or 0) // 8, 1600) if burst else None).create()


def _mac(sock: Any, index: int) -> str:
    info = sock.get_link(index=index)
    return str(info.mac) if info is not None and info.mac else ""


def _result(conf: NetConf, host: Namespace, target: Namespace, data: dict[str, Any], record: dict[str, Any],
            addrs: Sequence[IPInterface]) -> dict[str, Any]:
    hs, ts = host.rtnl(), target.rtnl()
    interfaces = [{"name": conf.bridge, "mac": _mac(hs, int(data["bridge_index"]))},
                  {"name": record["host_ifname"], "mac": _mac(hs, int(record["host_index"]))},
                  {"name": record["ifname"], "mac": _mac(ts, int(record["peer_index"])), "sandbox": record["netns"]}]
    ips = []
    for a in addrs:
        entry: dict[str, Any] = {"address": str(a), "interface": 2}
        gw = next((r.plan.gateway_ip for r in conf.ranges if a.ip in r.plan.network), None)
        if gw is not None and conf.is_gateway:
            entry["gateway"] = str(gw)
        ips.append(entry)
    routes = [{"dst": str(r.network), **({"gw": str(r.gateway_ip)} if r.gateway_ip is not None else {})}
              for r in conf.routes]
    return {"cniVersion": conf.cni_version, "interfaces": interfaces, "ips": ips, "routes": routes,
            "dns": dict(conf.dns)}


def _chain(conf: NetConf, mine: dict[str, Any]) -> dict[str, Any]:
    """The Result to print: ours, or, when a plugin ran before us in the chain, its prevResult with
    ours appended (interface indexes shifted)."""
    prev = conf.prev_result
    if not prev:
        return mine
    shift = len(prev.get("interfaces") or [])
    ips = [dict(ip, interface=ip["interface"] + shift) if "interface" in ip else ip for ip in mine["ips"]]
    dns = dict(prev.get("dns") or {})
    dns.update(mine["dns"])
    return {"cniVersion": conf.cni_version, "interfaces": list(prev.get("interfaces") or []) + mine["interfaces"],
            "ips": list(prev.get("ips") or []) + ips, "routes": list(prev.get("routes") or []) + mine["routes"],
            "dns": dns}


# -- DEL and GC --------------------------------------------------------------------------------------

def _remove(net: _Net, host: Namespace, ctx: _nft.NftContext, record: Mapping[str, Any]) -> None:
    """Remove everything attachment ``record`` made, by its recorded identity; never looks inside the
    container's namespace. Idempotent. The network goes with its last attachment."""
    att = str(record["id"])
    sock = host.rtnl()
    name = str(record.get("host_ifname") or host_ifname_for(att))
    info = sock.get_link(name=name)
    index = record.get("host_index")
    if info is not None and info.kind == "veth" and (index is None or info.index == index):
        sock.delete_link(info.index, obj=name)
    with _state.host_lock(host.identity):
        delete_marked(ctx, MARK_PREFIX + att, None, step="delete container entries")
    for lease in list(net.leases.read()):
        if lease.link == att:
            net.leases.release(lease.ip)
    _state.delete_json(net.record_path(att))
    if not net.attachments():
        _drop_network(net, host, ctx)


def _drop_network(net: _Net, host: Namespace, ctx: _nft.NftContext) -> None:
    """The network's own elements, the bridge (if made here), the sysctls; then its state directory."""
    data = _state.read_json(net.file)
    with _state.host_lock(host.identity):
        delete_marked(ctx, net.mark, None, step="detach network")
        _drop_empty_table(ctx)
    if data is not None:
        sock = host.rtnl()
        info = sock.get_link(index=int(data.get("bridge_index") or 0)) if data.get("bridge_index") else None
        if info is not None and info.name == data.get("bridge"):
            if data.get("made_bridge"):
                sock.delete_link(info.index, obj=info.name)
            else:
                for gw in data.get("gateways") or []:
                    sock.delete_address(info.index, ipaddress.ip_interface(gw), obj=f"{gw} on {info.name}")
        for key, old in (data.get("forwarding") or {}).items():
            with host.enter():
                _sys.write_sysctl(_sys.PROC_SYS + key, str(old), expect="1")
    net.leases.remove_directory()
    _state.delete_json(net.file)
    _state.prune_dirs(net.att_dir)


def _drop_empty_table(ctx: _nft.NftContext) -> None:
    """Delete netns_kit's table if no element of anyone is left in it."""
    objs = ctx.list_table(render.FAMILY, render.TABLE, step="inspect table")
    if objs is None:
        return
    if any(o[k].get("elem") for o in objs for k in ("set", "map") if k in o):
        return
    with contextlib.suppress(NotFoundError):
        ctx.run_json([render.delete_table()], obj=f"table {render.FAMILY} {render.TABLE}", step="delete table")


def _del(conf: NetConf, env: Mapping[str, str]) -> None:
    cid, ifname = _env(env, "CNI_CONTAINERID"), _env(env, "CNI_IFNAME")
    net = _Net(conf)
    att = attachment_id(conf.name, cid, ifname)
    host = Namespace.current()
    ctx = _nft.context_for(host)
    with net.locked():
        record = _state.read_json(net.record_path(att)) or {"id": att}
        _remove(net, host, ctx, record)


def _gc(conf: NetConf) -> None:
    valid = conf.raw.get("cni.dev/valid-attachments") or []
    if not isinstance(valid, list):
        raise CniError(E_CONFIG, "cni.dev/valid-attachments must be a list")
    keep = {attachment_id(conf.name, str(v.get("containerID")), str(v.get("ifname")))
            for v in valid if isinstance(v, dict)}
    net = _Net(conf)
    host = Namespace.current()
    ctx = _nft.context_for(host)
    with net.locked():
        for record in net.attachments():
            if record.get("id") not in keep:
                _remove(net, host, ctx, record)
        known = {r.get("id") for r in net.attachments()}
        for lease in list(net.leases.read()):  # addresses of attachments whose record never got written
            if lease.link not in known:
                net.leases.release(lease.ip)
        if not known and os.path.exists(net.file):
            _drop_network(net, host, ctx)


# -- CHECK and STATUS --------------------------------------------------------------------------------

def _check(conf: NetConf, env: Mapping[str, str]) -> None:
    cid, netns, ifname = _env(env, "CNI_CONTAINERID"), _env(env, "CNI_NETNS"), _env(env, "CNI_IFNAME")
    net = _Net(conf)
    att = attachment_id(conf.name, cid, ifname)
    record = _state.read_json(net.record_path(att))
    if record is None or record.get("state") != "added":
        raise CniError(E_UNKNOWN_CONTAINER, f"container {cid} has no interface {ifname} on network {conf.name}")
    host = Namespace.current()
    try:
        target = Namespace.from_path(netns)
    except NetnsKitError as exc:
        raise CniError(E_UNKNOWN_CONTAINER, f"cannot open the container's namespace {netns}: {exc}") from exc
    problems: list[str] = []
    hs, ts = host.rtnl(), target.rtnl()
    data = _state.read_json(net.file) or {}
    br = hs.get_link(index=int(data.get("bridge_index") or 0)) if data.get("bridge_index") else None
    if br is None or br.name != conf.bridge:
        problems.append(f"bridge {conf.bridge} is gone")
    hinfo = hs.get_link(index=int(record["host_index"]))
    if hinfo is None or hinfo.name != record["host_ifname"]:
        problems.append(f"host interface {record['host_ifname']} is gone")
    elif br is not None and hinfo.master != br.index:
        problems.append(f"host interface {record['host_ifname']} is not on bridge {conf.bridge}")
    elif not hinfo.up:
        problems.append(f"host interface {record['host_ifname']} is down")
    pinfo = ts.get_link(index=int(record["peer_index"]))
    if pinfo is None or pinfo.name != ifname:
        problems.append(f"interface {ifname} is gone from {netns}")
    else:
        have = {i for _, i in ts.interfaces(pinfo.index)}
        for a in record.get("ips") or []:
            if ipaddress.ip_interface(a) not in have:
                problems.append(f"address {a} is missing on {ifname}")
        routes = {(str(r.dst), str(r.gateway) if r.gateway else None) for r in ts.routes()}
        for r in conf.routes:
            if (str(r.network), str(r.gateway_ip) if r.gateway_ip else None) not in routes:
                problems.append(f"route {r.network} is missing in {netns}")
    for a in record.get("ips") or []:
        ip = str(ipaddress.ip_interface(a).ip)
        lease = next((x for x in net.leases.read() if x.ip == ip), None)
        if lease is None or lease.link != att:
            problems.append(f"the reservation of {ip} is gone")
    prev = conf.prev_result or {}
    prev_ips = {str(x.get("address")) for x in prev.get("ips") or [] if isinstance(x, dict)}
    for a in record.get("ips") or []:
        if prev and a not in prev_ips:
            problems.append(f"prevResult does not list {a}")
    want = record.get("elements") or {}
    if want:
        objs = _nft.context_for(host).list_table(render.FAMILY, render.TABLE, step="check entries") or []
        have_keys: dict[str, set[str]] = {}
        for o in objs:
            for kind in ("set", "map"):
                body = o.get(kind) or {}
                for elem in body.get("elem", []):
                    key, comment = render.element_key(kind, elem)
                    if comment == MARK_PREFIX + att:
                        have_keys.setdefault(body["name"], set()).add(json.dumps(key, sort_keys=True))
        for name, keys in want.items():
            for k in keys:
                if json.dumps(_listed(k), sort_keys=True) not in have_keys.get(name, set()):
                    problems.append(f"nft element {render.value_text(k)} of {name} is missing")
    if problems:
        raise CniError(E_CHECK, f"container {cid} on network {conf.name}: " + "; ".join(problems))


def _listed(key: Any) -> Any:
    """An element key as the kernel lists it: a host prefix (/32, /128) comes back as the address."""
    if isinstance(key, dict):
        p = key.get("prefix")
        if isinstance(p, dict) and p.get("len") == (32 if ":" not in str(p.get("addr")) else 128):
            return p["addr"]
        return {k: _listed(v) for k, v in key.items()}
    if isinstance(key, list):
        return [_listed(v) for v in key]
    return key


def _status(conf: NetConf) -> None:
    try:
        _sys.check_privileges()
    except PermissionDeniedError as exc:
        raise CniError(E_UNAVAILABLE, f"netns_kit cannot change the network: {exc}") from exc
    net = _Net(conf)
    held = {lease.ip for lease in net.leases.read()}
    for r in conf.ranges:
        alloc = AddressAllocator(SubnetPlan(r.plan.network, gateway=r.plan.gateway_ip))
        alloc.load({ip for ip in held if parse_ip(ip).version == r.plan.version and parse_ip(ip) in r.plan.network})
        if alloc.available <= 0:
            raise CniError(E_UNAVAILABLE, f"network {conf.name}: no free address left in {r.plan.network}")


# -- entry point -----------------------------------------------------------------------------------

def _env(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value:
        raise CniError(E_ENV, f"the environment variable {key} is missing")
    return value


def handle(env: Mapping[str, str], stdin: bytes) -> tuple[dict[str, Any] | None, int]:
    """Run one invocation: ``(what to print on stdout, exit status)``. Never raises."""
    command = env.get("CNI_COMMAND", "")
    version = SUPPORTED_VERSIONS[-1]
    try:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            v = json.loads(stdin or b"{}").get("cniVersion")
            if isinstance(v, str) and v:
                version = v
        if command not in ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"):
            raise CniError(E_ENV, f"unknown CNI_COMMAND {command!r}")
        conf = parse_conf(stdin, command=command)
        if command == "VERSION":
            return {"cniVersion": conf.cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}, 0
        if command == "ADD":
            return _add(conf, env), 0
        if command == "DEL":
            _del(conf, env)
        elif command == "CHECK":
            _check(conf, env)
        elif command == "GC":
            _gc(conf)
        else:
            _status(conf)
        return None, 0
    except CniError as exc:
        err: dict[str, Any] = {"cniVersion": version, "code": exc.code, "msg": exc.msg}
        if exc.details:
            err["details"] = exc.details
    except ValidationError as exc:
        err = {"cniVersion": version, "code": E_CONFIG, "msg": str(exc)}
    except AlreadyExistsError as exc:
        err = {"cniVersion": version, "code": E_EXISTS, "msg": str(exc)}
    except ExhaustedError as exc:
        err = {"cniVersion": version, "code": E_TRY_LATER, "msg": str(exc)}
    except NetnsKitError as exc:
        err = {"cniVersion": version, "code": E_FAILED, "msg": str(exc)}
    except OSError as exc:
        err = {"cniVersion": version, "code": E_IO, "msg": f"I/O failure: {exc}"}
    return err, 1


def main() -> NoReturn:
    """The executable's entry point (``netns-kit-cni``): reads stdin and the CNI environment, prints
    the Result or the error object, and ends the process with the exit status.

    It ends the process itself (``os._exit``, after flushing the output and running the ``atexit``
    hooks, which settle netns_kit's journal): the interpreter's own teardown of every module would
    add ~10 ms to each of the runtime's calls and has nothing left to do.
    """
    out, status = handle(os.environ, sys.stdin.buffer.read())
    if out is not None:
        sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    import atexit

    atexit._run_exitfuncs()
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
