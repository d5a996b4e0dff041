"""The Atlas and Quiz pages, driven headless through streamlit.testing.v1.AppTest.

As in test_app.py, every test starts the real entry point (``streamlit_app.py``, with its
navigation) and moves with ``AppTest.switch_page``. The quiz's true class is read from
the quiz kept in session state, never hard-coded, since the order is random per session.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.state import QUIZ, quiz_choice_key
from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.workflows.samples import list_samples
from hematovision.workflows.teaching import CELL_NOTES, Quiz
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
def current_quiz(at: AppTest) -> Quiz:
    quiz = at.session_state[QUIZ]
    assert isinstance(quiz, Quiz)
    return quiz


def answer(at: AppTest, class_name: str | None) -> AppTest:
    quiz = current_quiz(at)
    if class_name is not None:
        at.radio(key=quiz_choice_key(quiz)).set_value(class_name)
    [submit] = [b for b in at.button if b.label == "Submit answer"]
    return submit.click().run()


def score(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Score")


def confusion_cell(at: AppTest, true_class: str, chosen: str) -> int:
    table = at.dataframe[0].value
    return int(table.loc[display_name(true_class), display_name(chosen)])


def test_quiz_scores_a_right_and_a_wrong_answer_and_restarts(classifier):
    at = start(QUIZ_PAGE)
    assert not errors(at), errors(at)
    quiz = current_quiz(at)
    assert score(at) == "0 / 0" and not at.dataframe

    # Submitting with nothing picked records nothing.
    at = answer(at, None)
    assert not at.exception, at.exception
    assert any("Pick a cell type first" in w.value for w in at.warning)
    assert current_quiz(at).answered == 0

    # A right answer.
    first = quiz.current
    at = answer(at, first.class_name)
    assert not at.exception, at.exception
    assert score(at) == "1 / 1"
    assert any("**Right.**" in s.value and first.class_name.lower() in s.value for s in at.success)
    assert confusion_cell(at, first.class_name, first.class_name) == 1
    prediction = classifier.predict_cells(first.read_bytes())[0]
    assert any(f"**Model's prediction:** {display_name(prediction.label)}" in m.value
               and f"**True class (data-set label):** {display_name(first.class_name)}" in m.value
               for m in at.markdown)
    captions = image_captions(at)
    assert "The crop the model saw" in captions
    assert any(c.startswith("Grad-CAM for ") for c in captions)

    # Next question, then a wrong answer.
    at.button(key="quiz_next").click().run()
    assert not at.exception, at.exception
    second = current_quiz(at).current
    assert second.key != first.key and current_quiz(at).awaiting_answer
    wrong = next(name for name in CLASS_NAMES if name != second.class_name)
    at = answer(at, wrong)
    assert not at.exception, at.exception
    assert score(at) == "1 / 2"
    assert any("Not quite" in e.value and display_name(wrong) in e.value for e in at.error)
    assert confusion_cell(at, second.class_name, wrong) == 1
    assert sum(at.dataframe[0].value.to_numpy().sum(axis=1)) == 2

    # A trip to another page keeps the quiz where it was.
    at.switch_page(HOME).run()
    at.switch_page(QUIZ_PAGE).run()
    assert not at.exception, at.exception
    assert score(at) == "1 / 2" and current_quiz(at).current.key == second.key

    # Restart: a new order and an empty score.
    old_seed = current_quiz(at).seed
    at.button(key="quiz_restart").click().run()
    assert not at.exception, at.exception
    restarted = current_quiz(at)
    assert restarted.seed != old_seed
    assert (restarted.score, restarted.answered, restarted.position) == (0, 0, 0)
    assert score(at) == "0 / 0" and not at.dataframe
    assert [b for b in at.button if b.label == "Submit answer"]


def test_quiz_ends_with_a_summary(classifier):
    at = start(QUIZ_PAGE)
    quiz = current_quiz(at)
    # Play all but the last question in the core, then the last one through the page.
    for _ in range(quiz.total - 1):
        quiz.answer(quiz.current.class_name)
        quiz.next_question()
    last = quiz.current
    at.run()  # draw the last question
    assert not at.exception, at.exception
    at = answer(at, next(name for name in CLASS_NAMES if name != last.class_name))
    assert not at.exception, at.exception
    assert all("Not quite" in e for e in errors(at)), errors(at)  # only the feedback on the answer
    assert current_quiz(at).finished
    assert score(at) == f"{quiz.total - 1} / {quiz.total}"
    assert not [b for b in at.button if b.key == "quiz_next"]
    assert [s.value for s in at.subheader][-1] == "Summary"
    text = " ".join(m.value for m in at.markdown)
    assert f"You named **{quiz.total - 1} of {quiz.total}** cells right" in text
    model_right = sum(classifier.predict_cells(s.read_bytes())[0].label == s.class_name
                      for s in quiz.questions)
    assert f"the model named **{model_right} of {quiz.total}** right" in text
    assert f"{last.title}: you said" in text
    per_class = at.dataframe[1].value
    assert list(per_class["Asked"]) == [3, 3, 3, 3]
    assert int(per_class["Right"].sum()) == quiz.total - 1


def test_each_question_has_its_own_answer_widget_key():
    quiz = Quiz(list_samples(), seed=4)
    first = quiz_choice_key(quiz)
    quiz.answer(quiz.current.class_name)
    quiz.next_question()
    assert quiz_choice_key(quiz) != first
    quiz.restart(5)
    assert quiz_choice_key(quiz) != first
