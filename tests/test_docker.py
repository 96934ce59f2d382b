"""Attachment on Docker itself, the classic recipe's own engine: Debian's docker.io (dockerd 20.10)
started inside the test sandbox, an image imported offline from busybox-static, containers started
with ``--net=none``.

The daemon lives entirely under a temporary directory on the sandbox's /run (``--data-root``,
``--exec-root``, its socket, its pid file and the containerd it starts), with every option that
would reach for the network turned off (``--bridge=none --iptables=false --ip6tables=false
--ip-forward=false --ip-masq=false``): it makes no bridge, writes no firewall rule and no sysctl,
and everything it would write under /etc or /var/lib lands in the sandbox's overlays. Its
containers run under a cgroup parent of the module's own, whose directories are removed afterwards.
``DOCKER_HOST`` points at its socket for the module, so plain ``docker`` commands, and netns_kit's
engine lookup (Docker first, as pipework does), reach it.

The published-port parity tests start daemons of their own with Docker's firewall management on
(``--iptables=true``, iptables-nft, ``--bridge=none``, user-defined networks by ``docker network
create``), each in a fresh network namespace of the test's, so its rules, bridges, sysctls and
docker-proxy processes live and die there; they compare the source address a published container
sees with what netns_kit's Network and Endpoint give, by traffic.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from cgroups import remove_cgroups
from outside_world import HOST_IP, OUTSIDE_IP, outside_world
from traffic import serve, wait_connect

import netns_kit as nk
from netns_kit import Attachment, Bridge, Container, Engine, Namespace
from netns_kit.testing import isolated_host

IMAGE = "netns-kit-busybox:latest"
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "nc", "ip", "sleep", "cat", "echo", "true"]
DAEMON_FLAGS = ["--storage-driver", "vfs", "--bridge=none", "--iptables=false", "--ip6tables=false",
                "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false", "--log-level", "warn"]


class Docker:
    """Run docker against the module's own daemon; remember containers to remove them."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.host = f"unix://{root}/d.sock"
        self.containers: list[str] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def run(self, name: str, *cmd: str) -> str:
        """``docker run -d --net=none`` a container of the busybox image; returns its id."""
        self.containers.append(name)
        return self("run", "-d", "--name", name, "--net=none", IMAGE, *cmd).stdout.strip()

    def server(self, name: str, port: int = 8080) -> str:
        """A container answering every TCP connection on ``port`` with ``hello from NAME``."""
        return self.run(name, "sh", "-c", f"while true; do echo hello from {name} | nc -l -p {port}; done")

    def exec(self, name: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return self("exec", name, *cmd, check=False, timeout=30)

    def links(self, name: str) -> list[str]:
        """Interface names inside the container, as its own `ip` sees them."""
        out = self.exec(name, "ip", "-o", "link").stdout
        return [line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line]

    def pid(self, name: str) -> int:
        return int(self("inspect", "-f", "{{.State.Pid}}", name).stdout)

    def state(self, name: str) -> str:
        return self("inspect", "-f", "{{.State.Status}}", name).stdout.strip()

    def remove_all(self) -> None:
        for name in self.containers:
            self("rm", "-f", name, check=False)
        self.containers.clear()


def _wait(what: str, ready: object, timeout: float = 60.0) -> None:
    """Wait for a state (``ready()`` true), not for a time; fail naming ``what`` at the deadline."""
    assert callable(ready)
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)



@contextlib.contextmanager
def private_dockerd(flags: list[str]) -> Iterator[Docker]:
    """A dockerd with ``flags`` in the calling thread's network namespace, with the busybox image;
    stopped afterwards, leaving no process, mount, cgroup or file behind."""
    missing = [exe for exe in ("docker", "dockerd", "containerd", "runc") if shutil.which(exe) is None]
    if missing or not os.path.exists(BUSYBOX):
        raise AssertionError(f"docker.io, runc and busybox-static are required (missing {missing or BUSYBOX}): "
                             "run scripts/setup.sh")
    if os.environ.get("NETNS_KIT_SANDBOXED") != "1":
        raise AssertionError("the docker tests run only inside scripts/sandbox.sh")
    root = tempfile.mkdtemp(prefix="nk-docker-", dir="/run")
    cgroup_parent = "/" + os.path.basename(root)
    dk = Docker(root)
    log = open(f"{root}/dockerd.log", "w")  # noqa: SIM115 (closed in finally)
    daemon = subprocess.Popen(  # forked by this thread: the daemon lives in this thread's namespace
        ["dockerd", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec", "-H", dk.host,
         "--pidfile", f"{root}/dockerd.pid", "--cgroup-parent", cgroup_parent, *flags],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            if daemon.poll() is not None:
                with open(f"{root}/dockerd.log") as f:
                    raise AssertionError(f"dockerd exited ({daemon.returncode}): {f.read()[-2000:]}")
            return dk("version", check=False, timeout=30).returncode == 0

        _wait("dockerd to answer", up, timeout=120)
        os.makedirs(f"{root}/rootfs/bin")
        shutil.copy(BUSYBOX, f"{root}/rootfs/bin/busybox")
        for applet in APPLETS:
            os.symlink("busybox", f"{root}/rootfs/bin/{applet}")
        subprocess.run(["tar", "-C", f"{root}/rootfs", "-cf", f"{root}/busybox.tar", "."], check=True)
        dk("import", f"{root}/busybox.tar", IMAGE, timeout=120)
        yield dk
    finally:
        with contextlib.suppress(Exception):
            ids = dk("ps", "-aq", check=False, timeout=60).stdout.split()
            if ids:
                dk("rm", "-f", *ids, check=False, timeout=120)
            dk("network", "prune", "-f", check=False, timeout=60)
        daemon.send_signal(signal.SIGTERM)  # dockerd stops the containerd it started, then itself
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
        log.close()
        # docker leaves its namespace and shm mounts under the exec and data roots
        subprocess.run(["sh", "-c", f"grep -o ' {root}[^ ]*' /proc/self/mounts | sort -r | xargs -r umount -l"],
                       check=False)
        shutil.rmtree(root, ignore_errors=True)
        remove_cgroups(cgroup_parent)


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Docker]:
    """A private dockerd for this module, inside the sandbox (its own network namespace), with the
    busybox image and no network management; ``DOCKER_HOST`` points at it for the module."""
    saved = os.environ.get("DOCKER_HOST")
    try:
        with private_dockerd(DAEMON_FLAGS) as dk:
            os.environ["DOCKER_HOST"] = dk.host
            yield dk
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved


@pytest.fixture
def docker(dockerd: Docker, host: Namespace) -> Iterator[Docker]:
    try:
        yield dockerd
    finally:
        dockerd.remove_all()




def _both_ways(docker: Docker, host: Namespace, name: str, ip: str, port: int) -> None:
    """Host side -> the container's server at its fixed address; container -> a server on the bridge
    side, which sees the container's fixed address as the source."""
    assert wait_connect(host, ip, 8080) == f"hello from {name}\n"
    with serve(host, "192.168.0.1", port) as srv:
        out = docker.exec(name, "sh", "-c", f"nc -w 5 192.168.0.1 {port} </dev/null")
        assert out.stdout == "hello from host\n", out.stderr
        assert srv.peers[0][0] == ip


def test_attach_by_docker_name_like_the_classic_recipe(docker: Docker, host: Namespace) -> None:
    """`docker run --net=none --name nk-dk-web ...`, then `pipework br0 nk-dk-web 192.168.0.123/24@192.168.0.1`,
    traffic both ways, then detach: the container is back to `lo` alone, the bridge stays."""
    docker.server("nk-dk-web")
    assert docker.links("nk-dk-web") == ["lo"]  # --net=none
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        att = Attachment("nk-dk-web", bridge="br0", address="192.168.0.123/24@192.168.0.1").create()
        try:
            assert att.namespace is not None and att.namespace.label == "container:nk-dk-web"
            assert att.namespace.same_as(Namespace.from_pid(docker.pid("nk-dk-web")))
            assert "inet 192.168.0.123/24" in docker.exec("nk-dk-web", "ip", "addr", "show", "eth0").stdout
            assert "default via 192.168.0.1 dev eth0" in docker.exec("nk-dk-web", "ip", "route").stdout
            _both_ways(docker, host, "nk-dk-web", "192.168.0.123", 9000)
        finally:
            att.remove()
        assert docker.links("nk-dk-web") == ["lo"]  # detached
        assert host.link("br0").kind == "bridge"
        assert [link.name for link in host.links() if link.master == host.link("br0").index] == []


def test_attach_by_docker_id_and_engine(docker: Docker, host: Namespace) -> None:
    """The full id, a short id, and a Container pinned to Docker (the engine reached by -H, not the
    environment) all name the same namespace; attach by id carries traffic both ways."""
    cid = docker.server("nk-dk-id")
    pid = docker.pid("nk-dk-id")
    assert Container("nk-dk-id").pid() == pid  # any engine on PATH: Docker first
    assert Container(cid[:12], engine=Engine.docker()).pid() == pid
    assert Engine.docker("-H", docker.host).container_pid(cid) == pid
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        with Attachment(cid, bridge="br0", address="192.168.0.60/24") as att:
            assert att.namespace is not None and att.namespace.label == f"container:{cid}"
            assert att.namespace.same_as(Namespace.from_pid(pid))
            _both_ways(docker, host, "nk-dk-id", "192.168.0.60", 9001)
        assert docker.links("nk-dk-id") == ["lo"]
        with Attachment(Container(cid[:12], engine=Engine.docker()), bridge="br0", address="192.168.0.61/24"):
            _both_ways(docker, host, "nk-dk-id", "192.168.0.61", 9002)
        assert docker.links("nk-dk-id") == ["lo"]


def test_docker_container_that_exits_while_attached(docker: Docker, host: Namespace) -> None:
    """The container stops with the attachment in place: removing the attachment counts as done, and
    nothing of it is left on the host; attaching to the exited container is refused, naming its state."""
    docker.run("nk-dk-exit", "sleep", "600")
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        before = sorted(link.name for link in host.links())
        att = Attachment("nk-dk-exit", bridge="br0", address="192.168.0.70/24").create()
        assert att.host_ifname is not None and host.has_link(att.host_ifname)
        docker("stop", "-t", "0", "nk-dk-exit")
        _wait("the container to exit", lambda: docker.state("nk-dk-exit") == "exited")
        att.remove()  # no error: the target has exited
        att.remove()  # idempotent
        assert sorted(link.name for link in host.links()) == before
        assert [link.name for link in host.links() if link.master == host.link("br0").index] == []
        with pytest.raises(nk.NotFoundError, match=r"not running.*exited"):
            Attachment("nk-dk-exit", bridge="br0", address="192.168.0.71/24").create()
        with pytest.raises(nk.NotFoundError, match=r"docker container 'nk-dk-exit' is not running"):
            Container("nk-dk-exit", engine=Engine.docker()).pid()
        assert sorted(link.name for link in host.links()) == before


def test_docker_ambiguous_id_prefix_refused(docker: Docker, host: Namespace) -> None:
    """An id prefix that several containers share is a bad reference (ValidationError naming it), not a
    daemon that "did not answer", and no engine after Docker is asked; nothing is changed."""
    seen: dict[str, str] = {}
    for i in range(17):  # 16 hex digits: two of 17 ids share their first one
        cid = docker.run(f"nk-dk-amb{i}", "sleep", "600")
        if cid[0] in seen:
            break
        seen[cid[0]] = cid
    prefix = cid[0]
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        before = sorted(link.name for link in host.links())
        with pytest.raises(nk.ValidationError, match=f"'{prefix}' names more than one docker container"):
            Container(prefix, engine=Engine.docker()).pid()
        with pytest.raises(nk.ValidationError, match=f"'{prefix}' names more than one docker container"):
            Attachment(Container(prefix), bridge="br0", address="192.168.0.9/24").create()
        assert sorted(link.name for link in host.links()) == before
        assert Container(cid[:12]).pid() == docker.pid(cid)


def test_docker_missing_and_created_containers_refused(docker: Docker, host: Namespace) -> None:
    with Bridge("br0", addresses=["192.168.0.1/24"]):
        before = sorted(link.name for link in host.links())
        with pytest.raises(nk.NotFoundError, match="docker has no container 'nk-dk-none'"):
            Container("nk-dk-none", engine=Engine.docker()).pid()
        with pytest.raises(nk.NotFoundError, match="neither a named namespace"):
            Attachment("nk-dk-none", bridge="br0", address="192.168.0.9/24").create()
        docker.containers.append("nk-dk-created")
        docker("create", "--name", "nk-dk-created", "--net=none", IMAGE, "sleep", "600")
        with pytest.raises(nk.NotFoundError, match=r"not running.*created"):
            Attachment(Container("nk-dk-created"), bridge="br0", address="192.168.0.9/24").create()
        with pytest.raises(nk.NotFoundError, match="docker did not answer"):
            Container("nk-dk-created", engine=Engine.docker("-H", "unix:///run/nk-nothing.sock")).pid()
        assert sorted(link.name for link in host.links()) == before



# Docker managing its own firewall (iptables-nft, in a fresh namespace of the test's own), for the
# published-port parity tests: its default bridge stays off, the two user-defined networks are made
# by `docker network create` with the subnets the netns_kit side uses, so addresses compare as text.
NAT_DAEMON_FLAGS = ["--storage-driver", "vfs", "--bridge=none", "--iptables=true", "--ip6tables=false",
                    "--log-level", "warn"]
NET1, NET2 = "10.24.0.0/24", "10.25.0.0/24"
GW1, GW2 = "10.24.0.1", "10.25.0.1"
CLIENT_IP, SERVER_IP = "10.24.0.2", "10.25.0.2"
# (label, connecting from, to): a container of net1 to the host's address outside both networks, to
# net1's gateway and to net2's gateway; the outside host to the host's address as the control
CASES = [("net1 -> host address", "client", HOST_IP), ("net1 -> net1 gateway", "client", GW1),
         ("net1 -> net2 gateway", "client", GW2), ("outside -> host address", "outside", HOST_IP)]


def _seen_by_server(server: Namespace, clients: dict[str, Namespace]) -> dict[str, str | None]:
    """Per case, connect to port 8096 and return the source address the server (port 80 in
    ``server``) saw, or None if the connection did not get through."""
    seen: dict[str, str | None] = {}
    with serve(server, "0.0.0.0", 80) as srv:
        for label, client, dst in CASES:
            before = len(srv.peers)
            got = wait_connect(clients[client], dst, 8096, timeout=5.0)
            seen[label] = srv.peers[-1][0] if got is not None and len(srv.peers) > before else None
    return seen


def _docker_sees(userland_proxy: bool) -> dict[str, str | None]:
    """Real Docker in a fresh namespace with the outside world: `docker network create` net1 and net2,
    a container on net2 published with `-p 8096:80`, a container on net1. The server is a socket in
    the published container's network namespace, the client one in the other container's."""
    with isolated_host() as dhost, outside_world(dhost) as out, \
            private_dockerd([*NAT_DAEMON_FLAGS, f"--userland-proxy={str(userland_proxy).lower()}"]) as dk:
        dk("network", "create", "--subnet", NET1, "nk-net1")
        dk("network", "create", "--subnet", NET2, "nk-net2")
        dk("run", "-d", "--name", "nk-srv", "--network", "nk-net2", "-p", "8096:80", IMAGE, "sleep", "600")
        dk("run", "-d", "--name", "nk-cli", "--network", "nk-net1", IMAGE, "sleep", "600")
        for name, ip in (("nk-srv", SERVER_IP), ("nk-cli", CLIENT_IP)):
            assert dk("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                      name).stdout.strip() == ip
        with open(f"{dk.root}/dockerd.pid") as f:
            daemon_pid = f.read().strip()
        proxies = dhost.run(["pgrep", "-x", "-P", daemon_pid, "docker-proxy"])
        assert (proxies.returncode == 0) == userland_proxy  # the setting took: docker-proxy listens, or not
        return _seen_by_server(Namespace.from_pid(dk.pid("nk-srv")),
                               {"client": Namespace.from_pid(dk.pid("nk-cli")), "outside": out})


def test_published_port_from_another_network_sees_what_docker_shows(host: Namespace) -> None:
    """docs/nat.md, "a container of another network": the source address a published container sees
    when a container of another user-defined network connects through the host's address or a
    gateway is the same with Docker (20.10, its default userland proxy) and with netns_kit: the
    published container's own network's gateway (net2's), never the source network's (net1's)."""
    docker = _docker_sees(userland_proxy=True)
    with outside_world(host) as out, nk.Network("net1", subnet=NET1, host=host) as a, \
            nk.Network("net2", subnet=NET2, host=host) as b, \
            nk.Endpoint("cli", nk.CustomMode(a), host=host) as cli, \
            nk.Endpoint("srv", nk.CustomMode(b), host=host, publish=["8096:80"]) as srv:
        assert (str(cli.address), str(srv.address)) == (CLIENT_IP, SERVER_IP)
        netns_kit = _seen_by_server(srv.namespace, {"client": cli.namespace, "outside": out})
    assert netns_kit == docker
    assert docker == {"net1 -> host address": GW2, "net1 -> net1 gateway": GW2, "net1 -> net2 gateway": GW2,
                      "outside -> host address": OUTSIDE_IP}


def test_docker_without_userland_proxy_drops_published_ports_between_networks() -> None:
    """Docker's other setting, measured (no parity: netns_kit differs here and delivers, as in the
    test above): with ``--userland-proxy=false`` dockerd 20.10 DNATs the connection from net1 but its
    DOCKER-ISOLATION-STAGE-2 chain drops it on the way into net2's bridge, whichever host address
    it was sent to; the outside host still gets through with its own address."""
    assert _docker_sees(userland_proxy=False) == {
        "net1 -> host address": None, "net1 -> net1 gateway": None, "net1 -> net2 gateway": None,
        "outside -> host address": OUTSIDE_IP}
