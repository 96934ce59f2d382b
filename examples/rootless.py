"""Rootless mode: a network, endpoints, a published port and a partition, built without root.

Run it as any user: ``python examples/rootless.py``. Rootless mode is for a whole process, and
the kernel lets only a process with one thread enter a user namespace, so ``main()`` starts a
fresh interpreter that calls :func:`netns_kit.testing.enter_rootless` first thing. (As root it
works the same way: root then builds inside a user namespace too.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import netns_kit as nk
from netns_kit.chaos import Partition
from netns_kit.harness import Process
from netns_kit.testing import enter_rootless, isolated_host

FETCH = ("import sys, urllib.request as u\n"
         "try:\n"
         "    print(u.urlopen(sys.argv[1], timeout=2).status)\n"
         "except OSError as e:\n"
         "    print('failed:', type(e).__name__)\n")


def build() -> None:
    uid = os.getuid()
    mode = enter_rootless()
    print(f"uid {uid} outside, uid {os.getuid()} inside a user namespace of this process's own")
    with isolated_host() as host, nk.Network("app", subnet="10.30.0.0/24", host=host) as net:
        web = nk.Endpoint("web", net, host=host, publish=["8080:80"]).create()
        client = nk.Endpoint("client", net, host=host).create()
        print(f"network {net.name}: web {web.address}, client {client.address}; bridge, veths and nft in memory")
        server = [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "80"]
        with Process(web.namespace, server) as srv:
            srv.wait_for_port(80, timeout=10)

            def fetch(url: str) -> str:
                return client.run([sys.executable, "-c", FETCH, url], timeout=30).stdout.strip()

            print("client -> http://web/ (name from /etc/netns, private here):", fetch("http://web/"))
            with urllib.request.urlopen(f"http://{net.gateway}:8080/", timeout=5) as reply:
                print(f"host -> {net.gateway}:8080 (published port, DNAT):", reply.status)
            with Partition(client, web):
                print("partitioned: client -> web:", fetch("http://web/"))
            print("healed: client -> web:", fetch("http://web/"))
        client.remove()
        web.remove()
    print("left in this process's /run/netns:", sorted(os.listdir("/run/netns")) or "nothing",
          "| entries of /run and /etc it could not show:", list(mode.hidden) or "none")


def main() -> None:
    res = subprocess.run([sys.executable, __file__, "--build"], capture_output=True, text=True, timeout=300)
    print(res.stdout, end="")
    if res.returncode != 0:
        raise SystemExit(f"the rootless process failed:\n{res.stderr}")


if __name__ == "__main__":
    build() if "--build" in sys.argv else main()
