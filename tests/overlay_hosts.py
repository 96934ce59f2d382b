"""Simulated hosts for the overlay tests: each its own network + mount namespace, running netns_kit
in a process of its own, joined by an underlay bridge.

A host is a holder process (``unshare --net --mount``: a fresh /run, so its own /run/netns and its
own state directory /run/netns-kit, and its own /etc overlay, so its own /etc/netns) that only
sleeps, and a worker: a Python process entered into the holder's namespaces (``nsenter``) that runs
the code the test sends it, one JSON line at a time (``enter(cm)`` there enters a context manager
and keeps it open). Killing the worker (SIGKILL) is the crash; the
host (its namespaces, interfaces, state directory) stays, and a new worker is the rebuilt netns_kit.

The underlay is a bridge ``ul0`` (192.168.77.254/24, also "the outside world") in the test's
throwaway host namespace; host N has ``eth0`` 192.168.77.N/24 on it, default route via .254.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
from typing import Any

UNDERLAY = "ul0"
UNDERLAY_NET = "192.168.77"
OUTSIDE = f"{UNDERLAY_NET}.254"
TESTS = str(pathlib.Path(__file__).resolve().parent)

HOLDER = """set -e
mount -t tmpfs -o mode=0755 nk-host-run /run
mkdir -p /run/netns /run/lock /run/.etc/upper /run/.etc/work
mount -t overlay nk-host-etc -o lowerdir=/etc,upperdir=/run/.etc/upper,workdir=/run/.etc/work /etc
ip link set lo up
echo ready
exec sleep infinity
"""

WORKER = """
import json, sys
sys.path.insert(0, TESTS_DIR)
g = {"__name__": "overlay_host"}
exec("import netns_kit as nk\\nfrom netns_kit import *\\nfrom traffic import serve, connect", g)
kept = []
def enter(cm):
    kept.append(cm)  # a context manager nobody holds is closed by the garbage collector
    return cm.__enter__()
g["enter"] = enter
out, sys.stdout = sys.stdout, sys.stderr
for line in sys.stdin:
    req = json.loads(line)
    try:
        exec(req["code"], g)
        res = eval(req["expr"], g) if req.get("expr") else None
        out.write(json.dumps({"ok": res}, default=str) + "\\n")
    except BaseException as exc:
        out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__}) + "\\n")
    out.flush()
""".replace("TESTS_DIR", repr(TESTS))


class RemoteError(Exception):
    """An exception raised by code a simulated host ran: ``kind`` is its class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


class SimHost:
    """One simulated host (see the module docstring). ``index`` N: underlay address 192.168.77.N."""

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.address = f"{UNDERLAY_NET}.{index}"
        self.holder: subprocess.Popen[str] | None = None
        self.worker: subprocess.Popen[str] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix=f"overlay-{name}-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def pid(self) -> int:
        assert self.holder is not None
        return self.holder.pid

    def start(self) -> SimHost:
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c",
                                        HOLDER], stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        assert line == "ready", f"host {self.name} did not start: {line!r}"
        port = f"ul-{self.name}"
        for argv in (["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", str(self.pid)],
                     ["ip", "link", "set", port, "master", UNDERLAY, "up"]):
            res = _run(argv)
            assert res.returncode == 0, res.stderr
        res = self.sh(f"ip addr add {self.address}/24 dev eth0 && ip link set eth0 up && "
                      f"ip route add default via {OUTSIDE}")
        assert res.returncode == 0, res.stderr
        self.start_worker()
        return self

    def start_worker(self) -> None:
        """A fresh netns_kit process on this host (after a crash: the rebuilt one)."""
        self.worker = subprocess.Popen(["nsenter", "-t", str(self.pid), "--net", "--mount", "--", sys.executable,
                                        "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=self._log, text=True, env={**os.environ})

    def call(self, code: str, expr: str | None = None) -> Any:
        """Run ``code`` in the host's netns_kit process; the value of ``expr`` (JSON), or RemoteError."""
        w = self.worker
        assert w is not None and w.stdin is not None and w.stdout is not None
        w.stdin.write(json.dumps({"code": code, "expr": expr}) + "\n")
        w.stdin.flush()
        line = w.stdout.readline()
        if not line:
            raise RuntimeError(f"host {self.name}'s netns_kit process died; log: {self._log.name}")
        reply = json.loads(line)
        if "error" in reply:
            raise RemoteError(reply["type"], reply["error"])
        return reply["ok"]

    def crash(self) -> None:
        """SIGKILL the host's netns_kit process (its kernel objects and state files stay)."""
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()
        self.worker = None

    def sh(self, cmd: str, ns: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``cmd`` in the host's namespaces (or in its named namespace ``ns``)."""
        if ns is not None:
            cmd = f"ip netns exec {ns} {cmd}"
        return subprocess.run(["nsenter", "-t", str(self.pid), "--net", "--mount", "--", "sh", "-c", cmd],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def ping(self, ns: str, ip: str, *, size: int = 56, count: int = 1, df: bool = False) -> bool:
        opts = f"-c {count} -W 2 -s {size}" + (" -M do" if df else "")
        return self.sh(f"ping -q {opts} {ip}", ns=ns).returncode == 0

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()
            self.worker = None
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder = None
        self._log.close()
        os.unlink(self._log.name)


def start_underlay() -> None:
    for argv in (["ip", "link", "add", UNDERLAY, "type", "bridge"], ["ip", "addr", "add", f"{OUTSIDE}/24", "dev",
                                                                      UNDERLAY], ["ip", "link", "set", UNDERLAY, "up"]):
        res = _run(argv)
        assert res.returncode == 0, res.stderr


def overlay_code(var: str, *, name: str, vni: int, subnet: str, shares: dict[SimHost, str], me: SimHost,
                 **options: object) -> str:
    """Code that creates ``me``'s side of an overlay (every host in ``shares`` is a member) into
    variable ``var`` of the host's process, inside its open transaction ``tx``."""
    peers = {h.address: s for h, s in shares.items() if h is not me}
    opts = "".join(f", {k}={v!r}" for k, v in options.items())
    return (f"{var} = nk.OverlayNetwork({name!r}, vni={vni}, subnet={subnet!r}, share={shares[me]!r}, "
            f"local={me.address!r}, peers={peers!r}{opts}).create()")
