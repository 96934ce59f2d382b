"""netns_kit as a CNI plugin: the calls a container runtime makes, made by hand.

A runtime (Podman, containerd, CRI-O, Multus) runs the plugin executable once per container and
verb, with the CNI environment and the network configuration on stdin. Here a plain named
namespace plays the container: ADD attaches it (bridge, veth, address, default route, masquerade,
a published port), CHECK verifies it, DEL removes all of it. See docs/cni.md.

Run it as root in a throwaway namespace: ``bash scripts/sandbox.sh .venv/bin/python examples/cni.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import netns_kit as nk

CONFLIST: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "demo",
    "plugins": [{
        "type": "netns-kit-cni",
        "bridge": "demo0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True, "hairpinMode": True,
        "subnet": "10.89.0.0/24", "mtu": 1500,
        "capabilities": {"portMappings": True, "ips": True, "mac": True, "bandwidth": True},
    }],
}


def plugin() -> list[str]:
    """The executable: ``netns-kit-cni`` (installed with the package), else the module itself."""
    beside = os.path.join(os.path.dirname(sys.executable), "netns-kit-cni")
    found = shutil.which("netns-kit-cni") or (beside if os.access(beside, os.X_OK) else None)
    return [found] if found else [sys.executable, "-m", "netns_kit.cni"]


def call(command: str, config: dict[str, Any], netns: str = "") -> Any:
    """One plugin call as libcni makes it; the parsed stdout (a Result, or None for DEL/CHECK)."""
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": "demo-container", "CNI_NETNS": netns,
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    proc = subprocess.run(plugin(), input=json.dumps(config), env=env, capture_output=True, text=True)
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    if proc.returncode != 0:
        raise RuntimeError(f"{command} failed: {out}")
    return out


def main() -> None:
    # libcni hands each plugin of the list its own entry, plus the list's name and version and the
    # runtimeConfig of the capabilities it declares (here: what `podman run -p 8080:80` passes)
    config = {"cniVersion": CONFLIST["cniVersion"], "name": CONFLIST["name"], **CONFLIST["plugins"][0],
              "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}
    print("VERSION:", call("VERSION", {"cniVersion": "1.0.0"})["supportedVersions"])
    with nk.Namespace("cni-demo") as container:
        result = call("ADD", config, container.path)
        for i, iface in enumerate(result["interfaces"]):
            print(f"  interface {i}: {iface['name']} {iface['mac']}" + (" (in the container)" if "sandbox" in iface
                                                                        else ""))
        print("  ips:", [ip["address"] for ip in result["ips"]], "routes:", [r["dst"] for r in result["routes"]])
        ping = container.run(["ping", "-c1", "-W2", "10.89.0.1"])
        print("  the container pings its gateway:", "ok" if ping.returncode == 0 else "FAILED")
        assert ping.returncode == 0
        call("CHECK", {**config, "prevResult": result}, container.path)
        print("CHECK: the veth, address, routes, nft entries and lease are all there")
        call("DEL", {**config, "prevResult": result}, container.path)
        print("DEL: removed; the container has", [link.name for link in container.links()])
    call("DEL", config)  # again, and with the namespace gone: still succeeds (DEL is idempotent)
    print("DEL again without the namespace: ok")


if __name__ == "__main__":
    main()
