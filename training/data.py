"""Training data: which image shows which cell, a validation split by cell, and cached crops.

TRAIN holds ~35 augmented copies of each of only 277 cells, so any split that picks
images at random leaks cells into validation. Everything here works on the
``original`` column of ``TRAIN_SOURCES.csv``: a cell's copies always stay together.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hematovision.model import cells, stain
from hematovision.model.cells import frame_cell
from hematovision.model.classifier import CLASS_NAMES
from hematovision.model.imaging import load_image

CACHE_DIR = Path(__file__).resolve().parent / "cache"


@dataclass(frozen=True)
class Record:
    """One image file: its path, class index and the original cell it was made from."""

    path: Path
    label: int
    cell: str


def read_sources(data_dir: Path, split: str) -> list[Record]:
    """Rows of TRAIN_SOURCES.csv / TEST_SOURCES.csv for ``split``, sorted by path."""
    data_dir = Path(data_dir)
    csv_name = "TRAIN_SOURCES.csv" if split == "TRAIN" else "TEST_SOURCES.csv"
    records = []
    with open(data_dir / csv_name, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["split"] != split:
                continue
            path = data_dir / split / row["class"] / row["file"]
            records.append(Record(path, CLASS_NAMES.index(row["class"]), row["original"]))
    return sorted(records, key=lambda r: str(r.path))


def cell_labels(records: list[Record]) -> dict[str, int]:
    """Class of each distinct cell; a cell with two labels would be a data error."""
    labels: dict[str, int] = {}
    for record in records:
        if labels.setdefault(record.cell, record.label) != record.label:
            raise ValueError(f"Cell {record.cell} appears under two classes.")
    return labels


def split_cells(
    records: list[Record], val_fraction: float = 0.2, seed: int = 0
) -> tuple[set[str], set[str]]:
    """(train cells, validation cells): per class, a seeded ~val_fraction of its cells.

    Rounding is per class with at least one validation cell, so the 16 monocyte cells
    still give ~3 to validate on.
    """
    labels = cell_labels(records)
    rng = np.random.default_rng(seed)
    val: set[str] = set()
    for label in range(len(CLASS_NAMES)):
        members = sorted(cell for cell, lab in labels.items() if lab == label)
        if not members:
            continue
        count = max(1, int(round(val_fraction * len(members))))
        if len(members) > 1:
            count = min(count, len(members) - 1)
        val.update(rng.choice(members, size=count, replace=False).tolist())
    return set(labels) - val, val


def images_per_cell(records: list[Record], limit: int, seed: int = 0) -> list[Record]:
    """At most ``limit`` images of each cell (a seeded choice), in the original order.

    Kaggle TRAIN holds ~36 rotated and sheared copies of each cell; a dozen describe it
    as well, and the time saved goes to wider augmentation of each.
    """
    rng = np.random.default_rng(seed)
    by_cell: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_cell.setdefault(record.cell, []).append(index)
    kept = set()
    for cell in sorted(by_cell):
        members = by_cell[cell]
        kept.update(rng.choice(members, min(limit, len(members)), replace=False).tolist())
    return [record for index, record in enumerate(records) if index in kept]


def framing_key() -> str:
    """Short hash of cells.py's and stain.py's source (the background fill of a crop comes from
    stain.py): crops cached under another framing are not reused."""
    source = Path(cells.__file__).read_bytes() + Path(stain.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


def crop_one(path: Path) -> np.ndarray:
    crop, _ = frame_cell(load_image(path))
    return crop


def cached_crops(records: list[Record], name: str, workers: int = 2) -> np.ndarray:
    """frame_cell crops (N, 224, 224, 3) uint8 for ``records``, computed once and cached."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    listing = json.dumps([str(r.path) for r in records]).encode()
    key = f"{name}-{framing_key()}-{hashlib.sha256(listing).hexdigest()[:12]}"
    path = CACHE_DIR / f"crops-{key}.npy"
    if path.is_file():
        return np.load(path)
    paths = [r.path for r in records]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            crops = list(pool.map(crop_one, paths, chunksize=64))
    else:
        crops = [crop_one(p) for p in paths]
    array = np.stack(crops)
    np.save(path, array)
    return array


# -- PBC (Acevedo et al. 2020): one photo per cell ----------------------------------

PBC_SPLIT_FRACTIONS = {"test": 0.2, "val": 0.16}


def read_class_folders(root: Path, folders: list[str], pattern: str, prefix: str) -> list[Record]:
    """Every image matching ``pattern`` in ``root/<folder>``, labelled by the folder's index,
    sorted by path within a folder; each file is its own cell (``prefix/<stem>``)."""
    root = Path(root)
    return [Record(path, label, f"{prefix}/{path.stem}")
            for label, folder in enumerate(folders) for path in sorted((root / folder).glob(pattern))]


def stratified_split(records: list[Record], fractions: dict[str, float], seed: int) -> np.ndarray:
    """'train' / 'val' / 'test' for each record: per label, a seeded ``fractions["test"]`` for
    test, then ``fractions["val"]`` for validation, the rest training."""
    rng = np.random.default_rng(seed)
    labels = np.array([r.label for r in records])
    split = np.full(len(records), "train", dtype=object)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(fractions["test"] * len(members)))
        n_val = int(round(fractions["val"] * len(members)))
        split[members[:n_test]] = "test"
        split[members[n_test : n_test + n_val]] = "val"
    return split


def read_pbc(pbc_dir: Path) -> list[Record]:
    """Every PBC image, sorted by path; each photo is its own cell."""
    records = read_class_folders(pbc_dir, [name.lower() for name in CLASS_NAMES], "*.jpg", "pbc")
    if not records:
        raise FileNotFoundError(f"No PBC images under {pbc_dir}/<class>/*.jpg")
    return records


def split_pbc(records: list[Record], seed: int = 2026) -> np.ndarray:
    """'train' / 'val' / 'test' for each record: seeded, stratified by class.

    20% of each class is the PBC test split (only ever reported), 16% validation
    (early stopping, calibration, abstention and OOD thresholds), the rest training.
    The seed is fixed apart from the training seed so the test split never moves.
    """
    return stratified_split(records, PBC_SPLIT_FRACTIONS, seed)


# -- cells of other types (PBC) and the unseen validation lab (LISC) ----------------

OTHER_FOLDERS = {"basophil": "basophil", "immature granulocyte": "ig", "erythroblast": "erythroblast",
                 "platelet": "platelet"}
OTHER_SPLIT_FRACTIONS = {"test": 0.2, "val": 0.2}


def read_pbc_other(other_dir: Path) -> list[Record]:
    """PBC cells of the other types; ``label`` indexes ``cell_types.OTHER_TYPES``."""
    from hematovision.model.cell_types import OTHER_TYPES

    records = read_class_folders(other_dir, [OTHER_FOLDERS[name] for name in OTHER_TYPES], "*.jpg", "pbc-other")
    if not records:
        raise FileNotFoundError(f"No images under {other_dir}/<type>/*.jpg")
    return records


def split_other(records: list[Record], seed: int = 2026) -> np.ndarray:
    """'train' / 'val' / 'test' per record: seeded, stratified by type, 60/20/20.

    The test part is only ever reported; validation sets the detector's threshold.
    """
    return stratified_split(records, OTHER_SPLIT_FRACTIONS, seed)


def read_lisc(lisc_dir: Path) -> list[Record]:
    """LISC crops (validation only: never trained or tuned on), one per LISC image."""
    return read_class_folders(lisc_dir, [name.lower() for name in CLASS_NAMES], "*.png", "lisc")
