"""inspect(): Docker's JSON for networks, endpoints and connections, compared with the real thing.

A private dockerd (20.10, started inside the sandbox as tests/test_docker.py does, in a fresh
namespace of the test's own) makes a user-defined network and a container with a published and an
exposed port; ``docker network inspect`` and ``docker inspect .NetworkSettings`` give the shape
(keys and value types) netns_kit's documents must have. Values of netns_kit's documents are
checked against the kernel: the MAC address of the link, the addresses, the published ports.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from test_docker import IMAGE, NAT_DAEMON_FLAGS, private_dockerd
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Namespace
from netns_kit.testing import isolated_host

# keys whose own keys are data (ids, names, "80/tcp"), not fields: their values are compared instead
DATA_KEYS = {"Containers", "Networks", "Ports", "Options", "Labels"}


def shape(doc: Any, key: str = "") -> Any:
    """Field names and value types of a JSON document (data-keyed mappings reduced to one value)."""
    if isinstance(doc, dict):
        if key in DATA_KEYS:
            return {"*": shape(next(iter(doc.values())), key + "*")} if doc else {}
        return {k: shape(v, k) for k, v in doc.items()}
    if isinstance(doc, list):
        return [shape(doc[0], key)] if doc else []
    return type(doc).__name__


def _docker_documents() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Docker's three documents for a network and a container on it (``-p 8097:80 --expose 443``)."""
    with isolated_host(), private_dockerd(NAT_DAEMON_FLAGS) as dk:
        dk("network", "create", "--subnet", "10.27.0.0/24", "--gateway", "10.27.0.1", "nk-insp")
        dk("run", "-d", "--name", "nk-web", "--network", "nk-insp", "-p", "8097:80", "--expose", "443",
           IMAGE, "sleep", "600")
        network = json.loads(dk("network", "inspect", "nk-insp").stdout)
        assert isinstance(network, list) and len(network) == 1
        # the whole document, as the daemon sent it (a --format template would go through the CLI's
        # own, newer types, which add fields of later Engine APIs)
        settings = json.loads(dk("inspect", "nk-web").stdout)[0]["NetworkSettings"]
        return network[0], settings, settings["Networks"]["nk-insp"]


@pytest.fixture(scope="module")
def docker_docs() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return _docker_documents()


def _differences(ours: Any, theirs: Any, where: str = "") -> list[str]:
    """Where two shapes differ: a key only one has, or a value of another type (None on Docker's
    side matches None only)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if set(theirs) == {"*"} or set(ours) == {"*"}:
            if ours and theirs:
                return _differences(ours.get("*"), theirs.get("*"), where + ".*")
            return []
        out = [f"{where}.{k}: only in ours" for k in ours.keys() - theirs.keys()]
        out += [f"{where}.{k}: only in Docker's" for k in theirs.keys() - ours.keys()]
        for k in ours.keys() & theirs.keys():
            out += _differences(ours[k], theirs[k], f"{where}.{k}")
        return out
    if isinstance(ours, list) and isinstance(theirs, list):
        return _differences(ours[0], theirs[0], where + "[0]") if ours and theirs else []
    return [] if ours == theirs else [f"{where}: ours {ours}, Docker's {theirs}"]


def test_documents_have_dockers_shape_and_the_kernels_values(
        host: Namespace, docker_docs: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    d_net, d_settings, d_endpoint = docker_docs
    with nk.Network("nk-insp", subnet="10.27.0.0/24", host=host) as net, \
            nk.Endpoint("web", nk.CustomMode(net), host=host, publish=["8097:80"], expose=[443]) as ep:
        n_doc, s_doc = net.inspect(), ep.inspect()
        conn = ep.connections[0]
        e_doc = conn.inspect()
        assert json.loads(json.dumps(n_doc)) == n_doc          # plain JSON, as Docker's
        assert _differences(shape(n_doc), shape(d_net)) == []
        assert _differences(shape(s_doc), shape(d_settings)) == []
        assert _differences(shape(e_doc), shape(d_endpoint)) == []
        assert s_doc["Networks"]["nk-insp"] == e_doc

        # values: the same as Docker's where both are about the same request ...
        assert n_doc["IPAM"] == d_net["IPAM"] and n_doc["Scope"] == d_net["Scope"] == "local"
        assert (n_doc["Driver"], n_doc["Internal"], n_doc["EnableIPv6"]) == ("bridge", False, False)
        assert (e_doc["IPAddress"], e_doc["IPPrefixLen"], e_doc["Gateway"]) == \
            (d_endpoint["IPAddress"], d_endpoint["IPPrefixLen"], d_endpoint["Gateway"]) == ("10.27.0.2", 24,
                                                                                              "10.27.0.1")
        assert set(s_doc["Ports"]) == set(d_settings["Ports"]) == {"80/tcp", "443/tcp"}
        assert s_doc["Ports"]["443/tcp"] is None and d_settings["Ports"]["443/tcp"] is None
        assert {"HostIp": "0.0.0.0", "HostPort": "8097"} in s_doc["Ports"]["80/tcp"]
        assert {"HostIp": "0.0.0.0", "HostPort": "8097"} in d_settings["Ports"]["80/tcp"]
        # ... and from the kernel
        mac = ep.namespace.link("eth0").mac
        assert e_doc["MacAddress"] == mac and re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac or "")
        (cid, member), = n_doc["Containers"].items()
        assert member == {"Name": "web", "EndpointID": e_doc["EndpointID"], "MacAddress": mac,
                          "IPv4Address": "10.27.0.2/24", "IPv6Address": ""}
        assert re.fullmatch(r"[0-9a-f]{64}", cid) and re.fullmatch(r"[0-9a-f]{64}", n_doc["Id"])
        assert e_doc["NetworkID"] == n_doc["Id"]
        assert s_doc["SandboxKey"] == ep.namespace.path and os.path.exists(s_doc["SandboxKey"])
        assert Namespace.from_path(s_doc["SandboxKey"]).same_as(ep.namespace)
        assert n_doc["Options"]["com.docker.network.bridge.name"] == net.bridge
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", n_doc["Created"])
        # the published port the document names really leads to the endpoint
        with serve(ep.namespace, "0.0.0.0", 80):
            assert connect(host, str(net.gateway), int(s_doc["Ports"]["80/tcp"][0]["HostPort"])) == "hello from web\n"
    with pytest.raises(nk.StateError):
        net.inspect()
    with pytest.raises(nk.StateError):
        ep.inspect()


def test_modes_and_the_default_network(host: Namespace) -> None:
    with nk.Endpoint("b1", "bridge", host=host) as b1, nk.Endpoint("n1", "none", host=host) as n1, \
            nk.Endpoint("h1", "host", host=host) as h1, nk.Endpoint("c1", "container:b1", host=host) as c1:
        doc = b1.inspect()
        conn = b1.connections[0]
        # on the default network, the top-level fields are filled (as Docker's for its bridge network)
        assert (doc["IPAddress"], doc["Gateway"], doc["MacAddress"]) == \
            (str(conn.ip), str(conn.network.gateway), b1.namespace.link(conn.ifname).mac)
        assert doc["Networks"]["bridge"]["Aliases"] is None and doc["EndpointID"] == conn.inspect()["EndpointID"]
        assert list(n1.inspect()["Networks"]) == ["none"] and n1.inspect()["IPAddress"] == ""
        assert list(h1.inspect()["Networks"]) == ["host"] and h1.inspect()["Ports"] == {}
        shared = c1.inspect()
        assert shared["Networks"] == {} and shared["SandboxKey"] == ""
