"""Registry of the processes started inside namespaces through netns_kit.

:meth:`Namespace.popen <netns_kit.Namespace.popen>` registers each process under the identity of
its namespace; when netns_kit removes that namespace, every registered process still running is
stopped first (SIGTERM to its process group if it leads one, SIGKILL after a grace period). Only
processes started through the library are touched, never others found in the namespace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from typing import Any

__all__ = ["register", "running", "stop", "stop_all"]

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
