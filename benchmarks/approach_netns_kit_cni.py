"""netns_kit's CNI plugin (``netns-kit-cni``) driven exactly as :mod:`benchmarks.approach_cni` drives the
reference chain: per endpoint a namespace made in-process, ADD on the loopback network (the reference
``loopback`` plugin), then ADD on the pod network, whose conflist has one plugin: ``netns-kit-cni``
(bridge br0, ``isGateway``, ``ipMasq``, ``hairpinMode``, subnet 10.77.0.0/16, the default route, the
fixed address through ``runtimeConfig.ips`` and the published port through ``runtimeConfig.portMappings``).
One process per verb and endpoint, process start included: what the reference does with ``bridge`` +
``host-local`` + ``portmap`` (three processes, iptables) this does in one. Teardown: DEL with the ADD's
result as ``prevResult``, then DEL on the loopback network, then the namespace goes.

The executable is the ``netns-kit-cni`` console script of the environment running the benchmark if
it is installed there, else a launcher with the same two lines pip writes
(``from netns_kit.cni import main; sys.exit(main())``) for this checkout.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile

from benchmarks._common import BRIDGE, BRIDGE_IP, SUBNET
from benchmarks.approach_cni import CNI_VERSION, Cni

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plugin_executable(directory: str) -> str:
    """A ``netns-kit-cni`` in ``directory``: a link to the installed console script beside this
    interpreter, or a launcher for this checkout (made with the lines pip's console script has)."""
    path = os.path.join(directory, "netns-kit-cni")
    installed = os.path.join(os.path.dirname(sys.executable), "netns-kit-cni")
    if os.access(installed, os.X_OK):
        os.symlink(installed, path)
        return path
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {REPO!r})\n"
                "from netns_kit.cni import main\nsys.exit(main())\n")
    os.chmod(path, stat.S_IRWXU)
    return path


class NetnsKitCni(Cni):
    prefix = "bnc"
    note = ("netns-kit-cni as containerd chains it: loopback, then netns-kit-cni (bridge, addresses, masquerade, "
            "port) in one process per verb; nft; namespace made in-process")

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.bin_dir = ""
        self.exe = ""

    def prepare(self) -> None:
        super().prepare()
        self.bin_dir = tempfile.mkdtemp(prefix="bench-nkcni-", dir="/run")
        self.exe = plugin_executable(self.bin_dir)
        self.network = {
            "cniVersion": CNI_VERSION,
            "name": "bench-nk",
            "plugins": [
                {"type": "netns-kit-cni", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "capabilities": {"ips": True, "portMappings": True},
                 "subnet": SUBNET, "gateway": BRIDGE_IP, "routes": [{"dst": "0.0.0.0/0"}]},
            ],
        }

    def executable(self, plugin_type: str) -> str:
        return self.exe if plugin_type == "netns-kit-cni" else super().executable(plugin_type)

    def cleanup(self) -> None:
        super().cleanup()
        shutil.rmtree(self.bin_dir, ignore_errors=True)


def make(n: int) -> NetnsKitCni:
    return NetnsKitCni(n)
