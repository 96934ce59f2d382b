"""Packet captures into pcapng files, without tcpdump: ``with Capture(endpoint, "eth0", "web.pcapng"):``.

A :class:`Capture` opens an ``AF_PACKET`` socket inside the endpoint's namespace (the calling
thread enters it only to create and bind the socket, which then stays there), bound to one
interface or to every interface of the namespace. The socket is bound before :meth:`Capture.start`
(and so ``__enter__``) returns: every frame sent or received from then on is queued in the kernel
and written. A background thread reads the frames, applies the filter (the language of
:mod:`netns_kit._packets`: ``"tcp port 80"``, ``"icmp or icmp6"``, ``"host 10.0.0.2"``) and
writes the ones that pass to the file through scapy's pcapng writer, with their kernel timestamps,
interface names and directions. :meth:`Capture.stop` (``__exit__``, also on an exception) writes
what is still queued, then flushes and closes the file: it is a valid pcapng file afterwards.

Kernel: one packet socket, nothing else: no interface, rule or setting changes, so there is
nothing to undo and nothing for ``recover()`` (the socket closes with the process).
:meth:`Capture.summary` (and the notebook view) lists the flows seen: protocol, addresses, ports,
packets, bytes.
"""

from __future__ import annotations

import contextlib
import errno
import html
import os
import select
import socket
import struct
import tempfile
import threading
import time
from types import TracebackType

from . import _pcapng
from ._packets import CaptureFilter, Flow, FlowKey, PacketInfo, decode, flow_key, flows_from
from .errors import StateError, ValidationError, error_for_errno
from .model import validate_ifname
from .namespace import Namespace

__all__ = ["Capture", "CaptureFilter", "Flow"]

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33  # lets root go past net.core.rmem_max
SO_TIMESTAMPNS = 35  # asm-generic value (x86, arm, arm64, riscv); its cmsg carries a struct timespec
_TIMESPEC = struct.Struct("@ll")
SNAPLEN = 262144  # the largest frame a veth hands over with GSO/GRO; nothing is cut


def _resolve(target: object, ifname: str | None, side: str) -> tuple[Namespace, str | None]:
    if side not in ("endpoint", "host"):
        raise ValidationError(f"side {side!r} must be 'endpoint' or 'host'", obj=repr(side), step="capture")
    if side == "host":
        if ifname is not None:
            raise ValidationError("side='host' picks the host end of the endpoint's veth: give no ifname",
                                  obj=ifname, step="capture")
        conns = getattr(target, "connections", None)
        conn = conns[0] if isinstance(conns, list) and conns else target
        net = getattr(conn, "network", None)
        host, host_if = getattr(net, "host", None), getattr(conn, "host_ifname", None)
        if not isinstance(host, Namespace) or not isinstance(host_if, str):
            raise ValidationError(f"{target!r} has no host side (an Endpoint with a connection, or a Connection)",
                                  obj=repr(target), step="capture")
        return host, host_if
    if isinstance(target, Namespace):
        ns = target
    else:
        found = getattr(target, "namespace", None)
        if not isinstance(found, Namespace):
            raise ValidationError(f"{target!r} is not a Namespace, an Endpoint or a Connection",
                                  obj=repr(target), step="capture")
        ns = found
        if ifname is None and isinstance(getattr(target, "ifname", None), str):
            ifname = str(target.ifname)  # type: ignore[attr-defined]  # a Connection: its own interface
    return ns, (validate_ifname(ifname) if ifname is not None else None)


class Capture:
    """Capture frames on ``ifname`` (``None``: every interface) of ``target`` into ``path`` (pcapng).

    ``target``: a :class:`~netns_kit.Namespace`, an :class:`~netns_kit.Endpoint` (its namespace)
    or a :class:`~netns_kit.Connection` (its namespace, and its interface by default). With
    ``side="host"`` the capture runs on the host end of the endpoint's (first) veth, in the host
    namespace. ``path=None``: a new file in the temporary directory (see :attr:`path`).
    ``filter``: a filter string or :class:`CaptureFilter`, checked here (a bad one raises
    :class:`~netns_kit.errors.ValidationError` before anything starts).

    Use it as a context manager (started on enter, stopped on exit) or call :meth:`start` and
    :meth:`stop`. Needs scapy (``pip install 'netns-kit[capture]'``) for the file format.
    """

    def __init__(self, target: object, ifname: str | None = None, path: str | os.PathLike[str] | None = None,
                 *, filter: str | CaptureFilter | None = None, side: str = "endpoint") -> None:
        self.namespace, self.ifname = _resolve(target, ifname, side)
        if filter is not None and not isinstance(filter, str | CaptureFilter):
            raise ValidationError(f"filter {filter!r} must be a string or a CaptureFilter", obj=repr(filter),
                                  step="capture")
        self.filter = CaptureFilter(filter) if isinstance(filter, str) else filter
        if path is not None and not isinstance(path, str | os.PathLike):
            raise ValidationError(f"path {path!r} must be a file path", obj=repr(path), step="capture")
        self._path = os.fspath(path) if path is not None else None
        self.packets = 0
        """Frames written to the file so far."""
        self.seen = 0
        """Frames read from the socket so far (written or filtered out)."""
        self.kernel_drops = 0
        """Frames the kernel dropped because the socket's queue was full (known after :meth:`stop`)."""
        self._flows: dict[FlowKey, list[int]] = {}
        self._sock: socket.socket | None = None
        self._file: _pcapng.PcapNgFile | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._stopped = False

    @property
    def path(self) -> str:
        """The pcapng file (chosen at :meth:`start` when none was given)."""
        if self._path is None:
            raise StateError("the capture has not started: its file is made by start()", step="capture")
        return self._path

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopped

    def start(self) -> Capture:
        """Open and bind the packet socket in the namespace, open the file, start the reader thread.

        When it returns, every frame on the interface is being captured. Undo: :meth:`stop`.
        """
        if self._sock is not None:
            raise StateError("the capture was already started", obj=self._where(), step="start capture")
        if self._path is None:
            fd, self._path = tempfile.mkstemp(prefix="netns-kit-", suffix=".pcapng")
            os.close(fd)
        label = self.namespace.label
        with self.namespace.enter():
            try:
                # bound to one interface: protocol 0 receives nothing until bind(); every interface: at once
                proto = 0 if self.ifname else socket.htons(ETH_P_ALL)
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, proto)
            except OSError as exc:
                raise error_for_errno(exc.errno, "cannot open a packet socket", obj=self._where(), namespace=label,
                                      step="start capture") from exc
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                if self.ifname:
                    sock.bind((self.ifname, ETH_P_ALL))
            except OSError as exc:
                sock.close()
                what = f"interface {self.ifname!r} not found" if exc.errno in (errno.ENODEV, errno.ENXIO) else \
                    "cannot bind the packet socket"
                raise error_for_errno(exc.errno, what, obj=self._where(), namespace=label,
                                      step="start capture") from exc
        try:
            self._file = _pcapng.PcapNgFile(self._path)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name=f"netns-kit-capture-{self._where()}", daemon=True)
        self._thread.start()
        return self

    def _where(self) -> str:
        return f"{self.namespace.label}:{self.ifname or 'any'}"

    def _handle(self, frame: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[object, ...]) -> None:
        ts: float | None = None
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(data)
                ts = sec + nsec / 1e9
        info = decode(frame)
        with self._lock:
            self.seen += 1
            if self.filter is not None and not self.filter.matches(info):
                return
            self._count(info)
            self.packets += 1
        assert self._file is not None
        self._file.write(frame, timestamp=ts if ts is not None else time.time(), ifname=str(addr[0]),
                         outbound=addr[2] == PACKET_OUTGOING)

    def _count(self, info: PacketInfo) -> None:
        c = self._flows.setdefault(flow_key(info), [0, 0])
        c[0] += 1
        c[1] += info.length

    def _drain(self, sock: socket.socket) -> None:
        """Read and handle every frame queued on the socket now, without waiting for more."""
        anc = socket.CMSG_SPACE(_TIMESPEC.size)
        while True:
            try:
                frame, ancdata, _flags, addr = sock.recvmsg(SNAPLEN, anc, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            self._handle(frame, ancdata, addr)

    def _run(self) -> None:
        sock, wake = self._sock, self._wake
        assert sock is not None and wake is not None
        try:
            while True:
                ready, _, _ = select.select([sock.fileno(), wake[0]], [], [])
                self._drain(sock)  # after stop(): what was queued before it
                if wake[0] in ready:
                    return
        except BaseException as exc:  # reported by stop()
            self._error = exc

    def stop(self) -> None:
        """Write what is still queued, flush and close the file, close the socket. Idempotent."""
        if self._stopped or self._thread is None:
            self._stopped = True
            return
        self._stopped = True
        assert self._sock is not None and self._wake is not None and self._file is not None
        try:
            os.write(self._wake[1], b"x")
            self._thread.join()
            with contextlib.suppress(OSError):
                raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
                self.kernel_drops = struct.unpack("II", raw)[1]
        finally:
            self._sock.close()
            for fd in self._wake:
                os.close(fd)
            self._file.close()
        if self._error is not None:
            raise StateError(f"capture failed: {self._error}", obj=self._where(), namespace=self.namespace.label,
                             step="capture") from self._error

    def summary(self) -> list[Flow]:
        """The flows written so far (one per direction of each conversation), first seen first."""
        with self._lock:
            return flows_from({k: list(v) for k, v in self._flows.items()})

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._stopped else "not started")
        filt = f", filter={self.filter.text!r}" if self.filter is not None else ""
        return f"Capture({self._where()}{filt}, {state}, {self.packets} packets)"

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(f.proto)}</td><td>{e(f.src)}</td><td>{'' if f.sport is None else f.sport}</td>"
            f"<td>{e(f.dst)}</td><td>{'' if f.dport is None else f.dport}</td>"
            f"<td>{f.packets}</td><td>{f.bytes}</td></tr>" for f in self.summary())
        head = e(repr(self)) + (f" &rarr; <code>{e(self._path)}</code>" if self._path else "")
        return (f"<div><b>{head}</b><table><tr><th>proto</th><th>src</th><th>sport</th><th>dst</th>"
                f"<th>dport</th><th>packets</th><th>bytes</th></tr>{rows}</table></div>")
