"""Driving the real app headless with streamlit.testing's AppTest, for the app test modules.

Every test starts the entry point (``streamlit_app.py``, with its navigation) and moves
with ``AppTest.switch_page``, as a person would.
"""

from __future__ import annotations

import sys

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT

if str(REPO_ROOT) not in sys.path:  # the app/ package lives at the repository root
    sys.path.insert(0, str(REPO_ROOT))
APP = REPO_ROOT / "streamlit_app.py"
# Generous: the first run in a process loads TensorFlow and the model (a few seconds on
# 2 cores); explanation runs use small LIME/SHAP settings but still take seconds.
TIMEOUT = 180


def start(page: str | None = None, timeout: float = TIMEOUT) -> AppTest:
    """The app, run once (it must not raise), then switched to ``page`` if one is given."""
    at = AppTest.from_file(str(APP), default_timeout=timeout).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def predicted_label(at: AppTest) -> str | None:
    """The Classify page's "Predicted type", or None when it shows no result."""
    metrics = [m for m in at.metric if m.label == "Predicted type"]
    return metrics[0].value if metrics else None
