"""Run one approach once, in the calling process's (fresh) network namespace; print one JSON line.

Usage (run.py starts it under ``unshare --net``): ``python -m benchmarks._worker APPROACH N``;
``--teardown-tenths`` passes ``teardown_in_tenths=True`` to the approach's ``make`` (only approaches
that take it: the flatness run of a removal-batch teardown).
Standard library only: it also runs under Debian's /usr/bin/python3 for Mininet.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

NETNS_DIR = "/run/netns"


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return [line.split(":", 2)[1].strip().split("@", 1)[0] for line in out.splitlines() if line.strip()]


def _nft_tables() -> list[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _children() -> list[int]:
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def leftovers(prefix: str, *, wait: float = 30.0) -> list[str]:
    """What the run left behind: named namespaces, interfaces, nft tables, child processes.

    Interfaces whose namespace was removed disappear when the kernel finishes destroying that
    namespace (asynchronously), so this polls for up to ``wait`` seconds before reporting them.
    """
    deadline = time.monotonic() + wait
    while True:
        left: list[str] = []
        with contextlib.suppress(FileNotFoundError):
            left += [f"netns {n}" for n in os.listdir(NETNS_DIR) if n.startswith(prefix)]
        left += [f"link {n}" for n in _links() if n != "lo"]
        left += [f"nft {t}" for t in _nft_tables()]
        left += [f"process {p}" for p in _children()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) - 1  # minus the descriptor listdir itself holds


def run(name: str, n: int, *, teardown_tenths: bool = False) -> dict[str, Any]:
    mod = importlib.import_module(f"benchmarks.approach_{name}")
    approach = mod.make(n, teardown_in_tenths=True) if teardown_tenths else mod.make(n)
    approach.prepare()
    t0 = time.perf_counter()
    approach.setup()
    t1 = time.perf_counter()
    fds = open_fds()
    approach.teardown()
    t2 = time.perf_counter()
    approach.cleanup()
    extra: dict[str, Any] = dict(getattr(approach, "extra", {}))
    return {
        "approach": name,
        "n": n,
        "setup_s": t1 - t0,
        "teardown_s": t2 - t1,
        "fds": fds,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "python": sys.executable,
        "note": approach.note,
        "leftovers": leftovers(approach.prefix),
        **extra,
    }


def main(argv: list[str]) -> int:
    tenths = "--teardown-tenths" in argv
    argv = [a for a in argv if a != "--teardown-tenths"]
    if len(argv) != 2:
        print("usage: python -m benchmarks._worker APPROACH N [--teardown-tenths]", file=sys.stderr)
        return 2
    result = run(argv[0], int(argv[1]), teardown_tenths=tenths)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
