"""Run every approach side by side and write the table and the plot.

    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.run            # N = 50, 200, 1000
    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.run --quick    # N = 20, one run, smoke test

netavark and the CNI plugins start processes for every endpoint (~0.1-0.3 s each), so they run
fewer times (``--slow-runs``, default 3) and only up to ``--slow-max-n`` endpoints (default 200);
the table says where they were skipped. netns_kit's two paths and the raw floors, which take
seconds, run at least ``--core-runs`` times (default 9) at N <= 200. For netns_kit, its
Docker-shaped path and the raw floors the first and last tenth of endpoints are also timed on
their own (flatness), and the raw floors report the time of each kind of step.

Each run of each approach happens in a fresh network namespace of its own (a worker process
started under ``unshare --net``), which is checked for leftovers at the end. Runs of the
approaches are interleaved (the order rotates) so that drift on the machine hits all of them.
netns_kit's two paths and the raw floors run back to back in each round (the block first, its
order rotating), and the targets that compare them within 1.5x are the median of the ratios of
runs of the same round: on a shared machine whose speed drifts over minutes, runs seconds apart
compare like with like. The ratio of the medians is shown beside it.
Figures: setup and teardown time per endpoint (median over runs), peak RSS of the worker
process, its open file descriptors at the end of setup, and netns_kit's time divided by each
other approach's time from the same invocation. Output: a table on stdout, a markdown file
and a PNG plot (both under docs/ by default).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN_PYTHON = "/usr/bin/python3"

LABELS = {
    "netns_kit": "netns_kit",
    "netns_kit_network": "netns_kit Network + Endpoint",
    "raw_floor": "raw floor",
    "raw_floor_nolinklocal": "raw floor, no link-local",
    "floor": "tuned floor (pyroute2)",
    "floor_nolinklocal": "tuned floor (pyroute2), no link-local",
    "pyroute2": "pyroute2 idiomatic",
    "shell": "shell recipe",
    "mininet": "Mininet (no ports)",
    "netns_kit_bulk": "netns_kit bulk (one call)",
    "netavark": "netavark 1.4 (podman)",
    "cni": "CNI plugins (containerd-style)",
}
MAIN = ["netns_kit", "netns_kit_network", "raw_floor", "raw_floor_nolinklocal", "floor", "floor_nolinklocal",
        "pyroute2", "shell", "mininet", "netavark", "cni"]
EXTRAS = ["netns_kit_bulk", "netns_kit_rollback"]
#: one process (or several) per endpoint: fewer runs, and not at large N
SLOW = {"netavark", "cni"}
#: approaches that report per-endpoint times of their first and last tenth
FLAT = ["netns_kit", "netns_kit_network", "raw_floor", "raw_floor_nolinklocal"]
#: compared with each other within tight bounds: run back to back in each round, compared per round
CORE = ["netns_kit", "netns_kit_network", "raw_floor", "raw_floor_nolinklocal"]
#: approaches whose teardown is one removal batch: one more run per N removes them in tenths
TENTHS_RUN = ["netns_kit_network"]


def interpreter(name: str) -> str | None:
    if name != "mininet":
        return sys.executable
    ok = os.path.exists(DEBIAN_PYTHON) and subprocess.run(
        [DEBIAN_PYTHON, "-c", "import mininet.net"], capture_output=True).returncode == 0
    return DEBIAN_PYTHON if ok and shutil.which("brctl") else None


def _cpu_idle_fraction(interval: float = 0.2) -> float:
    """Share of all CPUs' time spent idle over ``interval`` seconds (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(interval)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def settle_down(minimum: float, *, limit: float = 30.0, idle: float = 0.85) -> float:
    """Wait ``minimum`` seconds, then until the CPUs are mostly idle: the kernel destroys a run's
    namespaces in the background after it ended, and the next run should not pay for that.
    Gives up after ``limit`` seconds (a machine busy with other work). Returns the time waited."""
    start = time.monotonic()
    time.sleep(minimum)
    while time.monotonic() - start < limit and _cpu_idle_fraction() < idle:
        pass
    return time.monotonic() - start


def unavailable(name: str) -> str | None:
    """Why an approach that needs outside programs cannot run here (None: it can)."""
    if name == "netavark":
        from benchmarks.approach_netavark import available
        return available()
    if name == "cni":
        from benchmarks.approach_cni import available as cni_available
        return cni_available()
    return None


def run_worker(name: str, n: int, python: str, timeout: float, *, tenths: bool = False) -> dict[str, Any]:
    cmd = ["unshare", "--net", "--", python, "-m", "benchmarks._worker", name, str(n)]
    if tenths:
        cmd.append("--teardown-tenths")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{name} N={n} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


@dataclass
class Cell:
    """All runs of one approach at one N."""

    name: str
    n: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    def per_ep(self, key: str) -> float:
        """Median over runs of ``key`` (seconds) per endpoint, in milliseconds."""
        return float(statistics.median(float(r[key]) for r in self.runs)) * 1000 / self.n

    def med(self, key: str) -> float | None:
        """Median over the runs that report ``key`` (None if none does)."""
        vals = [float(r[key]) for r in self.runs if r.get(key) is not None]
        return float(statistics.median(vals)) if vals else None

    @property
    def rss_mib(self) -> float:
        return max(float(r["peak_rss_kib"]) for r in self.runs) / 1024

    @property
    def fds(self) -> int:
        return max(int(r["fds"]) for r in self.runs)

    @property
    def leftovers(self) -> list[str]:
        return sorted({x for r in self.runs for x in r["leftovers"]})

    @property
    def note(self) -> str:
        return str(self.runs[-1].get("note", ""))


def fmt_ratio(ours: float, other: float) -> str:
    return f"{ours / other:.2f}" if other > 0 else "-"


def table(cells: dict[tuple[str, int], Cell], ns: list[int], names: list[str],
          skipped: dict[tuple[str, int], str] | None = None) -> list[str]:
    out = ["| N | approach | setup ms/ep | teardown ms/ep | peak RSS MiB | fds after setup | "
           "netns_kit/it setup | netns_kit/it teardown | left behind |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for n in ns:
        nk = cells.get(("netns_kit", n))
        for name in names:
            c = cells.get((name, n))
            why = (skipped or {}).get((name, n))
            if why:
                out.append(f"| {n} | {LABELS.get(name, name)} | - | - | - | - | - | - | skipped: {why} |")
            if c is None or not c.runs:
                continue
            s, t = c.per_ep("setup_s"), c.per_ep("teardown_s")
            rs = fmt_ratio(nk.per_ep("setup_s"), s) if nk and name != "netns_kit" else ""
            rt = fmt_ratio(nk.per_ep("teardown_s"), t) if nk and name != "netns_kit" else ""
            left = ", ".join(c.leftovers) or "nothing"
            out.append(f"| {n} | {LABELS.get(name, name)} | {s:.2f} | {t:.2f} | {c.rss_mib:.1f} | {c.fds} | "
                       f"{rs} | {rt} | {left} |")
    return out


def targets(cells: dict[tuple[str, int], Cell], ns: list[int]) -> list[str]:
    ref = 200 if 200 in ns else ns[-1]
    lo, hi = ns[0], ns[-1]
    rows = ["| target | measured | met |", "|---|---:|---|"]

    def get(name: str, n: int, key: str) -> float | None:
        c = cells.get((name, n))
        return c.per_ep(key) if c and c.runs else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    def row(label: str, value: float | None, bound: tuple[str, float] | None, unit: str = "x") -> None:
        shown = f"{value:.2f}{unit}" if value is not None else "n/a"
        if bound is None or value is None:
            met = "n/a"
        else:
            ok = value <= bound[1] if bound[0] == "<=" else value >= bound[1]
            met = "yes" if ok else "NO"
        rows.append(f"| {label} | {shown} | {met} |")

    def paired(a: str, b: str, n: int, key: str = "setup_s") -> float | None:
        """Median over rounds of a's time / b's time in the same round (None without a common round)."""
        ca, cb = cells.get((a, n)), cells.get((b, n))
        if not ca or not cb:
            return None
        of_b = {r.get("round"): float(r[key]) for r in cb.runs if r.get("round") is not None}
        pairs = [float(r[key]) / of_b[r["round"]] for r in ca.runs if r.get("round") in of_b and of_b[r["round"]] > 0]
        return float(statistics.median(pairs)) if pairs else None

    nk_s, nk_t = get("netns_kit", ref, "setup_s"), get("netns_kit", ref, "teardown_s")
    nw_s = get("netns_kit_network", ref, "setup_s")
    rn_s, rn_t = get("raw_floor_nolinklocal", ref, "setup_s"), get("raw_floor_nolinklocal", ref, "teardown_s")
    row(f"setup, netns_kit (primitives) / raw floor without link-local at N={ref}, median of per-round ratios "
        "(<= 1.5)", paired("netns_kit", "raw_floor_nolinklocal", ref), ("<=", 1.5))
    row(f"(context) the same as a ratio of the medians at N={ref}", ratio(nk_s, rn_s), None)
    row(f"(context) setup, netns_kit / raw floor with link-local at N={ref}",
        ratio(nk_s, get("raw_floor", ref, "setup_s")), None)
    row(f"(context) teardown, netns_kit / raw floor without link-local at N={ref}", ratio(nk_t, rn_t), None)
    row(f"setup, netns_kit Network + Endpoint / netns_kit primitives at N={ref}, median of per-round ratios "
        "(<= 1.2)", paired("netns_kit_network", "netns_kit", ref), ("<=", 1.2))
    row(f"(context) the same as a ratio of the medians at N={ref}", ratio(nw_s, nk_s), None)
    for other in ("netavark", "cni"):
        row(f"setup, {LABELS[other]} / netns_kit Network + Endpoint at N={ref} (>= 20)",
            ratio(get(other, ref, "setup_s"), nw_s), (">=", 20))
    for other in ("netavark", "cni"):
        row(f"(context) teardown, {LABELS[other]} / netns_kit Network + Endpoint at N={ref}",
            ratio(get(other, ref, "teardown_s"), get("netns_kit_network", ref, "teardown_s")), None)
    row(f"setup, Mininet / netns_kit at N={ref} (>= 5)", ratio(get("mininet", ref, "setup_s"), nk_s), (">=", 5))
    row(f"setup, shell recipe / netns_kit at N={ref} (>= 6)", ratio(get("shell", ref, "setup_s"), nk_s), (">=", 6))
    row(f"(context; was the floor target <= 1.25) setup, netns_kit / tuned floor (pyroute2) at N={ref}",
        ratio(nk_s, get("floor", ref, "setup_s")), None)
    row(f"(context) setup, netns_kit / tuned floor (pyroute2) without link-local at N={ref}",
        ratio(nk_s, get("floor_nolinklocal", ref, "setup_s")), None)
    row(f"(context; was the floor target <= 1.5) teardown, netns_kit / tuned floor (pyroute2) at N={ref}",
        ratio(nk_t, get("floor", ref, "teardown_s")), None)
    a, b = get("netns_kit", lo, "setup_s"), get("netns_kit", hi, "setup_s")
    row(f"linear: netns_kit setup per endpoint, N={hi} / N={lo} (<= 1.5)", ratio(b, a) if hi != lo else None,
        ("<=", 1.5))
    for other in ("netns_kit_network", "raw_floor", "raw_floor_nolinklocal", "floor", "floor_nolinklocal"):
        a, b = get(other, lo, "setup_s"), get(other, hi, "setup_s")
        if a and b and hi != lo:
            row(f"(context) linear: {LABELS[other]} setup per endpoint, N={hi} / N={lo}", b / a, None)
    nw = cells.get(("netns_kit_network", hi))
    tn = cells.get(("netns_kit_network_tenths", hi))
    if nw and nw.runs:
        first, last = nw.med("setup_first_tenth_s"), nw.med("setup_last_tenth_s")
        row(f"flat: netns_kit Network + Endpoint setup at N={hi}, last tenth / first tenth built (<= 1.3)",
            ratio(last, first), ("<=", 1.3))
    if tn and tn.runs:
        first, last = tn.med("teardown_first_tenth_s"), tn.med("teardown_last_tenth_s")
        row(f"flat: netns_kit Network + Endpoint removal batch at N={hi}, per endpoint, first tenth removed "
            "(network full) / last tenth removed (network nearly empty) (<= 1.3)", ratio(first, last), ("<=", 1.3))
    c_lo, c_hi = cells.get(("netns_kit", lo)), cells.get(("netns_kit", hi))
    if c_lo and c_hi and c_lo.runs and c_hi.runs:
        rows.append(f"| fds: netns_kit at N={lo} and N={hi} (bounded) | {c_lo.fds} / {c_hi.fds} | "
                    f"{'yes' if c_hi.fds <= c_lo.fds + 8 else 'NO'} |")
        if hi != lo:
            per = (c_hi.rss_mib - c_lo.rss_mib) * 1024 / (hi - lo)
            rows.append(f"| memory per endpoint, netns_kit (peak RSS slope N={lo}..{hi}) | {per:.1f} KiB | - |")
    return rows


def flatness(cells: dict[tuple[str, int], Cell], ns: list[int]) -> list[str]:
    """First and last tenth of endpoints, per endpoint (medians over runs)."""
    out = ["| N | approach | setup first tenth ms/ep | setup last tenth ms/ep | last/first | "
           "teardown first tenth ms/ep | teardown last tenth ms/ep | first/last | teardown timed as |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---|"]

    def ms(v: float | None) -> str:
        return f"{v * 1000:.3f}" if v is not None else "-"

    def q(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a and b else "-"

    for n in ns:
        for name in FLAT:
            c = cells.get((name, n))
            if c is None or not c.runs:
                continue
            sf, sl = c.med("setup_first_tenth_s"), c.med("setup_last_tenth_s")
            src = cells.get((f"{name}_tenths", n)) if name in TENTHS_RUN else c
            tf = src.med("teardown_first_tenth_s") if src and src.runs else None
            tl = src.med("teardown_last_tenth_s") if src and src.runs else None
            how = str(src.runs[-1].get("teardown_tenths_how", "")) if src and src.runs else ""
            if name in TENTHS_RUN and src and src.runs:
                how += f" (a separate run: {len(src.runs)} at this N)"
            out.append(f"| {n} | {LABELS.get(name, name)} | {ms(sf)} | {ms(sl)} | {q(sl, sf)} | {ms(tf)} | {ms(tl)} | "
                       f"{q(tf, tl)} | {how or '-'} |")
    return out


def raw_steps(cells: dict[tuple[str, int], Cell], ns: list[int]) -> list[str]:
    """The raw floors' time per kind of step (µs per endpoint, medians over runs)."""
    out = ["| N | variant | step | all µs/ep | first tenth µs/ep | last tenth µs/ep | last/first |",
           "|---:|---|---|---:|---:|---:|---:|"]
    for n in ns:
        for name in ("raw_floor", "raw_floor_nolinklocal"):
            c = cells.get((name, n))
            if c is None or not c.runs or "steps_us" not in c.runs[0]:
                continue
            for step in c.runs[0]["steps_us"]:
                vals = [r["steps_us"][step] for r in c.runs]
                a, f, la = (float(statistics.median(v[j] for v in vals)) for j in range(3))
                out.append(f"| {n} | {LABELS[name]} | {step} | {a:.1f} | {f:.1f} | {la:.1f} | "
                           f"{la / f if f else 0:.2f} |")
    return out


def plot(cells: dict[tuple[str, int], Cell], ns: list[int], names: list[str], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    # more approaches than the default cycle's 10 colours: its 10, then darker ones
    colors = [*(plt.get_cmap("tab10")(k) for k in range(10)), "black", "darkred", "darkgreen", "navy", "saddlebrown"]
    for ax, key, title in ((axes[0], "setup_s", "setup"), (axes[1], "teardown_s", "teardown")):
        for j, name in enumerate(names):
            pts = [(n, cells[(name, n)].per_ep(key)) for n in ns if (name, n) in cells and cells[(name, n)].runs]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="os^Dv"[j % 5], color=colors[j % len(colors)],
                        label=LABELS.get(name, name))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel("endpoints (N)")
        ax.set_ylabel("ms per endpoint (median)")
        ax.set_title(f"{title} per endpoint")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("netns + veth + bridge port + address + default route + published port, per endpoint")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def extras_lines(extra: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    rb = extra.get("netns_kit_rollback")
    if rb:
        left = ", ".join(rb["leftovers"]) or "nothing"
        out.append(f"- Rollback: a Transaction building {rb['n']} endpoints that fails at the end: build "
                   f"{rb['build_s'] * 1000 / rb['n']:.2f} ms/ep, rollback {rb['rollback_s'] * 1000:.0f} ms in all "
                   f"({rb['rollback_s'] * 1000 / rb['n']:.2f} ms/ep); undo steps run: {rb['undone']}; "
                   f"left behind: {left}.")
    bk = extra.get("netns_kit_bulk")
    if bk:
        left = ", ".join(bk["leftovers"]) or "nothing"
        out.append(f"- Bulk: {bk['n']} endpoints in one call: setup {bk['setup_s'] * 1000 / bk['n']:.2f} ms/ep, "
                   f"teardown {bk['teardown_s'] * 1000 / bk['n']:.2f} ms/ep; left behind: {left}.")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N=20, one run, no plot unless --plot is given")
    ap.add_argument("-n", "--sizes", type=int, nargs="+", help="endpoint counts (default 50 200 1000)")
    ap.add_argument("--runs", type=int, help="runs per approach and N (default 5; 3 at N>=1000)")
    ap.add_argument("--approaches", nargs="+", choices=MAIN, help="default: all (Mininet if installed)")
    ap.add_argument("--core-runs", type=int, default=9,
                    help="at least this many runs of netns_kit's paths and the raw floors at N<=200 (default 9; "
                         "they take seconds, and the targets that compare them are tight)")
    ap.add_argument("--slow-runs", type=int, default=3,
                    help="at most this many runs of netavark and cni per N (default 3)")
    ap.add_argument("--slow-max-n", type=int, default=200,
                    help="run netavark and cni only up to this N (default 200; they take ~0.3 s per endpoint)")
    ap.add_argument("--no-extras", action="store_true", help="skip the rollback and bulk measurements")
    ap.add_argument("--extras-n", type=int, default=200, help="N for rollback and bulk (default 200)")
    ap.add_argument("--markdown", default=None, help="markdown output (default docs/benchmark-results.md)")
    ap.add_argument("--plot", default=None, help="PNG output (default docs/benchmark.png)")
    ap.add_argument("--json", default=None, help="also write every raw run as JSON here")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds to wait between runs, per 200 endpoints (default 0.5), after which the "
                         "next run also waits (at most 30 s) for the CPUs to be 85%% idle; 0: no waiting")
    args = ap.parse_args(argv)

    if os.environ.get("NETNS_KIT_SANDBOXED") != "1":
        print("benchmarks.run must run inside the throwaway namespace: "
              "bash scripts/sandbox.sh .venv/bin/python -m benchmarks.run", file=sys.stderr)
        return 2
    sizes = args.sizes or ([20] if args.quick else [50, 200, 1000])
    sizes = sorted(set(sizes))
    extras_n = min(args.extras_n, sizes[-1]) if args.quick else args.extras_n
    settle = args.settle if args.settle is not None else (0.1 if args.quick else 0.5)
    names = list(args.approaches or MAIN)
    if "netns_kit" not in names:
        names.insert(0, "netns_kit")
    pythons: dict[str, str] = {}
    for name in names:
        py = interpreter(name)
        if py is None:
            print(f"skipping {name}: Debian's python3 with mininet and brctl are needed "
                  "(bash scripts/setup.sh installs them)", file=sys.stderr)
        else:
            pythons[name] = py
    names = [n for n in names if n in pythons]
    missing = [f"{name}: {why}" for name in names if (why := unavailable(name))]
    if missing:  # never skipped quietly: setup.sh installs them
        print("cannot run:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2

    cells: dict[tuple[str, int], Cell] = {}
    skipped: dict[tuple[str, int], str] = {}
    started = time.monotonic()
    for n in sizes:
        runs = args.runs or (1 if args.quick else (3 if n >= 1000 else 5))
        for name in names:
            if name in SLOW and n > args.slow_max_n:
                skipped[(name, n)] = f"one process per endpoint, run only up to N={args.slow_max_n} (--slow-max-n)"
        core_runs = runs if args.quick or args.runs or n > 200 else max(runs, args.core_runs)
        for rep in range(max(runs, core_runs)):
            core = [x for x in names if x in CORE]
            rest = [x for x in names if x not in CORE]
            order = (core[rep % len(core):] + core[:rep % len(core)] if core else []) + \
                (rest[rep % len(rest):] + rest[:rep % len(rest)] if rest else [])
            for name in order:
                if (name, n) in skipped or (name in SLOW and rep >= args.slow_runs) or \
                        (rep >= runs and name not in CORE):
                    continue
                res = run_worker(name, n, pythons[name], timeout=600 + 0.5 * n)
                res["round"] = rep
                cells.setdefault((name, n), Cell(name, n)).runs.append(res)
                of = core_runs if name in CORE else runs
                print(f"  {name:>10} N={n:<5} run {rep + 1}/{of}: setup {res['setup_s'] * 1000 / n:7.2f} ms/ep, "
                      f"teardown {res['teardown_s'] * 1000 / n:6.2f} ms/ep", file=sys.stderr, flush=True)
                # let the kernel finish destroying this run's namespaces (it does so asynchronously)
                # before the next approach starts
                settle_down(settle * max(1.0, n / 200) if settle else 0.0, limit=30.0 if settle else 0.0)
        # the removal batch once more, in three batches (first tenth, middle, last tenth): up to three
        # runs, so that its flatness is a median too
        for rep in range(min(runs, 3)):
            for name in TENTHS_RUN:
                if name in names and n >= 2:
                    res = run_worker(name, n, pythons[name], timeout=600 + 0.5 * n, tenths=True)
                    cells.setdefault((f"{name}_tenths", n), Cell(f"{name}_tenths", n)).runs.append(res)
                    first, last = res["teardown_first_tenth_s"] * 1000, res["teardown_last_tenth_s"] * 1000
                    print(f"  {name:>10} N={n:<5} teardown in tenths, run {rep + 1}: first {first:6.2f}, "
                          f"last {last:6.2f} ms/ep", file=sys.stderr, flush=True)
                    settle_down(settle * max(1.0, n / 200) if settle else 0.0, limit=30.0 if settle else 0.0)
    extra: dict[str, dict[str, Any]] = {}
    if not args.no_extras:
        for name in EXTRAS:
            try:
                extra[name] = run_worker(name, extras_n, sys.executable, timeout=600 + extras_n)
            except RuntimeError as exc:
                if "ModuleNotFoundError" not in str(exc) or name != "netns_kit_bulk":
                    raise
                print("no bulk API in this checkout: skipping the bulk measurement", file=sys.stderr)
            settle_down(settle, limit=30.0 if settle else 0.0)
    elapsed = time.monotonic() - started

    cmdline = " ".join(["bash scripts/sandbox.sh .venv/bin/python -m benchmarks.run",
                        *(argv if argv is not None else sys.argv[1:])])
    lines = [f"Command: `{cmdline}`",
             f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, kernel {os.uname().release}, "
             f"{os.cpu_count()} CPUs, {elapsed:.0f} s in all. Medians over "
             f"{', '.join(f'N={n}: {len(cells[(names[0], n)].runs)} runs' for n in sizes)}"
             + (f" (netns_kit's paths and the raw floors: {args.core_runs} at N <= 200)"
                if not (args.quick or args.runs) and any(n <= 200 for n in sizes) else "")
             + (f"; {' and '.join(LABELS[k] for k in names if k in SLOW)}: at most {args.slow_runs} runs, "
                f"N <= {args.slow_max_n}" if any(k in SLOW for k in names) else "") + ".", ""]
    lines += table(cells, sizes, names, skipped)
    lines += ["", "Targets (ratios from this run):", "", *targets(cells, sizes)]
    lines += ["", "Flatness: per endpoint, the first and the last tenth of the endpoints (medians over runs). "
              "Setup: the first tenth is built while there are few endpoints, the last while there are almost N. "
              "Teardown: the first tenth is removed while there are almost N, the last while there are few, so "
              "the two ratio columns (setup last/first, teardown first/last) both read as the cost with ~N "
              "endpoints over the cost with few.", "", *flatness(cells, sizes)]
    steps = raw_steps(cells, sizes)
    if len(steps) > 2:
        lines += ["", "Raw floor, time per kind of step (medians over runs of the per-endpoint means): "
                  "where the kernel itself gets slower as N grows.", "", *steps]
    notes = [f"- {LABELS.get(k, k)}: {next(c.note for (m, _), c in cells.items() if m == k and c.runs)}"
             for k in names if any(m == k and c.runs for (m, _), c in cells.items())]
    lines += ["", "Notes:", "", *notes]
    ex = extras_lines(extra)
    if ex:
        lines += ["", "Extras (netns_kit):", "", *ex]
    text = "\n".join(lines) + "\n"
    print(text)
    md = args.markdown or os.path.join(REPO, "docs", "benchmark-results.md")
    if md != "-":
        with open(md, "w", encoding="utf-8") as f:
            f.write("# Benchmark results (generated by benchmarks/run.py)\n\n" + text)
    plot_path = args.plot or (None if args.quick else os.path.join(REPO, "docs", "benchmark.png"))
    if plot_path and plot(cells, sizes, names, plot_path):
        print(f"plot: {plot_path}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"runs": [r for (m, _), c in cells.items() if not m.endswith("_tenths") for r in c.runs],
                       "teardown_tenths": [r for (m, _), c in cells.items() if m.endswith("_tenths") for r in c.runs],
                       "extras": extra}, f, indent=1)
    bad = [c for c in cells.values() if c.leftovers] + [e for e in extra.values() if e["leftovers"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
