"""pytest plugin (entry point ``netns_kit``): fixtures that give each test a throwaway host and network.

Installed with netns_kit; no import is needed. Every fixture undoes what it made after the test,
whether the test passed or failed, and a leftover is reported as an error of the test.

- ``netns_host``: the test runs with its thread inside a fresh network namespace that plays the
  host; whatever the test builds there disappears afterwards. Named namespaces left in
  /run/netns fail the test.
- ``netns_network``: a user-defined :class:`~netns_kit.Network` (bridge, subnet from the address
  pools, firewall policy) on that host, removed after the test with all its endpoints.
- ``netns_endpoints``: a factory; ``netns_endpoints(3)`` returns three new
  :class:`~netns_kit.Endpoint` objects (each its own named namespace) on ``netns_network``
  (``network=`` picks another network, ``mode=`` another mode, other keywords go to
  ``Endpoint``). They are removed after the test, newest first, and every process started in
  them through netns_kit is stopped.

Without root (no CAP_NET_ADMIN or CAP_SYS_ADMIN), ``netns_host`` first moves the test process into
rootless mode (:func:`netns_kit.testing.enter_rootless`: a user namespace of its own, where it is
root), and everything above is built there; see "Rootless" in docs/testing.md.

Loading the plugin costs nothing: this module imports only pytest at start-up; the library
(and pyroute2, libnftables) is imported by the first test that uses one of the fixtures.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .modes import Endpoint, NetworkMode
    from .namespace import Namespace
    from .network import Network

EndpointFactory = Callable[..., "list[Endpoint]"]

_serial = itertools.count()


@pytest.fixture
def netns_host() -> Iterator[Namespace]:
    """A fresh, empty host namespace for this test (the calling thread is switched into it; without
    root, inside the process's rootless user namespace)."""
    from .testing import isolated_host

    with isolated_host() as host:
        yield host


@pytest.fixture
def netns_network(netns_host: Namespace) -> Iterator[Network]:
    """A created user-defined network on the test's host; removed (endpoints included) afterwards."""
    from .network import Network

    net = Network(f"testnet{next(_serial)}", host=netns_host).create()
    try:
        yield net
    finally:
        net.remove()


@pytest.fixture
def netns_endpoints(netns_host: Namespace, netns_network: Network) -> Iterator[EndpointFactory]:
    """``make(n=1, *, network=None, mode=None, prefix="ep", **endpoint_options) -> list[Endpoint]``."""
    from .modes import CustomMode, Endpoint

    made: list[Endpoint] = []

    def make(n: int = 1, *, network: Network | None = None, mode: NetworkMode | str | None = None,
             prefix: str = "ep", **options: Any) -> list[Endpoint]:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"netns_endpoints needs a positive count, got {n!r}")
        out = []
        for _ in range(n):
            chosen = mode if mode is not None else CustomMode(network if network is not None else netns_network)
            ep = Endpoint(f"{prefix}{next(_serial)}", mode=chosen, host=netns_host, **options).create()
            made.append(ep)
            out.append(ep)
        return out

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for ep in reversed(made):
            try:
                ep.remove()
            except Exception as exc:  # keep going: every endpoint gets removed
                errors.append(exc)
        if errors:
            raise errors[0]
