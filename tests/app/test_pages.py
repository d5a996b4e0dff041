"""Every page runs; the Home page.

Driven headless through streamlit.testing.v1.AppTest from the real entry point (see
``tests/app/driver.py``).
"""

from __future__ import annotations

import pytest

from hematovision.model.classifier import CLASS_NAMES, display_name
from tests.app.driver import start
from tests.app.pages import PAGES


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_an_image(page):
    at = start(page)
    assert not at.exception, at.exception
    assert at.title, f"{page} shows no title"


def test_home_describes_the_four_cells_and_the_disclaimer():
    at = start()
    text = " ".join(m.value for m in at.markdown) + " ".join(i.value for i in at.info)
    for name in CLASS_NAMES:
        assert display_name(name) in text
    assert "not a diagnosis" in text.lower()

