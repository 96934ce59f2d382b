"""Docker's JSON for netns_kit's networks and endpoints, so tools written for Docker can read them.

- :func:`network_inspect`: one element of ``docker network inspect NAME`` for a
  :class:`~netns_kit.Network`.
- :func:`endpoint_settings`: one entry of ``.NetworkSettings.Networks`` (Docker's EndpointSettings)
  for a :class:`~netns_kit.Connection`.
- :func:`network_settings`: ``docker inspect --format '{{json .NetworkSettings}}'`` for an
  :class:`~netns_kit.Endpoint`.

Values come from the kernel where the kernel holds the truth: the MAC address from the link, the
bridge's index (in the network's Id), published ports from the firewall's dnat maps, a network's
``Created`` from its state file. Ids are 64 hex digits, as Docker's, derived (SHA-256) from the
kernel identity of what they name: a namespace's (device, inode), a network's host namespace,
name and bridge index, an endpoint's network Id and host-side interface. docs/modes.md lists which
fields are filled and which are Docker's constants. Reads only; changes nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any

from ._netconfig import DEFAULT_NETWORK_NAME
from .errors import StateError

__all__ = ["endpoint_settings", "network_inspect", "network_settings"]


def _hexid(*parts: object) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def _rfc3339(ns: int) -> str:
    """Go's RFC 3339 with nanoseconds, in UTC (how dockerd prints ``Created``)."""
    sec, frac = divmod(ns, 10**9)
    stamp = datetime.datetime.fromtimestamp(sec, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return stamp + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def network_id(net: Any) -> str:
    """The network's Id: from its host namespace, name and bridge (by its kernel index)."""
    return _hexid("network", net.host.identity, net.name, net.host.link(net.bridge).index)


def container_id(ns: Any) -> str:
    """A namespace's container Id (the key of ``Containers``): from its (device, inode)."""
    return _hexid("container", ns.identity)


def _endpoint_id(net_id: str, conn: Any) -> str:
    return _hexid("endpoint", net_id, conn.host_ifname)


def _mac(conn: Any) -> str:
    mac = conn.namespace.link(conn.ifname).mac
    return str(mac) if mac else ""


def network_inspect(net: Any) -> dict[str, Any]:
    """``docker network inspect`` for one network (the list Docker prints holds this one dict)."""
    if not net.created:
        raise StateError(f"network {net.name!r} is not created (or was removed)", obj=net.name,
                         namespace=net.host.label, step="inspect network")
    cfg = net.config
    nid = network_id(net)
    path = getattr(net, "_state_path", None)
    created = _rfc3339(os.stat(path).st_mtime_ns) if path else "0001-01-01T00:00:00Z"
    ipam = [_ipam_entry(net.subnet, net.gateway, cfg.plan.range if cfg.ip_range is not None and cfg.plan else None)]
    if net.subnet6 is not None:
        ipam.append(_ipam_entry(net.subnet6, net.gateway6, cfg.plan6.range if cfg.ip_range6 is not None else None))
    containers = {}
    for conn in net.connections:
        containers[container_id(conn.namespace)] = {
            "Name": conn.names[0] if conn.names else conn.namespace.label,
            "EndpointID": _endpoint_id(nid, conn),
            "MacAddress": _mac(conn),
            "IPv4Address": str(conn.address),
            "IPv6Address": str(conn.address6) if conn.address6 is not None else "",
        }
    options = {"com.docker.network.bridge.name": net.bridge,
               "com.docker.network.bridge.enable_icc": str(cfg.icc).lower(),
               "com.docker.network.bridge.enable_ip_masquerade": str(cfg.masquerades).lower()}
    if cfg.mtu is not None:
        options["com.docker.network.driver.mtu"] = str(cfg.mtu)
    return {
        "Name": net.name,
        "Id": nid,
        "Created": created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": net.subnet6 is not None,
        "IPAM": {"Driver": "default", "Options": {}, "Config": ipam},
        "Internal": cfg.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": options,
        "Labels": {},
    }


def _ipam_entry(subnet: Any, gateway: Any, ip_range: Any) -> dict[str, str]:
    entry = {"Subnet": str(subnet), "Gateway": str(gateway)}
    if ip_range is not None and ip_range != subnet:
        entry["IPRange"] = str(ip_range)
    return entry


def _empty_settings(network_id: str = "", endpoint_id: str = "") -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": network_id,
            "EndpointID": endpoint_id, "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}


def endpoint_settings(conn: Any) -> dict[str, Any]:
    """One ``.NetworkSettings.Networks[NAME]`` entry (Docker's EndpointSettings) for a connection."""
    if not conn.connected:
        raise StateError(f"{conn.namespace.label} is no longer connected to {conn.network.name!r}",
                         obj=conn.ifname, namespace=conn.namespace.label, step="inspect connection")
    net = conn.network
    nid = network_id(net)
    out = _empty_settings(nid, _endpoint_id(nid, conn))
    out.update({
        "Aliases": list(conn.names) if net.name != DEFAULT_NETWORK_NAME and conn.names else None,
        "Gateway": str(net.gateway),
        "IPAddress": str(conn.address.ip),
        "IPPrefixLen": conn.address.network.prefixlen,
        "MacAddress": _mac(conn),
    })
    if conn.address6 is not None:
        out.update({"IPv6Gateway": str(net.gateway6), "GlobalIPv6Address": str(conn.address6.ip),
                    "GlobalIPv6PrefixLen": conn.address6.network.prefixlen})
    return out


def _ports(ep: Any) -> dict[str, list[dict[str, str]] | None]:
    """``Ports``: every published port as the kernel has it; exposed ports without one map to None."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for port, proto in getattr(ep, "expose", ()):
        out.setdefault(f"{port}/{proto}", None)
    for b in ep.ports:
        host_ip = b.host_ip if b.host_ip is not None else ("::" if b.family == 6 else "0.0.0.0")
        entries = out.get(f"{b.container_port}/{b.proto}") or []
        entries.append({"HostIp": host_ip, "HostPort": str(b.host_port)})
        out[f"{b.container_port}/{b.proto}"] = entries
    return out


def network_settings(ep: Any) -> dict[str, Any]:
    """``docker inspect``'s ``.NetworkSettings`` for an endpoint (StateError before create)."""
    ns = ep.namespace
    mode = str(ep.mode)
    networks: dict[str, Any] = {}
    if mode in ("host", "none"):
        networks[mode] = _empty_settings()
    elif not mode.startswith("container:"):
        for conn in ep.connections:
            networks[conn.network.name] = endpoint_settings(conn)
    default = networks.get(DEFAULT_NETWORK_NAME) if mode == DEFAULT_NETWORK_NAME else None
    top = {k: default[k] if default else _empty_settings()[k]
           for k in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen",
                     "IPv6Gateway", "MacAddress")}
    shared = mode.startswith("container:")
    return {
        "Bridge": "",
        "SandboxID": "" if shared else _hexid("sandbox", ns.identity),
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": {} if shared else _ports(ep),
        "SandboxKey": "" if shared else ns.path,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        **top,
        "Networks": networks,
    }
