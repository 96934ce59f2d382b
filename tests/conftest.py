"""Shared fixtures and the two kinds of test.

Kernel tests take ``host`` (a fresh throwaway host namespace per test, from netns_kit's own pytest
plugin) or build things some other way; they need root inside the throwaway namespace of
scripts/sandbox.sh (``bash scripts/test.sh``). Pure tests take nothing and need no root; they run
anywhere (``bash scripts/check.sh`` runs them as ``pytest -m "not kernel"``).

Every test is marked here, ``pure`` or ``kernel``: a test is pure when its module is named in
``PURE_MODULES`` or it (or its module, through ``pytestmark``) carries ``@pytest.mark.pure``;
everything else is ``kernel``. A pure test fails loudly if it is not: asking for a kernel fixture
is a usage error at collection, and opening a netlink socket, loading libnftables or opening a
namespace file (/run/netns/*, /proc/*/ns/*) or /proc/sys/net/* while it runs fails the test (an
audit hook watches), as root or not.
Without root inside the sandbox, kernel tests are skipped with the reason, except those marked
``rootless``, which an unprivileged user runs (in rootless mode); as root outside the sandbox,
nothing runs.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
from collections.abc import Generator
from typing import Any

import pytest

from netns_kit import Namespace

# Test modules (file stems) in which every test needs no root and no kernel state.
# Checked by running them as an unprivileged user outside the sandbox (scripts/check.sh does).
PURE_MODULES = frozenset({
    "test_diagram",
    "test_topofile",
    "test_dns_model",
    "test_import_graph",
    "test_ipam",
    "test_model",
    "test_nft_render",
    "test_packaging",
    "test_public_api",
})

# Fixtures that need root and the kernel; host, netns_network and netns_endpoints all use netns_host.
KERNEL_FIXTURES = frozenset({"netns_host"})

ROOT = os.geteuid() == 0
SANDBOXED = os.environ.get("NETNS_KIT_SANDBOXED") == "1"

if ROOT and not SANDBOXED:
    raise pytest.UsageError(
        "run the suite through scripts/test.sh (or scripts/sandbox.sh), which isolates /run and /etc; "
        "the pure tests also run as an ordinary user: bash scripts/check.sh")


@pytest.fixture
def host(netns_host: Namespace) -> Namespace:
    return netns_host


def _is_pure(item: pytest.Item) -> bool:
    if item.get_closest_marker("kernel") is not None:
        return False
    return item.path.stem in PURE_MODULES or item.get_closest_marker("pure") is not None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced: list[str] = []
    skip_kernel = pytest.mark.skip(reason="kernel test: needs root inside the sandbox (bash scripts/test.sh); "
                                          "-m 'not kernel' selects the pure ones")
    for item in items:
        if _is_pure(item):
            used = KERNEL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if used:
                misplaced.append(f"{item.nodeid} (uses {', '.join(sorted(used))})")
            if item.get_closest_marker("pure") is None:
                item.add_marker(pytest.mark.pure)
        else:
            item.add_marker(pytest.mark.kernel)
            # marked rootless: also runs unprivileged (the plugin's fixtures enter a user namespace)
            if not (ROOT and SANDBOXED) and not (item.get_closest_marker("rootless") and not ROOT):
                item.add_marker(skip_kernel)
    if misplaced:
        raise pytest.UsageError(
            "tests marked pure (PURE_MODULES in tests/conftest.py, or @pytest.mark.pure) need the kernel:\n  "
            + "\n  ".join(misplaced))


# The watch over pure tests: an audit hook (installed once; idle unless a pure test is running in
# this thread) that refuses the operations by which netns_kit reaches the kernel.


class PureTestTouchedKernel(RuntimeError):
    """A test marked pure reached for the kernel."""


# Namespace files (setns needs one, a named namespace is one) and the kernel's network settings.
_KERNEL_PATHS = re.compile(r"/run/netns(/|$)|/proc/[^/]+/(task/[^/]+/)?ns/|/proc/sys/net/")
_watch: dict[str, Any] = {"thread": None, "seen": []}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _watch["thread"] != threading.get_ident():
        return
    what = None
    if event == "socket.__new__" and len(args) > 1 and args[1] == socket.AF_NETLINK:
        what = "opened a netlink socket"
    elif event == "ctypes.dlopen" and "nftables" in str(args[0] if args else ""):
        what = "loaded libnftables"
    elif event in ("open", "os.mkdir") and args and isinstance(args[0], str | bytes):
        path = os.fsdecode(args[0])
        if _KERNEL_PATHS.match(path):
            what = f"opened {path}"
    if what is not None:
        _watch["seen"].append(what)
        raise PureTestTouchedKernel(f"a pure test {what}; mark it kernel (or move it to a kernel module)")


sys.addaudithook(_audit)


def _watched(item: pytest.Item) -> Generator[None, Any, Any]:
    if item.get_closest_marker("pure") is None:
        return (yield)
    _watch["thread"], _watch["seen"] = threading.get_ident(), []
    try:
        result = yield
    finally:
        _watch["thread"] = None
    if _watch["seen"]:  # even if the test caught the error
        raise PureTestTouchedKernel(
            f"{item.nodeid} is marked pure but {', '.join(dict.fromkeys(_watch['seen']))}; it needs the kernel")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _watched(item))
