"""Rollback: a Transaction builds N endpoints with netns_kit, then fails at the very end.

``setup`` times the build and the rollback separately (reported as ``build_s`` and
``rollback_s``); the worker then checks that nothing is left behind.
"""

from __future__ import annotations

import time
from typing import Any

import netns_kit as nk
from benchmarks.approach_netns_kit import NetnsKit


class _Fail(Exception):
    pass


class Rollback(NetnsKit):
    prefix = "brb"
    note = "Transaction of N endpoints that raises after the last one"

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.extra: dict[str, Any] = {}

    def setup(self) -> None:
        t0 = time.perf_counter()
        tx = nk.Transaction()
        try:
            with tx:
                for i in range(1, self.n + 1):
                    self.build_one(i)
                t1 = time.perf_counter()
                steps = getattr(tx, "undo_steps", None) or getattr(tx, "changes", [])
                self.extra["undone"] = len(steps)
                raise _Fail("fail at the end")
        except _Fail:
            t2 = time.perf_counter()
        self.extra["build_s"] = t1 - t0
        self.extra["rollback_s"] = t2 - t1

    def teardown(self) -> None:
        pass  # the rollback removed the endpoints; cleanup() detaches the bridge


def make(n: int) -> Rollback:
    return Rollback(n)
