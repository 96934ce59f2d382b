"""Packaging facts agree with each other (pure): one version, one license, a changelog entry per release.

The version is written once, as ``__version__`` in netns_kit/__init__.py; pyproject.toml reads it
(``[tool.setuptools.dynamic]``) and docs/conf.py parses it; the installed metadata follows it once
the package is reinstalled (scripts/setup.sh does that on every run of scripts/test.sh).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import runpy
import sys
import tomllib
from pathlib import Path

import netns_kit

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _written_version() -> str:
    """The literal of the one ``__version__ = "..."`` line, as setuptools reads it (without importing)."""
    tree = ast.parse((REPO / "netns_kit" / "__init__.py").read_text(encoding="utf-8"))
    values = [node.value.value for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
              and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)]
    assert len(values) == 1 and isinstance(values[0], str), values
    return values[0]


def test_version_is_written_once_and_read_everywhere() -> None:
    version = _written_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", version), version
    assert netns_kit.__version__ == version
    project = PYPROJECT["project"]
    assert "version" not in project, "pyproject.toml must not write the version; it reads netns_kit.__version__"
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "netns_kit.__version__"}


def test_docs_release_is_the_package_version() -> None:
    saved = list(sys.path)
    try:
        conf = runpy.run_path(str(REPO / "docs" / "conf.py"))
    finally:
        sys.path[:] = saved
    assert conf["release"] == _written_version()


def test_installed_metadata_is_the_package_version() -> None:
    installed = importlib.metadata.version("netns-kit")
    assert installed == _written_version(), (
        f"installed metadata says {installed}: reinstall (bash scripts/setup.sh, or .venv/bin/pip install -e .)")


def test_changelog_has_an_entry_for_the_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text
    assert re.search(rf"^## \[{re.escape(_written_version())}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M), (
        f"CHANGELOG.md has no '## [{_written_version()}] - YYYY-MM-DD' heading")


def test_license_file_is_the_declared_license() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
