"""Test-harness helpers: a server inside an endpoint, a partition, a bandwidth limit, netem.

Three namespaces on a bridge. A real HTTP server runs inside one of them; the others fetch
from it. A partition cuts one node off (then heals), a 2 Mbit/s limit slows a transfer
(then lifts), and netem is tried (this project's CI kernel has none: a clear error).
Everything is undone at the end.
"""

from __future__ import annotations

import sys
import time

import netns_kit as nk
import netns_kit.testing
from netns_kit.chaos import Partition
from netns_kit.harness import BandwidthLimit, NetworkEmulation, Process

FETCH = ("import sys, urllib.request as u\n"
         "try:\n"
         "    data = u.urlopen(sys.argv[1], timeout=2).read(); print(len(data))\n"
         "except Exception as e:\n"
         "    print('failed:', type(e).__name__); sys.exit(1)\n")


SERVER = ("import http.server as h\n"
          "body = b'x' * 400000\n"
          "class H(h.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
          "        self.end_headers(); self.wfile.write(body)\n"
          "    def log_message(self, *a): pass\n"
          "h.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()\n")


def fetch(ns: nk.Namespace, url: str) -> str:
    out = ns.run([sys.executable, "-c", FETCH, url], timeout=30)
    return out.stdout.strip()


def main() -> None:
    with nk.Transaction(keep=False):
        br = nk.Bridge("br-harness", addresses=["10.71.0.1/24"]).create()
        nodes = []
        for i in range(3):
            ns = nk.Namespace(f"hnode{i}").create()
            nk.VethPair(f"vhnode{i}", "eth0", peer_namespace=ns, master=br).create()
            ns.add_address("eth0", f"10.71.0.{i + 2}/24")
            nodes.append(ns)
        server_ns, a, b = nodes

        # A 400 kB file served by a real HTTP server inside hnode0.
        web = Process(server_ns, [sys.executable, "-c", SERVER]).start()
        web.wait_for_port(8000)
        print(f"server {web} answers on 10.71.0.2:8000")
        url = "http://10.71.0.2:8000/"
        print("hnode1 fetches:", fetch(a, url), "bytes; hnode2 fetches:", fetch(b, url), "bytes")

        with Partition([server_ns, a], [b]) as p:
            print("partition:", p, "plan:", p.plan())
            print("  hnode1 fetches:", fetch(a, url), "| hnode2 fetches:", fetch(b, url))
        print("healed: hnode2 fetches:", fetch(b, url), "bytes")

        t0 = time.monotonic()
        fetch(a, url)
        fast = time.monotonic() - t0
        with BandwidthLimit("eth0", "2mbit", namespace=server_ns) as lim:
            print("limit:", lim, "=", lim.commands()[0])
            t0 = time.monotonic()
            fetch(a, url)
            slow = time.monotonic() - t0
        print(f"400 kB from hnode0: {fast:.2f} s unlimited, {slow:.2f} s at 2 Mbit/s")

        try:
            with NetworkEmulation("eth0", namespace=a, delay_ms=100, loss_percent=1):
                print("netem: 100 ms delay in place")
        except nk.UnsupportedError as exc:
            print("netem:", exc)
    print("after the transaction: server stopped:", not web.running, "| namespaces left:",
          sorted(nk.testing.named_namespaces()) or "none")


if __name__ == "__main__":
    main()
