"""pipework parity: the classic fixed-IP recipe, then ``pipework br0 test01 192.168.0.123/24@192.168.0.1``.

The "container" is a process with a network namespace of its own (``unshare --net sleep``), reached
through its PID exactly as the recipe does with ``docker inspect -f '{{.State.Pid}}'`` (with Docker or
Podman running, pass the container's name instead: ``nk.attach("test01", ...)``). Everything built is
removed at the end; the host namespace is left as it was found.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import netns_kit as nk


def container_like_process() -> subprocess.Popen[bytes]:
    """`docker run -itd --net=none ...`: a process in an empty network namespace."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    me = nk.Namespace.current()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until unshare has switched namespace
        try:
            if not nk.Namespace.from_pid(proc.pid).same_as(me):
                return proc
        except nk.NotFoundError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError("unshare --net did not start within 10 s")


def tcp_check(server_ns: nk.Namespace, address: str, client_ns: nk.Namespace, port: int) -> str:
    """A one-shot TCP server in ``server_ns``; connect from ``client_ns``; return the source the server saw."""
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    with server_ns.enter():
        srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # an earlier check may be in TIME_WAIT
    srv.bind((address, port))
    srv.listen(1)
    seen: list[str] = []

    def accept() -> None:
        conn, peer = srv.accept()
        seen.append(peer[0])
        conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    with client_ns.enter():
        cli = socket.socket(fam, socket.SOCK_STREAM)
    cli.settimeout(3)
    cli.connect((address, port))
    cli.close()
    t.join(3)
    srv.close()
    return seen[0] if seen else "nothing"


def main() -> None:
    host = nk.Namespace.current()
    before = sorted(link.name for link in host.links())
    proc = container_like_process()
    try:
        # 1. The classic recipe, step by step, with the library's objects (one undo log for all).
        with nk.Transaction(keep=False) as tx:
            c = nk.Namespace.from_pid(proc.pid)                       # C_PID=$(docker inspect ...)
            br = nk.Bridge("br0", addresses=["192.168.0.1/24"]).create()
            nk.VethPair(f"veth{proc.pid}", "eth0", peer_namespace=c, master=br).create()
            c.add_address("eth0", "192.168.0.123/24")                 # ip netns exec ... ip addr add
            c.add_route(nk.Route("default", gateway="192.168.0.1"))   # ... ip route add default via
            print("recipe, undo log:", *tx.undo_steps, sep="\n  ")
            print("recipe: container links", [(x.name, x.kind) for x in c.links()])
            print("recipe: host -> 192.168.0.123:8080, container saw source",
                  tcp_check(c, "192.168.0.123", host, 8080))
        print("recipe: torn down, host links", sorted(link.name for link in host.links()))

        # 2. The tutorial's own typo (gateway 192.168.1.1 outside 192.168.0.0/24), refused up front.
        try:
            nk.Attachment(proc.pid, bridge="br0", address="192.168.0.123/24", gateway="192.168.1.1")
        except nk.ValidationError as exc:
            print("refused before any change:", exc)

        # 3. The same as one call: `pipework br0 <pid> 192.168.0.123/24@192.168.0.1` (bridge made on demand).
        att = nk.attach(proc.pid, "br0", "192.168.0.123/24@192.168.0.1", create_bridge=True,
                        mac_seed="test01", ipv6=["2001:db8::123/64"])
        try:
            print("pipework-style:", att)
            print("  host end", att.host_ifname, "mac", att.mac, "(stable: mac_from_seed('test01') =",
                  nk.mac_from_seed("test01") + ")")
            assert att.namespace is not None
            # the bridge attach() made carries the gateway 192.168.0.1/24 (and goes with it); give the
            # host an IPv6 address on it too ("peeking inside the network")
            host.add_address("br0", "2001:db8::1/64")
            print("  host -> container 192.168.0.123:8080, container saw",
                  tcp_check(att.namespace, "192.168.0.123", host, 8080))
            print("  container -> gateway 192.168.0.1:9000, host saw",
                  tcp_check(host, "192.168.0.1", att.namespace, 9000))
            print("  host -> [2001:db8::123]:8081, container saw",
                  tcp_check(att.namespace, "2001:db8::123", host, 8081))
        finally:
            att.remove()  # detach: the veth pair, and br0 because this attachment created it
        print("detached: host links", sorted(link.name for link in host.links()),
              "container links", [x.name for x in nk.Namespace.from_pid(proc.pid).links()])

        # 4. macvlan mode: `pipework phys0 <pid> 192.168.0.124/24@192.168.0.1` on a plain interface.
        with nk.Namespace("nk-pw-lan") as lan, nk.VethPair("phys0", "eth0", peer_namespace=lan):
            lan.add_address("eth0", "192.168.0.1/24")
            with nk.Attachment(proc.pid, macvlan="phys0", address="192.168.0.124/24", gateway="192.168.0.1",
                               ifname="eth1") as mv:
                assert mv.namespace is not None
                print("macvlan:", mv, "kind", mv.namespace.link("eth1").kind)
                print("  LAN -> container 192.168.0.124:8080, container saw",
                      tcp_check(mv.namespace, "192.168.0.124", lan, 8080))
    finally:
        proc.kill()
        proc.wait()
    after = sorted(link.name for link in host.links())
    print("host links before", before, "after", after)
    assert after == before


if __name__ == "__main__":
    main()
