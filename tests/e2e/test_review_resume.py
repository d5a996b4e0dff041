"""End-to-end (issue 16): a batch review saved as a file in one browser session and resumed in a
fresh one, on the same images uploaded again, shows the same counts, reviews and changes.

Drives the real app in headless Chromium as ``test_browser.py`` does (its fixtures start the
server and the browser); the review file goes through the browser's own download.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.state import card_key
from hematovision.model.classifier import display_name
from tests.conftest import REPO_ROOT
from tests.e2e.test_browser import (  # noqa: F401 (fixtures)
    ARTIFACTS,
    NEEDS_CHROMIUM,
    STEP_S,
    app_url,
    browser,
    screenshot,
)

pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]

from playwright.sync_api import Browser, Page, expect  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

FILES = [REPO_ROOT / "samples" / f"{name}.jpeg" for name in ("neutrophil-1", "lymphocyte-1", "monocyte-1",
                                                             "eosinophil-1")]


def fresh_batch(browser: Browser, url: str) -> Page:
    """A new browser context (a new Streamlit session, as after a reload) with FILES classified."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(STEP_S * 1000)
    expect.set_options(timeout=STEP_S * 1000)
    page.goto(url)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Batch differential").click()
    expect(page.get_by_role("heading", name="Batch differential")).to_be_visible()
    page.get_by_test_id("stFileUploader").first.locator("input[type=file]").set_input_files(FILES)
    page.get_by_role("button", name=f"Classify {len(FILES)} files").click()
    expect(metric(page, "White cells")).to_have_text(str(len(FILES)))
    expect(page.get_by_role("heading", name="Export")).to_be_visible()  # the run has reached the page's end
    return page


def metric(page: Page, label: str):
    """The metric's value; ``first``, since while the script reruns the old element can linger beside the new."""
    label_element = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=label_element).get_by_test_id("stMetricValue").first


def differential_table(page: Page) -> str:
    return page.get_by_test_id("stDataFrame").filter(has_text="95% interval").inner_text()


def review_box(page: Page, image: Path):
    """The 'Reviewed as' box on the card of this image's (only) cell. Uploads finish in any order,
    so the card is found by its key, which holds the image's sha256, not by its place."""
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    return page.locator(f".st-key-{card_key(f'{digest}:1')}").get_by_test_id("stSelectbox")


def choose(page: Page, selectbox, option: str) -> None:
    """Pick an option of a selectbox. A click that lands while the script reruns can hit the
    element being replaced and open nothing, so the list is opened again until it shows."""
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(5):
        selectbox.get_by_role("button", name="Open").click()
        try:
            choice.wait_for(timeout=10_000)
        except PlaywrightTimeout:
            continue
        choice.click()
        return
    raise AssertionError(f"the selectbox never listed {option!r}")


def when_idle(page: Page) -> None:
    """Streamlit shows its status widget ("Running...") while the script reruns."""
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()


def save_review(page: Page) -> bytes:
    """The file 'Save review' downloads. A click that lands while a rerun replaces the button
    (and the file behind it) downloads nothing, so wait for the app to settle, and click again
    if no file comes."""
    for _ in range(4):
        when_idle(page)
        try:
            with page.expect_download(timeout=30_000) as saving:
                page.get_by_role("button", name="Save review").click()
        except PlaywrightTimeout:
            continue
        return Path(saving.value.path()).read_bytes()
    raise AssertionError("'Save review' never gave a file")


def open_review_panel(page: Page) -> None:
    page.get_by_text("Save or resume the review").click()
    expect(page.get_by_role("button", name="Save review")).to_be_visible()


def test_a_review_saved_to_a_file_resumes_after_a_reload(browser: Browser, app_url: str, classifier) -> None:  # noqa: F811
    first_call = classifier.predict_cells(FILES[0].read_bytes())[0].label
    moved_to = "Monocyte" if first_call != "MONOCYTE" else "Lymphocyte"
    page = fresh_batch(browser, app_url)
    choose(page, review_box(page, FILES[0]), moved_to)
    expect(metric(page, "Changed by you")).to_have_text("1")
    open_review_panel(page)
    initials = page.get_by_role("textbox", name="Reviewer initials")
    initials.fill("JK")
    initials.press("Enter")
    expect(metric(page, "Reviewed")).to_have_text(f"1 / {len(FILES)}")
    before = differential_table(page)
    screenshot(page, "10-review-before-save")
    saved = save_review(page)
    page.context.close()

    page = fresh_batch(browser, app_url)
    expect(metric(page, "Reviewed")).to_have_text(f"0 / {len(FILES)}")
    expect(review_box(page, FILES[0]).get_by_role("combobox")).to_have_value("Not reviewed")
    open_review_panel(page)
    resume = page.get_by_test_id("stFileUploader").filter(has_text="Resume review")
    resume.locator("input[type=file]").set_input_files(
        {"name": "review.json", "mimeType": "application/json", "buffer": saved})
    expect(page.get_by_test_id("stAlert").filter(has_text="Resumed the review by JK")).to_contain_text(
        f"{len(FILES)} cells matched")
    expect(metric(page, "Reviewed")).to_have_text(f"1 / {len(FILES)}")
    expect(metric(page, "Changed by you")).to_have_text("1")
    expect(review_box(page, FILES[0]).get_by_role("combobox")).to_have_value(moved_to)
    expect(page.get_by_role("textbox", name="Reviewer initials")).to_have_value("JK")
    assert differential_table(page) == before
    assert display_name(first_call) != moved_to
    screenshot(page, "11-review-resumed")
    page.context.close()
