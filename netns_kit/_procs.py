"""Registry of the processes started inside namespaces through netns_kit.

:meth:`Namespace.popen <netns_kit.Namespace.popen>` registers each process under the identity of
its namespace; when netns_kit removes that namespace, every registered process still running is
stopped first (SIGTERM to its process group if it leads one, SIGKILL after a grace period). Only
processes started through the library are touched, never others found in the namespace.

Service processes (:func:`start_service`, the networks' name service) are different: they run in
a session of their own and outlive the process that started them; any process stops one by its
recorded identity (:func:`stop_service`), never by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["register", "running", "start_service", "stop", "stop_all", "stop_service"]

log = logging.getLogger("netns_kit")

Identity = tuple[int, int]

_lock = threading.Lock()
_registry: dict[Identity, list[subprocess.Popen[Any]]] = {}


def register(identity: Identity, proc: subprocess.Popen[Any]) -> None:
    """Remember that ``proc`` was started inside the namespace ``identity``."""
    with _lock:
        procs = _registry.setdefault(identity, [])
        procs[:] = [p for p in procs if p.poll() is None]
        procs.append(proc)


def running(identity: Identity) -> list[subprocess.Popen[Any]]:
    """The registered processes of namespace ``identity`` that are still running."""
    with _lock:
        return [p for p in _registry.get(identity, []) if p.poll() is None]


def _signal(proc: subprocess.Popen[Any], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:  # it leads its own group: reach its children too
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def stop(proc: subprocess.Popen[Any], *, timeout: float = 3.0) -> int:
    """Stop one process: SIGTERM, then SIGKILL after ``timeout`` seconds. Returns its exit status."""
    if proc.poll() is None:
        log.debug("change: stop process %d", proc.pid)
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()
    elif os.path.exists(f"/proc/{proc.pid}"):  # the leader exited; its group may live on
        _signal(proc, signal.SIGKILL)
    return proc.returncode


def stop_all(identity: Identity, *, timeout: float = 3.0) -> list[int]:
    """Stop every registered process of namespace ``identity``; returns their PIDs."""
    with _lock:
        procs = _registry.pop(identity, [])
    stopped = []
    for proc in procs:
        if proc.poll() is None:
            stopped.append(proc.pid)
        stop(proc, timeout=timeout)
    return stopped


_services: dict[int, subprocess.Popen[Any]] = {}  # service processes this process started (to reap them)


def start_service(argv: Sequence[str], *, env: Mapping[str, str], log_path: str) -> int:
    """Start ``argv`` in the calling thread's namespaces as a service: a session of its own (a
    signal to the caller's terminal or process group never reaches it), stdin from /dev/null,
    stdout and stderr appended to ``log_path``. It outlives the caller. Returns its PID."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=dict(env),
                                start_new_session=True, close_fds=True, cwd="/")
    finally:
        os.close(fd)
    log.debug("change: start service %s (pid %d)", argv[-1], proc.pid)
    with _lock:
        for pid, p in list(_services.items()):
            if p.poll() is not None:
                del _services[pid]
        _services[proc.pid] = proc
    return proc.pid


def service_exited(pid: int) -> bool:
    """True if ``pid`` is a service this process started and it has exited (it is reaped here)."""
    with _lock:
        proc = _services.get(pid)
    return proc is not None and proc.poll() is not None


def stop_service(pid: int, alive: Callable[[], bool], *, timeout: float = 3.0) -> bool:
    """Stop the service ``pid``: SIGTERM, SIGKILL after ``timeout`` seconds. ``alive()`` tells if it is
    still the same process (PID and start time), checked before each signal so that a reused PID
    is never signalled. Returns True if it was running."""
    if not alive():
        return False
    log.debug("change: stop service pid %d", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive() and not service_exited(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.005)
    with _lock:
        proc = _services.pop(pid, None)
    if proc is not None:
        proc.wait()
    return True
