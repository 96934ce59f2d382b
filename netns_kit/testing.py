"""Helpers for test harnesses: a throwaway "host" namespace per test, with or without root.

:func:`isolated_host` moves the calling thread into a brand-new, anonymous network
namespace for the duration of a ``with`` block. Everything netns_kit builds there
(bridges, veths, nft tables, sysctls) vanishes with it; the thread returns to its
previous namespace afterwards. Named namespaces (under /run/netns) outlive it, so
the block reports any that a test left behind.

Rootless mode (:func:`enter_rootless`; :func:`isolated_host` enters it by itself when the
process lacks CAP_NET_ADMIN/CAP_SYS_ADMIN): the process moves into a user namespace of its
own, where it is root, and a mount namespace whose /run/netns, /run/netns-kit and /etc/netns
are private and in memory. Every namespace it then makes belongs to that user namespace, so
an unprivileged user can build bridges, veths, nft tables and sysctls there; the machine's own
network stays out of reach (:class:`~netns_kit.errors.RootlessError`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import _sys
from .errors import LeakError, RootlessError
from .namespace import Namespace, drop_socket

__all__ = ["LeakError", "RootlessMode", "enter_rootless", "isolated_host", "named_namespaces", "rootless_mode"]


@dataclass(frozen=True)
class RootlessMode:
    """What :func:`enter_rootless` did: the user the process ran as (it is uid 0 inside now), and
    the entries of /run and /etc it could not show again inside (missing there; normally none)."""

    uid: int
    gid: int
    hidden: tuple[str, ...] = ()


_rootless: RootlessMode | None = None
_rootless_lock = threading.Lock()


def rootless_mode() -> RootlessMode | None:
    """The rootless mode this process entered, or None (it runs with its own privileges)."""
    return _rootless


def enter_rootless() -> RootlessMode:
    """Make this process able to use netns_kit without root, for good (idempotent).

    Kernel: ``unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)`` for the whole process (its uid
    and gid map to 0 inside, with every capability there; its network is a new namespace with
    ``lo`` up, the process's host from then on), then, in the new mount namespace only, new
    in-memory /run/netns, /run/netns-kit (netns_kit's state and journal) and /etc/netns (a tmpfs
    on each, or, where they do not exist yet, a tmpfs over /run or /etc that binds each of its
    entries back and holds the new directories); the rest of /run and /etc reads as before. Namespaces
    made afterwards belong to the new user namespace; the machine's own cannot be reached
    (RootlessError), and the process has no network to the outside. Nothing reaches the
    machine's files, and nothing needs undoing: the kernel drops it all when the last process of
    the user namespace exits (``recover()`` finds nothing).

    Call it before the process starts threads (the kernel requires one thread); RootlessError
    if there are more (after up to half a second for threads that have just ended to be gone), or
    if the kernel's settings forbid unprivileged user namespaces.
    """
    global _rootless
    with _rootless_lock:
        if _rootless is not None:
            return _rootless
        threads = len(os.listdir("/proc/self/task"))
        deadline = time.monotonic() + 0.5
        while threads > 1 and time.monotonic() < deadline:  # a thread joined just now may still be exiting
            time.sleep(0.005)
            threads = len(os.listdir("/proc/self/task"))
        if threads > 1:
            raise RootlessError(
                f"the process runs {threads} threads; a process enters a user namespace only while it "
                "has one: enter rootless mode before starting threads (before the first netns_kit call)",
                step="enter rootless mode")
        try:
            uid, gid = _sys.enter_user_namespace()
        except OSError as exc:
            raise RootlessError(
                f"the kernel refused a user namespace ({exc.strerror}): unprivileged user namespaces "
                "are off here (user.max_user_namespaces, kernel.unprivileged_userns_clone, or an "
                "AppArmor/SELinux policy); run as root instead", step="enter rootless mode",
                errno=exc.errno) from exc
        try:
            hidden = _sys.private_run_and_etc()
        except OSError as exc:
            raise RootlessError(f"cannot make /run and /etc private ({exc})", step="enter rootless mode",
                                errno=exc.errno) from exc
        _rootless = RootlessMode(uid, gid, tuple(hidden))
    Namespace.current().rtnl().set_link(1, up=True, obj="lo")
    return _rootless


def named_namespaces() -> set[str]:
    """Names currently in /run/netns."""
    try:
        return set(os.listdir(_sys.NETNS_RUN_DIR))
    except FileNotFoundError:
        return set()


@contextmanager
def isolated_host(*, check_leaks: bool = True, rootless: bool | None = None) -> Iterator[Namespace]:
    """Run the body in a fresh anonymous network namespace (calling thread only), ``lo`` up.

    ``rootless``: None (the default) enters rootless mode (:func:`enter_rootless`) when the
    process lacks CAP_NET_ADMIN or CAP_SYS_ADMIN, True always, False never (then an
    unprivileged process gets PermissionDeniedError). In rootless mode the fresh namespace
    belongs to the process's user namespace, as does everything made in it.

    Undo: the thread goes back to its previous namespace and the fresh one is released,
    taking every interface, route and nft table inside it along. With ``check_leaks``,
    named namespaces created in the body and still present raise :class:`LeakError`
    (after they are removed).
    """
    if rootless or (rootless is None and _rootless is None and _sys.missing_capabilities()):
        enter_rootless()
    _sys.check_privileges()
    before = named_namespaces()
    saved = os.open(_sys.current_netns_path(), os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = _sys.unshare_netns()
        try:
            host = Namespace.current()
            host.rtnl().set_link(1, up=True, obj="lo")
            try:
                yield host
            finally:
                drop_socket(host.identity)
                _sys.setns(saved, label="previous namespace")
        finally:
            os.close(fd)
    finally:
        os.close(saved)
    if check_leaks:
        leaked = named_namespaces() - before
        for name in leaked:
            _sys.remove_named_netns(os.path.join(_sys.NETNS_RUN_DIR, name))
        if leaked:
            raise LeakError(f"named namespaces left behind: {sorted(leaked)}", step="isolated host teardown")
