"""Teaching material behind the Home, Atlas and Quiz pages (this module never imports streamlit).

Four parts:

- ``CELL_NOTES``: what each of the four white cells looks like in a stained smear and
  what it does, written once and shown on the Home and Atlas pages.
- The quiz's cells (``list_quiz_cells``): images held out from training and not shown in
  the Atlas, shipped in ``samples/quiz/`` with a manifest of where each came from.
- Point and check (``pointing_score``): how much of the model's strongest evidence lies
  near the spot the student clicked.
- ``Quiz``: a self-test that leans toward the student's weak classes, as plain Python so
  that its rules (seeded draws, scoring, the confusion table, what counts as a valid
  answer) can be tested without a running app. The app keeps one ``Quiz`` per session
  (``app.state.QUIZ``).
"""

from __future__ import annotations

import csv
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import signal

from hematovision.explanation.faithfulness import pixel_order
from hematovision.model.classifier import CLASS_NAMES, PROJECT_ROOT, display_name

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

class QuizError(ValueError):
    """An answer, a move or a quiz folder the quiz cannot accept; the message says why."""


# ---------------------------------------------------------------------------
# The quiz's cells: held out from training and from the Atlas
# ---------------------------------------------------------------------------
QUIZ_DIR = PROJECT_ROOT / "samples" / "quiz"
QUIZ_MANIFEST = "manifest.csv"
QUIZ_MANIFEST_FIELDS = ("file", "class", "source", "split", "original_file", "original_id",
                        "sha256", "licence")
SOURCE_NAMES = {
    "kaggle": "Kaggle Blood Cell Images (BCCD), TEST_SIMPLE",
    "pbc": "PBC (Acevedo et al. 2020), test split",
}


@dataclass(frozen=True)
class QuizCell:
    """One quiz image, the class its data set gives it and where it came from."""

    path: Path
    class_name: str  # e.g. "NEUTROPHIL"
    source: str  # a key of SOURCE_NAMES
    split: str  # the held-out split in its data set
    original_file: str  # path inside its data set
    original_id: str  # the cell: the BCCD smear photo, or the PBC file's stem
    sha256: str
    licence: str

    @property
    def key(self) -> str:
        """Stable identifier, the file stem, e.g. 'monocyte-pbc-4'."""
        return self.path.stem

    @property
    def title(self) -> str:
        """Human label, e.g. 'Monocyte from PBC (Acevedo et al. 2020), test split'."""
        return f"{display_name(self.class_name)} from {SOURCE_NAMES[self.source]}"

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


def list_quiz_cells(directory: str | Path | None = None) -> list[QuizCell]:
    """The cells in the quiz folder's manifest, in its order; [] when there is no manifest.

    The folder ships with the app; ``training/build_quiz_set.py`` writes it.
    """
    folder = Path(directory) if directory is not None else QUIZ_DIR
    manifest = folder / QUIZ_MANIFEST
    if not manifest.is_file():
        return []
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if set(QUIZ_MANIFEST_FIELDS) - set(row) or row["class"] not in CLASS_NAMES or \
                row["source"] not in SOURCE_NAMES or Path(row["file"]).name != row["file"]:
            raise QuizError(f"{manifest}, line {number}: not a valid quiz-cell row.")
        cells.append(QuizCell(path=folder / row["file"], class_name=row["class"],
                              **{name: row[name] for name in QUIZ_MANIFEST_FIELDS[2:]}))
    return cells


# ---------------------------------------------------------------------------
# Point and check: how much of the model's evidence lies near the student's click
# ---------------------------------------------------------------------------
Point = tuple[float, float]  # (x, y) as fractions of the image's width and height, from top left
TOP_SHARE = 0.2  # the map's strongest 20% of pixels
# "Near the click": within a quarter of the image's width. That circle covers 19.6% of a
# square image, as much as the top 20%, so a click on the centre of a compact hot spot can
# score close to 100%; with a radius of 12% no click could pass 23%.
POINT_RADIUS = 0.25


def top_region(attribution: np.ndarray, top_share: float = TOP_SHARE) -> np.ndarray:
    """Mask of the ``top_share`` highest-valued pixels (ties broken by position), leaving out
    pixels at the map's minimum: a map that is zero over 90% of the crop has a top 10%."""
    flat = np.asarray(attribution, dtype=np.float64).ravel()
    count = max(1, int(round(top_share * flat.size)))  # the same top set as faithfulness.top_iou
    mask = np.zeros(flat.size, dtype=bool)
    mask[pixel_order(flat)[:count]] = True
    mask &= flat > flat.min()
    return mask.reshape(np.shape(attribution))


def near_point(shape: tuple[int, int], point: Point, radius: float = POINT_RADIUS) -> np.ndarray:
    """Mask of the pixels whose centre lies within ``radius`` × width of ``point``."""
    height, width = shape
    rows = (np.arange(height) + 0.5 - point[1] * height) / width
    columns = (np.arange(width) + 0.5 - point[0] * width) / width
    return rows[:, None] ** 2 + columns[None, :] ** 2 <= radius ** 2


def _checked_map(attribution: np.ndarray) -> np.ndarray | None:
    values = np.asarray(attribution, dtype=np.float64)
    if values.ndim != 2 or not values.size or not np.all(np.isfinite(values)):
        raise ValueError(f"A map must be a finite 2-D array, not shape {values.shape}.")
    return None if values.max() == values.min() else values


def pointing_score(attribution: np.ndarray, point: Point, radius: float = POINT_RADIUS,
                   top_share: float = TOP_SHARE) -> float | None:
    """Share of the map's top ``top_share`` pixels that lie within ``radius`` of ``point``.

    1.0: all of the model's strongest evidence is near the click; 0.0: none of it.
    None for a flat map, which has no strongest part to point at. The click counts as the
    centre of the map pixel it falls in, as in ``best_pointing_score``.
    """
    values = _checked_map(attribution)
    if values is None:
        return None
    height, width = values.shape
    column, row = (min(int(point[0] * width), width - 1), min(int(point[1] * height), height - 1))
    centre = ((column + 0.5) / width, (row + 0.5) / height)
    top = top_region(values, top_share)
    near = near_point(values.shape, centre, radius)
    return float(np.count_nonzero(top & near) / np.count_nonzero(top))


def best_pointing_score(attribution: np.ndarray, radius: float = POINT_RADIUS,
                        top_share: float = TOP_SHARE) -> float | None:
    """The highest ``pointing_score`` any click on a pixel centre could get (None for a flat map).

    The score at every pixel is the top region convolved with the "near" disc.
    """
    values = _checked_map(attribution)
    if values is None:
        return None
    top = top_region(values, top_share)
    height, width = values.shape
    reach = int(np.floor(radius * width))
    offsets = np.arange(-reach, reach + 1)
    disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= (radius * width) ** 2).astype(float)
    near_counts = signal.fftconvolve(top.astype(float), disc, mode="same")
    return float(min(1.0, np.round(near_counts.max()) / np.count_nonzero(top)))


def mark_point(rgb: np.ndarray, point: Point, radius: float = POINT_RADIUS) -> np.ndarray:
    """A copy of the image with the click marked: a cross, and the "near" circle around it."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    x, y = point[0] * image.width, point[1] * image.height
    reach, arm, line = radius * image.width, max(4.0, image.width / 40), max(2, image.width // 120)
    for colour, width in (("black", line + 2), ("white", line)):  # a dark edge shows on any colour
        draw.ellipse((x - reach, y - reach, x + reach, y + reach), outline=colour, width=width)
        draw.line((x - arm, y, x + arm, y), fill=colour, width=width)
        draw.line((x, y - arm, x, y + arm), fill=colour, width=width)
    return np.asarray(image)


# ---------------------------------------------------------------------------
# Which class to ask next
# ---------------------------------------------------------------------------
def class_weights(per_class: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Weight of each class in the next draw: its error rate so far, smoothed.

    (wrong + 1) / (asked + 2): 0.5 before any answer, lower after right answers, higher after
    wrong ones, never 0 or 1, so no class is dropped or asked every time.
    """
    return {name: (asked - right + 1) / (asked + 2) for name, (right, asked) in per_class.items()}


def weak_classes(per_class: dict[str, tuple[int, int]]) -> list[str]:
    """Classes with a wrong answer so far, the lowest share right first (then CLASS_NAMES order)."""
    missed = [name for name in CLASS_NAMES if per_class[name][0] < per_class[name][1]]
    return sorted(missed, key=lambda name: per_class[name][0] / per_class[name][1])


def draw_question(pool: Sequence[QuizCell], asked: set[str], per_class: dict[str, tuple[int, int]],
                  rng: random.Random) -> QuizCell:
    """A cell not asked yet: a class drawn by ``class_weights``, then one of its cells at random."""
    remaining = [cell for cell in pool if cell.key not in asked]
    if not remaining:
        raise QuizError("Every cell in the quiz has been asked.")
    weights = class_weights(per_class)
    classes = [name for name in CLASS_NAMES if any(cell.class_name == name for cell in remaining)]
    chosen = rng.choices(classes, weights=[weights[name] for name in classes])[0]
    return rng.choice([cell for cell in remaining if cell.class_name == chosen])


# ---------------------------------------------------------------------------
# Quiz
# ---------------------------------------------------------------------------
QUIZ_LENGTH = 12


def _class_name(choice: str) -> str:
    """The canonical class name for an answer, e.g. 'neutrophil' -> 'NEUTROPHIL'."""
    if not isinstance(choice, str):
        raise QuizError(f"An answer must be a class name, not {choice!r}.")
    name = choice.strip().upper()
    if name not in CLASS_NAMES:
        names = ", ".join(display_name(c) for c in CLASS_NAMES)
        raise QuizError(f"Unknown class {choice!r}; answer with one of {names}.")
    return name


def _checked_point(point: Point) -> Point:
    try:
        x, y = (float(value) for value in point)
    except (TypeError, ValueError):
        raise QuizError(f"A click must be an (x, y) pair, not {point!r}.") from None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise QuizError(f"The click ({x:.2f}, {y:.2f}) lies outside the image.")
    return x, y


@dataclass(frozen=True)
class Pointing:
    """How the student's click compares with the model's map."""

    score: float | None  # share of the map's top 20% near the click; None for a flat map
    best: float | None  # the best score any click could get on this map


@dataclass(frozen=True)
class QuizAnswer:
    """The student's answer to one question."""

    cell: QuizCell
    chosen: str  # class name the student picked
    point: Point | None = None  # where the student saw the deciding feature
    pointing: Pointing | None = None  # set once the model's map has been compared

    @property
    def true_class(self) -> str:
        return self.cell.class_name

    @property
    def correct(self) -> bool:
        return self.chosen == self.true_class


class Quiz:
    """A run of ``length`` questions drawn from the quiz cells, leaning toward weak classes.

    Each question is answered once (with a click on the image in point-and-check mode), and
    the quiz then waits on ``next_question()``, so the page can show feedback for the question
    just answered. The next question is drawn only then, from the answers so far
    (``draw_question``), so the same seed and the same answers give the same questions.
    Truth is the label the cell's data set gives it, not the model's prediction.
    """

    def __init__(self, cells: Sequence[QuizCell], seed: int, length: int = QUIZ_LENGTH,
                 point_and_check: bool = True) -> None:
        if not cells:
            raise QuizError("A quiz needs at least one cell image.")
        keys = [cell.key for cell in cells]
        if len(set(keys)) != len(keys):
            raise QuizError("Each cell can appear in a quiz only once.")
        for cell in cells:
            _class_name(cell.class_name)
        if length < 1:
            raise QuizError("A quiz needs at least one question.")
        # Sorted first, so the draws depend on the seed alone, not on how the list was built.
        self._pool = tuple(sorted(cells, key=lambda cell: cell.key))
        self.length = min(length, len(self._pool))
        self.point_and_check = point_and_check
        self.restart(seed)

    def restart(self, seed: int) -> None:
        """Forget every answer and start again, drawing with ``seed``."""
        self.seed = int(seed)
        self._rng = random.Random(self.seed)
        self.answers: list[QuizAnswer] = []
        self.questions: list[QuizCell] = []
        self.questions.append(self._draw())
        self.position = 0  # index of the question being asked or reviewed

    def _draw(self) -> QuizCell:
        return draw_question(self._pool, {cell.key for cell in self.questions}, self.per_class(),
                             self._rng)

    # -- where the student is ------------------------------------------------
    @property
    def total(self) -> int:
        return self.length

    @property
    def current(self) -> QuizCell:
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
    def answer(self, choice: str, point: Point | None = None) -> bool:
        """Record the student's class (and click) for the current question; True when right."""
        if self.finished:
            raise QuizError("The quiz is over: every question has been answered. "
                            "Restart to play again.")
        if not self.awaiting_answer:
            raise QuizError("This question has already been answered; go on to the next one.")
        chosen = _class_name(choice)
        if point is None and self.point_and_check:
            raise QuizError("Click on the image where you see the deciding feature first.")
        answer = QuizAnswer(cell=self.current, chosen=chosen,
                            point=None if point is None else _checked_point(point))
        self.answers.append(answer)
        return answer.correct

    def check_pointing(self, attribution: np.ndarray) -> Pointing | None:
        """Compare the last answer's click with the model's map of that cell, once; the result
        is kept with the answer. None when the answer has no click."""
        answer = self.last_answer
        if answer is None or answer.point is None:
            return None
        if answer.pointing is None:
            pointing = Pointing(pointing_score(attribution, answer.point),
                                best_pointing_score(attribution))
            self.answers[-1] = dataclasses.replace(answer, pointing=pointing)
        return self.answers[-1].pointing

    def next_question(self) -> None:
        """Move on from an answered question to a new one drawn from the answers so far."""
        if self.finished:
            raise QuizError("The quiz is over: there is no next question.")
        if self.awaiting_answer:
            raise QuizError("Answer this question before moving on.")
        self.questions.append(self._draw())
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

    def weak_classes(self) -> list[str]:
        return weak_classes(self.per_class())

    def next_class_chances(self) -> dict[str, float]:
        """Chance that the next question is of each class, given the answers so far (0 for a
        class with no cell left)."""
        asked = {cell.key for cell in self.questions}
        left = {cell.class_name for cell in self._pool if cell.key not in asked}
        weights = {name: weight if name in left else 0.0
                   for name, weight in class_weights(self.per_class()).items()}
        total = sum(weights.values())
        return {name: (weight / total if total else 0.0) for name, weight in weights.items()}

    def pointing_by_class(self) -> dict[str, tuple[float | None, int]]:
        """Class name -> (mean pointing score, clicks scored), for every class."""
        result = {}
        for name in CLASS_NAMES:
            scores = [a.pointing.score for a in self.answers if a.true_class == name
                      and a.pointing is not None and a.pointing.score is not None]
            result[name] = (sum(scores) / len(scores) if scores else None, len(scores))
        return result

    @property
    def mistakes(self) -> list[QuizAnswer]:
        return [answer for answer in self.answers if not answer.correct]


__all__ = [
    "CELL_NOTES",
    "NOT_COVERED",
    "POINT_RADIUS",
    "QUIZ_DIR",
    "SMEAR_BASICS",
    "TOP_SHARE",
    "CellNotes",
    "Pointing",
    "Quiz",
    "QuizAnswer",
    "QuizCell",
    "QuizError",
    "best_pointing_score",
    "class_weights",
    "draw_question",
    "list_quiz_cells",
    "mark_point",
    "pointing_score",
    "weak_classes",
]
