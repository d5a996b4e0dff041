"""The Atlas and Quiz pages, driven headless through streamlit.testing.v1.AppTest.

As in test_app.py, every test starts the real entry point (``streamlit_app.py``, with its
navigation) and moves with ``AppTest.switch_page``. The quiz's true class is read from
the quiz kept in session state, never hard-coded, since the questions are random per session.

The quiz's clickable image is a custom component (streamlit-image-coordinates). AppTest
cannot click it, but it does pass a value set under the component's key to the page, as
the browser does after a click: ``click`` sets that value. The image the component shows
is read back from its arguments (a PNG data URL). tests/e2e/test_quiz_browser.py clicks
the real component in Chromium.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from app.explanations import TEACHING_METHOD, TEACHING_SEED
from app.state import QUIZ, QUIZ_POINT_MODE, quiz_choice_key, quiz_point_key
from app.texts import format_percent
from hematovision.explanation.explainers import explain
from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.workflows.samples import list_samples
from hematovision.workflows.teaching import (
    CELL_NOTES,
    Quiz,
    QuizCell,
    list_quiz_cells,
    pointing_score,
)
from tests.app import driver as app_driver
from tests.app.driver import errors

ATLAS = "app_pages/atlas.py"
QUIZ_PAGE = "app_pages/quiz.py"
HOME = "app_pages/home.py"
TIMEOUT = 240  # the first run in a process loads TensorFlow; the atlas explains 12 images


def start(page: str) -> AppTest:
    at = app_driver.start(page, TIMEOUT)
    assert not at.exception, at.exception
    return at


def image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.get("image") for caption in image.captions]


# ---------------------------------------------------------------------------
# Atlas
# ---------------------------------------------------------------------------
def test_atlas_shows_every_class_with_its_notes_images_and_maps(classifier, explain_calls):
    calls = explain_calls

    at = start(ATLAS)
    assert not errors(at), errors(at)
    assert at.title[0].value == "Atlas of white cells"
    assert [s.value for s in at.subheader] == [notes.title for notes in CELL_NOTES.values()]
    text = " ".join(m.value for m in at.markdown)
    for notes in CELL_NOTES.values():
        assert notes.nucleus in text and notes.granules in text and notes.look_alikes in text

    samples = list_samples()
    captions = image_captions(at)
    for sample in samples:
        assert f"{sample.title} (data-set label)" in captions
    assert captions.count("Grad-CAM on the model's crop") == len(samples) == 12

    # The model's answer under each example, in page order (classes as tabbed, then by number).
    shown = [m.value for m in at.markdown if "Model: **" in m.value]
    in_page_order = [s for notes in CELL_NOTES.values() for s in samples
                     if s.class_name == notes.class_name]
    assert len(shown) == len(in_page_order)
    for line, sample in zip(shown, in_page_order):
        expected = classifier.predict_cells(sample.read_bytes())[0]
        assert f"Model: **{display_name(expected.label)}**" in line
        assert ("agrees with the label" in line) == (expected.label == sample.class_name)
    assert calls == ["gradcam"] * 12

    # Coming back costs nothing: every map comes from the cache.
    at.switch_page(HOME).run()
    at.switch_page(ATLAS).run()
    assert not at.exception, at.exception
    assert calls == ["gradcam"] * 12


# ---------------------------------------------------------------------------
# Quiz
# ---------------------------------------------------------------------------
CLICK_WIDTH = 400  # the width the browser shows the image at; the page only uses x / width


def current_quiz(at: AppTest) -> Quiz:
    quiz = at.session_state[QUIZ]
    assert isinstance(quiz, Quiz)
    return quiz


def shown_image(at: AppTest) -> np.ndarray | None:
    """The pixels the clickable question image shows, or None when there is none."""
    components = at.get("component_instance")
    if not components:
        return None
    [component] = components
    source = json.loads(component.proto.json_args)["src"]
    assert source.startswith("data:image/png;base64,")
    png = base64.b64decode(source.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def click(at: AppTest, x: float, y: float) -> AppTest:
    """What the browser sends after a click at (x, y), as fractions of the shown image."""
    quiz = current_quiz(at)
    at.session_state[quiz_point_key(quiz)] = {
        "x": round(x * CLICK_WIDTH), "y": round(y * CLICK_WIDTH),
        "width": CLICK_WIDTH, "height": CLICK_WIDTH, "unix_time": 1_700_000_000_000,
    }
    return at.run()


def answer(at: AppTest, class_name: str | None) -> AppTest:
    quiz = current_quiz(at)
    if class_name is not None:
        at.radio(key=quiz_choice_key(quiz)).set_value(class_name)
    [submit] = [b for b in at.button if b.label == "Submit answer"]
    return submit.click().run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def model_crop(classifier, cell: QuizCell) -> np.ndarray:
    return classifier.predict_cells(cell.read_bytes())[0].model_input


def test_the_quiz_shows_held_out_cells_never_an_atlas_cell(classifier):
    at = start(QUIZ_PAGE)
    assert not errors(at), errors(at)
    quiz = current_quiz(at)
    pool = {cell.key: cell for cell in list_quiz_cells()}
    atlas_crops = [model_crop(classifier, sample) for sample in list_samples()]
    atlas_bytes = {sample.read_bytes() for sample in list_samples()}

    # The image on the page is the model's crop of the quiz's current cell, and no Atlas crop.
    shown = shown_image(at)
    assert np.array_equal(shown, model_crop(classifier, quiz.current))
    assert not any(np.array_equal(shown, crop) for crop in atlas_crops)

    # Every question of several whole quizzes is a shipped quiz cell, never an Atlas image.
    for seed in range(5):
        quiz.restart(seed)
        while True:
            assert quiz.current.key in pool and quiz.current.read_bytes() not in atlas_bytes
            quiz.answer(quiz.current.class_name, (0.5, 0.5))
            if quiz.finished:
                break
            quiz.next_question()


def test_a_click_is_recorded_and_scored_against_the_model_map(classifier):
    at = start(QUIZ_PAGE)
    quiz = current_quiz(at)
    assert metric(at, "Score") == "0 / 0" and metric(at, "Pointing") == "–" and not at.dataframe
    assert at.toggle(key=QUIZ_POINT_MODE).value is True
    first = quiz.current
    unmarked = shown_image(at)

    # Neither a class nor a click, then a class without a click: nothing is recorded.
    at = answer(at, None)
    assert any("Pick a cell type first" in w for w in warnings(at)), warnings(at)
    at = answer(at, first.class_name)
    assert any("Click on the image" in w for w in warnings(at)), warnings(at)
    assert current_quiz(at).answered == 0
    # A value the component never sends counts as no click, and breaks nothing.
    at.session_state[quiz_point_key(quiz)] = {"x": 3, "width": 0}
    at = answer(at.run(), first.class_name)
    assert not at.exception, at.exception
    assert any("Click on the image" in w for w in warnings(at)) and current_quiz(at).answered == 0

    # The click marks the image; with the class picked, the answer is right and the click kept.
    at = click(at, 0.3, 0.6)
    assert not at.exception, at.exception
    marked = shown_image(at)
    assert marked.shape == unmarked.shape and not np.array_equal(marked, unmarked)
    assert current_quiz(at).answered == 0
    at = answer(at, first.class_name)
    assert not at.exception, at.exception
    recorded = current_quiz(at).last_answer
    assert recorded.correct and recorded.point == (0.3, 0.6)
    assert metric(at, "Score") == "1 / 1"
    assert any("**Right.**" in s.value for s in at.success)

    # The map with the click marked, and the share of its top 20% near the click, worked out
    # here from the model directly.
    prediction = classifier.predict_cells(first.read_bytes())[0]
    heat = explain(classifier, prediction.model_input, method=TEACHING_METHOD, target=first.class_name,
                   seed=TEACHING_SEED)
    expected = format_percent(pointing_score(heat.attribution, (0.3, 0.6)), 0)
    assert metric(at, "Your click") == expected == metric(at, "Pointing")
    captions = image_captions(at)
    assert f"Grad-CAM for {display_name(first.class_name)}, the true class: red is where the model sees the " \
        "strongest evidence for it; the circle is your click" in captions
    text = " ".join(m.value for m in at.markdown)
    assert f"**{expected}** of the map's strongest 20% lies within the circle around your click, " \
        "whose radius is 25% of the image's width" in text
    assert "The best click on this map would reach" in text
    progress = at.dataframe[0].value
    assert progress.loc[display_name(first.class_name), "Pointing"] == expected
    assert any(first.original_file in c.value for c in at.caption)  # where the image came from

    # A rerun does not score the click again or change it.
    at.run()
    assert current_quiz(at).answers == [recorded] and recorded.pointing is not None
    assert metric(at, "Your click") == expected


def test_the_quiz_shows_weak_classes_and_leans_toward_them(classifier):
    at = start(QUIZ_PAGE)
    first = current_quiz(at).current
    wrong = next(name for name in CLASS_NAMES if name != first.class_name)
    at = click(at, 0.5, 0.5)
    at = answer(at, wrong)
    assert not at.exception, at.exception
    assert metric(at, "Score") == "0 / 1"
    assert any("Not quite" in e and display_name(wrong) in e for e in errors(at))
    text = " ".join(m.value for m in at.markdown)
    assert f"**Weak classes so far:** {display_name(first.class_name)} (0 of 1 right)" in text
    progress = at.dataframe[0].value
    chances = {name: float(progress.loc[display_name(name), "Chance next"].rstrip("%"))
               for name in CLASS_NAMES}
    assert max(chances, key=chances.get) == first.class_name
    assert progress.loc[display_name(first.class_name), "Share right"] == "0%"
    confusion = at.dataframe[1].value
    assert int(confusion.loc[display_name(first.class_name), display_name(wrong)]) == 1

    # Next question, then restart: a new draw and an empty score.
    at.button(key="quiz_next").click().run()
    assert not at.exception, at.exception
    assert current_quiz(at).current.key != first.key and current_quiz(at).awaiting_answer
    old_seed = current_quiz(at).seed
    at.button(key="quiz_restart").click().run()
    assert not at.exception, at.exception
    restarted = current_quiz(at)
    assert restarted.seed != old_seed
    assert (restarted.score, restarted.answered, restarted.position) == (0, 0, 0)
    assert metric(at, "Score") == "0 / 0" and not at.dataframe


def test_class_only_mode_needs_no_click_and_a_page_trip_keeps_the_quiz(classifier):
    at = start(QUIZ_PAGE)
    at.toggle(key=QUIZ_POINT_MODE).set_value(False).run()
    assert not at.exception, at.exception
    quiz = current_quiz(at)
    assert not quiz.point_and_check and shown_image(at) is None
    assert any(image.captions == ["Question 1"] for image in at.get("image"))
    at = answer(at, quiz.current.class_name)
    assert not at.exception, at.exception
    assert metric(at, "Score") == "1 / 1" and quiz.last_answer.point is None
    assert not [m for m in at.metric if m.label == "Your click"]
    assert any(c.startswith("Grad-CAM for ") and "circle" not in c for c in image_captions(at))

    at.switch_page(HOME).run()
    at.switch_page(QUIZ_PAGE).run()
    assert not at.exception, at.exception
    assert metric(at, "Score") == "1 / 1" and current_quiz(at) is quiz
    at.button(key="quiz_next").click().run()
    assert at.toggle(key=QUIZ_POINT_MODE).value is False and shown_image(at) is None


def test_quiz_ends_with_a_summary(classifier):
    at = start(QUIZ_PAGE)
    quiz = current_quiz(at)
    # Play all but the last question in the core, then the last one through the page.
    for _ in range(quiz.total - 1):
        quiz.answer(quiz.current.class_name, (0.5, 0.5))
        quiz.next_question()
    last = quiz.current
    at.run()  # draw the last question
    assert not at.exception, at.exception
    at = click(at, 0.5, 0.5)
    at = answer(at, next(name for name in CLASS_NAMES if name != last.class_name))
    assert not at.exception, at.exception
    assert all("Not quite" in e for e in errors(at)), errors(at)  # only the feedback on the answer
    assert current_quiz(at).finished
    assert metric(at, "Score") == f"{quiz.total - 1} / {quiz.total}"
    assert not [b for b in at.button if b.key == "quiz_next"]
    assert [s.value for s in at.subheader][-1] == "Summary"
    text = " ".join(m.value for m in at.markdown)
    assert f"You named **{quiz.total - 1} of {quiz.total}** cells right" in text
    # Only the last click was scored against a map here; the summary averages what was scored.
    assert f"Your clicks held on average **{format_percent(last_score(quiz), 0)}**" in text
    model_right = sum(classifier.predict_cells(c.read_bytes())[0].label == c.class_name
                      for c in quiz.questions)
    assert f"the model named **{model_right} of {quiz.total}** right" in text
    assert f"{last.title} (`{last.original_file}`): you said" in text
    progress = at.dataframe[0].value
    assert int(progress["Asked"].sum()) == quiz.total
    assert int(progress["Right"].sum()) == quiz.total - 1


def last_score(quiz: Quiz) -> float:
    return quiz.last_answer.pointing.score


def test_each_question_has_its_own_answer_and_click_keys():
    quiz = Quiz(list_quiz_cells(), seed=4)
    first = (quiz_choice_key(quiz), quiz_point_key(quiz))
    quiz.answer(quiz.current.class_name, (0.5, 0.5))
    quiz.next_question()
    assert quiz_choice_key(quiz) != first[0] and quiz_point_key(quiz) != first[1]
    quiz.restart(5)
    assert (quiz_choice_key(quiz), quiz_point_key(quiz)) != first
