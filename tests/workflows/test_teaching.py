"""The teaching core: morphology notes, the quiz rules, the weighted draw and point and check,
without a running app. The quiz runs on the shipped held-out cells (``samples/quiz/``);
where they came from is checked in test_teaching_quiz_set.py."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hematovision import load_image
from hematovision.model.classifier import CLASS_NAMES
from hematovision.workflows.samples import list_samples
from hematovision.workflows.teaching import (
    CELL_NOTES,
    POINT_RADIUS,
    QUIZ_LENGTH,
    Quiz,
    QuizError,
    best_pointing_score,
    class_weights,
    draw_question,
    list_quiz_cells,
    mark_point,
    near_point,
    pointing_score,
    top_region,
    weak_classes,
)
from tests.conftest import REPO_ROOT

CENTRE = (0.5, 0.5)


@pytest.fixture(scope="module")
def cells():
    found = list_quiz_cells()
    assert len(found) == 48, "the quiz tests expect the 48 shipped quiz cells"
    return found


def wrong_class(true_class: str) -> str:
    return next(name for name in CLASS_NAMES if name != true_class)


# ---------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------
def test_every_class_has_complete_notes():
    assert set(CELL_NOTES) == set(CLASS_NAMES)
    for name, notes in CELL_NOTES.items():
        assert notes.class_name == name
        for field in ("share", "role", "size", "nucleus", "cytoplasm", "granules", "look_alikes"):
            assert getattr(notes, field).strip(), f"{name} has no {field}"
        assert "µm" in notes.size and "red cell" in notes.size  # size is given against a red cell
        assert "%" in notes.share
        assert notes.nucleus in notes.looks and notes.granules in notes.looks


def test_notes_carry_the_textbook_tell_tale_features():
    assert "orange-red" in CELL_NOTES["EOSINOPHIL"].granules
    assert "lobes" in CELL_NOTES["NEUTROPHIL"].nucleus
    assert "Kidney" in CELL_NOTES["MONOCYTE"].nucleus
    assert "thin rim" in CELL_NOTES["LYMPHOCYTE"].cytoplasm
    assert "largest" in CELL_NOTES["MONOCYTE"].size.lower()


def play(quiz: Quiz, is_right) -> list[str]:
    """Answer every question (right where ``is_right(class)``), clicking the centre; the keys asked."""
    asked = []
    while True:
        true_class = quiz.current.class_name
        asked.append(quiz.current.key)
        quiz.answer(true_class if is_right(true_class) else wrong_class(true_class), CENTRE)
        if quiz.finished:
            return asked
        quiz.next_question()


def always_right(_class_name: str) -> bool:
    return True


# ---------------------------------------------------------------------------
# Draws: seeded, every cell at most once, leaning toward weak classes
# ---------------------------------------------------------------------------
def test_same_seed_and_answers_give_the_same_questions_whatever_the_list_order(cells):
    assert play(Quiz(cells, seed=7), always_right) == play(Quiz(list(reversed(cells)), seed=7),
                                                           always_right)


def test_different_seeds_give_different_questions(cells):
    runs = {tuple(play(Quiz(cells, seed=seed), always_right)) for seed in range(10)}
    assert len(runs) == 10


def test_a_quiz_asks_its_length_of_distinct_cells_then_ends(cells):
    quiz = Quiz(cells, seed=3)
    asked = play(quiz, always_right)
    assert len(asked) == len(set(asked)) == quiz.total == QUIZ_LENGTH == 12
    assert asked == [cell.key for cell in quiz.questions]
    assert quiz.finished and quiz.score == 12
    assert Quiz(cells[:5], seed=0).total == 5  # never more questions than cells


def test_class_weights_favour_the_weak_class():
    per_class = {"EOSINOPHIL": (2, 2), "LYMPHOCYTE": (2, 2), "MONOCYTE": (0, 2), "NEUTROPHIL": (0, 0)}
    weights = class_weights(per_class)
    assert weights["MONOCYTE"] == pytest.approx(0.75)  # (2 wrong + 1) / (2 asked + 2)
    assert weights["NEUTROPHIL"] == pytest.approx(0.5)  # not asked yet
    assert weights["EOSINOPHIL"] == weights["LYMPHOCYTE"] == pytest.approx(0.25)
    assert max(weights, key=weights.get) == "MONOCYTE"
    assert weak_classes(per_class) == ["MONOCYTE"]
    assert weak_classes({**per_class, "EOSINOPHIL": (1, 2)}) == ["MONOCYTE", "EOSINOPHIL"]


def test_draws_lean_toward_the_weak_class(cells):
    per_class = {"EOSINOPHIL": (2, 2), "LYMPHOCYTE": (2, 2), "MONOCYTE": (0, 2), "NEUTROPHIL": (2, 2)}
    drawn = [draw_question(cells, set(), per_class, random.Random(seed)).class_name
             for seed in range(400)]
    shares = {name: drawn.count(name) / len(drawn) for name in CLASS_NAMES}
    # Weights 0.75 against 0.25 for each other class: half the draws, against a quarter unweighted.
    assert 0.4 < shares["MONOCYTE"] < 0.6, shares
    assert all(shares[name] < 0.25 for name in CLASS_NAMES if name != "MONOCYTE"), shares
    # The same seed draws the same cell.
    assert draw_question(cells, set(), per_class, random.Random(5)) == \
        draw_question(cells, set(), per_class, random.Random(5))


def test_a_student_who_misses_monocytes_is_asked_more_of_them(cells):
    def monocytes_asked(is_right) -> int:
        total = 0
        for seed in range(20):
            quiz = Quiz(cells, seed=seed)
            play(quiz, is_right)
            total += sum(cell.class_name == "MONOCYTE" for cell in quiz.questions)
        return total

    misses_monocytes = monocytes_asked(lambda name: name != "MONOCYTE")
    assert misses_monocytes > 1.4 * monocytes_asked(always_right)
    assert misses_monocytes / (20 * 12) > 0.3  # about a quarter without the lean


def test_draws_skip_cells_already_asked_and_classes_with_none_left(cells):
    per_class = {name: (0, 0) for name in CLASS_NAMES}
    monocytes = {cell.key for cell in cells if cell.class_name == "MONOCYTE"}
    drawn = {draw_question(cells, monocytes, per_class, random.Random(seed)).class_name
             for seed in range(50)}
    assert drawn == set(CLASS_NAMES) - {"MONOCYTE"}
    with pytest.raises(QuizError, match="Every cell"):
        draw_question(cells, {cell.key for cell in cells}, per_class, random.Random(0))


def test_next_class_chances_follow_the_weights_and_skip_empty_classes(cells):
    monocytes = [cell for cell in cells if cell.class_name == "MONOCYTE"]
    quiz = Quiz(monocytes[:1] + [c for c in cells if c.class_name == "NEUTROPHIL"], seed=1)
    chances = quiz.next_class_chances()
    assert sum(chances.values()) == pytest.approx(1.0)
    assert chances["EOSINOPHIL"] == chances["LYMPHOCYTE"] == 0.0  # no such cells in this pool
    if quiz.current.class_name == "MONOCYTE":
        assert chances["MONOCYTE"] == 0.0  # the only monocyte is being asked
    quiz.answer(wrong_class(quiz.current.class_name), CENTRE)
    assert quiz.weak_classes() == [quiz.current.class_name]


# ---------------------------------------------------------------------------
# Scoring and confusion
# ---------------------------------------------------------------------------
def test_answers_are_scored_against_the_data_set_label(cells):
    quiz = Quiz(cells, seed=1)
    first = quiz.current
    assert quiz.awaiting_answer
    assert quiz.answer(first.class_name.lower(), CENTRE) is True  # any case is accepted
    assert (quiz.score, quiz.answered) == (1, 1)
    assert not quiz.awaiting_answer and quiz.last_answer.correct
    assert quiz.last_answer.point == CENTRE
    quiz.next_question()
    second = quiz.current
    assert second is not first
    chosen = wrong_class(second.class_name)
    assert quiz.answer(chosen, (0.1, 0.9)) is False
    assert (quiz.score, quiz.answered) == (1, 2)
    assert quiz.last_answer.chosen == chosen and quiz.last_answer.true_class == second.class_name
    assert quiz.mistakes == [quiz.last_answer]


def test_confusion_counts_true_class_against_chosen_class(cells):
    quiz = Quiz(cells, seed=5)
    expected = [[0] * len(CLASS_NAMES) for _ in CLASS_NAMES]
    for number in range(quiz.total):
        true_class = quiz.current.class_name
        chosen = true_class if number % 3 else wrong_class(true_class)  # every third one wrong
        quiz.answer(chosen, CENTRE)
        expected[CLASS_NAMES.index(true_class)][CLASS_NAMES.index(chosen)] += 1
        if not quiz.finished:
            quiz.next_question()
    assert quiz.confusion() == expected
    assert sum(map(sum, quiz.confusion())) == quiz.total == 12
    assert quiz.score == 8
    per_class = quiz.per_class()
    assert sum(asked for _, asked in per_class.values()) == 12
    assert sum(right for right, _ in per_class.values()) == 8
    assert set(quiz.weak_classes()) == {a.true_class for a in quiz.mistakes}


def test_restart_clears_everything_and_uses_the_new_seed(cells):
    quiz = Quiz(cells, seed=2)
    quiz.answer(wrong_class(quiz.current.class_name), CENTRE)
    quiz.next_question()
    quiz.answer(quiz.current.class_name, CENTRE)
    quiz.restart(9)
    assert quiz.seed == 9
    assert quiz.current == Quiz(cells, seed=9).current
    assert (quiz.score, quiz.answered, quiz.position) == (0, 0, 0)
    assert quiz.awaiting_answer and not quiz.finished
    assert quiz.last_answer is None and quiz.mistakes == []
    assert quiz.confusion() == [[0] * len(CLASS_NAMES) for _ in CLASS_NAMES]
    assert play(quiz, always_right) == play(Quiz(cells, seed=9), always_right)


# ---------------------------------------------------------------------------
# Point and check
# ---------------------------------------------------------------------------
def blob_map(centre_xy: tuple[int, int], size: int = 100) -> np.ndarray:
    """A map that falls off with the distance from one pixel: its top 20% is a round blob."""
    rows, columns = np.mgrid[0:size, 0:size]
    return -np.hypot(columns - centre_xy[0], rows - centre_xy[1]).astype(np.float32)


def test_near_means_within_a_quarter_of_the_image_width():
    assert POINT_RADIUS == 0.25
    near = near_point((100, 100), (0.505, 0.505))  # the centre of pixel (50, 50)
    assert near[50, 50 + 25] and near[50 + 25, 50] and not near[50, 50 + 26]
    assert abs(near.sum() - np.pi * 25 ** 2) < 0.02 * np.pi * 25 ** 2
    # Rows are measured in widths too: on a wide image the circle stays round.
    wide = near_point((100, 200), (0.5, 0.5))
    assert wide[:, 100].sum() == wide[50, :].sum()


def test_top_region_is_the_strongest_fifth_without_the_floor():
    values = np.random.default_rng(0).random((50, 40))
    top = top_region(values)
    assert top.sum() == 400 and values[top].min() > values[~top].max()
    sparse = np.zeros((50, 40))
    sparse[:5, :10] = 1.0  # only 2.5% of the map is above zero
    assert top_region(sparse).sum() == 50


def test_pointing_score_counts_the_top_fifth_near_the_click():
    heat = blob_map((30, 40))
    on_peak = pointing_score(heat, (0.305, 0.405))
    assert on_peak > 0.95  # the circle covers 19.6% of the image, the blob 20%
    assert pointing_score(heat, (0.95, 0.95)) == 0.0
    halfway = pointing_score(heat, (0.5, 0.4))
    assert 0.1 < halfway < 0.8
    assert best_pointing_score(heat) == pytest.approx(on_peak, abs=0.01)
    assert best_pointing_score(heat) >= max(on_peak, halfway)


def test_pointing_scores_of_a_real_map_never_beat_the_best_click():
    heat = np.random.default_rng(3).random((56, 56))
    heat[10:20, 30:45] += 2  # one hot spot
    best = best_pointing_score(heat)
    scores = [pointing_score(heat, (x, y)) for x in np.linspace(0, 1, 15) for y in np.linspace(0, 1, 15)]
    assert max(scores) <= best + 1e-9
    assert max(scores) > 0.9 * best


def test_a_flat_map_has_no_score_and_a_broken_map_is_refused():
    assert pointing_score(np.zeros((20, 20)), CENTRE) is None
    assert best_pointing_score(np.ones((20, 20))) is None
    with pytest.raises(ValueError, match="2-D"):
        pointing_score(np.full((4, 4), np.nan), CENTRE)
    with pytest.raises(ValueError, match="2-D"):
        pointing_score(np.zeros(10), CENTRE)


def test_point_and_check_needs_a_click_inside_the_image(cells):
    quiz = Quiz(cells, seed=0)
    right = quiz.current.class_name
    with pytest.raises(QuizError, match="Click on the image"):
        quiz.answer(right)
    for bad in [(1.5, 0.2), (-0.1, 0.5), ("left", "top"), (0.5,), 3]:
        with pytest.raises(QuizError, match="click"):
            quiz.answer(right, bad)
    assert quiz.answered == 0 and quiz.awaiting_answer
    quiz.point_and_check = False  # class only
    assert quiz.answer(right) is True and quiz.last_answer.point is None
    assert quiz.check_pointing(blob_map((10, 10))) is None


def test_check_pointing_scores_the_click_once_and_keeps_it(cells):
    quiz = Quiz(cells, seed=4)
    quiz.answer(quiz.current.class_name, (0.305, 0.405))
    result = quiz.check_pointing(blob_map((30, 40)))
    assert result.score > 0.95 and result.best >= result.score
    assert quiz.check_pointing(blob_map((90, 90))) == result  # a rerun keeps the first result
    assert quiz.last_answer.pointing == result
    by_class = quiz.pointing_by_class()
    assert by_class[quiz.current.class_name] == (result.score, 1)
    assert all(by_class[name] == (None, 0) for name in CLASS_NAMES if name != quiz.current.class_name)


def test_mark_point_draws_the_circle_and_cross_on_a_copy():
    image = np.full((200, 200, 3), 128, np.uint8)
    marked = mark_point(image, CENTRE)
    assert marked.shape == image.shape and (image == 128).all()  # the original is untouched
    assert (marked[100, 100] != 128).any()  # the cross
    assert (marked[100, 150] != 128).any()  # the circle, 25% of the width from the click
    assert (marked[100, 125] == 128).all() and (marked[5, 5] == 128).all()


# ---------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("choice", ["BASOPHIL", "", "neutro", None, 3])
def test_an_unknown_class_is_refused_and_nothing_is_recorded(cells, choice):
    quiz = Quiz(cells, seed=0)
    with pytest.raises(QuizError, match="class"):
        quiz.answer(choice, CENTRE)
    assert quiz.answered == 0 and quiz.awaiting_answer


def test_a_question_cannot_be_answered_twice_or_skipped(cells):
    quiz = Quiz(cells, seed=0)
    with pytest.raises(QuizError, match="Answer this question"):
        quiz.next_question()
    quiz.answer(quiz.current.class_name, CENTRE)
    with pytest.raises(QuizError, match="already been answered"):
        quiz.answer(quiz.current.class_name, CENTRE)
    assert quiz.answered == 1


def test_answering_after_the_end_is_refused(cells):
    quiz = Quiz(cells, seed=0)
    play(quiz, always_right)
    assert quiz.finished and quiz.score == quiz.total
    with pytest.raises(QuizError, match="over"):
        quiz.answer(CLASS_NAMES[0], CENTRE)
    with pytest.raises(QuizError, match="over"):
        quiz.next_question()
    assert quiz.answered == quiz.total


def test_a_quiz_needs_distinct_cells_and_a_question(cells):
    with pytest.raises(QuizError):
        Quiz([], seed=0)
    with pytest.raises(QuizError):
        Quiz([cells[0], cells[0]], seed=0)
    with pytest.raises(QuizError):
        Quiz(cells, seed=0, length=0)


def test_samples_cover_every_class_and_are_readable():
    samples = list_samples()
    per_class = {name: sum(s.class_name == name for s in samples) for name in CLASS_NAMES}
    assert all(2 <= count <= 3 for count in per_class.values()), per_class
    for sample in samples:
        assert load_image(sample.path).shape[2] == 3
    assert (REPO_ROOT / "samples" / "README.md").is_file()
