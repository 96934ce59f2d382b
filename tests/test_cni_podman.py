"""netns-kit-cni under a real runtime: Podman 4.3 with its CNI backend.

The network is a conflist in a directory of this module (``--cni-config-dir``) whose one plugin is
``netns-kit-cni``; podman finds the executable through ``cni_plugin_dirs`` in the private
containers.conf of :func:`test_podman.podman_env` (extended here), next to the reference plugins
(it runs ``loopback`` from /usr/lib/cni itself). Podman calls ADD on ``run`` and DEL on ``rm``;
Podman 4.3 never sends GC (libcni 1.2's verb), so the GC after a killed runtime is sent the way
libcni sends it, with the attachments the runtime still knows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from outside_world import HOST_IP, OUTSIDE_IP, outside_world
from test_cni import Cni, links, nft_comments, plugin_dir, state
from test_podman import IMAGE, ULIMITS, Podman, podman_env
from traffic import serve, wait_connect

from netns_kit import Namespace

__all__ = ["plugin_dir", "podman_env"]  # fixtures shared with test_cni and test_podman

NET = "nkpod"
PLUGIN: dict[str, Any] = {
    "type": "netns-kit-cni", "bridge": "nkpod0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
    "hairpinMode": True, "subnet": "10.91.0.0/24",
    "capabilities": {"portMappings": True, "ips": True, "mac": True, "bandwidth": True}}
CONFLIST: dict[str, Any] = {"cniVersion": "1.0.0", "name": NET, "plugins": [PLUGIN]}


class CniPodman(Podman):
    """podman with the CNI backend and this module's configuration directory."""

    def __init__(self, root: str, conf_dir: str) -> None:
        super().__init__(root)
        self.conf_dir = conf_dir

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return super().__call__("--network-backend", "cni", "--cni-config-dir", self.conf_dir, *args, check=check,
                                timeout=timeout)

    def start(self, name: str, *cmd: str, publish: tuple[str, ...] = ()) -> str:
        self.containers.append(name)
        ports = [a for p in publish for a in ("-p", p)]
        return self("run", "-d", "--name", name, "--runtime", "runc", "--network", NET, *ports,
                    "--cgroup-parent", self.cgroup_parent, *ULIMITS, IMAGE, *cmd).stdout.strip()


@pytest.fixture
def cnipod(podman_env: str, plugin_dir: str, host: Namespace) -> Iterator[CniPodman]:
    conf_dir = tempfile.mkdtemp(prefix="nk-cni-conf-", dir=podman_env)
    with open(os.path.join(conf_dir, f"{NET}.conflist"), "w", encoding="utf-8") as f:
        json.dump(CONFLIST, f)
    with open(os.path.join(podman_env, "containers.conf"), encoding="utf-8") as f:
        saved = f.read()
    with open(os.path.join(podman_env, "containers.conf"), "a", encoding="utf-8") as f:
        f.write(f'[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["{plugin_dir}", "/usr/lib/cni"]\n'
                f'network_config_dir = "{conf_dir}"\n')
    pm = CniPodman(podman_env, conf_dir)
    try:
        yield pm
    finally:
        pm.remove_all()
        with open(os.path.join(podman_env, "containers.conf"), "w", encoding="utf-8") as f:
            f.write(saved)


def _server(name: str, port: int = 80) -> tuple[str, ...]:
    return ("sh", "-c", f"while true; do echo hello from {name} | nc -l -p {port}; done")


def _ip(pm: CniPodman, name: str) -> str:
    out = pm.exec(name, "ip", "-o", "-4", "addr", "show", "eth0").stdout
    return out.split("inet ")[1].split("/")[0]


def _leftovers() -> tuple[str, list[str], list[str]]:
    return nft_comments(), [n for n in links() if n.startswith("vnk") or n == "nkpod0"], state(NET)


def test_podman_run_publish_masquerade_and_rm(cnipod: CniPodman, host: Namespace) -> None:
    assert NET in cnipod("network", "ls", "--format", "{{.Name}}").stdout.split()
    with outside_world(host) as out:
        cnipod.start("nk-web", *_server("nk-web"), publish=("8080:80",))
        cnipod.start("nk-cli", "sleep", "600")
        web = _ip(cnipod, "nk-web")
        assert web.startswith("10.91.0.")
        # from outside into the published port
        assert wait_connect(out, HOST_IP, 8080) == "hello from nk-web\n"
        # between the two containers
        got = cnipod.exec("nk-cli", "sh", "-c", f"nc -w 3 {web} 80 </dev/null")
        assert got.stdout == "hello from nk-web\n", got.stderr
        # out through masquerade: the far end sees the host's address
        with serve(out, OUTSIDE_IP, 9000) as srv:
            got = cnipod.exec("nk-cli", "sh", "-c", f"nc -w 3 {OUTSIDE_IP} 9000 </dev/null")
            assert got.stdout == "hello from outside\n", got.stderr
            assert srv.peers[0][0] == HOST_IP
        assert "netns-kit-cni:" in nft_comments()
        cnipod("rm", "-f", "-t", "0", "nk-web", "nk-cli")  # DEL for each
        cnipod.containers.clear()
    assert _leftovers() == ("", [], [])


def test_gc_after_a_killed_runtime_removes_the_leftovers(cnipod: CniPodman, plugin_dir: str,
                                                         host: Namespace) -> None:
    cnipod.start("nk-dead", "sleep", "600", publish=("8081:80",))
    cnipod.start("nk-live", *_server("nk-live"))
    ids = {n: cnipod("inspect", "-f", "{{.Id}}", n).stdout.strip() for n in ("nk-dead", "nk-live")}
    # the runtime dies without cleaning up: SIGKILL to the container's monitor (its exit hook would
    # have called DEL) and the container; its network namespace and our attachment stay
    for fmt in ("{{.State.ConmonPid}}", "{{.State.Pid}}"):
        os.kill(int(cnipod("inspect", "-f", fmt, "nk-dead").stdout), signal.SIGKILL)
    assert len(state(NET)) == 5  # network.json, 2 attachments, 2 leases
    cni = Cni(plugin_dir)
    gc = {**PLUGIN, "cniVersion": "1.1.0", "name": NET,
          "cni.dev/valid-attachments": [{"containerID": ids["nk-live"], "ifname": "eth0"}]}
    assert cni("GC", gc) == (0, None)
    assert len(state(NET)) == 3 and "8081" not in nft_comments()
    live = _ip(cnipod, "nk-live")
    with Namespace("nk-probe") as probe:  # the live one is untouched: reachable on the bridge
        cni_probe = {**PLUGIN, "cniVersion": "1.0.0", "name": NET}
        cni.ok("ADD", cni_probe, cid="probe", netns=probe.path)
        assert wait_connect(probe, live, 80) == "hello from nk-live\n"
        cni.ok("DEL", cni_probe, cid="probe", netns=probe.path)
    # the runtime comes back: its cleanup of nk-dead calls DEL, which finds nothing left and succeeds
    # (podman 4.3 may report the SIGKILLed container as "not running" on an rm, and remove it on a later one)
    for _ in range(5):
        if not cnipod("ps", "-a", "--format", "{{.Names}}").stdout.split():
            break
        cnipod("stop", "-t", "0", "nk-dead", check=False)  # podman notices the container is gone, cleans up
        cnipod("rm", "-f", "-t", "0", "nk-dead", "nk-live", check=False)
    assert cnipod("ps", "-a", "--format", "{{.Names}}").stdout.split() == []
    cnipod.containers.clear()
    assert _leftovers() == ("", [], [])
