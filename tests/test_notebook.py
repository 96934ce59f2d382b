"""examples/notebook.ipynb executes top to bottom (with nbclient, a real ipykernel) on the real kernel."""

from __future__ import annotations

import pathlib

import nbformat
from nbclient import NotebookClient

from netns_kit import Namespace
from netns_kit.testing import named_namespaces

NOTEBOOK = pathlib.Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"


def _text(cell: nbformat.NotebookNode) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o.get("text", ""))
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
            out.append(o["data"].get("text/html", ""))
            out.append(o["data"].get("image/svg+xml", ""))
    return "".join(out)


def test_notebook_runs(host: Namespace, tmp_path: pathlib.Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    # The kernel is forked from this thread, so it lives in this test's fresh host namespace.
    nb.cells.append(nbformat.v4.new_code_cell('import os; print("kernel netns", os.stat("/proc/self/ns/net").st_ino)'))  # type: ignore[no-untyped-call]
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    for expected in [
        "asyncio loop running in this thread: True",
        "ip netns add pweb",
        "host mode sees the host's interfaces: True",
        "none mode has only: ['lo']",
        "container mode shares web's namespace: True",
        "side reaches web's server on its own localhost: 200",
        "db -> cache (same network): True",
        "db -> web (other network): False",
        "host -> 127.0.0.1:8080 ->",
        "refused:",
        "test01 pings its gateway: True",
        "server still running: False",
        "named namespaces left: none",
        f"kernel netns {host.identity[1]}",   # the kernel ran in this test's throwaway host
    ]:
        assert expected in text, f"{expected!r} not in the notebook's output:\n{text[-3000:]}"
    assert "<svg" in text and "<table" in text
    assert named_namespaces() == set()
    assert [link.name for link in host.links()] == ["lo"]
