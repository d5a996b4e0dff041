"""End-to-end: the real app in headless Chromium, the way a person uses it.

The tests start `streamlit run streamlit_app.py` on a free localhost port and drive
Debian's Chromium (/usr/bin/chromium) through Playwright; Playwright never downloads a
browser of its own. A screenshot after each step goes to test-artifacts/e2e/ so a person
can look at what the browser showed; the assertions are on the page itself.
"""

from __future__ import annotations

import random
import re

import pytest

from hematovision.model.classifier import display_name
from hematovision.model.imaging import ImageError, load_image
from scripts.loadtest import (
    CHROMIUM,
    IMAGE_WIDTH_WHEN_SETTLED,
    MAP_TITLES,
    VIEWPORT,
    streamlit_server,
)
from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts" / "e2e"
SAMPLE = REPO_ROOT / "samples" / "neutrophil-1.jpeg"
STEP_S = 120  # a page step: classification, or Grad-CAM on a cold model
EXPLAIN_S = 420  # all four overlays; LIME and SHAP run a few hundred model evaluations each

# Every browser test module carries it: without the browser they skip, saying what to install.
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser tests need Debian's chromium at /usr/bin/chromium: apt-get install chromium",
)
pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]

# Pinned in requirements.txt: a missing Playwright is a broken install, not a reason to skip.
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def app_url():
    """`streamlit run streamlit_app.py` on a free port (scripts/loadtest.py starts it the same
    way), stopped afterwards whatever happens."""
    with streamlit_server(ARTIFACTS / "streamlit.log") as (url, _server):
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser context (so a fresh Streamlit session) on the app's home page."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(STEP_S * 1000)
    expect.set_options(timeout=STEP_S * 1000)  # expect() has its own 5 s default
    try:
        page.goto(app_url)
        expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
        yield page
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    """An artifact for people, not an assertion."""
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def open_classify(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Classify").click()
    expect(page.get_by_role("heading", name="Classify a white blood cell")).to_be_visible()


def upload(page: Page, files) -> None:
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(files)


def test_classify_a_sample_upload_then_explain_it_four_ways(page: Page, classifier) -> None:
    """An uploaded photo gets its predicted type, the probability chart, and four overlays."""
    expected = display_name(classifier.predict_cells(SAMPLE.read_bytes())[0].label)
    screenshot(page, "01-home")

    open_classify(page)
    screenshot(page, "02-classify")

    upload(page, SAMPLE)
    metric = page.get_by_test_id("stMetric").filter(has_text="Predicted type")
    expect(metric.get_by_test_id("stMetricValue")).to_have_text(expected)
    expect(page.get_by_role("heading", name=f"Result: {SAMPLE.name}")).to_be_visible()
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart.locator(".bars .point")).to_have_count(4)  # one bar per class, drawn by plotly.js
    expect(chart).to_contain_text(expected)
    screenshot(page, "03-classified")

    page.get_by_role("button", name="Explain this image").click()
    expect(page.get_by_role("heading", name="Explain the decision")).to_be_visible()
    for title in MAP_TITLES:
        heading = page.get_by_role("heading", name=title, exact=True)
        card = page.get_by_test_id("stColumn").filter(has=heading)
        image = card.get_by_test_id("stImage").locator("img")
        expect(image).to_be_visible(timeout=EXPLAIN_S * 1000)
        expect(card).to_contain_text("model evaluation")  # the run's caption: it finished
        expect(card.get_by_test_id("stDownloadButton")).to_be_visible()
        assert image.evaluate(IMAGE_WIDTH_WHEN_SETTLED) > 0, f"{title}: broken image"
    expect(page.get_by_text("failed:")).to_have_count(0)
    screenshot(page, "04-explained")


def test_a_file_that_is_not_an_image_gets_the_loaders_message(page: Page) -> None:
    """Random bytes named cell.png replace the shown result with the loader's own message."""
    junk = random.Random(6).randbytes(4096)
    with pytest.raises(ImageError) as refused:
        load_image(junk)
    message = str(refused.value)

    open_classify(page)
    upload(page, SAMPLE)
    predicted = page.get_by_test_id("stMetric").filter(has_text="Predicted type")
    expect(predicted).to_be_visible()
    screenshot(page, "05-before-bad-file")

    upload(page, {"name": "cell.png", "mimeType": "image/png", "buffer": junk})
    alert = page.get_by_test_id("stAlert").filter(has_text="This file cannot be used.")
    expect(alert).to_contain_text(message)
    expect(predicted).to_have_count(0)  # the earlier result is gone, not shown beside the error
    screenshot(page, "06-bad-file")


def unfamiliar_count(alert_text: str) -> int:
    """'3 of 36 cells look unlike the labs…' (after the alert's icon name) -> 3."""
    return int(re.search(r"(\d+) of \d+ cells look unlike", alert_text).group(1))


def test_a_lab_profile_built_from_a_batch_changes_what_the_model_says(page: Page) -> None:
    """Issue 14: a batch from an unseen lab, a profile built from it, and the change seen on two pages."""
    lisc = REPO_ROOT.parent / "shared" / "data" / "lisc"
    per_type = [sorted((lisc / name).glob("*.png"))[:9] for name in ("eosinophil", "lymphocyte", "monocyte",
                                                                      "neutrophil")]
    files = [path for group in zip(*per_type) for path in group]
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Batch differential").click()
    expect(page.get_by_role("heading", name="Batch differential")).to_be_visible()
    page.get_by_test_id("stFileUploader").first.locator("input[type=file]").set_input_files(files)
    page.get_by_role("button", name=f"Classify {len(files)} files").click()
    unlike = page.get_by_test_id("stAlert").filter(has_text="look unlike the labs")
    expect(unlike).to_be_visible()
    unfamiliar_before = unfamiliar_count(unlike.inner_text())
    screenshot(page, "07-batch-unseen-lab")

    page.get_by_text("Lab profile: fit the model to your lab").click()
    page.get_by_role("button", name="Build from this batch").click()
    expect(page.get_by_test_id("stAlert").filter(has_text="Now using lab profile")).to_be_visible()
    expect(page.get_by_test_id("stSidebar")).to_contain_text("Lab profile")
    after = page.get_by_test_id("stAlert").filter(has_text="look unlike the labs")
    if after.count():
        assert unfamiliar_count(after.inner_text()) < unfamiliar_before
    screenshot(page, "08-batch-with-profile")

    open_classify(page)
    upload(page, files[2])
    expect(page.get_by_test_id("stMetric").filter(has_text="Predicted type")).to_be_visible()
    expect(page.get_by_text("Adapted by lab profile")).to_be_visible()
    screenshot(page, "09-classify-with-profile")
