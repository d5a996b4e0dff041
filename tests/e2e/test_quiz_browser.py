"""End-to-end: the Quiz page's point and check in headless Chromium, with a real click.

AppTest cannot click a custom component (tests/app/test_teaching_pages.py sets its value
instead), so this test clicks the image that streamlit-image-coordinates shows, submits a
class, and checks the score on the page against the model's own Grad-CAM map.
"""

from __future__ import annotations

import re

import pytest

from app.explanations import TEACHING_METHOD, TEACHING_SEED
from app.texts import format_percent
from hematovision.explanation.explainers import explain
from hematovision.workflows.teaching import list_quiz_cells, pointing_score
from tests.e2e.test_browser import NEEDS_CHROMIUM, app_url, browser, page, screenshot  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, NEEDS_CHROMIUM]

from playwright.sync_api import Page, expect  # noqa: E402

CLICK = (0.4, 0.55)  # where the test clicks, as fractions of the shown image


def test_a_click_on_the_quiz_image_is_scored_against_the_model_map(page: Page, classifier) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Quiz").click()
    expect(page.get_by_role("heading", name="Quiz")).to_be_visible()
    image = page.frame_locator("iframe[title*='streamlit_image_coordinates']").locator("img#image")
    expect(image).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('iframe')].some(f => {"
        " const img = f.contentDocument && f.contentDocument.querySelector('img#image');"
        " return img && img.complete && img.naturalWidth > 0 && img.width > 0; })")
    screenshot(page, "quiz-01-question")

    # Submitting a class before clicking is refused with a reason.
    page.get_by_test_id("stRadio").get_by_text("Eosinophil").click()
    page.get_by_role("button", name="Submit answer").click()
    expect(page.get_by_text("Click on the image where you see the deciding feature first.")).to_be_visible()

    width, height = image.evaluate("img => [img.width, img.height]")
    x, y = round(CLICK[0] * width), round(CLICK[1] * height)
    image.click(position={"x": x, "y": y})
    expect(page.get_by_text("Click again to move your mark.")).to_be_visible()
    screenshot(page, "quiz-02-clicked")

    page.get_by_role("button", name="Submit answer").click()
    expect(page.get_by_text(re.compile(r"Right\.|Not quite\."))).to_be_visible()
    expect(page.get_by_text("the circle is your click")).to_be_visible()
    click_metric = page.get_by_test_id("stMetric").filter(has_text="Your click")
    expect(click_metric.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^\d+%$"))
    score_metric = page.get_by_test_id("stMetric").filter(has_text="Score")
    expect(score_metric.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^[01] / 1$"))
    screenshot(page, "quiz-03-scored")

    # The page names the cell's original file; score the same click on the true class's map here.
    text = page.inner_text("body")
    [cell] = [cell for cell in list_quiz_cells() if cell.original_file in text]
    crop = classifier.predict_cells(cell.read_bytes())[0].model_input
    heat = explain(classifier, crop, method=TEACHING_METHOD, target=cell.class_name,
                   seed=TEACHING_SEED).attribution
    # The browser reports whole pixels, so allow the click to land one pixel either way.
    expected = {format_percent(pointing_score(heat, ((x + dx) / width, (y + dy) / height)), 0)
                for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    assert click_metric.get_by_test_id("stMetricValue").inner_text() in expected
