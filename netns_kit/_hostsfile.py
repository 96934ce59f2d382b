"""Name resolution through hosts files (internal).

For every named namespace attached to a network, netns_kit writes ``/etc/netns/NAME/hosts`` (the
iproute2 convention: ``ip netns exec NAME`` and :meth:`Namespace.run` bind it over /etc/hosts).

- A network with name resolution keeps one shared file listing all its endpoints
  (:class:`SharedHostsFile`). A connect appends its lines (O(1): one write on a descriptor its
  process keeps open for that); a disconnect rewrites the file
  in place, once per removal batch. Files are rewritten in place, never replaced, so a bind mount
  made by ``ip netns exec`` keeps seeing the same inode.
- A namespace on exactly one network has a symlink to that file as its hosts file; a namespace on
  several networks gets a file of its own with the union, re-rendered when one of its networks
  changes (only those namespaces are visited: the registry keeps them apart).
- A hosts file netns_kit did not write is left alone. Files are opened with ``O_NOFOLLOW``.
- Shared files live under the state root, ``/run/netns-kit/hosts/`` (root-only, 0700; the files
  are 0644). Programs in the namespaces read them through the bind mount ``ip netns exec`` and
  :meth:`Namespace.run` make over /etc/hosts (made as root), so they need no access to the
  directory. Each file is named ``<host>-<network>@<writer>``: :func:`netns_kit.recover` removes
  those of dead writers that no namespace links to any more.
- ``/etc/netns`` itself is made when missing and then recorded in the state root, so the last
  namespace file to go takes it along (:func:`release_etc_netns`); one that was there is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import _state, _sys

if TYPE_CHECKING:
    from ._registry import HostRegistry, Identity
    from .connection import Connection
    from .network import Network

__all__ = ["SharedHostsFile", "drop_namespace_file", "hosts_path", "on_connect", "on_disconnect",
           "release_etc_netns"]

log = logging.getLogger("netns_kit")

ETC_NETNS_DIR = _sys.ETC_NETNS_DIR
HOSTS_RUN_DIR = _sys.HOSTS_RUN_DIR
_LOCALHOST = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]

_owned_files: set[str] = set()
_owned_dirs: set[str] = set()
_files_lock = threading.Lock()


def hosts_path(ns_name: str) -> str:
    return f"{ETC_NETNS_DIR}/{ns_name}/hosts"  # a namespace name has no "/": os.path.join's result


def _etc_mark() -> str:
    """Where the state root records that netns_kit made /etc/netns (and its identity)."""
    return os.path.join(_state.STATE_DIR, "etc-netns.json")


def _make_ns_dir(directory: str) -> None:
    """Make /etc/netns/NAME, and /etc/netns first if it is missing (recorded: see the module).
    FileExistsError if ``directory`` is there already.

    The lock is only taken when /etc/netns itself is missing: a mkdir that races with
    :func:`release_etc_netns` either makes its directory first (the release's rmdir then fails,
    the directory not being empty) or finds /etc/netns gone and makes it under the lock."""
    try:
        os.mkdir(directory, 0o755)
        return
    except FileNotFoundError:
        pass
    with _state.lock("etc-netns"):
        if not os.path.isdir(ETC_NETNS_DIR):
            os.mkdir(ETC_NETNS_DIR, 0o755)
            _state.write_json(_etc_mark(), {"id": list(_sys.stat_identity(ETC_NETNS_DIR))})
        os.mkdir(directory, 0o755)


def release_etc_netns() -> bool:
    """Remove /etc/netns if netns_kit made it and it is empty now; True if it was removed."""
    mark = _etc_mark()
    if not os.path.exists(mark):
        return False
    with _state.lock("etc-netns"):
        data = _state.read_json(mark)
        if data is None:
            return False
        try:
            ours = list(_sys.stat_identity(ETC_NETNS_DIR)) == list(data.get("id", ()))
        except FileNotFoundError:
            ours = False
        if ours:
            try:
                os.rmdir(ETC_NETNS_DIR)
            except OSError:  # namespaces' files are still there: the last one out removes it
                return False
        _state.delete_json(mark)  # removed now, or gone/replaced: the record is stale either way
        return ours


def _write(path: str, text: str, *, append: bool = False) -> None:
    """Write ``text`` into ``path`` in place (same inode), refusing a symlink or a non-regular file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def entries(conn: Connection, comment: str) -> list[str]:
    """The hosts lines of one connection (none if it has no names)."""
    if not conn.names:
        return []
    names = " ".join(conn.names)
    out = [f"{conn.address.ip}\t{names}\t# {comment}"]
    if conn.address6 is not None:
        out.append(f"{conn.address6.ip}\t{names}\t# {comment}")
    return out


class SharedHostsFile:
    """The hosts file of one network with name resolution: every endpoint on it."""

    def __init__(self, network: Network, tag: str) -> None:
        self.network = network
        self.path = os.path.join(HOSTS_RUN_DIR, tag)
        self.exists = False
        self.rewrite_pending = False
        self._fd: int | None = None  # held for appends (the file is rewritten in place: same inode)

    def _render(self, conns: Iterable[Connection]) -> str:
        lines = [f"{_sys.HOSTS_HEADER}network {self.network.name}: every endpoint on it", *_LOCALHOST]
        for conn in conns:
            lines += entries(conn, self.network.name)
        return "\n".join(lines) + "\n"

    def rewrite(self) -> None:
        self.rewrite_pending = False
        self._close()  # in case the file is made anew (its directory was pruned): appends reopen it
        text = self._render(self.network.connections)
        for attempt in range(3):
            _state.ensure_dir(HOSTS_RUN_DIR)
            try:
                _write(self.path, text)
                break
            except FileNotFoundError:  # another process pruned the (then empty) directory meanwhile
                if attempt == 2:
                    raise
        self.exists = True

    def add(self, conn: Connection) -> None:
        if not self.exists:
            self.rewrite()
            return
        lines = entries(conn, self.network.name)
        if not lines:
            return
        if self._fd is None:
            try:  # kept open for the next appends: one write per connect
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:  # removed behind our back: written again, whole
                self.rewrite()
                return
        os.write(self._fd, ("\n".join(lines) + "\n").encode())

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def drop(self) -> None:
        self._close()
        self.exists = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        _state.prune_dirs(HOSTS_RUN_DIR)  # only if no other network's file is there


def _render_union(ns_name: str, conns: list[Connection]) -> str:
    """The hosts file of a namespace on several networks (or on one without name resolution)."""
    lines = [f"{_sys.HOSTS_HEADER}namespace {ns_name}; rewritten when its networks change", *_LOCALHOST]
    seen: set[str] = set()

    def add(candidates: list[str]) -> None:
        for line in candidates:
            key = line.split("\t#")[0]
            if key not in seen:
                seen.add(key)
                lines.append(line)

    for conn in conns:
        add(entries(conn, f"self on {conn.network.name}"))
    for conn in conns:
        if conn.network.config.resolve_names:
            for peer in conn.network.connections:
                if peer.identity != conn.identity:
                    add(entries(peer, peer.network.name))
    return "\n".join(lines) + "\n"


def write_namespace_file(conns: list[Connection]) -> None:
    """(Re)write the hosts file of the namespace of ``conns`` (its connections, oldest first)."""
    ns = conns[0].namespace
    if ns.name is None:
        return
    directory = f"{ETC_NETNS_DIR}/{ns.name}"
    path = f"{directory}/hosts"
    shared = conns[0].network.hosts_file if len(conns) == 1 else None
    with _files_lock:
        fresh = False  # no file at path yet (checked just now): nothing to replace
        if path not in _owned_files:
            try:  # a directory made just now holds nothing yet: no look for a file in it
                _make_ns_dir(directory)
                _owned_dirs.add(directory)
            except FileExistsError:
                if os.path.lexists(path):
                    log.warning("%s exists and was not written by netns_kit: left alone (no name resolution "
                                "for namespace %s)", path, ns.name)
                    return
            _owned_files.add(path)
            fresh = True
        if shared is not None and shared.exists and fresh:
            os.symlink(shared.path, path)
            return
        if shared is not None and shared.exists:
            if os.path.islink(path) and os.readlink(path) == shared.path:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.symlink(shared.path, path)
            return
        if os.path.islink(path):
            os.unlink(path)
        _write(path, _render_union(ns.name, conns))


def drop_namespace_file(ns_name: str) -> None:
    """Delete the hosts file netns_kit wrote for ``ns_name`` (and its directory, if netns_kit made it)."""
    path = hosts_path(ns_name)
    directory = os.path.dirname(path)
    with _files_lock:
        if path not in _owned_files:
            return
        _owned_files.discard(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if directory in _owned_dirs:
            _owned_dirs.discard(directory)
            try:
                os.rmdir(directory)
            except OSError:  # someone else put files there: leave it
                return
            release_etc_netns()


def _refresh_multihomed(st: HostRegistry, net: Network, changed: Identity) -> None:
    for ident in list(st.multihomed):
        if ident == changed:
            continue
        conns = st.connections_of(ident)
        if any(c.network is net for c in conns):
            write_namespace_file(conns)


def on_connect(st: HostRegistry, conn: Connection) -> None:
    """Bring the hosts files up to date after ``conn`` joined its network: O(1) for a namespace on
    one network (append to the shared file), plus one rewrite per namespace on several networks."""
    net = conn.network
    shared = net.hosts_file
    if shared is not None:
        shared.add(conn)
        _refresh_multihomed(st, net, conn.identity)
    write_namespace_file(st.connections_of(conn.identity))


def on_disconnect(st: HostRegistry, conn: Connection, *, defer: bool) -> None:
    """After ``conn`` left its network: the shared file is rewritten (``defer``: the caller runs
    :meth:`SharedHostsFile.rewrite` later, once for many disconnects), the namespace's own file
    follows its remaining connections, or goes."""
    net = conn.network
    shared = net.hosts_file
    if shared is not None and shared.exists and not defer:
        shared.rewrite()
    if shared is not None:
        _refresh_multihomed(st, net, conn.identity)
    conns = st.connections_of(conn.identity)
    if conns:
        write_namespace_file(conns)
    elif conn.namespace.name is not None:
        drop_namespace_file(conn.namespace.name)
