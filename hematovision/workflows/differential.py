"""The white-cell differential and its counting statistics.

A share counted from a few cells is imprecise: 1 monocyte in 10 cells is "10%", but the
exact binomial (Clopper-Pearson) 95% interval runs from 0.3% to 44.5%. Laboratories
have long judged manual differentials this way (Rümke's table gives these intervals),
and count 100 or 200 cells for this reason. So every class here carries its interval,
and a reference-range flag says which of two things it is:

* a **finding**: the whole interval lies outside the range, so more cells would not
  bring the share back into it;
* a **point outside only**: the share is outside but the interval still reaches the
  range, and the flag says how many more cells would tell (``cells_needed``).

What counts: a reviewed cell under its reviewed class; an unreviewed cell under the
model's class when its status says it is one of the four types. Another cell type and
a non-blood image that nobody moved into a class are kept apart, not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import stats

from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.model.trust import NOT_BLOOD_CELL, OTHER_CELL_TYPE, UNFAMILIAR_SOURCE
from hematovision.workflows.batch import BatchCell

CONFIDENCE = 0.95
TARGET_COUNTS = (100, 200)  # the usual manual differentials
MAX_PLANNED_CELLS = 10_000  # beyond this a count is no longer a plan a person can carry out

# Adult reference ranges, % of white cells. These are the ranges this project was asked to
# show; published ranges differ a little by source (MedlinePlus, "Blood differential test",
# gives the same lymphocyte, monocyte and eosinophil ranges and 40-60% for neutrophils).
# Each laboratory should use its own. Basophils (0.5-1%) are not a class this model knows.
REFERENCE_RANGES = {
    "NEUTROPHIL": (40.0, 70.0),
    "LYMPHOCYTE": (20.0, 40.0),
    "MONOCYTE": (2.0, 8.0),
    "EOSINOPHIL": (1.0, 4.0),
}
REFERENCE_SOURCE = ("Adult reference ranges as specified for HematoVision (neutrophils 40–70%, lymphocytes 20–40%, "
                    "monocytes 2–8%, eosinophils 1–4%); sources differ slightly, e.g. MedlinePlus gives 40–60% "
                    "for neutrophils. Use your laboratory's own ranges.")
INTERVAL_NOTE = ("Each share has an exact binomial (Clopper–Pearson) 95% interval, the statistics behind Rümke's "
                 "table: with few cells counted it is wide, so a share outside the range is a finding only when "
                 "the whole interval lies outside it.")


# -- the statistics ------------------------------------------------------------------------

def clopper_pearson(count: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact binomial interval for ``count`` of ``n``, as fractions; (0, 1) when nothing is counted."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= count <= n:
        raise ValueError(f"A count of {count} out of {n} is not a proportion.")
    tail = (1 - confidence) / 2
    low = 0.0 if count == 0 else float(stats.beta.ppf(tail, count, n - count + 1))
    high = 1.0 if count == n else float(stats.beta.ppf(1 - tail, count + 1, n - count))
    return low, high


def cells_needed(share: float, threshold: float, confidence: float = CONFIDENCE,
                 limit: int = MAX_PLANNED_CELLS) -> int | None:
    """How many cells in all to tell whether the true share is above or below ``threshold``,
    if the share stays what it is now: the smallest n whose Clopper-Pearson interval at
    this share excludes the threshold. None when it would take more than ``limit`` cells
    (or forever: a share equal to the threshold).

    The count at n cells is taken as ``share * n`` (not rounded), so the answer does not
    jump about with rounding; the beta quantiles accept a fractional count.
    """
    if not (0 <= share <= 1 and 0 < threshold < 1):
        raise ValueError(f"share must be in [0, 1] and threshold in (0, 1); got {share}, {threshold}.")
    if share == threshold:
        return None
    n = np.arange(1, limit + 1, dtype=float)
    count = share * n
    tail = (1 - confidence) / 2
    if share > threshold:  # the interval's lower end must rise above the threshold
        low = stats.beta.ppf(tail, count, n - count + 1) if share < 1 else tail ** (1 / n)
        decided = low > threshold
    else:  # its upper end must fall below it
        high = stats.beta.ppf(1 - tail, count + 1, n - count) if share > 0 else 1 - tail ** (1 / n)
        decided = high < threshold
    hits = np.flatnonzero(decided)
    return int(n[hits[0]]) if hits.size else None


# -- one class's line ------------------------------------------------------------------------

@dataclass(frozen=True)
class DifferentialRow:
    cell_type: str
    count: int
    counted: int  # cells in the differential (all classes)
    reference: tuple[float, float]  # % of white cells

    @property
    def share(self) -> float | None:
        """Fraction of counted cells; None when nothing is counted."""
        return self.count / self.counted if self.counted else None

    @property
    def percent(self) -> float | None:
        return None if self.share is None else round(100 * self.share, 1)

    @cached_property
    def ci95(self) -> tuple[float, float] | None:
        return clopper_pearson(self.count, self.counted) if self.counted else None

    @property
    def flag(self) -> str:
        """"low", "high", "" (within range) or "–" (nothing counted), from the share itself."""
        if self.percent is None:
            return "–"
        low, high = self.reference
        return "low" if 100 * self.share < low else "high" if 100 * self.share > high else ""

    @property
    def finding(self) -> bool:
        """The whole 95% interval lies outside the range: more cells would not change the flag."""
        if self.flag not in ("low", "high"):
            return False
        low, high = self.ci95
        return 100 * high < self.reference[0] if self.flag == "low" else 100 * low > self.reference[1]

    @cached_property
    def cells_to_decide(self) -> int | None:
        """For a share outside the range whose interval still reaches it: how many cells in all
        would tell (at this share), or None if more than ``MAX_PLANNED_CELLS``."""
        if self.flag not in ("low", "high") or self.finding:
            return None
        bound = self.reference[0] if self.flag == "low" else self.reference[1]
        return cells_needed(self.share, bound / 100)

    @property
    def more_cells(self) -> int | None:
        needed = self.cells_to_decide
        return None if needed is None else max(0, needed - self.counted)

    def interval_text(self) -> str:
        """'3.1–17.6%', or '–' when nothing is counted."""
        if self.ci95 is None:
            return "–"
        low, high = self.ci95
        return f"{100 * low:.1f}–{100 * high:.1f}%"

    def flag_text(self) -> str:
        """The flag in words, with the planning hint when the count cannot yet tell."""
        if self.flag == "–":
            return "–"
        if not self.flag:
            return "within range"
        side, bound = ("below", self.reference[0]) if self.flag == "low" else ("above", self.reference[1])
        if self.finding:
            return f"{side} range: the whole 95% interval ({self.interval_text()}) lies {side} {bound:g}%"
        more = self.more_cells
        plan = (f"count {more} more cells to tell" if more is not None
                else f"more than {MAX_PLANNED_CELLS:,} cells would be needed to tell at this share")
        return f"{side} range at this count, but the 95% interval ({self.interval_text()}) reaches {bound:g}%: {plan}"

    def as_dict(self) -> dict:
        return {"count": self.count, "share": self.share, "ci95": None if self.ci95 is None else list(self.ci95),
                "reference_percent": list(self.reference), "flag": self.flag, "finding": self.finding,
                "more_cells_to_decide": self.more_cells, "flag_text": self.flag_text()}


# -- the differential --------------------------------------------------------------------------

@dataclass(frozen=True)
class Differential:
    rows: list[DifferentialRow]
    counted: int  # cells in the differential
    total_cells: int
    not_classed: int  # all cells left out of the count: the three below together
    reviewed: int
    changed: int
    flagged_for_check: int
    other_cells: int = 0  # another cell type, not moved into a class by the reviewer
    not_blood: int = 0  # not a blood-cell image, not moved into a class by the reviewer
    left_out_by_reviewer: int = 0  # marked "not classed" by the reviewer (other than the two above)
    unfamiliar_source: int = 0  # cells whose stain, microscope or camera is unlike the training labs'

    def left_out_text(self) -> str:
        """Why cells are missing from the count, e.g. '2 other cell types (listed for review), 1 not a blood cell'."""
        parts = [(self.other_cells, "other cell type", "other cell types", " (listed for review)"),
                 (self.not_blood, "image that is not a blood cell", "images that are not blood cells", ""),
                 (self.left_out_by_reviewer, "marked not classed by the reviewer",
                  "marked not classed by the reviewer", "")]
        return ", ".join(f"{count} {one if count == 1 else many}{note}" for count, one, many, note in parts if count)

    def flags(self) -> list[str]:
        """'Monocyte: above range at this count, …' for each class outside its range."""
        return [f"{display_name(row.cell_type)}: {row.flag_text()}" for row in self.rows if row.flag in ("low", "high")]

    def as_dict(self) -> dict:
        return {"classes": {row.cell_type: row.as_dict() for row in self.rows}, "cells_counted": self.counted,
                "other_cells": self.other_cells, "not_blood_cells": self.not_blood,
                "left_out_by_reviewer": self.left_out_by_reviewer, "total_cells": self.total_cells,
                "unfamiliar_source": self.unfamiliar_source, "reviewed": self.reviewed, "changed": self.changed,
                "flagged_for_check": self.flagged_for_check, "flags": self.flags(), "confidence": CONFIDENCE}


def differential(cells: list[BatchCell]) -> Differential:
    """Counts, shares and intervals per class from the reviewed classes, against reference ranges."""
    finals = [cell.final_class for cell in cells]
    counted = sum(final is not None for final in finals)
    rows = [DifferentialRow(name, finals.count(name), counted, REFERENCE_RANGES[name]) for name in CLASS_NAMES]
    left_out = [cell for cell in cells if cell.final_class is None]
    other = sum(cell.status == OTHER_CELL_TYPE for cell in left_out)
    not_blood = sum(cell.status == NOT_BLOOD_CELL for cell in left_out)
    return Differential(rows=rows, counted=counted, total_cells=len(cells), not_classed=len(left_out),
                        reviewed=sum(cell.reviewed is not None for cell in cells),
                        changed=sum(cell.changed for cell in cells),
                        flagged_for_check=sum(cell.needs_check for cell in cells),
                        other_cells=other, not_blood=not_blood, left_out_by_reviewer=len(left_out) - other - not_blood,
                        unfamiliar_source=sum(cell.status == UNFAMILIAR_SOURCE for cell in cells))
