"""Test helper: remove the cgroup directories a container engine made under a cgroup parent of ours."""

from __future__ import annotations

import contextlib
import glob
import os
import time


def remove_cgroups(parent: str) -> None:
    """Remove the (by now empty) cgroup directories under ``parent`` in every hierarchy, deepest first;
    an engine's shim (conmon, containerd-shim) leaves its cgroup a moment after the container goes."""
    deadline = time.monotonic() + 10
    while True:
        left = [top + parent for top in glob.glob("/sys/fs/cgroup/*") if os.path.isdir(top + parent)]
        for base in left:
            for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda x: -len(x[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.2)
