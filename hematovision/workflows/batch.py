"""Many images at once: unpack uploads (zips included) in memory, classify every white
cell, let a person review each call, and count the differential.

The review step follows what digital-morphology analysers do: the machine proposes a
class for every cell, a person confirms it, moves it to another class, or marks it "not
classed" to leave it out of the count. The differential (``differential.py``) is always
computed from the reviewed classes, so it updates as the review goes on.

Until a person reviews it, a cell counts only when its status says its class is one of
the four types (``trust.COUNTED_STATUSES``). A cell that looks like another blood cell
(``other_cell_type``: a basophil, an erythroblast...) is listed apart for review with the
type it resembles, and one that is not a blood cell at all is left out.

Nothing here touches the disk: uploads are bytes, zips are read from memory, and member
names are used for display only (cleaned, never joined to a path).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from hematovision.model.cell_types import OTHER_TYPE_TEXT
from hematovision.model.classifier import CLASS_NAMES, Classifier, Prediction, display_name
from hematovision.model.imaging import (
    MAX_UPLOAD_BYTES,
    SUPPORTED_SUFFIXES,
    ImageError,
    clean_display_name,
    load_image,
    over_upload_limit,
)
from hematovision.model.trust import (
    CONFIDENT,
    COUNTED_STATUSES,
    OTHER_CELL_TYPE,
)

TOO_LARGE = f"larger than the {MAX_UPLOAD_BYTES // 2**20} MB limit per image"
MAX_ZIP_MEMBERS = 1000
MAX_ZIP_TOTAL_BYTES = 500 * 1024 * 1024  # uncompressed, all members together
MAX_COMPRESSION_RATIO = 200  # images barely compress; far more than this is a zip bomb
MAX_BATCH_IMAGES = 1000
NAME_LIMIT = 80  # zip members are shown as 'archive.zip: member', so allow a little more
THUMBNAIL_SIDE = 96
NOT_CLASSED = "NOT_CLASSED"  # a reviewer's "leave this cell out of the count"

@dataclass(frozen=True)
class UploadedImage:
    """One image to classify: its display name and encoded bytes (in memory only)."""

    name: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Skipped:
    """An upload (or zip member) that will not be classified, and why."""

    name: str
    reason: str


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


def expand_uploads(files: Iterable[tuple[str | None, bytes]]) -> tuple[list[UploadedImage], list[Skipped]]:
    """Turn uploaded files (images and .zip archives) into images to classify.

    Zips are opened in memory; nested folders are fine, a zip inside a zip is not opened.
    Every file that is left out is listed with a specific reason; nothing raises.
    """
    images: list[UploadedImage] = []
    skipped: list[Skipped] = []
    for raw_name, data in files:
        name = clean_display_name(raw_name, "unnamed file", NAME_LIMIT)
        if over_upload_limit(len(data)) and not name.lower().endswith(".zip"):
            skipped.append(Skipped(name, TOO_LARGE))
        elif name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            found, problems = _unzip(name, data)
            images += found
            skipped += problems
        elif not data:
            skipped.append(Skipped(name, "the file is empty"))
        else:
            images.append(UploadedImage(name, bytes(data)))
    if len(images) > MAX_BATCH_IMAGES:
        skipped += [Skipped(image.name, f"over the limit of {MAX_BATCH_IMAGES} images per batch")
                    for image in images[MAX_BATCH_IMAGES:]]
        images = images[:MAX_BATCH_IMAGES]
    return images, skipped


def _unzip(zip_name: str, data: bytes) -> tuple[list[UploadedImage], list[Skipped]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return [], [Skipped(zip_name, f"not a readable zip archive ({exc})")]
    if len(members) > MAX_ZIP_MEMBERS:
        return [], [Skipped(zip_name, f"holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are accepted")]
    total = sum(info.file_size for info in members)
    packed = max(1, sum(info.compress_size for info in members))
    if total > MAX_ZIP_TOTAL_BYTES or (total > 10 * 2**20 and total / packed > MAX_COMPRESSION_RATIO):
        return [], [Skipped(zip_name, f"would unpack to {total / 2**20:.0f} MB from {packed / 2**20:.1f} MB; "
                                      "refused as a possible zip bomb")]
    if not members:  # said, so that an archive of empty folders is not silently nothing
        return [], [Skipped(zip_name, "the archive holds no files")]
    images, skipped = [], []
    for info in members:
        name = f"{zip_name}: {clean_display_name(info.filename, 'unnamed file', NAME_LIMIT)}"
        parts = info.filename.replace("\\", "/").split("/")
        if ".." in parts:
            # A "zip slip" name: nothing is ever extracted here, but no honest tool writes one,
            # and it used to be dropped unlisted as if it were a hidden file.
            skipped.append(Skipped(name, 'its path climbs out of the archive (".."); not opened'))
            continue
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue  # hidden files and macOS resource forks: not the user's images
        if info.filename.lower().endswith(".zip"):
            skipped.append(Skipped(name, "a zip inside a zip is not opened"))
        elif not _is_image_name(info.filename):
            skipped.append(Skipped(name, "not an image file (" + ", ".join(SUPPORTED_SUFFIXES) + ")"))
        elif over_upload_limit(info.file_size):
            skipped.append(Skipped(name, TOO_LARGE))
        elif info.flag_bits & 0x1:
            skipped.append(Skipped(name, "encrypted; unzip it with its password first"))
        else:
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
                skipped.append(Skipped(name, f"could not be unpacked ({exc})"))
                continue
            if content:
                images.append(UploadedImage(name, content))
            else:
                skipped.append(Skipped(name, "the file is empty"))
    return images, skipped


# -- classification -------------------------------------------------------------------

def looks_like(prediction: Prediction) -> str:
    """'an erythroblast (nucleated red cell)' for another cell type, '' for any other status."""
    if prediction.status != OTHER_CELL_TYPE:
        return ""
    return OTHER_TYPE_TEXT.get(prediction.other_type or "", "another type")


@dataclass
class BatchCell:
    """One white cell found in one uploaded image, with the model's call and the review."""

    key: str  # unique in a batch: "<sha256 of the image>:<cell number>"
    file: str
    cell_number: int  # 1-based within its image
    cells_in_image: int
    prediction: Prediction
    thumbnail: np.ndarray = field(repr=False)  # small copy of the model's crop
    reviewed: str | None = None  # None = not reviewed; a class name; or NOT_CLASSED

    @property
    def image_sha256(self) -> str:
        return self.key.split(":")[0]

    @property
    def predicted(self) -> str:
        return self.prediction.label

    @property
    def status(self) -> str:
        return self.prediction.status

    @property
    def needs_check(self) -> bool:
        return self.status != CONFIDENT

    @property
    def counts_unreviewed(self) -> bool:
        """Whether the model's own class counts in the differential before anyone reviews it."""
        return self.status in COUNTED_STATUSES

    @property
    def final_class(self) -> str | None:
        """What the cell counts as: the reviewed class, else the prediction when its status
        counts (not another cell type, not a non-blood image); None = left out."""
        if self.reviewed is not None:
            return None if self.reviewed == NOT_CLASSED else self.reviewed
        return self.predicted if self.counts_unreviewed else None

    @property
    def is_other_cell(self) -> bool:
        """Another cell type that nobody has moved into one of the four classes: "Other cells, review"."""
        return self.status == OTHER_CELL_TYPE and self.final_class is None

    @property
    def looks_like(self) -> str:
        return looks_like(self.prediction)

    @property
    def counted_as(self) -> str:
        """The final class in words: 'Neutrophil', 'other cell, review' or 'not classed'."""
        if self.final_class:
            return display_name(self.final_class)
        return "other cell, review" if self.is_other_cell else "not classed"

    @property
    def changed(self) -> bool:
        return self.reviewed is not None and self.reviewed != self.predicted

    def as_row(self) -> dict:
        """The CSV row: file, cell, predicted class, probabilities, status, other type, review."""
        other_probability = self.prediction.other_type_probability
        return {
            "file": csv_safe(self.file),
            "cell": self.cell_number,
            "predicted_class": self.predicted,
            "confidence": round(self.prediction.confidence, 6),
            **{f"p_{name.lower()}": round(self.prediction.probabilities[name], 6) for name in CLASS_NAMES},
            "status": self.status,
            "status_text": self.prediction.status_text,
            "other_type": self.prediction.other_type or "",
            "other_type_probability": "" if other_probability is None else round(other_probability, 6),
            "check_flag": int(self.needs_check),
            "reviewed_class": self.reviewed or "",
            "final_class": self.final_class or NOT_CLASSED,
            "changed_by_reviewer": int(self.changed),
        }


def thumbnail(crop: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    return np.asarray(Image.fromarray(np.asarray(crop, np.uint8)).resize((side, side), Image.Resampling.LANCZOS))


def classify_batch(classifier: Classifier, images: list[UploadedImage],
                   progress: Callable[[int, int, str], None] | None = None
                   ) -> tuple[list[BatchCell], list[Skipped]]:
    """Every white cell of every image, in upload order; unreadable images are skipped with
    the loader's message. ``progress(done, total, name)`` after each image."""
    cells: list[BatchCell] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for number, image in enumerate(images, 1):
        try:
            rgb = load_image(image.data)
            predictions = classifier.predict_cells(rgb)
        except ImageError as exc:
            skipped.append(Skipped(image.name, str(exc)))
        else:
            digest = image.digest
            if digest in seen:
                skipped.append(Skipped(image.name, "the same image was already uploaded in this batch"))
            else:
                seen.add(digest)
                for index, prediction in enumerate(predictions, 1):
                    cells.append(BatchCell(key=f"{digest}:{index}", file=image.name, cell_number=index,
                                           cells_in_image=len(predictions), prediction=prediction,
                                           thumbnail=thumbnail(prediction.model_input)))
        if progress:
            progress(number, len(images), image.name)
    return cells, skipped


# -- review and differential ----------------------------------------------------------

def confirm_unreviewed(cells: list[BatchCell]) -> int:
    """Accept the model's class for every unreviewed cell whose class counts; returns how many.

    Other cell types and non-blood images stay unreviewed: "confirming" them would put a
    basophil or a photo of a cat into the four counts under a class it is not.
    """
    confirmed = 0
    for cell in cells:
        if cell.reviewed is None and cell.counts_unreviewed:
            cell.reviewed = cell.predicted
            confirmed += 1
    return confirmed


def other_cells(cells: list[BatchCell]) -> list[BatchCell]:
    """The cells to list under "Other cells, review": another cell type, not counted."""
    return [cell for cell in cells if cell.is_other_cell]


def set_review(cells: list[BatchCell], key: str, reviewed: str | None) -> None:
    """Record a reviewer's decision: a class name, NOT_CLASSED, or None to undo."""
    if reviewed is not None and reviewed != NOT_CLASSED and reviewed not in CLASS_NAMES:
        raise ValueError(f"Unknown class {reviewed!r}; use one of {', '.join(CLASS_NAMES)} or {NOT_CLASSED}.")
    for cell in cells:
        if cell.key == key:
            cell.reviewed = reviewed
            return
    raise KeyError(f"No cell {key!r} in this batch.")


def csv_safe(text: str) -> str:
    """A user's file name made harmless in a spreadsheet (no formula when it starts with = + - @)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def cells_csv(cells: list[BatchCell], lab_profile: str = "") -> str:
    """All cells as CSV text (one row per cell); with a lab profile in use, a column with its SHA-256."""
    import csv

    buffer = io.StringIO()
    rows = [cell.as_row() | ({"lab_profile": lab_profile} if lab_profile else {}) for cell in cells]
    fields = list(rows[0]) if rows else ["file", "cell", "predicted_class"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
