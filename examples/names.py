"""Names that resolve everywhere: the DNS service of user-defined networks.

Two networks, endpoints made by this process and one made by a second process that opens the
network (``Network.open``). Lookups go through the endpoint's resolv.conf to the one name service
of the host, as a container's would (the names of this process's own endpoints are also in the
endpoint's hosts file; ``worker``'s come from the service alone). Everything is removed at the end,
and the service stops with the last network.
"""

from __future__ import annotations

import subprocess
import sys

import dns.message
import dns.query
import dns.rcode

import netns_kit as nk

# the second process: opens the network, connects a namespace of its own as "worker", waits
WORKER = r"""
import sys
import netns_kit as nk
net = nk.Network.open("shop")
with nk.Namespace("worker") as ns:
    net.connect(ns)
    print("connected", flush=True)
    sys.stdin.readline()
    net.close()
"""


def lookup(ep: nk.Endpoint, name: str) -> str:
    """``getent hosts NAME`` inside the endpoint (the C library, through its resolv.conf)."""
    res = ep.run(["getent", "hosts", name])
    return res.stdout.split()[0] if res.returncode == 0 else f"not found (exit {res.returncode})"


def main() -> None:
    with nk.Network("shop", subnet="10.20.0.0/24") as shop, nk.Network("lab", subnet="10.21.0.0/24") as lab, \
            nk.Endpoint("web", shop) as web, nk.Endpoint("db", shop, aliases=["database"]), \
            nk.Endpoint("probe", lab):
        svc = nk.NameService.of()
        print(f"name service: pid {svc.pid}, gateways' port 53 redirected to port {svc.port}")
        print("resolv.conf of web:")
        print("  " + "\n  ".join(web.run(["cat", "/etc/resolv.conf"]).stdout.splitlines()[1:]))
        worker = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert worker.stdout is not None and worker.stdin is not None
            assert worker.stdout.readline().strip() == "connected"
            for name in ("db", "database", "worker", "db.shop"):
                print(f"web: {name} -> {lookup(web, name)}")
            # a name of another network: NXDOMAIN from the service itself, at once
            query = dns.message.make_query("probe", "A")
            with web.namespace.enter():
                answer = dns.query.udp(query, str(shop.gateway), timeout=5)
            print(f"web: probe (network lab) -> {dns.rcode.to_text(answer.rcode())}")
            worker.stdin.write("\n")
            worker.stdin.flush()
            worker.wait(30)
            print(f"web: worker after its process disconnected it -> {lookup(web, 'worker')}")
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        print("a podman container joining web's namespace gets the same service with:")
        print(f"  podman run --network ns:/run/netns/web {' '.join(shop.dns_flags())} IMAGE")
    print(f"after the last network: service running = {nk.NameService.of().running}")


if __name__ == "__main__":
    main()
