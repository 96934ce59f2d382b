"""netns_kit's CNI plugin against the reference chain, ADD and DEL end to end (process starts included).

    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.cni_plugin            # N = 200, 3 runs each
    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.cni_plugin -n 50 --runs 1

Both sides do the same per endpoint (see :mod:`benchmarks.approach_cni` and
:mod:`benchmarks.approach_netns_kit_cni`): a namespace, ADD on the loopback network, ADD on the
pod network (a veth on br0, a fixed address, the default route, masquerade, one published port),
then DEL of both and the namespace. Each run is a worker in a fresh network namespace of its own
(:func:`benchmarks.run.run_worker`); runs of the two alternate so that drift on the machine hits
both. Printed: setup and teardown per endpoint (median of runs) and netns_kit's time divided by
the reference chain's (below 1: netns_kit is faster). The start-up part alone is measured too:
``python -c pass``, importing the plugin module, and the full ``VERSION`` call, each the median of
20 process starts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.approach_cni import available
from benchmarks.approach_netns_kit_cni import REPO, plugin_executable
from benchmarks.run import run_worker

APPROACHES = {"cni": "reference bridge + host-local + portmap", "netns_kit_cni": "netns-kit-cni"}


def _start_ms(argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, input=stdin, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def startup() -> dict[str, float]:
    """Milliseconds: an empty interpreter, importing netns_kit.cni, and a whole VERSION call."""
    with tempfile.TemporaryDirectory(prefix="nkcni-start-", dir="/run") as d:
        exe = plugin_executable(d)
        env = {**os.environ, "PYTHONPATH": REPO}
        return {
            "python -c pass": _start_ms([sys.executable, "-c", "pass"]),
            "import netns_kit.cni": _start_ms([sys.executable, "-c", "import netns_kit.cni"], env=env),
            "netns-kit-cni VERSION": _start_ms([exe], b'{"cniVersion": "1.0.0"}',
                                               {"CNI_COMMAND": "VERSION", "PATH": os.environ.get("PATH", "")}),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="endpoints per run (default 200)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    ap.add_argument("--json", default=None, help="also write the raw runs here")
    args = ap.parse_args(argv)
    reason = available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    runs: dict[str, list[dict[str, object]]] = {k: [] for k in APPROACHES}
    for rep in range(args.runs):
        order = list(APPROACHES) if rep % 2 == 0 else list(reversed(APPROACHES))
        for name in order:
            res = run_worker(name, args.n, sys.executable, timeout=3600)
            if res.get("leftovers"):
                print(f"warning: {name} left {res['leftovers']}", file=sys.stderr)
            runs[name].append(res)
    med: dict[str, dict[str, float]] = {}
    for name, rs in runs.items():
        med[name] = {k: statistics.median(float(r[k]) for r in rs) / args.n * 1000  # type: ignore[arg-type]
                     for k in ("setup_s", "teardown_s")}
    start = startup()
    print(f"N={args.n}, {args.runs} run(s) each, per endpoint (median):")
    print(f"{'':44} {'setup (ADD)':>12} {'teardown (DEL)':>15}")
    for name, label in APPROACHES.items():
        print(f"{label:44} {med[name]['setup_s']:10.1f} ms {med[name]['teardown_s']:12.1f} ms")
    ours, ref = med["netns_kit_cni"], med["cni"]
    print(f"{'ratio netns-kit-cni / reference':44} {ours['setup_s'] / ref['setup_s']:11.2f}x "
          f"{ours['teardown_s'] / ref['teardown_s']:14.2f}x")
    print("start-up, median of 20 process starts: " + ", ".join(f"{k} {v:.0f} ms" for k, v in start.items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"n": args.n, "runs": runs, "median_ms": med, "startup_ms": start}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
