"""The CNI reference plugins (Debian ``containernetworking-plugins``), chained as containerd runs them.

Per endpoint, what containerd's CRI plugin (through libcni / go-cni) does for a pod with one
published port, without containerd:

- a named namespace, made in-process as the floors make theirs (a long-lived thread calls
  ``unshare(CLONE_NEWNET)`` and bind-mounts it on /run/netns/NAME: no ``ip netns add`` process);
- ADD on the loopback network (plugin ``loopback``: lo up), as go-cni does before the pod network;
- ADD on the pod network, a conflist of two plugins executed one after the other, each a process
  with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME=eth0, CNI_PATH=/usr/lib/cni and its
  own config on stdin (the conflist's ``name`` and ``cniVersion`` added, the previous plugin's
  result as ``prevResult``, and ``runtimeConfig`` for the capabilities it declares, as libcni
  injects them):

  - ``bridge`` (br0, ``isGateway``, ``ipMasq``, ``hairpinMode``), which runs its IPAM plugin
    ``host-local`` itself (subnet 10.77.0.0/16, gateway 10.77.0.1, ``routes: [{"dst": "0.0.0.0/0"}]``
    for the default route); the fixed address comes through the ``ips`` capability
    (``runtimeConfig.ips``), which host-local honours;
  - ``portmap`` (``portMappings`` capability: host port 20000+i to port 80, ``snat``).

Teardown: DEL on the pod network in reverse order (portmap, then bridge, which runs host-local's
DEL), each given the ADD's final result as ``prevResult`` (libcni keeps it in a cache file under
/var/lib/cni/results; here it stays in memory), then DEL on the loopback network, then the
namespace is unmounted and unlinked.

host-local keeps its allocations in files: ``dataDir`` points it at a directory of this run
(under /run, the sandbox's tmpfs) instead of /var/lib/cni/networks, removed in cleanup. The
firewall work (bridge's ipMasq chain per endpoint, portmap's DNAT chains) is iptables, which on
Debian 12 is iptables-nft; it works in the sandbox as it is. The bridge (with its address) is made
untimed in ``prepare``, as for every approach; cleanup deletes it and the iptables-nft tables left
in the worker's throwaway namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

from benchmarks._common import BRIDGE, BRIDGE_IP, CONTAINER_PORT, PREFIXLEN, SUBNET, endpoint_ip, host_port
from benchmarks.approach_netavark import delete_bridge_if_present, drop_iptables_tables, unmount_netns
from benchmarks.approach_raw_floor import RUN_DIR, NamespaceThread

CNI_PATH = "/usr/lib/cni"
CNI_VERSION = "1.0.0"
PLUGINS = ("loopback", "bridge", "host-local", "portmap")


def available() -> str | None:
    """None if the plugins can run here, else why not."""
    missing = [p for p in PLUGINS if not os.access(os.path.join(CNI_PATH, p), os.X_OK)]
    if missing:
        return (f"CNI plugins missing in {CNI_PATH}: {', '.join(missing)} (Debian package "
                "containernetworking-plugins; bash scripts/setup.sh installs it)")
    if shutil.which("iptables") is None:
        return "iptables is missing (the bridge and portmap plugins run it)"
    return None


class Cni:
    prefix = "bcn"
    note = ("CNI plugins 1.1.1 as containerd chains them: loopback, then bridge (+ host-local IPAM) and "
            "portmap, one process each (host-local run by bridge); iptables-nft; namespace made in-process")

    def __init__(self, n: int) -> None:
        self.n = n
        self.data_dir = ""
        self.network: dict[str, Any] = {}
        self.loopback: dict[str, Any] = {"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"}
        self.results: list[dict[str, Any] | None] = []

    def prepare(self) -> None:
        reason = available()
        if reason:
            raise RuntimeError(reason)
        os.makedirs(RUN_DIR, exist_ok=True)
        self.data_dir = tempfile.mkdtemp(prefix="bench-cni-", dir="/run")
        self.network = {
            "cniVersion": CNI_VERSION,
            "name": "bench",
            "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "capabilities": {"ips": True},
                 "ipam": {"type": "host-local", "dataDir": self.data_dir,
                          "ranges": [[{"subnet": SUBNET, "gateway": BRIDGE_IP}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }
        self.results = [None] * self.n
        for cmd in (["ip", "link", "add", BRIDGE, "type", "bridge"],
                    ["ip", "addr", "add", f"{BRIDGE_IP}/{PREFIXLEN}", "dev", BRIDGE],
                    ["ip", "link", "set", BRIDGE, "up"]):
            subprocess.run(cmd, check=True)

    def executable(self, plugin_type: str) -> str:
        """The plugin executable a conflist's ``type`` names (looked up in CNI_PATH, as libcni does)."""
        return os.path.join(CNI_PATH, plugin_type)

    def _exec(self, command: str, i: int, conf: dict[str, Any], ifname: str) -> dict[str, Any] | None:
        """Run one plugin (``conf["type"]``) with ``conf`` on stdin; returns its result (ADD)."""
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": f"{i:064x}", "CNI_NETNS": f"{RUN_DIR}/{self.prefix}{i}",
               "CNI_IFNAME": ifname, "CNI_PATH": CNI_PATH, "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin")}
        proc = subprocess.run([self.executable(conf["type"])], input=json.dumps(conf).encode(), env=env,
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"CNI {conf['type']} {command} for endpoint {i}: exit {proc.returncode}: "
                               f"{proc.stdout.decode()} {proc.stderr.decode()}")
        if command == "ADD":
            result: dict[str, Any] = json.loads(proc.stdout)
            return result
        return None

    def _plugin_conf(self, plugin: dict[str, Any], i: int, prev: dict[str, Any] | None) -> dict[str, Any]:
        conf = {"cniVersion": CNI_VERSION, "name": self.network["name"], **plugin}
        caps = plugin.get("capabilities", {})
        runtime: dict[str, Any] = {}
        if caps.get("ips"):
            runtime["ips"] = [f"{endpoint_ip(i)}/{PREFIXLEN}"]
        if caps.get("portMappings"):
            runtime["portMappings"] = [{"hostPort": host_port(i), "containerPort": CONTAINER_PORT,
                                        "protocol": "tcp"}]
        if runtime:
            conf["runtimeConfig"] = runtime
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def setup(self) -> None:
        maker = NamespaceThread()
        try:
            for i in range(1, self.n + 1):
                maker.make(f"{RUN_DIR}/{self.prefix}{i}").close()
                self._exec("ADD", i, self.loopback, "lo")
                result: dict[str, Any] | None = None
                for plugin in self.network["plugins"]:
                    result = self._exec("ADD", i, self._plugin_conf(plugin, i, result), "eth0")
                self.results[i - 1] = result
        finally:
            maker.close()

    def teardown(self) -> None:
        for i in range(1, self.n + 1):
            cached = self.results[i - 1]
            for plugin in reversed(self.network["plugins"]):
                self._exec("DEL", i, self._plugin_conf(plugin, i, cached), "eth0")
            self._exec("DEL", i, self.loopback, "lo")
            unmount_netns(f"{RUN_DIR}/{self.prefix}{i}")

    def cleanup(self) -> None:
        delete_bridge_if_present()
        drop_iptables_tables()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.data_dir)


def make(n: int) -> Cni:
    return Cni(n)
