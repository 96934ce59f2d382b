"""Cost of publishing the Nth port: netns_kit (map elements) against one rule per port.

Run inside the sandbox:  bash scripts/sandbox.sh .venv/bin/python benchmarks/nat_ports.py [N]

Prints the median time of one publication among the first and the last 100 of N, for
netns_kit's ``Firewall.publish`` (a dnat map element) and for a baseline that adds one DNAT
rule per port (the shape of moby#53466), both through libnftables.
"""

from __future__ import annotations

import ipaddress
import statistics
import sys
import time

import nftables

from netns_kit import Bridge
from netns_kit.firewall import Firewall, NetworkPolicy
from netns_kit.nat import PublishedPort
from netns_kit.testing import isolated_host


def med_us(xs: list[float]) -> float:
    return statistics.median(xs) * 1e6


def container_ip(i: int) -> str:
    return f"10.0.{i // 250}.{i % 250 + 2}"


def netns_kit_run(n: int) -> tuple[list[float], list[float]]:
    with isolated_host() as host, Bridge("br0", addresses=["10.0.0.1/16"]):
        fw = Firewall.for_namespace(host)
        fw.attach_network(NetworkPolicy("br0", (ipaddress.ip_network("10.0.0.0/16"),)))
        ports = [PublishedPort(host_port=10000 + i, container_ip=container_ip(i), container_port=80,
                               bridge="br0") for i in range(n)]
        add, rm = [], []
        for p in ports:
            t = time.perf_counter()
            fw.publish(p)
            add.append(time.perf_counter() - t)
        for p in ports:
            t = time.perf_counter()
            fw.unpublish(p)
            rm.append(time.perf_counter() - t)
        fw.detach_network("br0")
        return add, rm


def rule_per_port_run(n: int) -> list[float]:
    with isolated_host():
        nft = nftables.Nftables()
        rc, _, err = nft.cmd("table ip perrule {\n chain pre {\n type nat hook prerouting priority -100;\n }\n}\n")
        assert rc == 0, err
        add = []
        for i in range(n):
            cmd = {"nftables": [{"add": {"rule": {"family": "ip", "table": "perrule", "chain": "pre", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                           "right": 10000 + i}},
                {"dnat": {"addr": container_ip(i), "port": 80}}]}}}]}
            t = time.perf_counter()
            rc, _, err = nft.json_cmd(cmd)
            add.append(time.perf_counter() - t)
            assert rc == 0, err
        nft.cmd("delete table ip perrule")
        return add


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    add, rm = netns_kit_run(n)
    print(f"netns_kit, N={n}: publish first100 {med_us(add[:100]):.0f} us, last100 {med_us(add[-100:]):.0f} us; "
          f"unpublish first100 {med_us(rm[:100]):.0f} us, last100 {med_us(rm[-100:]):.0f} us")
    base = rule_per_port_run(n)
    print(f"one rule per port, N={n}: add first100 {med_us(base[:100]):.0f} us, "
          f"last100 {med_us(base[-100:]):.0f} us")


if __name__ == "__main__":
    main()
