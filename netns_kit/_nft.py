"""Seam for libnftables: the only module that imports ``nftables``.

A libnftables context keeps one netlink socket, bound to the network namespace of the thread
that created it (measured: a context made in namespace A and used from a thread in B still
changes A). So there is one context per namespace, created while the calling thread is inside
it (``Namespace.enter``), cached by the namespace's identity in a small bounded cache, and
dropped when its firewall goes away. Nothing is ever cached "for the default namespace".

Each call runs one batch: libnftables sends it to the kernel as one transaction, applied
entirely or not at all. Errors map to the most specific netns_kit error (``File exists`` ->
:class:`AlreadyExistsError`, ``No such file or directory`` -> :class:`NotFoundError`, ...),
naming the object, the namespace and the step. No decisions live here.
"""

from __future__ import annotations

import errno as _errno
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .errors import NetnsKitError, NotFoundError, UnsupportedError, ValidationError, error_class, error_for_errno

__all__ = ["NamespaceLike", "NftContext", "context_for", "drop_context"]

Identity = tuple[int, int]


class NamespaceLike(Protocol):
    """What the seam needs of a namespace (a :class:`~netns_kit.Namespace` is one)."""

    @property
    def label(self) -> str: ...

    @property
    def identity(self) -> Identity: ...

    @property
    def exists(self) -> bool: ...

    def enter(self) -> AbstractContextManager[Any]: ...

_log = logging.getLogger("netns_kit.nft")  # one debug line per kernel batch

_KNOWN_ERRNOS = (
    _errno.EEXIST, _errno.ENOENT, _errno.EPERM, _errno.EACCES, _errno.EOPNOTSUPP, _errno.EPROTONOSUPPORT,
    _errno.EAFNOSUPPORT, _errno.EINVAL, _errno.EBUSY, _errno.ENOSPC, _errno.ENOMEM, _errno.E2BIG,
    _errno.ERANGE, _errno.ENOBUFS, _errno.ENFILE, _errno.EMFILE,
)


def _errno_of(text: str) -> int | None:
    for err in _KNOWN_ERRNOS:
        if os.strerror(err) in text:
            return err
    return None


def map_error(text: str, *, obj: str | None, namespace: str | None, step: str) -> NetnsKitError:
    """Turn a libnftables error buffer into the most specific netns_kit error (see
    :func:`netns_kit.errors.error_for_errno`; a parse error without an errno is a ValidationError)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    summary = "; ".join(dict.fromkeys(ln.split("Error: ", 1)[-1] for ln in lines))[:500] or "nft batch failed"
    err = _errno_of(text)
    message = f"nftables: {summary}"
    if err is None and ("syntax error" in text or "Invalid" in text or "Parsing command" in text):
        return ValidationError(message, obj=obj, namespace=namespace, step=step)
    if error_class(err) is UnsupportedError:
        message += " (the kernel lacks an nftables feature netns_kit needs)"
    return error_for_errno(err, message, obj=obj, namespace=namespace, step=step, strerror=False)


def _new_ctx(label: str) -> Any:
    try:
        import nftables
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise UnsupportedError("the libnftables Python binding (oxl-libnftables) is not installed",
                               namespace=label, step="open nftables") from exc
    try:
        return nftables.Nftables()
    except OSError as exc:
        raise UnsupportedError(f"libnftables could not be loaded: {exc}", namespace=label,
                               step="open nftables") from exc


_compact = json.JSONEncoder(separators=(",", ":")).encode  # one encoder for every batch


class NftContext:
    """One libnftables context bound to one network namespace. Thread-safe (one call at a time)."""

    def __init__(self, ns: NamespaceLike | None, *, label: str | None = None) -> None:
        """A context for ``ns`` (created inside it); ``ns=None``: for the calling thread's namespace now."""
        self.label = ns.label if ns is not None else (label or "current")
        self.namespace = ns
        if ns is None:
            self._ctx = _new_ctx(self.label)
        else:
            with ns.enter():
                self._ctx = _new_ctx(self.label)
        # JSON output on for good: libnftables then reads JSON input too, and run_json need not
        # switch it on and off around every batch (run_text switches it off for its script)
        self._ctx.set_json_output(True)
        self._lock = threading.Lock()

    def run_json(self, commands: list[dict[str, Any]], *, obj: str | Callable[[], str] | None,
                 step: str) -> list[dict[str, Any]]:
        """Run ``commands`` as one batch (one kernel transaction). Returns the JSON output objects.
        ``obj`` names the change in errors: a text, or a function making it (called on an error only)."""
        if not commands:
            return []
        if _log.isEnabledFor(logging.DEBUG) and any(next(iter(c)) != "list" for c in commands):
            _log.debug("nft: %s %s in %s (one batch of %d commands)", step, (obj() if callable(obj) else obj) or "",
                       self.label, len(commands))
        text = _compact({"nftables": commands})
        with self._lock:
            rc, raw, err = self._ctx.cmd(text)
        if rc != 0:
            raise map_error(str(err), obj=obj() if callable(obj) else obj, namespace=self.label, step=step)
        out = json.loads(raw) if raw else None
        if isinstance(out, dict):
            items = out.get("nftables", [])
            return [i for i in items if isinstance(i, dict)]
        return []

    def run_text(self, script: str, *, obj: str | None, step: str) -> str:
        """Run a constant nft script (never built from caller data) as one batch; returns its output."""
        with self._lock:
            was_json = self._ctx.set_json_output(False)
            try:
                rc, out, err = self._ctx.cmd(script)
            finally:
                self._ctx.set_json_output(was_json)
        if rc != 0:
            raise map_error(str(err), obj=obj, namespace=self.label, step=step)
        return str(out)

    def list_table(self, family: str, table: str, *, step: str) -> list[dict[str, Any]] | None:
        """The table's objects as libnftables JSON, or None if it does not exist."""
        try:
            return self.run_json([{"list": {"table": {"family": family, "name": table}}}],
                                 obj=f"table {family} {table}", step=step)
        except NotFoundError:
            return None

    def table_text(self, family: str, table: str, *, step: str) -> str | None:
        """``nft list table`` output for the table, or None if it does not exist."""
        try:
            return self.run_text(f"list table {family} {table}", obj=f"table {family} {table}", step=step)
        except NotFoundError:
            return None

    def list_ruleset_json(self, *, step: str) -> list[dict[str, Any]]:
        """Every table and chain (no rules' expressions are needed by callers, but they come along)."""
        return self.run_json([{"list": {"chains": {}}}], obj="ruleset", step=step)


_cache: OrderedDict[Identity, NftContext] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 16


def context_for(ns: NamespaceLike) -> NftContext:
    """The cached libnftables context of ``ns`` (created inside ``ns`` on first use).

    A context's socket keeps its namespace alive (and with it the interfaces inside), so
    contexts of namespaces that were removed are dropped here, and :func:`drop_context` drops
    one at once.
    """
    ident = ns.identity
    with _cache_lock:
        ctx = _cache.get(ident)
        if ctx is not None:
            _cache.move_to_end(ident)
            return ctx
        for key, other in list(_cache.items()):
            if other.namespace is not None and not other.namespace.exists:
                del _cache[key]
    ctx = NftContext(ns)
    with _cache_lock:
        old = _cache.get(ident)
        if old is not None:
            return old
        _cache[ident] = ctx
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return ctx


def drop_context(identity: Identity) -> None:
    """Forget the context of a namespace (its socket closes when the context is freed).

    Freeing a libnftables context takes tens of milliseconds (measured: 36 ms), so the last
    reference is dropped on a short-lived background thread, off the caller's path.
    """
    with _cache_lock:
        ctx = _cache.pop(identity, None)
    if ctx is not None:
        box = [ctx]
        del ctx
        threading.Thread(target=box.clear, name="netns-kit-nft-free", daemon=True).start()


def dumps(commands: list[dict[str, Any]]) -> str:
    """The batch as libnftables would receive it (for logs and error messages)."""
    return json.dumps({"nftables": commands})
