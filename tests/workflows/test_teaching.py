"""The teaching core: morphology notes and the quiz rules, without a running app."""

from __future__ import annotations

import pytest

from hematovision import load_image
from hematovision.model.classifier import CLASS_NAMES
from hematovision.workflows.samples import list_samples
from hematovision.workflows.teaching import CELL_NOTES, Quiz, QuizError
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def samples():
    found = list_samples()
    assert len(found) == 12, "the quiz tests expect the 12 built-in samples"
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


# ---------------------------------------------------------------------------
# Order
# ---------------------------------------------------------------------------
def order(quiz: Quiz) -> list[str]:
    return [sample.key for sample in quiz.questions]


def test_same_seed_gives_the_same_order_whatever_the_list_order(samples):
    assert order(Quiz(samples, seed=7)) == order(Quiz(list(reversed(samples)), seed=7))


def test_different_seeds_give_different_orders(samples):
    orders = {tuple(order(Quiz(samples, seed=seed))) for seed in range(10)}
    assert len(orders) == 10


def test_the_order_is_shuffled_and_asks_every_sample_once(samples):
    quiz = Quiz(samples, seed=3)
    assert sorted(order(quiz)) == sorted(sample.key for sample in samples)
    assert order(quiz) != sorted(order(quiz))
    asked = []
    while True:
        asked.append(quiz.current.key)
        quiz.answer(quiz.current.class_name)
        if quiz.finished:
            break
        quiz.next_question()
    assert asked == order(quiz)


# ---------------------------------------------------------------------------
# Scoring and confusion
# ---------------------------------------------------------------------------
def test_answers_are_scored_against_the_data_set_label(samples):
    quiz = Quiz(samples, seed=1)
    first = quiz.current
    assert quiz.awaiting_answer
    assert quiz.answer(first.class_name.lower()) is True  # any case is accepted
    assert (quiz.score, quiz.answered) == (1, 1)
    assert not quiz.awaiting_answer and quiz.last_answer.correct
    quiz.next_question()
    second = quiz.current
    assert second is not first
    chosen = wrong_class(second.class_name)
    assert quiz.answer(chosen) is False
    assert (quiz.score, quiz.answered) == (1, 2)
    assert quiz.last_answer.chosen == chosen and quiz.last_answer.true_class == second.class_name
    assert quiz.mistakes == [quiz.last_answer]


def test_confusion_counts_true_class_against_chosen_class(samples):
    quiz = Quiz(samples, seed=5)
    expected = [[0] * len(CLASS_NAMES) for _ in CLASS_NAMES]
    for number in range(quiz.total):
        true_class = quiz.current.class_name
        chosen = true_class if number % 3 else wrong_class(true_class)  # every third one wrong
        quiz.answer(chosen)
        expected[CLASS_NAMES.index(true_class)][CLASS_NAMES.index(chosen)] += 1
        if not quiz.finished:
            quiz.next_question()
    assert quiz.confusion() == expected
    assert sum(map(sum, quiz.confusion())) == quiz.total == 12
    assert quiz.score == 8
    per_class = quiz.per_class()
    assert sum(asked for _, asked in per_class.values()) == 12
    assert all(asked == 3 for _, asked in per_class.values())  # three samples of each class
    assert sum(right for right, _ in per_class.values()) == 8


def test_restart_clears_everything_and_uses_the_new_seed(samples):
    quiz = Quiz(samples, seed=2)
    quiz.answer(wrong_class(quiz.current.class_name))
    quiz.next_question()
    quiz.answer(quiz.current.class_name)
    quiz.restart(9)
    assert quiz.seed == 9
    assert order(quiz) == order(Quiz(samples, seed=9))
    assert (quiz.score, quiz.answered, quiz.position) == (0, 0, 0)
    assert quiz.awaiting_answer and not quiz.finished
    assert quiz.last_answer is None and quiz.mistakes == []
    assert quiz.confusion() == [[0] * len(CLASS_NAMES) for _ in CLASS_NAMES]


# ---------------------------------------------------------------------------
# Invalid input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("choice", ["BASOPHIL", "", "neutro", None, 3])
def test_an_unknown_class_is_refused_and_nothing_is_recorded(samples, choice):
    quiz = Quiz(samples, seed=0)
    with pytest.raises(QuizError, match="class"):
        quiz.answer(choice)
    assert quiz.answered == 0 and quiz.awaiting_answer


def test_a_question_cannot_be_answered_twice_or_skipped(samples):
    quiz = Quiz(samples, seed=0)
    with pytest.raises(QuizError, match="Answer this question"):
        quiz.next_question()
    quiz.answer(quiz.current.class_name)
    with pytest.raises(QuizError, match="already been answered"):
        quiz.answer(quiz.current.class_name)
    assert quiz.answered == 1


def test_answering_after_the_end_is_refused(samples):
    quiz = Quiz(samples, seed=0)
    for _ in range(quiz.total - 1):
        quiz.answer(quiz.current.class_name)
        quiz.next_question()
    quiz.answer(quiz.current.class_name)
    assert quiz.finished and quiz.score == quiz.total
    with pytest.raises(QuizError, match="over"):
        quiz.answer(CLASS_NAMES[0])
    with pytest.raises(QuizError, match="over"):
        quiz.next_question()
    assert quiz.answered == quiz.total


def test_a_quiz_needs_distinct_samples(samples):
    with pytest.raises(QuizError):
        Quiz([], seed=0)
    with pytest.raises(QuizError):
        Quiz([samples[0], samples[0]], seed=0)


def test_samples_cover_every_class_and_are_readable():
    samples = list_samples()
    per_class = {name: sum(s.class_name == name for s in samples) for name in CLASS_NAMES}
    assert all(2 <= count <= 3 for count in per_class.values()), per_class
    for sample in samples:
        assert load_image(sample.path).shape[2] == 3
    assert (REPO_ROOT / "samples" / "README.md").is_file()

