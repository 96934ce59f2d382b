"""The main demo: runs every example in order and prints what each built and checked.

Run it through ``bash scripts/demo.sh`` (it sets everything up and wraps the demo in a
throwaway namespace, so the machine's own network is never changed).
"""

from __future__ import annotations

import importlib.util
import pathlib

HERE = pathlib.Path(__file__).resolve().parent

# Each entry is a file in examples/ with a ``main() -> None`` that prints what it does.
EXAMPLES = [
    "primitives.py",
    "modes.py",
    "nat.py",
    "pipework.py",
    "topology.py",
    "topology_files.py",
    "harness.py",
    "faults.py",
    "overlay.py",
    "rootless.py",
    "cni.py",
    "names.py",
]


def run_example(filename: str) -> None:
    spec = importlib.util.spec_from_file_location(filename[:-3], HERE / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()


def main() -> None:
    for filename in EXAMPLES:
        print(f"\n=== {filename} " + "=" * (60 - len(filename)))
        run_example(filename)
    print("\nAll examples ran; everything they built has been removed.")


if __name__ == "__main__":
    main()
