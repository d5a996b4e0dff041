"""How the app words numbers, statuses and cell choices (plain Python, no Streamlit)."""

from __future__ import annotations

from hematovision.model.classifier import Prediction
from hematovision.model.trust import (
    CHECK,
    CONFIDENT,
    NOT_BLOOD_CELL,
    OTHER_CELL_TYPE,
    UNFAMILIAR_SOURCE,
    TrustModel,
)
from hematovision.workflows.batch import looks_like


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def format_percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{100 * float(value):.{digits}f}%"


def status_label(prediction: Prediction) -> str:
    """The status in words for a table, naming the type another cell looks like."""
    other = looks_like(prediction)
    return f"{prediction.status_text}: looks like {other}" if other else prediction.status_text


def cell_choice_label(number: int, prediction: Prediction) -> str:
    """'Cell 2: Neutrophil, 93% (check this cell yourself)' for the cell picker."""
    if prediction.status == OTHER_CELL_TYPE:
        return f"Cell {number}: another cell type, looks like {prediction.other_type or 'none of the four'}"
    status = "" if prediction.status == CONFIDENT else f" ({prediction.status_text.lower()})"
    return (f"Cell {number}: {prediction.label.capitalize()}, "
            f"{format_percent(prediction.confidence, 0)}{status}")


# Measured on LISC, a lab the model never saw (training/EXPERIMENTS.md, "What profiles do not fix").
UNSEEN_LAB_OTHER_CELLS = ("On a lab the model never saw, real eosinophils, lymphocytes, monocytes and neutrophils "
                          "get this status too (one cell in four or five on LISC in our tests, with or without a lab "
                          "profile): look at each before leaving it out.")

# What each status means and what to do, for a clinician or a student (Classify page).
STATUS_GUIDE = {
    CONFIDENT: ("The model is sure, and the cell looks like the cells it learned from.",
                "Still look at the cell: HematoVision suggests, a person decides."),
    CHECK: ("The model hesitates between types: its calibrated confidence is below the level chosen on "
            "validation cells.",
            "Decide the type yourself; the probability chart shows which types it weighed."),
    UNFAMILIAR_SOURCE: ("A stained blood cell, but its stain, microscope or camera is unlike the labs the model "
                        "learned from, so its confidence means less here.",
                        "The type shown is its best answer and still counts in a differential: check each such "
                        "cell. A *lab profile* adapts the model to your lab: build one on the Batch page from a "
                        "batch of 30 or more of your lab's images, or from cells you have reviewed there."),
    OTHER_CELL_TYPE: ("A blood cell that is none of the four types: it looks like a basophil, an immature "
                      "granulocyte, an erythroblast (nucleated red cell) or a platelet, and the message names "
                      "which.",
                      "Identify it yourself. It is left out of the four-type counts; the predicted type is only "
                      f"the nearest of the four. {UNSEEN_LAB_OTHER_CELLS}"),
    NOT_BLOOD_CELL: ("The image does not look like a stained blood-smear cell: a photo, another kind of "
                     "microscopy, a plain colour or noise.",
                     "Ignore the type shown and upload a stained smear photo of a white cell."),
}


def statuses_not_checked(trust: TrustModel) -> set[str]:
    """Statuses the installed model cannot give, because the check behind them was not fitted."""
    missing = set()
    if trust.other_types is None:
        missing.add(OTHER_CELL_TYPE)
    if trust.ood is None or not trust.ood.far_threshold > trust.ood.threshold:
        missing.add(UNFAMILIAR_SOURCE)  # one OOD line only marks not_blood_cell
    if trust.ood is None:
        missing.add(NOT_BLOOD_CELL)
    return missing
