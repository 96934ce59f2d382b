"""The benchmark must keep running: a tiny quick run of netns_kit and the tuned floor.

No timing is asserted; only that every run completed and left nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark builds namespaces (needs root)")


def test_quick_benchmark_completes_and_cleans_up(tmp_path: Path) -> None:
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    raw = tmp_path / "runs.json"
    md = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "-n", "3", "--extras-n", "3",
         "--approaches", "netns_kit", "floor", "floor_nolinklocal", "--markdown", str(md), "--json", str(raw),
         "--settle", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(raw.read_text())
    runs = data["runs"]
    assert {r["approach"] for r in runs} == {"netns_kit", "floor", "floor_nolinklocal"}
    for r in [*runs, *data["extras"].values()]:
        assert r["n"] == 3
        assert r["leftovers"] == [], r
    assert {"netns_kit_rollback", "netns_kit_bulk"} <= set(data["extras"])
    assert "| 3 | netns_kit |" in md.read_text()
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert after == before
