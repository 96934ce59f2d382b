"""Attachment on a real container engine: Debian's podman with runc, an image imported offline from
busybox-static, containers started with ``--network none`` inside the test sandbox.

Podman is pointed at throwaway configuration through ``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF``
(cgroupfs, file events, runc, vfs storage under a temporary directory on /run), so plain ``podman``
commands, and netns_kit's engine lookup, use it and nothing lands in the machine's container storage.
Podman also writes a blob-info cache to /var/lib/containers/cache whatever the storage root is; the
fixture overlays /var/lib (inside the sandbox's own mount namespace) so that write stays in memory.
Containers run under a cgroup parent of the module's own, whose directories are removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from cgroups import remove_cgroups
from traffic import serve, wait_connect

import netns_kit as nk
from netns_kit import Attachment, Bridge, Container, Engine, Namespace, VethPair
from netns_kit.network import Network

IMAGE = "localhost/netns-kit-busybox:latest"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "nc", "ip", "sleep", "cat", "echo", "hostname", "true"]


class Podman:
    """Run podman with the suite's private configuration; remember containers to remove them."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.cgroup_parent = "/" + os.path.basename(root)  # our own cgroups, removed with the module
        self.containers: list[str] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def run(self, name: str, *cmd: str, network: str = "none") -> str:
        """``podman run -d`` a container of the busybox image; returns its id."""
        self.containers.append(name)
        return self("run", "-d", "--name", name, "--runtime", "runc", "--network", network,
                    "--cgroup-parent", self.cgroup_parent, *ULIMITS, IMAGE, *cmd).stdout.strip()

    def server(self, name: str, port: int = 8080, network: str = "none") -> str:
        """A container answering every TCP connection on ``port`` with ``hello from NAME``."""
        loop = f"while true; do echo hello from {name} | nc -l -p {port}; done"
        return self.run(name, "sh", "-c", loop, network=network)

    def exec(self, name: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return self("exec", name, *cmd, check=False, timeout=30)

    def links(self, name: str) -> list[str]:
        """Interface names inside the container, as its own `ip` sees them."""
        out = self.exec(name, "ip", "-o", "link").stdout
        return [line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line]

    def remove_all(self) -> None:
        for name in self.containers:
            self("rm", "-f", "-t", "0", name, check=False)
        self.containers.clear()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def podman_env() -> Iterator[str]:
    """Private podman configuration, storage and busybox image for this module; removed afterwards."""
    if shutil.which("podman") is None or shutil.which("runc") is None or not os.path.exists(BUSYBOX):
        raise AssertionError("podman, runc and busybox-static are required: run scripts/setup.sh")
    if os.environ.get("NETNS_KIT_SANDBOXED") != "1":
        raise AssertionError("the podman tests run only inside scripts/sandbox.sh")
    root = tempfile.mkdtemp(prefix="nk-podman-", dir="/run")
    saved = {k: os.environ.get(k) for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "TMPDIR")}
    # /var/lib/containers/cache (podman's blob-info cache) must not reach the disk: overlay /var/lib.
    for d in ("varlib-upper", "varlib-work", "tmp", "rootfs/bin"):
        os.makedirs(os.path.join(root, d))
    _mount("-t", "overlay", "nk-varlib", "-o",
           f"lowerdir=/var/lib,upperdir={root}/varlib-upper,workdir={root}/varlib-work", "/var/lib")
    try:
        with open(f"{root}/containers.conf", "w") as f:
            f.write(f"""[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"
runtime = "runc"
tmp_dir = "{root}/libpod-tmp"
image_copy_tmp_dir = "{root}/tmp"
""")
        with open(f"{root}/storage.conf", "w") as f:
            f.write(f"""[storage]
driver = "vfs"
graphroot = "{root}/storage"
runroot = "{root}/runroot"
""")
        os.environ.update(CONTAINERS_CONF=f"{root}/containers.conf",
                          CONTAINERS_STORAGE_CONF=f"{root}/storage.conf", TMPDIR=f"{root}/tmp")
        shutil.copy(BUSYBOX, f"{root}/rootfs/bin/busybox")
        for applet in APPLETS:
            os.symlink("busybox", f"{root}/rootfs/bin/{applet}")
        subprocess.run(["tar", "-C", f"{root}/rootfs", "-cf", f"{root}/busybox.tar", "."], check=True)
        Podman(root)("import", "-q", f"{root}/busybox.tar", IMAGE)
        yield root
    finally:
        subprocess.run(["podman", "rm", "-a", "-f", "-t", "0"], capture_output=True, timeout=60)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        subprocess.run(["umount", "-l", "/var/lib"], check=False)
        # podman may leave its per-run mounts (shm, overlay of nothing with vfs) under the root
        subprocess.run(["sh", "-c", f"grep -o ' {root}[^ ]*' /proc/self/mounts | sort -r | xargs -r umount -l"],
                       check=False)
        shutil.rmtree(root, ignore_errors=True)
        remove_cgroups("/" + os.path.basename(root))



@pytest.fixture
def podman(podman_env: str, host: Namespace) -> Iterator[Podman]:
    pm = Podman(podman_env)
    try:
        yield pm
    finally:
        pm.remove_all()




def test_fixed_ip_on_a_podman_container_like_pipework(podman: Podman, host: Namespace) -> None:
    """`pipework br0 nk-web 192.168.0.123/24@192.168.0.1`, then traffic both ways, then detach."""
    podman.server("nk-web")
    assert podman.links("nk-web") == ["lo"]  # --network none
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        att = Attachment("nk-web", bridge="br0", address="192.168.0.123/24@192.168.0.1").create()
        try:
            assert att.namespace is not None and att.namespace.label == "container:nk-web"
            pid = int(podman("inspect", "-f", "{{.State.Pid}}", "nk-web").stdout)
            assert att.namespace.same_as(Namespace.from_pid(pid))
            inside = podman.exec("nk-web", "ip", "addr", "show", "eth0").stdout
            assert "inet 192.168.0.123/24" in inside
            assert "default via 192.168.0.1 dev eth0" in podman.exec("nk-web", "ip", "route").stdout
            # host side -> the server in the container at its fixed address
            assert wait_connect(host, "192.168.0.123", 8080) == "hello from nk-web\n"
            # container -> the gateway side; the host sees the fixed address
            with serve(host, "192.168.0.1", 9000) as srv:
                out = podman.exec("nk-web", "sh", "-c", "nc -w 3 192.168.0.1 9000 </dev/null")
                assert out.stdout == "hello from host\n", out.stderr
                assert srv.peers[0][0] == "192.168.0.123"
        finally:
            att.remove()
        assert podman.links("nk-web") == ["lo"]  # detached
        assert host.link("br0").kind == "bridge"


def test_container_references_and_engines(podman: Podman, host: Namespace) -> None:
    podman.run("nk-ref", "sleep", "600")
    cid = podman("inspect", "-f", "{{.Id}}", "nk-ref").stdout.strip()
    pid = int(podman("inspect", "-f", "{{.State.Pid}}", "nk-ref").stdout)
    assert Container("nk-ref").pid() == pid  # any engine on PATH (docker is not installed here)
    assert Container(cid[:12], engine=Engine.podman()).pid() == pid
    assert Engine("podman").container_pid(cid) == pid
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        for target in (Container("nk-ref"), pid, f"/proc/{pid}/ns/net", cid):
            with Attachment(target, bridge="br0", address="192.168.0.50/24") as att:
                assert att.namespace is not None
                assert att.namespace.same_as(Namespace.from_pid(pid))
                assert "192.168.0.50/24" in podman.exec("nk-ref", "ip", "addr").stdout
    with pytest.raises(nk.ValidationError):
        Container("--format=x")


def test_missing_created_and_exited_containers_refused(podman: Podman, host: Namespace) -> None:
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        before = sorted(link.name for link in host.links())
        with pytest.raises(nk.NotFoundError, match="no-such-container"):
            Attachment(Container("no-such-container"), bridge="br0", address="192.168.0.9/24").create()
        with pytest.raises(nk.NotFoundError, match="neither a named namespace"):
            Attachment("no-such-container", bridge="br0", address="192.168.0.9/24").create()
        podman.containers.append("nk-created")
        podman("create", "--name", "nk-created", "--runtime", "runc", "--network", "none",
               "--cgroup-parent", podman.cgroup_parent, *ULIMITS, IMAGE, "sleep", "600")
        with pytest.raises(nk.NotFoundError, match="not running"):
            Attachment(Container("nk-created"), bridge="br0", address="192.168.0.9/24").create()
        podman.run("nk-exited", "true")
        for _ in range(100):
            if podman("inspect", "-f", "{{.State.Status}}", "nk-exited").stdout.strip() == "exited":
                break
            time.sleep(0.05)
        with pytest.raises(nk.NotFoundError, match=r"not running.*exited"):
            Attachment("nk-exited", bridge="br0", address="192.168.0.9/24").create()
        # docker: not installed, or (as on the CI machines) a CLI with no daemon behind it
        with pytest.raises(nk.NotFoundError, match=r"docker (did not answer|is not installed)"):
            Container("nk-ref", engine=Engine("docker")).pid()
        with pytest.raises(nk.NotFoundError, match="podman did not answer"):
            Container("nk-ref", engine=Engine("podman", ("--url", "unix:///run/nk-nothing.sock"))).pid()
        assert sorted(link.name for link in host.links()) == before


def test_containers_on_a_network_made_with_netns_kit(podman: Podman, host: Namespace) -> None:
    """Two containers and a plain namespace on a netns_kit bridge with the gateway address."""
    podman.server("nk-a")
    podman.run("nk-b", "sleep", "600")
    with Bridge("br-app", addresses=["10.77.0.1/24"]), Namespace("t-peer") as peer, \
            VethPair("veth-peer", "eth0", peer_namespace=peer, master="br-app"):
        peer.add_address("eth0", "10.77.0.9/24")
        with Attachment("nk-a", bridge="br-app", address="10.77.0.10/24", gateway="10.77.0.1"), \
                Attachment("nk-b", bridge="br-app", address="10.77.0.11/24", gateway="10.77.0.1",
                           mac_seed="nk-b"):
            assert wait_connect(peer, "10.77.0.10", 8080) == "hello from nk-a\n"
            out = podman.exec("nk-b", "sh", "-c", "nc -w 3 10.77.0.10 8080 </dev/null")
            assert out.stdout == "hello from nk-a\n", out.stderr
            assert nk.mac_from_seed("nk-b") in podman.exec("nk-b", "ip", "link", "show", "eth0").stdout
            with serve(host, "10.77.0.1", 9001) as srv:
                assert podman.exec("nk-b", "sh", "-c", "nc -w 3 10.77.0.1 9001 </dev/null").stdout == \
                    "hello from host\n"
                assert srv.peers[0][0] == "10.77.0.11"


def test_container_on_a_network_object(podman: Podman, host: Namespace) -> None:
    """A netns_kit Network (bridge, gateway, IPAM, firewall policy): one namespace joins through
    Network.connect, a podman container through a fixed-IP Attachment to the network's bridge."""
    podman.server("nk-net")
    with Network("app", subnet="10.88.0.0/24", ip_range="10.88.0.0/25") as net, Namespace("t-app") as app:
        conn = net.connect(app)
        with Attachment("nk-net", bridge=net.bridge, address="10.88.0.200/24", gateway=str(net.gateway)):
            # a Network endpoint -> the container at its fixed address, and back
            assert wait_connect(app, "10.88.0.200", 8080) == "hello from nk-net\n"
            with serve(app, str(conn.ip), 9003) as srv:
                out = podman.exec("nk-net", "sh", "-c", f"nc -w 3 {conn.ip} 9003 </dev/null")
                assert out.stdout == "hello from t-app\n", out.stderr
                assert srv.peers[0][0] == "10.88.0.200"
            # the host, on the gateway address, too
            assert wait_connect(host, "10.88.0.200", 8080) == "hello from nk-net\n"
        assert podman.links("nk-net") == ["lo"]


def test_podman_starts_a_container_in_a_namespace_netns_kit_made(podman: Podman, host: Namespace) -> None:
    """The other direction: `podman run --network ns:/run/netns/NAME` joins a netns_kit namespace."""
    with Bridge("br0", addresses=["192.168.0.1/24"]), Namespace("t-pod") as ns, \
            Attachment(ns, bridge="br0", address="192.168.0.77/24", gateway="192.168.0.1"):
        podman.server("nk-in-ns", network=f"ns:{ns.path}")
        pid = int(podman("inspect", "-f", "{{.State.Pid}}", "nk-in-ns").stdout)
        assert Namespace.from_pid(pid).same_as(ns)
        assert "inet 192.168.0.77/24" in podman.exec("nk-in-ns", "ip", "addr", "show", "eth0").stdout
        assert wait_connect(host, "192.168.0.77", 8080) == "hello from nk-in-ns\n"
        with serve(host, "192.168.0.1", 9002) as srv:
            assert podman.exec("nk-in-ns", "sh", "-c", "nc -w 3 192.168.0.1 9002 </dev/null").stdout == \
                "hello from host\n"
            assert srv.peers[0][0] == "192.168.0.77"
        podman.remove_all()  # the container goes first; netns_kit's namespace and links stay until the block ends
        assert ns.link("eth0").up
