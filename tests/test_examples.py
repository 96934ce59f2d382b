"""Every example in examples/ runs, each in its own throwaway host namespace."""

from __future__ import annotations

import pathlib
import sys

import pytest

from netns_kit import Namespace

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "demo.py")


def test_demo_lists_every_example() -> None:
    text = (EXAMPLES / "demo.py").read_text()
    for name in SCRIPTS:
        assert f'"{name}"' in text, f"add {name} to EXAMPLES in examples/demo.py"


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(host: Namespace, script: str) -> None:
    res = host.run([sys.executable, str(EXAMPLES / script)], timeout=300)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout}\n{res.stderr}"
    assert res.stdout.strip(), f"{script} printed nothing"
    assert [link.name for link in host.links()] == ["lo"], f"{script} left interfaces behind"
