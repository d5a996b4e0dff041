"""The core stays free of the app: every module of ``hematovision`` imports without Streamlit or ``app/``."""

from __future__ import annotations

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
