"""The layers hold: the core stays free of the app, and its sub-packages only import downward."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO_ROOT

# Imports every core module in a fresh interpreter (``__main__`` would run the CLI) and
# prints the app-side packages that got loaded on the way.
IMPORT_ALL = """
import importlib, pkgutil, sys
import hematovision
for module in pkgutil.walk_packages(hematovision.__path__, "hematovision."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
print(sorted(name for name in sys.modules if name.split(".")[0] in ("streamlit", "app")))
"""


def test_the_core_package_never_imports_streamlit_or_the_app():
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# Lower layers first: each sub-package may import its own layer and those before it.
CORE_LAYERS = ["model", "explanation", "workflows", "interfaces"]
# Modules beside the layers, and the highest layer each may import (charts serve them all).
TOP_LEVEL = {"__init__.py": "model", "__main__.py": "interfaces", "charts.py": "model"}


def _hematovision_imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_core_sub_packages_import_only_their_own_layer_or_lower_ones():
    package = REPO_ROOT / "hematovision"
    highest = {path: CORE_LAYERS.index(name) for name in CORE_LAYERS for path in (package / name).rglob("*.py")}
    highest.update({package / name: CORE_LAYERS.index(layer) for name, layer in TOP_LEVEL.items()})
    upward = []
    for path, layer in sorted(highest.items()):
        for module in _hematovision_imports(path):
            parts = module.split(".")
            if parts[0] == "hematovision" and len(parts) > 1 and parts[1] in CORE_LAYERS:
                if CORE_LAYERS.index(parts[1]) > layer:
                    upward.append(f"{path.relative_to(REPO_ROOT)} imports {module}")
    assert sorted(p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(CORE_LAYERS)
    assert sorted(p.name for p in package.glob("*.py")) == sorted(TOP_LEVEL)
    assert upward == []
