"""podman's network backend: netavark (Debian package ``netavark``), one process per endpoint and step.

What podman does for ``podman run --network bench -p 20000+i:80``, without podman: per endpoint,

- a named namespace: made the cheap way, as the floors make theirs (a long-lived thread calls
  ``unshare(CLONE_NEWNET)`` and bind-mounts it on /run/netns/NAME; no ``ip netns add`` process),
  so the figure is netavark's cost and not that of a helper process podman would not start;
- ``netavark --config DIR setup /run/netns/NAME`` with the network options as JSON on stdin:
  ``container_id``, ``container_name``, ``networks`` (the fixed address 10.77.x.y as
  ``static_ips``, interface ``eth0``), ``network_info`` (the bridge network: bridge ``br0``,
  subnet 10.77.0.0/16, gateway 10.77.0.1, no IPv6, no DNS) and ``port_mappings`` (one TCP port).
  netavark brings lo and eth0 up, adds the address and the default route, and writes its
  firewall rules.

Teardown: ``netavark --config DIR teardown /run/netns/NAME`` with the same JSON, then the namespace
is unmounted and unlinked. netavark deletes the bridge itself when its last endpoint goes.

Firewall: netavark 1.4 has the ``iptables`` and ``firewalld`` drivers (``nftables`` came later);
with no firewalld it uses iptables, which on Debian 12 is iptables-nft (nf_tables underneath, in
tables ``ip nat``/``ip filter`` of the worker's namespace). It works in the sandbox as it is;
``NETAVARK_FW`` is not set. The shared chains (NETAVARK-HOSTPORT-*) and the network's own chains
are created by the first endpoint and removed with the last, inside the timed phases.

The bridge (with its address) is made untimed in ``prepare``, as for every approach; netavark
finds it and uses it. Cleanup deletes what netavark leaves in the worker's throwaway namespace
(iptables-nft's empty ``ip nat`` and ``ip filter`` tables, the bridge if it is still there).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

from benchmarks._common import BRIDGE, BRIDGE_IP, CONTAINER_PORT, PREFIXLEN, SUBNET, endpoint_ip, host_port
from benchmarks.approach_raw_floor import MNT_DETACH, RUN_DIR, NamespaceThread, _libc

NETAVARK = "/usr/lib/podman/netavark"
NETWORK = "bench"
NETWORK_ID = "be" * 32


def available() -> str | None:
    """None if netavark can run here, else why not."""
    if not os.access(NETAVARK, os.X_OK):
        return f"{NETAVARK} is missing (Debian package netavark; bash scripts/setup.sh installs it)"
    if shutil.which("iptables") is None:
        return "iptables is missing (netavark 1.4's firewall driver runs it)"
    return None


def unmount_netns(path: str) -> None:
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {path}: {os.strerror(err)}")
    os.unlink(path)


def drop_iptables_tables() -> None:
    """Delete the (empty) tables iptables-nft leaves behind, in the worker's own namespace."""
    for family, table in (("ip", "nat"), ("ip", "filter"), ("ip", "mangle"), ("ip6", "nat"), ("ip6", "filter")):
        subprocess.run(["nft", "delete", "table", family, table], capture_output=True, check=False)


def delete_bridge_if_present() -> None:
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


class Netavark:
    prefix = "bnv"
    note = ("podman's netavark 1.4: one `netavark setup` / `teardown` process per endpoint, JSON on stdin; "
            "firewall driver iptables (iptables-nft); namespace made in-process by a thread (unshare + bind mount)")

    def __init__(self, n: int) -> None:
        self.n = n
        self.config = ""
        self.options: list[bytes] = []

    def _options(self, i: int) -> bytes:
        opts: dict[str, Any] = {
            "container_id": f"{i:064x}",
            "container_name": f"{self.prefix}{i}",
            "networks": {NETWORK: {"static_ips": [endpoint_ip(i)], "interface_name": "eth0"}},
            "network_info": {NETWORK: {
                "name": NETWORK, "id": NETWORK_ID, "driver": "bridge", "network_interface": BRIDGE,
                "subnets": [{"subnet": SUBNET, "gateway": BRIDGE_IP}],
                "ipv6_enabled": False, "internal": False, "dns_enabled": False,
                "ipam_options": {"driver": "host-local"},
            }},
            "port_mappings": [{"host_ip": "", "container_port": CONTAINER_PORT, "host_port": host_port(i),
                               "range": 1, "protocol": "tcp"}],
        }
        return json.dumps(opts).encode()

    def prepare(self) -> None:
        reason = available()
        if reason:
            raise RuntimeError(reason)
        os.makedirs(RUN_DIR, exist_ok=True)
        self.config = tempfile.mkdtemp(prefix="bench-netavark-", dir="/run")
        self.options = [self._options(i) for i in range(1, self.n + 1)]
        for cmd in (["ip", "link", "add", BRIDGE, "type", "bridge"],
                    ["ip", "addr", "add", f"{BRIDGE_IP}/{PREFIXLEN}", "dev", BRIDGE],
                    ["ip", "link", "set", BRIDGE, "up"]):
            subprocess.run(cmd, check=True)

    def _netavark(self, verb: str, i: int) -> None:
        path = f"{RUN_DIR}/{self.prefix}{i}"
        proc = subprocess.run([NETAVARK, "--config", self.config, verb, path], input=self.options[i - 1],
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"netavark {verb} {path}: exit {proc.returncode}: {proc.stderr.decode()}")

    def setup(self) -> None:
        maker = NamespaceThread()
        try:
            for i in range(1, self.n + 1):
                maker.make(f"{RUN_DIR}/{self.prefix}{i}").close()
                self._netavark("setup", i)
        finally:
            maker.close()

    def teardown(self) -> None:
        for i in range(1, self.n + 1):
            self._netavark("teardown", i)
            unmount_netns(f"{RUN_DIR}/{self.prefix}{i}")

    def cleanup(self) -> None:
        delete_bridge_if_present()
        drop_iptables_tables()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.config)


def make(n: int) -> Netavark:
    return Netavark(n)
