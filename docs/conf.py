"""Sphinx configuration: the docs site of netns_kit (Markdown pages through MyST, API from docstrings).

Build: ``.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html``
(tests/test_docs.py runs exactly this, warnings as errors).
"""

from __future__ import annotations

import ast
import os
import sys

sys.path.insert(0, os.path.abspath(".."))


def _version() -> str:
    """``__version__`` from netns_kit/__init__.py (the one place it is written), read without importing."""
    init = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "netns_kit", "__init__.py")
    with open(init, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "__version__" and isinstance(node.value, ast.Constant)):
            return str(node.value.value)
    raise RuntimeError(f"no __version__ = '...' line in {init}")


project = "netns_kit"
author = "netns_kit developers"
copyright = "netns_kit developers"
release = _version()

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "both"

html_theme = "alabaster"
html_title = "netns_kit"
html_static_path: list[str] = []


# The navigation (index.md) names the pages in reading order, including those other parts of the
# project write (modes.md, nat.md, ...). Entries whose page does not exist yet are dropped, and any
# page not named there is added at the end in name order, so a new page is never orphaned.


def _nav(app: object, docname: str, source: list[str]) -> None:
    if docname != "index":
        return
    text = source[0]
    start = text.index("```{toctree}")
    end = text.index("```", start + 3)
    lines = text[start:end].splitlines()
    head = [ln for ln in lines if not ln.strip() or ln.startswith((":", "```"))]
    named = [ln.strip() for ln in lines if ln.strip() and not ln.startswith((":", "```"))]
    found = app.env.found_docs  # type: ignore[attr-defined]  # what Sphinx itself will read
    pages = sorted(d for d in found if d != "index" and "/" not in d)
    entries = [n for n in named if n in pages] + [p for p in pages if p not in named]
    source[0] = text[:start] + "\n".join(head).rstrip("\n") + "\n\n" + "\n".join(entries) + "\n" + text[end:]


def setup(app: object) -> None:
    app.connect("source-read", _nav)  # type: ignore[attr-defined]
