"""netns_kit the way docs/modes.md shows it first: a user-defined network, endpoints in custom mode.

This is the Docker-shaped path users start with (``docker network create`` + ``docker run -p``)::

    net = nk.Network("bench", subnet="10.77.0.0/16")
    net.create()                                                     # prepare (untimed)
    eps = [nk.Endpoint(f"x{i}", nk.CustomMode(net), publish=[f"{host_port(i)}:80"]).create()
           for i in 1..N]                                            # setup (timed)
    with nk.removal_batch():                                         # teardown (timed)
        for ep in eps:
            ep.remove()
    net.remove()                                                     # cleanup (untimed)

Each endpoint gets what the network gives it: a named namespace, a veth on the network's bridge
(IPv4-only network, so no IPv6 link-local), the next free address from the network's IPAM, the
gateway as default route, its published port, and the hosts files for name resolution among
the network's endpoints. It does more than the primitives path (:mod:`benchmarks.approach_netns_kit`),
which is given every address and name by the caller.

Flatness: setup is timed per endpoint, so the first and last tenth built are reported from every
run. A removal batch does its kernel work when the ``with`` block ends, for all endpoints at once,
so one batch has no per-endpoint times. For teardown, run.py therefore makes one more run per N
with ``teardown_in_tenths=True`` (``python -m benchmarks._worker netns_kit_network N --teardown-tenths``):
the same endpoints removed in three removal batches, the first tenth, the middle eight tenths,
then the last tenth, each batch timed. The first-tenth batch runs while the network still holds
all N endpoints, the last-tenth batch while it holds only a tenth of them, so
first-tenth / last-tenth per endpoint is the teardown's growth with N (the mirror image of setup's
last / first tenth). That run's totals are not mixed into the table's teardown medians, which
come from the one-batch runs as written above.
"""

from __future__ import annotations

import time
from typing import Any

import netns_kit as nk
from benchmarks._common import CONTAINER_PORT, SUBNET, flatness_extra, host_port, tenth_means


class NetnsKitNetwork:
    prefix = "x"
    note = ("Network + Endpoint(CustomMode(net), publish=[...]) per endpoint (automatic address, names); "
            "teardown: every ep.remove() in one removal_batch")

    def __init__(self, n: int, *, teardown_in_tenths: bool = False) -> None:
        self.n = n
        self.tenths = teardown_in_tenths
        self.net = nk.Network("bench", subnet=SUBNET)
        self.eps: list[nk.Endpoint] = []
        self.extra: dict[str, Any] = {}
        self._setup_times: list[float] = []

    def prepare(self) -> None:
        self.net.create()
        # the first use of nk.Endpoint and nk.CustomMode imports netns_kit.modes (the package imports
        # lazily): done here, untimed, as the primitives approach has its classes before it is timed
        _ = nk.Endpoint, nk.CustomMode

    def setup(self) -> None:
        clock = time.perf_counter
        net, eps, times = self.net, self.eps, self._setup_times
        for i in range(1, self.n + 1):
            t = clock()
            eps.append(nk.Endpoint(f"{self.prefix}{i}", nk.CustomMode(net),
                                   publish=[f"{host_port(i)}:{CONTAINER_PORT}"]).create())
            times.append(clock() - t)

    def _remove(self, eps: list[nk.Endpoint]) -> float:
        t = time.perf_counter()
        with nk.removal_batch():
            for ep in eps:
                ep.remove()
        return time.perf_counter() - t

    def teardown(self) -> None:
        if not self.tenths:
            self._remove(self.eps)
            s_first, s_last = tenth_means(self._setup_times)
            self.extra.update(setup_first_tenth_s=s_first, setup_last_tenth_s=s_last)
        else:
            k = max(1, self.n // 10) if self.n >= 2 else 0
            if not k:
                raise ValueError("a teardown in tenths needs at least 2 endpoints")
            first, middle, last = self.eps[:k], self.eps[k:-k], self.eps[-k:]
            t_first = self._remove(first) / len(first)
            t_middle = self._remove(middle) if middle else 0.0
            t_last = self._remove(last) / len(last)
            self.extra.update(flatness_extra(self._setup_times, [t_first] * k + [t_last] * k,
                                             "per endpoint of a removal batch of the first / the last tenth"))
            self.extra["teardown_mode"] = "tenths"
            self.extra["teardown_middle_s"] = t_middle
        self.eps.clear()

    def cleanup(self) -> None:
        self.net.remove()


def make(n: int, *, teardown_in_tenths: bool = False) -> NetnsKitNetwork:
    return NetnsKitNetwork(n, teardown_in_tenths=teardown_in_tenths)
