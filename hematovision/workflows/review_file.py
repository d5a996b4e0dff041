"""Review files: a batch review saved as JSON, so an hour's work survives a closed browser.

The file names each cell by its image's SHA-256 and its box in that image (not by file
name, which a person may change), with the model's call, the reviewer's class, the
reviewer's initials and note, the time (UTC) and the model and lab profile the review
was made with. Loading it back onto the same images, uploaded again, puts each review
on the cell with the same hash and box; what matches nothing is listed.

A review is of one model's calls: a file made with another model is refused. Files are
read and written as bytes only; nothing touches the disk.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from hematovision.model.classifier import CLASS_NAMES
from hematovision.workflows.batch import NOT_CLASSED, BatchCell

FORMAT = "hematovision-review/1"
MAX_REVIEW_BYTES = 5 * 2**20  # a 1,000-image batch of single cells writes about 0.4 MB
MAX_INITIALS = 8
MAX_NOTE = 2000
REVIEW_CHOICES = (*CLASS_NAMES, NOT_CLASSED)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ReviewFileError(ValueError):
    """A review file that cannot be used; the message says why, in plain words."""


@dataclass(frozen=True)
class CellReview:
    """One cell as the file records it."""

    image_sha256: str
    box: tuple[int, int, int]  # x, y, side in the source image's pixels
    file: str  # the name it had when reviewed, for the list of unmatched cells
    model_label: str
    model_status: str
    reviewed: str | None  # a class, NOT_CLASSED, or None (not reviewed)

    @property
    def place(self) -> tuple[str, tuple[int, int, int]]:
        return self.image_sha256, self.box

    def describe(self) -> str:
        """'ward-3.png, cell at x=10 y=20 (120 px): reviewed as Monocyte'."""
        x, y, side = self.box
        review = "not reviewed" if self.reviewed is None else f"reviewed as {self.reviewed.lower().replace('_', ' ')}"
        return f"{self.file}, cell at x={x} y={y} ({side} px): {review}"


@dataclass(frozen=True)
class Review:
    """A batch review: every cell, who reviewed it, and the model it was made with."""

    cells: list[CellReview]
    model_sha256: str
    lab_profile: str = ""  # the lab profile's SHA-256, "" for the shipped model
    initials: str = ""
    note: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_bytes(self) -> bytes:
        content = {
            "format": FORMAT, "created": self.created, "model_sha256": self.model_sha256,
            "lab_profile_sha256": self.lab_profile, "reviewer": {"initials": self.initials, "note": self.note},
            "cells": [{"image_sha256": c.image_sha256, "box": dict(zip(("x", "y", "side"), c.box)), "file": c.file,
                       "model_label": c.model_label, "model_status": c.model_status, "reviewed": c.reviewed}
                      for c in self.cells],
        }
        return json.dumps(content, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Review:
        """Read a review file, or raise ``ReviewFileError`` saying what is wrong with it."""
        if len(data) > MAX_REVIEW_BYTES:
            raise ReviewFileError(f"The file is {len(data):,} bytes; a review file is at most "
                                  f"{MAX_REVIEW_BYTES // 2**20} MB.")
        try:
            content = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReviewFileError(f"This is not a HematoVision review file: it is not valid JSON ({exc}).") from None
        except RecursionError:  # brackets nested thousands deep: no review file looks like that
            raise ReviewFileError("This is not a HematoVision review file: its JSON is nested too deeply.") from None
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            raise ReviewFileError(f"This is not a HematoVision review file (its format is not {FORMAT!r}).")
        try:
            reviewer = content["reviewer"]
            review = cls(cells=[_cell(entry) for entry in content["cells"]],
                         model_sha256=_text(content["model_sha256"], "model_sha256", 64),
                         lab_profile=_text(content["lab_profile_sha256"], "lab_profile_sha256", 64),
                         initials=_text(reviewer["initials"], "initials", MAX_INITIALS),
                         note=_text(reviewer["note"], "note", MAX_NOTE),
                         created=_text(content["created"], "created", 40))
        except (KeyError, TypeError) as exc:
            raise ReviewFileError(f"The review file is damaged: an entry is missing or of the wrong kind ({exc}).") \
                from None
        if not _SHA256.fullmatch(review.model_sha256):
            raise ReviewFileError("The review file is damaged: its model_sha256 is not a SHA-256.")
        return review

    def check_model(self, model_sha256: str | None) -> None:
        """Refuse a review of another model's calls."""
        if model_sha256 and self.model_sha256 != model_sha256:
            raise ReviewFileError(
                f"This review file was made with another model (sha256 {self.model_sha256[:12]}…); this app runs "
                f"{model_sha256[:12]}…. Its reviews are of that model's calls, so none were loaded.")

    @property
    def changes(self) -> int:
        return sum(c.reviewed is not None and c.reviewed != c.model_label for c in self.cells)


def _text(value, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} should be text")
    if len(value) > limit:
        raise ReviewFileError(f"The review file's {name} is longer than {limit} characters.")
    return value


def _cell(entry: dict) -> CellReview:
    box = entry["box"]
    numbers = tuple(box[key] for key in ("x", "y", "side"))
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise TypeError("a cell box should hold whole numbers")
    reviewed = entry["reviewed"]
    if reviewed is not None and reviewed not in REVIEW_CHOICES:
        raise ReviewFileError(f"The review file names an unknown class {str(reviewed)[:40]!r}; "
                              f"a review is one of {', '.join(REVIEW_CHOICES)}.")
    image = _text(entry["image_sha256"], "image_sha256", 64)
    if not _SHA256.fullmatch(image):
        raise ReviewFileError("The review file is damaged: an image_sha256 is not a SHA-256.")
    return CellReview(image_sha256=image, box=numbers, file=_text(entry["file"], "file", 200),
                      model_label=_text(entry["model_label"], "model_label", 40),
                      model_status=_text(entry["model_status"], "model_status", 40), reviewed=reviewed)


def _place(cell: BatchCell) -> tuple[str, tuple[int, int, int]]:
    box = cell.prediction.box
    return cell.image_sha256, (int(box.x), int(box.y), int(box.side))


def review_of(cells: list[BatchCell], model_sha256: str, lab_profile: str = "", initials: str = "",
              note: str = "") -> Review:
    """The batch's review as it stands, ready to save."""
    saved = []
    for cell in cells:
        image, box = _place(cell)
        saved.append(CellReview(image_sha256=image, box=box, file=cell.file, model_label=cell.predicted,
                                model_status=cell.status, reviewed=cell.reviewed))
    return Review(cells=saved, model_sha256=model_sha256, lab_profile=lab_profile, initials=initials.strip()[:MAX_INITIALS],
                  note=note.strip()[:MAX_NOTE])


@dataclass(frozen=True)
class Resumed:
    """What loading a review onto a batch did."""

    matched: int  # cells of the batch that got their review back (reviewed or not)
    not_found: list[CellReview]  # in the file, but no cell of this batch has that image and box
    not_in_file: list[BatchCell]  # in this batch, but not in the file: left as they were
    other_calls: int  # matched cells whose model call now differs from the one reviewed

    def summary(self) -> str:
        parts = [f"{self.matched} cell{'s' if self.matched != 1 else ''} matched"]
        if self.not_found:
            parts.append(f"{len(self.not_found)} in the file not found in this batch")
        if self.not_in_file:
            parts.append(f"{len(self.not_in_file)} in this batch not in the file")
        if self.other_calls:
            parts.append(f"{self.other_calls} where the model's call now differs from the one reviewed")
        return ", ".join(parts)


def resume(review: Review, cells: list[BatchCell]) -> Resumed:
    """Put each review on the batch cell with the same image hash and box."""
    by_place = {review_cell.place: review_cell for review_cell in review.cells}
    matched, other_calls, not_in_file = 0, 0, []
    for cell in cells:
        saved = by_place.pop(_place(cell), None)
        if saved is None:
            not_in_file.append(cell)
            continue
        cell.reviewed = saved.reviewed
        matched += 1
        other_calls += saved.model_label != cell.predicted
    return Resumed(matched=matched, not_found=list(by_place.values()), not_in_file=not_in_file,
                   other_calls=other_calls)
