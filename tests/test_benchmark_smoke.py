"""The benchmark must keep running: a tiny quick run of every approach but the shell recipe and Mininet.

No timing is asserted; only that every run completed and left nothing behind. netavark and the
CNI plugins are installed by scripts/setup.sh: if they are missing, benchmarks.run refuses to run
and this test fails (it is not skipped).
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

APPROACHES = ["netns_kit", "netns_kit_network", "raw_floor", "raw_floor_nolinklocal", "floor", "floor_nolinklocal",
              "netavark", "cni"]


def test_quick_benchmark_completes_and_cleans_up(tmp_path: Path) -> None:
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    raw = tmp_path / "runs.json"
    md = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "-n", "3", "--extras-n", "3",
         "--approaches", *APPROACHES, "--markdown", str(md), "--json", str(raw),
         "--settle", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(raw.read_text())
    runs = data["runs"]
    assert {r["approach"] for r in runs} == set(APPROACHES)
    assert [r["approach"] for r in data["teardown_tenths"]] == ["netns_kit_network"]
    for r in [*runs, *data["teardown_tenths"], *data["extras"].values()]:
        assert r["n"] == 3
        assert r["leftovers"] == [], r
    for r in runs:
        if r["approach"] in ("netns_kit", "netns_kit_network", "raw_floor", "raw_floor_nolinklocal"):
            assert r["setup_first_tenth_s"] > 0 and r["setup_last_tenth_s"] > 0, r
        if r["approach"].startswith("raw_floor"):
            assert {"netns", "veth", "link up", "addr", "route", "nft"} <= set(r["steps_us"]), r
    assert data["teardown_tenths"][0]["teardown_first_tenth_s"] > 0
    assert {"netns_kit_rollback", "netns_kit_bulk"} <= set(data["extras"])
    text = md.read_text()
    assert "| 3 | netns_kit |" in text
    assert "| 3 | netavark 1.4 (podman) |" in text and "| 3 | CNI plugins (containerd-style) |" in text
    assert "skipped" not in text
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert after == before


@pytest.mark.parametrize("approach", ["netns_kit", "netns_kit_network"])
def test_profile_steps_split_kernel_requests_from_python(approach: str) -> None:
    """``benchmarks.profile APPROACH N --steps`` reports each kind of kernel request and the rest,
    over all endpoints and for the first and the last tenth (what docs/performance.md quotes)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.profile", approach, "20", "--steps"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"{approach} setup, N=20:" in out and f"{approach} teardown, N=20:" in out
    assert "namespace: unshare, mount, socket, lo up" in out and "netlink: create veth link" in out
    assert "nft: publish port" in out and "everything else (netns_kit Python" in out
    assert "many/few" in out
    if approach == "netns_kit_network":  # its teardown runs in removal batches of tenths
        assert out.count("many/few") == 2 and "netlink: delete links" in out
