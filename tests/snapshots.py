"""Kernel-state snapshots for before/after comparisons in tests."""

from __future__ import annotations

import os
import subprocess

from netns_kit import Namespace


def snapshot(ns: Namespace) -> dict[str, object]:
    """Links, addresses, routes and nft ruleset of ``ns``, plus the named namespaces in /run/netns."""
    links = sorted((link.name, link.kind, link.mtu, link.up, link.master) for link in ns.links())
    addrs = sorted((a.ifname, str(a.interface)) for a in ns.addresses())
    routes = sorted((str(r.dst), str(r.gateway), r.ifname) for r in ns.routes())
    nft = ns.run(["nft", "list", "ruleset"]).stdout
    try:
        named = sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        named = []
    return {"links": links, "addresses": addrs, "routes": routes, "nft": nft, "named": named,
            "forwarding": ns.read_sysctl("net.ipv4.ip_forward")}


def ip(ns: Namespace, *args: str) -> str:
    """Run `ip` inside ``ns`` for inspection (tests only)."""
    res = ns.run(["ip", *args])
    if res.returncode != 0:
        raise subprocess.CalledProcessError(res.returncode, ["ip", *args], res.stdout, res.stderr)
    return res.stdout
