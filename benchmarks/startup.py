"""What installing netns_kit costs a pytest run that does not use it, and what ``import`` costs.

Each case is a fresh interpreter, run ``-n`` times, alternating the cases so a busy machine slows
them alike; the table gives the median wall time and the median CPU time (user + system, which
other load on a shared machine disturbs less), each with its ratio to the anchor of its group
(``python -c pass``, and the same one-test pytest run with ``-p no:netns_kit``). No root needed.

    python -m benchmarks.startup -n 11
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

IMPORTS = {
    "python -c pass (anchor)": "pass",
    "import netns_kit.pytest_plugin": "import netns_kit.pytest_plugin",
    "import netns_kit": "import netns_kit",
    "import netns_kit; netns_kit.Network": "import netns_kit; netns_kit.Network",
    "import pyroute2": "import pyroute2",
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(argv: list[str], cwd: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, _cpu() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=11, help="runs per case (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        pytest_cases = {
            "pytest, one test, -p no:netns_kit (anchor)": ["-p", "no:netns_kit"],
            "pytest, one test, plugin loaded": ["-p", "netns_kit"],
        }
        cases: dict[str, list[str]] = {
            name: [sys.executable, "-c", code] for name, code in IMPORTS.items()}
        for name, extra in pytest_cases.items():
            cases[name] = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, "test_one.py"]
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.n):
            for name, argv in cases.items():
                times[name].append(_time(argv, tmp))
    groups = [list(IMPORTS), list(pytest_cases)]
    print(f"| case (median of {args.n}) | wall ms | ratio | CPU ms | ratio |")
    print("|---|---|---|---|---|")
    for group in groups:
        anchor = [statistics.median(t[i] for t in times[group[0]]) for i in (0, 1)]
        for name in group:
            wall, cpu = (statistics.median(t[i] for t in times[name]) for i in (0, 1))
            print(f"| {name} | {wall * 1000:.0f} | {wall / anchor[0]:.2f} | {cpu * 1000:.0f} | {cpu / anchor[1]:.2f} |")


if __name__ == "__main__":
    main()
