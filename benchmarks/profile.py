"""Profile one approach's setup and teardown with cProfile (standard library).

    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.profile [APPROACH] [N] [--top K]

Runs in a fresh network namespace of its own (``unshare --net``), like benchmarks.run.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import os
import pstats
import subprocess
import sys
import time


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("approach", nargs="?", default="netns_kit")
    ap.add_argument("n", nargs="?", type=int, default=200)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        profile_here(args.approach, args.n, args.top)
        return 0
    if os.environ.get("NETNS_KIT_SANDBOXED") != "1":
        print("run it through scripts/sandbox.sh (see the module docstring)", file=sys.stderr)
        return 2
    cmd = ["unshare", "--net", "--", sys.executable, "-m", "benchmarks.profile", args.approach, str(args.n),
           "--top", str(args.top), "--inside"]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
