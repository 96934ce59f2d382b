"""Shell recipe: one ``ip``/``nft`` process per step (as pipework and the classic tutorial do).

The loop runs in one bash process (benchmarks/shell_recipe.sh); every step inside it is a
separate ``ip`` or ``nft`` process. Published ports are one DNAT rule each; teardown deletes
the namespaces one by one, then the DNAT rules with one chain flush.
"""

from __future__ import annotations

import os
import subprocess

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shell_recipe.sh")


class Shell:
    prefix = "bsh"
    note = "bash loop, one ip/nft process per step; the peak RSS and fds are the Python driver's"

    def __init__(self, n: int) -> None:
        self.n = n

    def _run(self, phase: str) -> None:
        subprocess.run(["bash", SCRIPT, phase, str(self.n), self.prefix], check=True)

    def prepare(self) -> None:
        self._run("prepare")

    def setup(self) -> None:
        self._run("setup")

    def teardown(self) -> None:
        self._run("teardown")

    def cleanup(self) -> None:
        self._run("cleanup")


def make(n: int) -> Shell:
    return Shell(n)
