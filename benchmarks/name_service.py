"""The networks' name service against aardvark-dns (Podman's), on the same machine, load and client.

Run inside the sandbox (it rewrites the sandbox's own /etc/resolv.conf, an overlay):

    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.name_service [N]

One host namespace, one user-defined network (``bench``, 10.60.0.0/24) with two endpoints,
``client`` and ``target``. netns_kit's service answers on the gateway's port 53 (the nft redirect
to its port, as every endpoint uses it); aardvark-dns 1.4 (``/usr/lib/podman/aardvark-dns``, driven
by its configuration directory: one file per network, the listening address on the first line,
one line per container) listens on the same gateway, another port, with the same two names. A
stub upstream (a separate process on 10.59.0.53, the host's only nameserver in /etc/resolv.conf)
answers forwarded names for both. The load client is one process in ``client``'s namespace:

- latency: N queries one after the other; median and 99th percentile of their round trips;
- throughput: N queries with 16 in flight; queries per second.

Cases: a local name (``target``, A) and a forwarded one (``www.example.com``, A). Each case runs
three times per service, interleaved; the table shows medians of the three and the ratio
netns_kit / aardvark (higher is better for q/s, lower for latency).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import netns_kit as nk
from netns_kit.testing import isolated_host

AARDVARK = "/usr/lib/podman/aardvark-dns"
AARDVARK_PORT = 5354
STUB_ADDR = "10.59.0.53"

STUB = r"""
import socket, sys
import dns.message, dns.rrset
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
cache = {}
while True:
    data, addr = s.recvfrom(4096)
    key = data[2:]
    if key not in cache:
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.1"))
        cache[key] = r.to_wire()[2:]
    s.sendto(data[:2] + cache[key], addr)
"""

LOAD = r"""
import json, socket, struct, sys, time
import dns.message
server, port, name, n, window = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
query = dns.message.make_query(name, "A").to_wire()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((server, port))
s.settimeout(2)
# check the answer once (then only the header is looked at)
s.send(query)
first = dns.message.from_wire(s.recv(4096))
assert first.answer, first
sent = {}
lat = []
lost = 0
next_id = 1
done = 0
t0 = time.perf_counter()
while done < n:
    while len(sent) < window and next_id <= n:
        sent[next_id] = time.perf_counter()
        s.send(struct.pack("!H", next_id) + query[2:])
        next_id += 1
    try:
        data = s.recv(4096)
    except TimeoutError:
        lost += len(sent)
        done += len(sent)
        sent.clear()
        continue
    qid = struct.unpack("!H", data[:2])[0]
    start = sent.pop(qid, None)
    if start is None:
        continue
    if data[3] & 0x0F:
        raise SystemExit(f"rcode {data[3] & 0x0F} for {name}")
    lat.append(time.perf_counter() - start)
    done += 1
elapsed = time.perf_counter() - t0
lat.sort()
print(json.dumps({"qps": len(lat) / elapsed, "median_us": lat[len(lat) // 2] * 1e6,
                  "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6, "lost": lost}))
"""

CASES = [("local name", "target"), ("forwarded name", "www.example.com")]


def load(client: nk.Endpoint, server: str, port: int, name: str, n: int, window: int) -> dict[str, float]:
    proc = client.run([sys.executable, "-c", LOAD, server, str(port), name, str(n), str(window)], timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"load client failed against {server}:{port} for {name}: {proc.stderr}")
    out: dict[str, float] = json.loads(proc.stdout)
    return out


def wait_answers(client: nk.Endpoint, server: str, port: int) -> None:
    probe = ("import dns.message, dns.query, sys; "
             "dns.query.udp(dns.message.make_query('target', 'A'), sys.argv[1], port=int(sys.argv[2]), timeout=0.5)")
    deadline = time.monotonic() + 20
    while client.run([sys.executable, "-c", probe, server, str(port)]).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing answers on {server}:{port}")


def aardvark_config(directory: str, gateway: str, entries: dict[str, str]) -> None:
    """aardvark-dns's configuration: a file named after the network; first line the listening
    address; then ``<container id> <IPv4s> <IPv6s> <names>`` per container (no IPv6 here)."""
    lines = [gateway]
    for i, (name, ip) in enumerate(sorted(entries.items())):
        lines.append(f"{i + 1:064x} {ip}  {name}")
    with open(os.path.join(directory, "bench"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(n: int = 2000) -> None:
    if os.environ.get("NETNS_KIT_SANDBOXED") != "1":
        raise SystemExit("run it inside scripts/sandbox.sh (it rewrites /etc/resolv.conf)")
    if not os.access(AARDVARK, os.X_OK):
        raise SystemExit(f"{AARDVARK} is missing: apt-get install aardvark-dns (scripts/setup.sh does)")
    with open("/etc/resolv.conf") as f:
        saved = f.read()
    confdir = tempfile.mkdtemp(prefix="nk-aardvark-", dir="/run")
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    try:
        with open("/etc/resolv.conf", "w") as f:
            f.write(f"nameserver {STUB_ADDR}\n")
        with isolated_host() as host:
            host.add_address("lo", f"{STUB_ADDR}/32")
            stub = subprocess.Popen([sys.executable, "-c", STUB, STUB_ADDR], stdout=subprocess.PIPE, text=True)
            aardvark: subprocess.Popen[bytes] | None = None
            try:
                assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
                with nk.Network("bench", subnet="10.60.0.0/24") as net, \
                        nk.Endpoint("client", net) as client, nk.Endpoint("target", net) as target:
                    gw = str(net.gateway)
                    aardvark_config(confdir, gw, {"client": str(client.address), "target": str(target.address)})
                    aardvark = subprocess.Popen([AARDVARK, "--config", confdir, "-p", str(AARDVARK_PORT), "run"],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    wait_answers(client, gw, AARDVARK_PORT)
                    wait_answers(client, gw, 53)
                    services = [("netns_kit", 53), ("aardvark-dns", AARDVARK_PORT)]
                    for _round in range(3):
                        for case, name in CASES:
                            for service, port in services:
                                lat = load(client, gw, port, name, n, 1)
                                thr = load(client, gw, port, name, n, 16)
                                results.setdefault((case, service, "lat"), []).append(lat)
                                results.setdefault((case, service, "thr"), []).append(thr)
            finally:
                if aardvark is not None:
                    aardvark.terminate()
                    aardvark.wait(10)
                stub.kill()
                stub.wait()
    finally:
        with open("/etc/resolv.conf", "w") as f:
            f.write(saved)
        pid_file = os.path.join(confdir, "aardvark.pid")  # aardvark forks: stop what it left running
        if os.path.exists(pid_file):
            with open(pid_file) as f:
                pid = int(f.read().strip() or 0)
            if pid:
                subprocess.run(["kill", str(pid)], check=False)
        shutil.rmtree(confdir, ignore_errors=True)
    report(results, n)


def report(results: dict[tuple[str, str, str], list[dict[str, float]]], n: int) -> None:
    def med(case: str, service: str, kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(case, service, kind)])

    print(f"name service, {n} queries per run, medians of 3 runs (same client, network and load)")
    print("| case | service | q/s (16 in flight) | median latency (µs) | p99 latency (µs) |")
    print("|---|---|---:|---:|---:|")
    for case, _name in CASES:
        for service in ("netns_kit", "aardvark-dns"):
            print(f"| {case} | {service} | {med(case, service, 'thr', 'qps'):.0f} | "
                  f"{med(case, service, 'lat', 'median_us'):.0f} | {med(case, service, 'lat', 'p99_us'):.0f} |")
    print()
    for case, _name in CASES:
        q = med(case, "netns_kit", "thr", "qps") / med(case, "aardvark-dns", "thr", "qps")
        m = med(case, "netns_kit", "lat", "median_us") / med(case, "aardvark-dns", "lat", "median_us")
        p = med(case, "netns_kit", "lat", "p99_us") / med(case, "aardvark-dns", "lat", "p99_us")
        print(f"{case}: netns_kit / aardvark-dns = {q:.2f}x the q/s, {m:.2f}x the median, {p:.2f}x the p99 latency")
    lost = sum(r["lost"] for rs in results.values() for r in rs)
    if lost:
        print(f"({lost:.0f} queries timed out and were left out)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
