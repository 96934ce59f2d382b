"""Per-endpoint setup and teardown time of each network mode (median and p90 of N endpoints).

Run inside the sandbox:  bash scripts/sandbox.sh .venv/bin/python benchmarks/modes.py 100
Each mode runs in its own throwaway host namespace; endpoints are created one after the other,
then removed newest first (one by one; in the last line, all in one ``removal_batch``).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import netns_kit as nk
from netns_kit.testing import isolated_host


def _line(label: str, setup: list[float], teardown: list[float]) -> str:
    p90 = sorted(setup)[int(len(setup) * 0.9)]
    return (f"{label:40s} setup median {statistics.median(setup) * 1000:6.2f} ms (p90 {p90 * 1000:6.2f})"
            f"  teardown median {statistics.median(teardown) * 1000:6.2f} ms")


def bench(label: str, n: int, make: Callable[[int, nk.Network | None], nk.Endpoint], custom: bool = False,
          batched: bool = False) -> None:
    with isolated_host():
        net = nk.Network("bench", subnet="10.99.0.0/16").create() if custom else None
        eps: list[nk.Endpoint] = []
        setup: list[float] = []
        teardown: list[float] = []
        for i in range(n):
            t = time.perf_counter()
            eps.append(make(i, net).create())
            setup.append(time.perf_counter() - t)
        if batched:  # all of them in one removal batch: the per-endpoint figure is the average
            t = time.perf_counter()
            with nk.removal_batch():
                for ep in reversed(eps):
                    ep.remove()
            teardown = [(time.perf_counter() - t) / n] * n
        for ep in reversed(eps if not batched else []):
            t = time.perf_counter()
            ep.remove()
            teardown.append(time.perf_counter() - t)
        if net is not None:
            net.remove()
        print(_line(label, setup, teardown))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(f"N={n} endpoints per mode")
    bench("none", n, lambda i, _: nk.Endpoint(f"n{i}", "none"))
    bench("host", n, lambda i, _: nk.Endpoint(f"h{i}", "host"))
    bench("bridge (default network)", n, lambda i, _: nk.Endpoint(f"b{i}"))
    bench("bridge + 1 published port", n, lambda i, _: nk.Endpoint(f"p{i}", publish=[f"{20000 + i}:80"]))
    bench("custom (names resolved)", n, lambda i, net: nk.Endpoint(f"c{i}", nk.CustomMode(net or "bench")),
          custom=True)
    bench("bridge, removed in one removal_batch", n, lambda i, _: nk.Endpoint(f"r{i}"), batched=True)


if __name__ == "__main__":
    main()
