"""Helpers for distributed-system tests: servers inside endpoints, bandwidth limits, delay/loss.

- :class:`Process`: a long-lived process (a server) inside a namespace. ``wait_for_port`` waits
  until it answers; :meth:`Process.stop` stops it (SIGTERM to its process group, then SIGKILL).
  Every process started through netns_kit is also stopped when netns_kit removes its namespace.
- :func:`wait_for_port`: poll a TCP port from inside a namespace until it accepts a connection.
- :class:`BandwidthLimit`: a ``tbf`` (or ``htb``) root qdisc on an interface, through rtnetlink
  (``tc qdisc add dev IF root tbf rate ...``). Undo: the qdisc is deleted.
- :class:`NetworkEmulation`: delay, jitter and loss with ``netem``, where the kernel has it; a
  clear :class:`~netns_kit.errors.UnsupportedError` where it does not (sch_netem missing).

Partitions between endpoints live in :mod:`netns_kit.chaos`.

Each object can be used explicitly (``create()``/``remove()``, or ``start()``/``stop()``), as a
context manager, or inside a :class:`~netns_kit.Transaction` (its undo is recorded).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any, Literal

from ._journal import EphemeralScope, intent
from .errors import StateError, ValidationError
from .model import format_rate as _fmt_rate
from .model import parse_rate, validate_ifname
from .namespace import Namespace, journal_ref

__all__ = [
    "BandwidthLimit",
    "EndpointLimit",
    "NetworkEmulation",
    "Process",
    "parse_rate",
    "wait_for_port",
]

TC_H_ROOT = 0xFFFFFFFF


# -- processes ------------------------------------------------------------------------------------


def wait_for_port(
    namespace: Namespace,
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    process: Process | None = None,
) -> float:
    """Wait until ``host:port`` accepts a TCP connection made from inside ``namespace``.

    Returns the seconds waited. Raises :class:`TimeoutError` after ``timeout`` seconds, or
    :class:`~netns_kit.errors.StateError` at once if ``process`` exits first (with its output).
    Nothing is changed: it only connects.
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValidationError(f"port {port!r} must be an integer from 1 to 65535", obj=repr(port))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    start = time.monotonic()
    delay = 0.005
    while True:
        if process is not None and not process.running:
            raise StateError(f"process {process.argv[0]!r} exited with status {process.returncode} before "
                             f"port {port} answered; output: {process.output()[-500:]!r}",
                             obj=f"pid:{process.pid}", namespace=namespace.label, step="wait for port")
        with namespace.enter():
            sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect((host, port))
            return time.monotonic() - start
        except OSError:
            pass
        finally:
            sock.close()
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"port {host}:{port} in namespace {namespace.label!r} did not answer "
                               f"within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class Process:
    """A long-lived process (e.g. a server) running inside ``namespace`` (a Namespace or an Endpoint).

    ``argv`` is a list (no shell). Its stdout and stderr go to a temporary file read by
    :meth:`output`. It runs in a process group of its own, so :meth:`stop` also reaches the
    children it forks. Kernel: none (``setns`` of the calling thread around ``fork``/``exec``).
    Undo: :meth:`stop`; netns_kit also stops it when it removes the namespace.

    ::

        with Process(ns, ["python3", "-m", "http.server", "8000"]) as web:
            web.wait_for_port(8000)
            ...
    """

    def __init__(
        self,
        namespace: Namespace | Any,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stop_timeout: float = 3.0,
    ) -> None:
        if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValidationError("argv must be a non-empty list of str (no shell string)", obj=repr(argv))
        # An Endpoint (anything with .namespace and .popen) starts it itself, so that removing the
        # endpoint stops it even where the namespace outlives the endpoint (host, container mode).
        self._starter: Any = namespace if not isinstance(namespace, Namespace) else None
        if self._starter is not None:
            ns = getattr(namespace, "namespace", None)
            if not isinstance(ns, Namespace) or not callable(getattr(namespace, "popen", None)):
                raise ValidationError(f"{namespace!r} is neither a Namespace nor an endpoint", obj=repr(namespace))
            namespace = ns
        self.namespace = namespace
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise StateError("process was not started", obj=self.argv[0], namespace=self.namespace.label)
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def start(self) -> Process:
        """Start the process inside the namespace. Undo: :meth:`stop`."""
        if self._proc is not None:
            raise StateError("process was already started", obj=self.argv[0], namespace=self.namespace.label)
        self._log = tempfile.TemporaryFile(prefix="netns-kit-proc-")  # noqa: SIM115 - lives with the process
        with intent(f"stop process {self.argv[0]} in {self.namespace.label}", self.stop):
            starter = self._starter if self._starter is not None else self.namespace
            self._proc = starter.popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    def wait_for_port(self, port: int, *, host: str = "127.0.0.1", timeout: float = 10.0) -> Process:
        """Wait until ``host:port`` answers inside the namespace (see :func:`wait_for_port`)."""
        wait_for_port(self.namespace, port, host=host, timeout=timeout, process=self)
        return self

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self._log is None:
            return ""
        self._log.flush()
        return os.pread(self._log.fileno(), 1 << 20, 0).decode("utf-8", "replace")

    def stop(self) -> int | None:
        """Stop it (SIGTERM to its group, SIGKILL after ``stop_timeout``); its exit status. Idempotent."""
        from . import _procs

        if self._proc is None:
            return None
        return _procs.stop(self._proc, timeout=self.stop_timeout)

    def __enter__(self) -> Process:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "not started" if self._proc is None else ("running" if self.running else
                                                          f"exited {self.returncode}")
        cmd = " ".join(self.argv)
        cmd = cmd if len(cmd) <= 60 else cmd[:57] + "..."
        pid = f" pid {self._proc.pid}" if self._proc is not None else ""
        return f"Process({cmd!r} in {self.namespace.label!r},{pid} {state})"


# -- traffic control ------------------------------------------------------------------------------


class _RootQdisc(EphemeralScope):
    """Shared lifecycle: one root qdisc on (namespace, ifname), deleted by ifindex on remove.

    The change is journaled on disk: used as a context manager, :func:`~netns_kit.recover` deletes
    the qdisc if the process dies inside the block."""

    namespace: Namespace
    ifname: str
    _index: int | None
    _removed: bool

    def _init(self, namespace: Namespace | None, ifname: str) -> None:
        self.namespace = namespace if namespace is not None else Namespace.current()
        self.ifname = validate_ifname(ifname)
        self._index = None
        self._removed = False

    @property
    def created(self) -> bool:
        return self._index is not None and not self._removed

    kind: str

    def _install(self, sock: Any, index: int) -> None:
        raise NotImplementedError

    def create(self) -> _RootQdisc:
        if self.created:
            raise StateError("already created", obj=self.ifname, namespace=self.namespace.label)
        link = self.namespace.link(self.ifname)
        sock = self.namespace.rtnl()
        index = link.index
        with intent(f"delete root qdisc of {self.ifname} in {self.namespace.label}",
                    lambda: sock.delete_qdisc(index, obj=self.ifname),
                    durable=("qdisc", {"ns": journal_ref(self.namespace), "index": index, "ifname": self.ifname,
                                       "kind": self.kind})):
            self._install(sock, index)
        self._index = index
        self._removed = False
        return self

    def remove(self) -> None:
        """Delete the root qdisc (the interface returns to its default). Idempotent."""
        if self._index is None or self._removed:
            return
        self._removed = True
        if not self.namespace.exists:
            return
        sock = self.namespace.rtnl()
        current = sock.get_link(index=self._index)
        if current is not None and current.name == self.ifname:
            sock.delete_qdisc(self._index, obj=self.ifname)

    def __enter__(self) -> _RootQdisc:
        self._enter_ephemeral(self.create)  # ephemeral: recover() deletes the qdisc after a crash
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
        self._settle_ephemeral()


class BandwidthLimit(_RootQdisc):
    """Limit the rate of traffic *leaving* ``ifname`` in ``namespace`` (default: the current one).

    ``kind="tbf"`` (token bucket): ``tc qdisc add dev IF root tbf rate RATE burst B latency L``.
    ``kind="htb"``: a root ``htb`` with one default class at ``rate`` (``ceil`` = rate).
    To limit both directions of an endpoint, limit its ``eth0`` (uploads) and the host end of its
    veth (downloads). Undo: the root qdisc is deleted.
    """

    def __init__(
        self,
        ifname: str,
        rate: int | str,
        *,
        namespace: Namespace | None = None,
        kind: Literal["tbf", "htb"] = "tbf",
        burst: int | None = None,
        latency_ms: float = 50.0,
    ) -> None:
        self._init(namespace, ifname)
        self.rate = parse_rate(rate)
        if kind not in ("tbf", "htb"):
            raise ValidationError(f"bandwidth limit kind {kind!r} must be 'tbf' or 'htb'", obj=repr(kind))
        self.kind = kind
        if burst is not None and (not isinstance(burst, int) or isinstance(burst, bool) or burst < 1600):
            raise ValidationError(f"burst {burst!r} must be an integer of at least 1600 bytes", obj=repr(burst))
        self.burst = burst if burst is not None else max(self.rate // 8 // 100, 16000)
        if not isinstance(latency_ms, int | float) or not 0 < latency_ms <= 10_000:
            raise ValidationError(f"latency_ms {latency_ms!r} must be between 0 and 10000", obj=repr(latency_ms))
        self.latency_ms = float(latency_ms)

    def _install(self, sock: Any, index: int) -> None:
        rate = f"{self.rate}bit"
        if self.kind == "tbf":
            sock.add_qdisc(index, "tbf", options={"rate": rate, "burst": self.burst,
                                                  "latency": f"{int(self.latency_ms * 1000)}us"},
                           obj=self.ifname)
            return
        sock.add_qdisc(index, "htb", handle=0x10000, options={"default": 0x10}, obj=self.ifname)
        sock.add_tclass(index, "htb", handle=0x10010, parent=0x10000,
                        options={"rate": rate, "ceil": rate, "burst": self.burst, "cburst": self.burst},
                        obj=self.ifname)

    def create(self) -> BandwidthLimit:
        """Install the limit (one root qdisc; for htb also its class). Undo: :meth:`remove`."""
        super().create()
        return self

    def __enter__(self) -> BandwidthLimit:
        super().__enter__()
        return self

    def commands(self) -> list[str]:
        """The equivalent ``tc`` command lines (for reading; netns_kit never runs them)."""
        pre = f"ip netns exec {self.namespace.label} " if self.namespace.name else ""
        rate = _fmt_rate(self.rate)
        if self.kind == "tbf":
            return [f"{pre}tc qdisc add dev {self.ifname} root tbf rate {rate} burst {self.burst} "
                    f"latency {self.latency_ms:g}ms"]
        return [f"{pre}tc qdisc add dev {self.ifname} root handle 1: htb default 10",
                f"{pre}tc class add dev {self.ifname} parent 1: classid 1:10 htb rate {rate} ceil {rate}"]

    def __repr__(self) -> str:
        return f"BandwidthLimit({self.ifname!r}, {_fmt_rate(self.rate)!r}, kind={self.kind!r})"


class EndpointLimit:
    """Limit an endpoint's link in both directions: its own interface (what it sends) and the host
    end of its veth (what it receives). ``endpoint``: an :class:`~netns_kit.Endpoint` (its first
    network) or a :class:`~netns_kit.Connection`. Rates may differ: ``upload`` and ``download``.

    Kernel: two root qdiscs (see :class:`BandwidthLimit`). Undo: both are deleted.
    """

    def __init__(self, endpoint: object, rate: int | str | None = None, *, upload: int | str | None = None,
                 download: int | str | None = None, kind: Literal["tbf", "htb"] = "tbf") -> None:
        conns = getattr(endpoint, "connections", None)
        conn = conns[0] if isinstance(conns, list) and conns else endpoint
        ns, ifname = getattr(conn, "namespace", None), getattr(conn, "ifname", None)
        host_if, net = getattr(conn, "host_ifname", None), getattr(conn, "network", None)
        host = getattr(net, "host", None)
        if not (isinstance(ns, Namespace) and isinstance(host, Namespace) and isinstance(ifname, str)
                and isinstance(host_if, str)):
            raise ValidationError(f"{endpoint!r} is not an endpoint on a network (an Endpoint with a connection, "
                                  "or a Connection)", obj=repr(endpoint), step="limit endpoint")
        up, down = upload if upload is not None else rate, download if download is not None else rate
        if up is None and down is None:
            raise ValidationError("give a rate (or upload= and/or download=)", obj=repr(endpoint))
        self.limits: list[BandwidthLimit] = []
        if up is not None:
            self.limits.append(BandwidthLimit(ifname, up, namespace=ns, kind=kind))
        if down is not None:
            self.limits.append(BandwidthLimit(host_if, down, namespace=host, kind=kind))

    def create(self) -> EndpointLimit:
        """Install both limits (all or nothing). Undo: :meth:`remove`."""
        done: list[BandwidthLimit] = []
        try:
            for lim in self.limits:
                done.append(lim.create())
        except BaseException:
            for lim in reversed(done):
                lim.remove()
            raise
        return self

    def remove(self) -> None:
        """Delete both qdiscs. Idempotent."""
        for lim in reversed(self.limits):
            lim.remove()

    def commands(self) -> list[str]:
        return [c for lim in self.limits for c in lim.commands()]

    def __enter__(self) -> EndpointLimit:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"EndpointLimit({', '.join(map(repr, self.limits))})"


class NetworkEmulation(_RootQdisc):
    """Delay, jitter, loss, duplication, corruption, reordering and a rate limit on traffic leaving
    ``ifname``, with the ``netem`` qdisc (every option of ``tc qdisc add dev IF root netem``).

    - ``delay_ms``, ``jitter_ms`` (needs a delay): added latency and its random variation;
    - ``loss_percent``, ``duplicate_percent``, ``corrupt_percent``: share of packets dropped, sent
      twice, or sent with a flipped bit;
    - ``reorder_percent`` (needs a delay): share of packets sent at once, ahead of the delayed
      others (``reorder_gap``: every Nth packet; default 1 as in tc);
    - ``rate``: a rate limit (``"10mbit"``, see :func:`parse_rate`); ``limit``: the queue length
      in packets (tc's default 1000).

    Everything is validated when the object is made. Where the kernel has no netem (module
    sch_netem missing, as on some cloud kernels), :meth:`create` raises
    :class:`~netns_kit.errors.UnsupportedError` and changes nothing (:mod:`netns_kit.chaos`'s
    :class:`~netns_kit.chaos.PacketLoss` drops packets without it). Undo: the qdisc is deleted.
    """

    kind = "netem"

    def __init__(
        self,
        ifname: str,
        *,
        namespace: Namespace | None = None,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        loss_percent: float = 0.0,
        duplicate_percent: float = 0.0,
        corrupt_percent: float = 0.0,
        reorder_percent: float = 0.0,
        reorder_gap: int | None = None,
        rate: int | str | None = None,
        limit: int = 1000,
    ) -> None:
        self._init(namespace, ifname)
        for what, value, high in (("delay_ms", delay_ms, 60_000), ("jitter_ms", jitter_ms, 60_000),
                                  ("loss_percent", loss_percent, 100), ("duplicate_percent", duplicate_percent, 100),
                                  ("corrupt_percent", corrupt_percent, 100),
                                  ("reorder_percent", reorder_percent, 100)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
                raise ValidationError(f"{what} {value!r} must be a number from 0 to {high}", obj=repr(value))
        if jitter_ms and not delay_ms:
            raise ValidationError("jitter_ms needs a delay_ms", obj=repr(jitter_ms))
        if reorder_percent and not delay_ms:
            raise ValidationError("reorder_percent needs a delay_ms (packets are reordered around the delayed ones)",
                                  obj=repr(reorder_percent))
        if reorder_gap is not None and (not reorder_percent or not isinstance(reorder_gap, int)
                                        or isinstance(reorder_gap, bool) or reorder_gap < 1):
            raise ValidationError(f"reorder_gap {reorder_gap!r} must be a positive integer, with a reorder_percent",
                                  obj=repr(reorder_gap))
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1_000_000:
            raise ValidationError(f"limit {limit!r} must be a number of packets from 1 to 1000000", obj=repr(limit))
        self.delay_ms = float(delay_ms)
        self.jitter_ms = float(jitter_ms)
        self.loss_percent = float(loss_percent)
        self.duplicate_percent = float(duplicate_percent)
        self.corrupt_percent = float(corrupt_percent)
        self.reorder_percent = float(reorder_percent)
        self.reorder_gap = reorder_gap
        self.rate = parse_rate(rate) if rate is not None else None
        self.limit = limit

    def options(self) -> dict[str, Any]:
        """The netem parameters as sent (pyroute2's netem option names)."""
        opts: dict[str, Any] = {"delay": int(self.delay_ms * 1000), "jitter": int(self.jitter_ms * 1000),
                                "loss": self.loss_percent, "duplicate": self.duplicate_percent, "limit": self.limit}
        if self.reorder_percent:
            opts["prob_reorder"] = self.reorder_percent
            opts["gap"] = self.reorder_gap or 1
        if self.corrupt_percent:
            opts["prob_corrupt"] = self.corrupt_percent
        if self.rate is not None:
            opts["rate"] = f"{self.rate}bit"
        return opts

    def _install(self, sock: Any, index: int) -> None:
        sock.add_qdisc(index, "netem", options=self.options(), obj=self.ifname)

    def create(self) -> NetworkEmulation:
        """Install netem. UnsupportedError if the kernel lacks it. Undo: :meth:`remove`."""
        super().create()
        return self

    def __enter__(self) -> NetworkEmulation:
        super().__enter__()
        return self

    def commands(self) -> list[str]:
        """The equivalent ``tc`` command line (for reading; netns_kit never runs it)."""
        pre = f"ip netns exec {self.namespace.label} " if self.namespace.name else ""
        parts = [f"{pre}tc qdisc add dev {self.ifname} root netem"]
        if self.limit != 1000:
            parts.append(f"limit {self.limit}")
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms:g}ms")
        if self.jitter_ms:
            parts.append(f"{self.jitter_ms:g}ms")
        if self.loss_percent:
            parts.append(f"loss {self.loss_percent:g}%")
        if self.duplicate_percent:
            parts.append(f"duplicate {self.duplicate_percent:g}%")
        if self.corrupt_percent:
            parts.append(f"corrupt {self.corrupt_percent:g}%")
        if self.reorder_percent:
            parts.append(f"reorder {self.reorder_percent:g}%")
            if self.reorder_gap:
                parts.append(f"gap {self.reorder_gap}")
        if self.rate is not None:
            parts.append(f"rate {_fmt_rate(self.rate)}")
        return [" ".join(parts)]

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v:g}" for k, v in (
            ("delay_ms", self.delay_ms), ("jitter_ms", self.jitter_ms), ("loss_percent", self.loss_percent),
            ("duplicate_percent", self.duplicate_percent), ("corrupt_percent", self.corrupt_percent),
            ("reorder_percent", self.reorder_percent)) if v or k in ("delay_ms", "jitter_ms", "loss_percent"))
        rate = f", rate={_fmt_rate(self.rate)!r}" if self.rate is not None else ""
        return f"NetworkEmulation({self.ifname!r}, {opts}{rate})"
