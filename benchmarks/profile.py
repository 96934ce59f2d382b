"""Where netns_kit's time goes: cProfile of one approach, or wall time per kernel request kind.

    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.profile [APPROACH] [N] [--top K]
    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.profile netns_kit 200 --steps

``--steps`` (netns_kit only) times every rtnetlink request by its step name, the namespace
creation (unshare + bind mount + the socket opened inside + ``lo`` up) and the nft batches, so
the split between the kernel's work and the library's own Python shows without a profiler's
overhead. Runs in a fresh network namespace of its own (``unshare --net``), like benchmarks.run.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import importlib
import io
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def profile_here(name: str, n: int, top: int) -> None:
    mod = importlib.import_module(f"benchmarks.approach_{name}")
    approach = mod.make(n)
    approach.prepare()
    for phase in ("setup", "teardown"):
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        getattr(approach, phase)()
        prof.disable()
        wall = time.perf_counter() - t0
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        print(f"=== {name} {phase}, N={n}: {wall * 1000 / n:.3f} ms per endpoint under the profiler")
        stats.sort_stats("tottime").print_stats(top)
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
    approach.cleanup()


def steps_here(n: int) -> None:
    from benchmarks import approach_netns_kit
    from netns_kit import _netlink, _nft, _sys

    spent: dict[str, float] = collections.defaultdict(float)
    count: collections.Counter[str] = collections.Counter()
    top_level: set[str] = set()
    depth = [0]

    def timed(label: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = ("  (within the above) " if depth[0] else "") + label(*args, **kwargs)
            if not depth[0]:
                top_level.add(key)
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
                count[key] += 1
                depth[0] -= 1
        return wrapper

    request = _netlink.RtnlSocket._request
    _netlink.RtnlSocket._request = timed(  # type: ignore[method-assign]
        lambda *a, **k: f"netlink: {k.get('step')}", request)
    create = _sys.create_named_netns
    _sys.create_named_netns = timed(lambda *a, **k: "namespace: unshare, mount, socket, lo up", create)
    ctx_run = _nft.NftContext.run_json if hasattr(_nft, "NftContext") else None
    if ctx_run is not None:
        _nft.NftContext.run_json = timed(  # type: ignore[method-assign]
            lambda *a, **k: f"nft: {k.get('step', 'batch')}", ctx_run)
    approach = approach_netns_kit.make(n)
    approach.prepare()
    for phase in ("setup", "teardown"):
        spent.clear()
        count.clear()
        top_level.clear()
        t0 = time.perf_counter()
        getattr(approach, phase)()
        total = time.perf_counter() - t0
        print(f"netns_kit {phase}, N={n}: {total * 1000 / n:.3f} ms per endpoint")
        print(f"{'step':58} {'per ep':>6} {'ms/ep':>7}")
        for key, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"{key:58} {count[key] / n:6.1f} {sec * 1000 / n:7.3f}")
        inside = sum(v for k, v in spent.items() if k in top_level)
        print(f"{'everything else (netns_kit Python, journal, validation)':58} {'':6} "
              f"{(total - inside) * 1000 / n:7.3f}\n")
    approach.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("approach", nargs="?", default="netns_kit")
    ap.add_argument("n", nargs="?", type=int, default=200)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--steps", action="store_true", help="time kernel requests by kind (netns_kit)")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        if args.steps:
            steps_here(args.n)
        else:
            profile_here(args.approach, args.n, args.top)
        return 0
    if os.environ.get("NETNS_KIT_SANDBOXED") != "1":
        print("run it through scripts/sandbox.sh (see the module docstring)", file=sys.stderr)
        return 2
    cmd = ["unshare", "--net", "--", sys.executable, "-m", "benchmarks.profile", args.approach, str(args.n),
           "--top", str(args.top), "--inside"] + (["--steps"] if args.steps else [])
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
