"""Teaching material behind the Home, Atlas and Quiz pages (this module never imports streamlit).

Two parts:

- ``CELL_NOTES``: what each of the four white cells looks like in a stained smear and
  what it does, written once and shown on the Home and Atlas pages.
- ``Quiz``: a self-test over the built-in samples, as plain Python so that its rules
  (seeded order, scoring, the confusion table, what counts as a valid answer) can be
  tested without a running app. The app keeps one ``Quiz`` per session (``app.state.QUIZ``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.workflows.samples import Sample

# ---------------------------------------------------------------------------
# Morphology notes
# ---------------------------------------------------------------------------
# Textbook facts about Wright/Giemsa-stained peripheral blood smears, as taught in
# standard haematology texts and blood-cell atlases, in our own words. Sizes are
# diameters on a dried smear, compared with a red cell of about 7-8 µm; shares are
# usual adult reference ranges of a differential white-cell count (labs differ a little).

SMEAR_BASICS = (
    "White blood cells (leukocytes) defend the body. In a Wright- or Giemsa-stained smear "
    "their nuclei stain purple, while the far more numerous red cells are pink discs "
    "about 7–8 µm across with no nucleus, a handy ruler for judging a white cell's size. "
    "Shares are typical adult ranges of all white cells in a differential count."
)

NOT_COVERED = (
    "Not covered by the model: basophils (under 1% of white cells), band counts, immature or "
    "abnormal cells (blasts, atypical lymphocytes), platelets and red-cell findings. Shown any "
    "of these, it still answers with one of the four classes."
)


@dataclass(frozen=True)
class CellNotes:
    """What to look for in one white-cell type, and what it does."""

    class_name: str  # e.g. "NEUTROPHIL"
    share: str  # typical share of the white cells in adult blood
    role: str
    size: str  # diameter, and size against a red cell
    nucleus: str
    cytoplasm: str
    granules: str
    look_alikes: str  # what it is most often mistaken for, and how to tell them apart

    @property
    def title(self) -> str:
        return display_name(self.class_name)

    @property
    def looks(self) -> str:
        """The whole appearance in one paragraph (size, nucleus, cytoplasm, granules)."""
        return " ".join((self.size, self.nucleus, self.cytoplasm, self.granules))


# Most common first, the order in which a differential count meets them.
_NOTES = (
    CellNotes(
        class_name="NEUTROPHIL",
        share="40–70% of white cells",
        role="First responders to bacterial and fungal infection: they leave the blood, "
        "swallow microbes (phagocytosis) and kill them; the main cell of pus.",
        size="10–12 µm, about 1.5× a red cell.",
        nucleus="The nucleus has 2–5 lobes joined by thin strands (younger 'band' forms "
        "have a curved, unsegmented nucleus).",
        cytoplasm="Plenty of pale pink-lilac cytoplasm.",
        granules="Fine, faint granules, barely visible one by one.",
        look_alikes="Eosinophil: also lobed, but usually two lobes and large orange-red "
        "granules. A band form can pass for a monocyte, whose nucleus is folded rather "
        "than bent and whose cytoplasm is grey-blue, not pink.",
    ),
    CellNotes(
        class_name="LYMPHOCYTE",
        share="20–40%",
        role="Adaptive immunity: B cells make antibodies, T cells coordinate the response "
        "and kill infected cells, NK cells kill virus-infected and tumour cells.",
        size="Mostly small, 7–10 µm, close to a red cell's size; a few large ones reach "
        "12–15 µm.",
        nucleus="A round, dense, dark-purple nucleus fills most of the cell.",
        cytoplasm="Only a thin rim of sky-blue cytoplasm (wider in large lymphocytes).",
        granules="No granules, or a few small reddish-purple ones in large lymphocytes.",
        look_alikes="Monocyte, when the lymphocyte is large: the monocyte is bigger still, "
        "with a folded nucleus, lacier chromatin and greyer, more plentiful cytoplasm.",
    ),
    CellNotes(
        class_name="MONOCYTE",
        share="2–10%",
        role="Circulate for a day or so, then enter tissues and become macrophages and "
        "dendritic cells: they clear debris and microbes and present antigens to "
        "lymphocytes.",
        size="The largest, 12–20 µm, about 2–2.5× a red cell.",
        nucleus="Kidney- or horseshoe-shaped, folded nucleus with lacy, less condensed "
        "chromatin.",
        cytoplasm="Plentiful grey-blue, 'ground-glass' cytoplasm, sometimes with vacuoles.",
        granules="At most a fine, dust-like pink haze.",
        look_alikes="Large lymphocyte (round, denser nucleus, clearer blue cytoplasm) and "
        "band neutrophil (pink cytoplasm, nucleus a smooth curved band).",
    ),
    CellNotes(
        class_name="EOSINOPHIL",
        share="1–4%",
        role="Fight parasites such as worms and take part in allergic reactions and "
        "asthma; their numbers rise in both.",
        size="12–17 µm, about 1.5–2× a red cell.",
        nucleus="Usually a two-lobed nucleus ('spectacles').",
        cytoplasm="The cytoplasm is largely hidden by its granules.",
        granules="Packed with large, round, evenly sized orange-red granules that take up "
        "the eosin stain.",
        look_alikes="Neutrophil: often more lobes, and granules fine and faint rather than "
        "large and orange-red. (Basophils, rare and not in this model, have dark "
        "blue-purple granules that hide the nucleus.)",
    ),
)
CELL_NOTES: dict[str, CellNotes] = {notes.class_name: notes for notes in _NOTES}

# ---------------------------------------------------------------------------
# Quiz
# ---------------------------------------------------------------------------
class QuizError(ValueError):
    """An answer or a move the quiz cannot accept; the message says why."""


def _class_name(choice: str) -> str:
    """The canonical class name for an answer, e.g. 'neutrophil' -> 'NEUTROPHIL'."""
    if not isinstance(choice, str):
        raise QuizError(f"An answer must be a class name, not {choice!r}.")
    name = choice.strip().upper()
    if name not in CLASS_NAMES:
        names = ", ".join(display_name(c) for c in CLASS_NAMES)
        raise QuizError(f"Unknown class {choice!r}; answer with one of {names}.")
    return name


@dataclass(frozen=True)
class QuizAnswer:
    """The student's answer to one question."""

    sample: Sample
    chosen: str  # class name the student picked

    @property
    def true_class(self) -> str:
        return self.sample.class_name

    @property
    def correct(self) -> bool:
        return self.chosen == self.true_class


class Quiz:
    """One run through the built-in samples in a seeded order.

    Each question is answered once, and the quiz then waits on ``next_question()``, so
    the page can show feedback for the question just answered. Truth is the label the
    sample's source data set gives it, not the model's prediction.
    """

    def __init__(self, samples: Sequence[Sample], seed: int) -> None:
        if not samples:
            raise QuizError("A quiz needs at least one sample image.")
        keys = [sample.key for sample in samples]
        if len(set(keys)) != len(keys):
            raise QuizError("Each sample can appear in a quiz only once.")
        for sample in samples:
            _class_name(sample.class_name)
        # Sorted first, so the order depends on the seed alone, not on how the list was built.
        self._samples = tuple(sorted(samples, key=lambda sample: sample.key))
        self.restart(seed)

    def restart(self, seed: int) -> None:
        """Forget every answer and start again with the questions shuffled by ``seed``."""
        self.seed = int(seed)
        questions = list(self._samples)
        random.Random(self.seed).shuffle(questions)
        self.questions: tuple[Sample, ...] = tuple(questions)
        self.answers: list[QuizAnswer] = []
        self.position = 0  # index of the question being asked or reviewed

    # -- where the student is ------------------------------------------------
    @property
    def total(self) -> int:
        return len(self.questions)

    @property
    def current(self) -> Sample:
        """The question being asked, or the one just answered while its feedback shows."""
        return self.questions[self.position]

    @property
    def awaiting_answer(self) -> bool:
        """True while the current question has not been answered yet."""
        return len(self.answers) == self.position

    @property
    def last_answer(self) -> QuizAnswer | None:
        return self.answers[-1] if self.answers else None

    @property
    def finished(self) -> bool:
        """True once every question has been answered."""
        return len(self.answers) == self.total

    # -- moves ----------------------------------------------------------------
    def answer(self, choice: str) -> bool:
        """Record the student's class for the current question; True when it is right."""
        if self.finished:
            raise QuizError("The quiz is over: every question has been answered. "
                            "Restart to play again.")
        if not self.awaiting_answer:
            raise QuizError("This question has already been answered; go on to the next one.")
        answer = QuizAnswer(sample=self.current, chosen=_class_name(choice))
        self.answers.append(answer)
        return answer.correct

    def next_question(self) -> None:
        """Move on from an answered question."""
        if self.finished:
            raise QuizError("The quiz is over: there is no next question.")
        if self.awaiting_answer:
            raise QuizError("Answer this question before moving on.")
        self.position += 1

    # -- results --------------------------------------------------------------
    @property
    def score(self) -> int:
        """Questions answered right so far."""
        return sum(answer.correct for answer in self.answers)

    @property
    def answered(self) -> int:
        return len(self.answers)

    def confusion(self) -> list[list[int]]:
        """Counts of (true class, chosen class) so far, rows and columns in CLASS_NAMES order."""
        matrix = [[0] * len(CLASS_NAMES) for _ in CLASS_NAMES]
        for answer in self.answers:
            matrix[CLASS_NAMES.index(answer.true_class)][CLASS_NAMES.index(answer.chosen)] += 1
        return matrix

    def per_class(self) -> dict[str, tuple[int, int]]:
        """Class name -> (answered right, asked so far), for every class."""
        return {
            name: (sum(a.correct for a in self.answers if a.true_class == name),
                   sum(a.true_class == name for a in self.answers))
            for name in CLASS_NAMES
        }

    @property
    def mistakes(self) -> list[QuizAnswer]:
        return [answer for answer in self.answers if not answer.correct]


__all__ = [
    "CELL_NOTES",
    "NOT_COVERED",
    "SMEAR_BASICS",
    "CellNotes",
    "Quiz",
    "QuizAnswer",
    "QuizError",
]
