"""``import netns_kit`` and the pytest plugin load nothing heavy until a name or fixture is used.

Installing netns_kit registers its pytest plugin in every pytest run of the environment, so the
plugin's start-up imports are pinned here: pytest only, no pyroute2, no libnftables binding, none
of netns_kit's own modules. Each check runs in a fresh interpreter (this process has long since
imported everything).
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import netns_kit

pytestmark = pytest.mark.pure

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEAVY = ("pyroute2", "nftables")

LOADED = textwrap.dedent("""
    import json, sys
    {statement}
    print(json.dumps(sorted(m for m in sys.modules
                            if m.split(".")[0] in ("netns_kit", "pyroute2", "nftables"))))
""")


def loaded_after(statement: str) -> list[str]:
    """The netns_kit, pyroute2 and nftables modules a fresh interpreter holds after ``statement``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", LOADED.format(statement=statement)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    modules: list[str] = json.loads(res.stdout)
    return modules


def test_the_plugin_module_imports_nothing_of_the_library() -> None:
    assert loaded_after("import netns_kit.pytest_plugin") == ["netns_kit", "netns_kit.pytest_plugin"]


def test_import_netns_kit_imports_no_submodule() -> None:
    assert loaded_after("import netns_kit") == ["netns_kit"]


def test_a_name_loads_its_module_on_first_use() -> None:
    modules = loaded_after("from netns_kit import ValidationError")
    assert "netns_kit.errors" in modules and not any(m.startswith(HEAVY) for m in modules)
    assert "netns_kit.network" not in modules
    modules = loaded_after("import netns_kit\nnetns_kit.Network")
    assert {"netns_kit.network", "pyroute2"} <= set(modules)


def test_submodules_are_attributes_as_before() -> None:
    code = ("import netns_kit\n"
            "assert netns_kit.errors.ValidationError.__name__ == 'ValidationError'\n"
            "assert netns_kit.testing.named_namespaces is not None\n"
            "assert not hasattr(netns_kit, 'no_such_module')")
    modules = loaded_after(code)
    assert {"netns_kit.errors", "netns_kit.testing"} <= set(modules)


def test_attach_stays_the_function_when_its_module_is_imported() -> None:
    code = ("import netns_kit.attach, netns_kit, types\n"
            "assert not isinstance(netns_kit.attach, types.ModuleType), netns_kit.attach\n"
            "assert netns_kit.attach is netns_kit.attach.__globals__['attach']")
    assert "netns_kit.attach" in loaded_after(code)


PROBE = '''
import sys


def test_probe(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("netns_kit")
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pyroute2", "nftables")
                   or m.startswith("netns_kit.") and m != "netns_kit.pytest_plugin")
    assert heavy == [], heavy
'''


def test_a_pytest_run_with_the_plugin_loads_no_library_module(tmp_path: pathlib.Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_ADDOPTS", None)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "netns_kit",
                          str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert res.returncode == 0 and "1 passed" in res.stdout, res.stdout + res.stderr


def _type_checking_names() -> set[str]:
    tree = ast.parse(pathlib.Path(netns_kit.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    return {alias.asname or alias.name for node in block.body if isinstance(node, ast.ImportFrom)
            for alias in node.names}


def test_all_the_lazy_table_and_the_type_checking_imports_agree() -> None:
    exports = netns_kit._EXPORTS
    assert set(netns_kit.__all__) == set(exports) == _type_checking_names()
    for name, module in exports.items():
        value = getattr(netns_kit, name)
        assert value is getattr(sys.modules["netns_kit" + module], name), name
    assert set(netns_kit.__all__) <= set(dir(netns_kit))
    with pytest.raises(AttributeError, match="no attribute 'Nowhere'"):
        netns_kit.Nowhere  # noqa: B018
