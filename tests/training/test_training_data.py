"""The validation split keeps every cell's copies on one side, per class, reproducibly."""

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from training.data import Record, cell_labels, split_cells


def fake_records():
    # 4 classes with 20, 10, 5 and 40 cells, each cell with 3 augmented copies.
    records = []
    for label, n_cells in enumerate([20, 10, 5, 40]):
        for cell in range(n_cells):
            for copy in range(3):
                records.append(Record(Path(f"c{label}/{cell}_{copy}.jpeg"), label, f"cell_{label}_{cell}"))
    return records


def test_no_cell_on_both_sides_and_every_cell_used():
    records = fake_records()
    train, val = split_cells(records, 0.2, seed=0)
    assert not train & val
    assert train | val == {r.cell for r in records}


def test_split_is_stratified_by_class():
    records = fake_records()
    labels = cell_labels(records)
    _, val = split_cells(records, 0.2, seed=0)
    per_class = Counter(labels[c] for c in val)
    assert per_class == {0: 4, 1: 2, 2: 1, 3: 8}


def test_split_is_deterministic_and_seed_dependent():
    records = fake_records()
    assert split_cells(records, 0.2, seed=3) == split_cells(records, 0.2, seed=3)
    assert split_cells(records, 0.2, seed=3)[1] != split_cells(records, 0.2, seed=4)[1]


def test_a_cell_under_two_classes_is_refused():
    records = [Record(Path("a/1.jpeg"), 0, "x"), Record(Path("b/1.jpeg"), 1, "x")]
    with pytest.raises(ValueError):
        cell_labels(records)


DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "blood-cells"


@pytest.mark.skipif(not (DATA_DIR / "TRAIN_SOURCES.csv").is_file(), reason="dataset not present")
def test_real_train_split_keeps_cells_apart():
    from training.data import read_sources

    records = read_sources(DATA_DIR, "TRAIN")
    assert len(records) == 9957
    train, val = split_cells(records)
    assert not train & val
    assert len(train) + len(val) == 277
    assert 0.15 < len(val) / 277 < 0.25


PBC_DIR = DATA_DIR.parent / "pbc"


@pytest.mark.skipif(not PBC_DIR.is_dir(), reason="PBC data not present")
def test_pbc_test_split_is_fixed_stratified_and_apart():
    from training.data import read_pbc, split_pbc

    records = read_pbc(PBC_DIR)
    split = split_pbc(records)
    assert len(records) == 3633
    assert list(split) == list(split_pbc(records))  # same every time
    for label in range(4):
        members = [part for r, part in zip(records, split) if r.label == label]
        assert Counter(members)["test"] / len(members) == pytest.approx(0.2, abs=0.002)
        assert Counter(members)["val"] / len(members) == pytest.approx(0.16, abs=0.002)


def test_lab_augmentation_changes_colour_and_keeps_the_image_shape():
    import numpy as np

    from tests.synthetic import synthetic_smear
    from training.train import augmented_copy, model_inputs

    crops = np.stack([synthetic_smear(224, 224, nucleus_at=(112, 112))] * 3)
    first = augmented_copy(crops, 1, seed=0, strength=0.25, kind="lab")
    assert first.shape == crops.shape and first.dtype == np.uint8
    assert np.abs(first.astype(int) - crops).mean() > 5
    assert np.array_equal(first, augmented_copy(crops, 1, seed=0, strength=0.25, kind="lab"))
    assert np.array_equal(augmented_copy(crops, 0, seed=0, strength=0.25, kind="lab"), crops)
    fed = model_inputs(crops, 0, 0, 0.25, "lab", "background")
    assert fed.dtype == np.float32 and fed.shape == crops.shape
