"""Helpers for test harnesses: a throwaway "host" namespace per test.

:func:`isolated_host` moves the calling thread into a brand-new, anonymous network
namespace for the duration of a ``with`` block. Everything netns_kit builds there
(bridges, veths, nft tables, sysctls) vanishes with it; the thread returns to its
previous namespace afterwards. Named namespaces (under /run/netns) outlive it, so
the block reports any that a test left behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from . import _sys
from .errors import LeakError
from .namespace import Namespace, _pool

__all__ = ["LeakError", "isolated_host", "named_namespaces"]


def named_namespaces() -> set[str]:
    """Names currently in /run/netns."""
    try:
        return set(os.listdir(_sys.NETNS_RUN_DIR))
    except FileNotFoundError:
        return set()


@contextmanager
def isolated_host(*, check_leaks: bool = True) -> Iterator[Namespace]:
    """Run the body in a fresh anonymous network namespace (calling thread only), ``lo`` up.

    Undo: the thread goes back to its previous namespace and the fresh one is released,
    taking every interface, route and nft table inside it along. With ``check_leaks``,
    named namespaces created in the body and still present raise :class:`LeakError`
    (after they are removed).
    """
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
                _pool.drop(host.identity)
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
