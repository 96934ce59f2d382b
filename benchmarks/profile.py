"""Where netns_kit's time goes: cProfile of one approach, or time per kernel request kind.

    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.profile [APPROACH] [N] [--top K]
    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.profile netns_kit 200 --steps
    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.profile netns_kit_network 1000 --steps --cpu

``--steps`` (``netns_kit`` and ``netns_kit_network``) times every rtnetlink request by its step
name, the namespace creation (unshare + bind mount + the socket opened inside + ``lo`` up) and the
nft batches, so the split between the kernel's work and the library's own Python shows without a
profiler's overhead: over all endpoints, and for a tenth of the endpoints while few are there
("few") and while ~N are there ("many"), so growth with N shows step by step. ``--cpu`` counts
the thread's CPU time instead of wall time (other processes on a shared machine then do not
look like growth). Runs in a fresh network namespace of its own (``unshare --net``), like
benchmarks.run.
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


class _Marking(list[float]):
    """An approach's list of per-endpoint setup times that moves the step clock's bucket on to the
    next endpoint whenever one is appended (both netns_kit approaches append after each endpoint).
    ``clock``: the clock of the steps (with ``--cpu`` the thread's CPU time): ``spent`` gets each
    endpoint's duration on that clock."""

    def __init__(self, bucket: list[int], clock: Callable[[], float]) -> None:
        super().__init__()
        self.bucket = bucket
        self.clock = clock
        self.last = clock()
        self.spent: list[float] = []

    def append(self, value: float) -> None:
        now = self.clock()
        self.spent.append(now - self.last)
        super().append(value)
        self.bucket[0] = len(self)
        self.last = self.clock()


def steps_here(name: str, n: int, *, cpu: bool = False) -> None:
    """Wall time of every kernel request by kind and the rest (netns_kit's own Python, its journal
    and state files), per endpoint over all endpoints and over the first and the last tenth.

    Setup: the tenths are the first and last endpoints built. Teardown (the Docker-shaped path
    only, whose removal batches run in tenths here): the batch removing the first tenth while the
    network holds all N, and the one removing the last tenth while it holds only those.

    ``cpu``: every figure is the calling thread's CPU time (``time.thread_time``: user and system
    time, the kernel's work on behalf of the requests included) instead of wall time, so that
    other processes taking the CPUs on a shared machine do not show up as growth.
    """
    clock = time.thread_time if cpu else time.perf_counter
    from netns_kit import _netlink, _nft, _sys

    mod = importlib.import_module(f"benchmarks.approach_{name}")
    approach = mod.make(n, teardown_in_tenths=True) if name == "netns_kit_network" else mod.make(n)
    # spent[key][bucket]: bucket = the endpoint being built (setup), or the removal batch (teardown)
    spent: dict[str, collections.defaultdict[int, float]] = collections.defaultdict(
        lambda: collections.defaultdict(float))
    count: collections.Counter[str] = collections.Counter()
    top_level: set[str] = set()
    depth = [0]
    bucket = [0]

    def timed(label: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = ("  (within the above) " if depth[0] else "") + label(*args, **kwargs)
            if not depth[0]:
                top_level.add(key)
            depth[0] += 1
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key][bucket[0]] += clock() - t0
                count[key] += 1
                depth[0] -= 1
        return wrapper

    request = _netlink.RtnlSocket._request
    _netlink.RtnlSocket._request = timed(  # type: ignore[method-assign]
        lambda *a, **k: f"netlink: {k.get('step')}", request)
    create = _sys.create_named_netns
    _sys.create_named_netns = timed(lambda *a, **k: "namespace: unshare, mount, socket, lo up", create)
    _nft.NftContext.run_json = timed(  # type: ignore[method-assign]
        lambda *a, **k: f"nft: {k.get('step', 'batch')}", _nft.NftContext.run_json)
    batch_walls: list[float] = []
    remove = getattr(approach, "_remove", None)
    if remove is not None:  # the Docker-shaped path's teardown: one bucket per removal batch
        def in_batches(eps: list[Any]) -> float:
            t0 = clock()
            wall = float(remove(eps))
            batch_walls.append(clock() - t0)
            bucket[0] += 1
            return wall
        approach._remove = in_batches

    approach.prepare()
    k = max(1, n // 10)
    for phase in ("setup", "teardown"):
        spent.clear()
        count.clear()
        top_level.clear()
        bucket[0] = 0
        if phase == "setup":
            approach._setup_times = marking = _Marking(bucket, clock)
            times = marking.spent
        t0 = clock()
        getattr(approach, phase)()
        total = clock() - t0
        print(f"{name} {phase}, N={n}: {total * 1000 / n:.3f} ms per endpoint"
              + (" (CPU time of the thread)" if cpu else ""))
        # "few": a tenth of the endpoints while few are there; "many": a tenth while ~N are there
        if phase == "setup":
            firsts, lasts = range(0, k), range(n - k, n)
            walls = (sum(times[:k]), sum(times[-k:]))
            cols = "the first tenth of the endpoints built, the last tenth"
        elif len(batch_walls) == 3:
            firsts, lasts = range(2, 3), range(0, 1)
            walls = (batch_walls[2], batch_walls[0])
            cols = ("the removal batch of the last tenth (a tenth of the endpoints left), the batch of the "
                    "first tenth (all N there)")
        else:
            firsts = lasts = range(0)
            walls = (0.0, 0.0)
            cols = ""

        def tenths(first: float, last: float) -> str:
            return f" {first * 1000 / k:7.3f} {last * 1000 / k:7.3f} {last / first if first else 0:10.2f}"

        print(f"{'step':58} {'per ep':>6} {'ms/ep':>7}" + (f" {'few':>7} {'many':>7} {'many/few':>10}"
                                                            if cols else ""))
        inside = [0.0, 0.0, 0.0]
        for key, per in sorted(spent.items(), key=lambda kv: -sum(kv[1].values())):
            f = sum(per.get(b, 0.0) for b in firsts)
            la = sum(per.get(b, 0.0) for b in lasts)
            if key in top_level:
                inside[0] += sum(per.values())
                inside[1] += f
                inside[2] += la
            print(f"{key:58} {count[key] / n:6.1f} {sum(per.values()) * 1000 / n:7.3f}"
                  + (tenths(f, la) if cols else ""))
        rest = "everything else (netns_kit Python, journal, state files)"
        print(f"{rest:58} {'':6} {(total - inside[0]) * 1000 / n:7.3f}"
              + (tenths(walls[0] - inside[1], walls[1] - inside[2]) if cols else ""))
        if cols:
            print(f"{'total':58} {'':6} {total * 1000 / n:7.3f}" + tenths(*walls))
            print(f"(ms per endpoint: few / many = {cols})")
        print()
    approach.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("approach", nargs="?", default="netns_kit")
    ap.add_argument("n", nargs="?", type=int, default=200)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--steps", action="store_true",
                    help="time kernel requests by kind, first and last tenth (netns_kit, netns_kit_network)")
    ap.add_argument("--cpu", action="store_true", help="with --steps: the thread's CPU time instead of wall time")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        if args.steps:
            steps_here(args.approach, args.n, cpu=args.cpu)
        else:
            profile_here(args.approach, args.n, args.top)
        return 0
    if os.environ.get("NETNS_KIT_SANDBOXED") != "1":
        print("run it through scripts/sandbox.sh (see the module docstring)", file=sys.stderr)
        return 2
    cmd = ["unshare", "--net", "--", sys.executable, "-m", "benchmarks.profile", args.approach, str(args.n),
           "--top", str(args.top), "--inside"] + (["--steps"] if args.steps else []) + (["--cpu"] if args.cpu else [])
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
