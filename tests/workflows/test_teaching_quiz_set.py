"""The quiz's shipped cells (samples/quiz/): none is an Atlas cell, all come from held-out
splits, and the folder is what training/build_quiz_set.py builds from the shared data."""

from __future__ import annotations

import csv
import hashlib
import re

import pytest

from hematovision import load_image
from hematovision.model.classifier import CLASS_NAMES
from hematovision.workflows.samples import list_samples
from hematovision.workflows.teaching import QUIZ_DIR, SOURCE_NAMES, list_quiz_cells
from tests.conftest import DATA_DIR, REPO_ROOT

PBC_DIR = DATA_DIR.parent / "pbc"
HELD_OUT = {"kaggle": "TEST_SIMPLE", "pbc": "test"}
needs_data = pytest.mark.skipif(not (DATA_DIR / "TEST_SOURCES.csv").is_file() or not PBC_DIR.is_dir(),
                                reason="needs the shared data sets (../shared/data)")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def cells():
    return list_quiz_cells()


def atlas_originals() -> dict[str, str]:
    """Atlas sample -> the BCCD smear photo it was cut from, as samples/README.md records it."""
    table = (REPO_ROOT / "samples" / "README.md").read_text()
    return dict(re.findall(r"^\| (\w+-\d)\.jpeg \| .+? \| (BloodImage_\d{5}) \|", table, re.M))


def test_the_quiz_set_is_balanced_attributed_and_small(cells):
    assert len(cells) == 48
    assert {name: sum(c.class_name == name for c in cells) for name in CLASS_NAMES} == \
        dict.fromkeys(CLASS_NAMES, 12)
    assert {c.source for c in cells} == set(SOURCE_NAMES)
    for cell in cells:
        data = cell.read_bytes()
        assert sha256(data) == cell.sha256, cell.key
        assert load_image(data).shape[2] == 3
        assert ("MIT" if cell.source == "kaggle" else "CC BY 4.0") in cell.licence
        assert cell.original_file and cell.original_id
    assert sum(cell.path.stat().st_size for cell in cells) < 2 * 1024 * 1024
    # Nothing in the folder that the manifest does not list.
    listed = {cell.path.name for cell in cells} | {"manifest.csv", "README.md"}
    assert {path.name for path in QUIZ_DIR.iterdir()} == listed


def test_the_quiz_draws_no_atlas_cell(cells):
    atlas = list_samples()
    assert len(atlas) == 12
    atlas_hashes = {sha256(sample.read_bytes()) for sample in atlas}
    assert not atlas_hashes & {sha256(cell.read_bytes()) for cell in cells}
    originals = atlas_originals()
    assert len(originals) == 12 and set(originals) == {sample.key for sample in atlas}
    assert not set(originals.values()) & {cell.original_id for cell in cells}


def test_every_quiz_image_is_from_a_held_out_split(cells):
    for cell in cells:
        assert cell.split == HELD_OUT[cell.source], cell.key
    kaggle = [c for c in cells if c.source == "kaggle"]
    assert len({c.original_id for c in kaggle}) == len(kaggle)  # one image per BCCD original
    assert all(c.original_file.startswith(f"TEST_SIMPLE/{c.class_name}/") for c in kaggle)


@needs_data
def test_the_manifest_matches_the_data_sets_and_their_held_out_splits(cells):
    from training import data

    manifest = {}
    for folder in (DATA_DIR, PBC_DIR):
        for line in (folder / "MANIFEST").read_text().splitlines():
            path, digest = line.rsplit(" ", 1)
            manifest[(folder, path)] = digest
    with open(DATA_DIR / "TEST_SOURCES.csv", newline="") as handle:
        sources = {f"{row['split']}/{row['class']}/{row['file']}": row["original"]
                   for row in csv.DictReader(handle)}
    pbc = data.read_pbc(PBC_DIR)
    pbc_test = {str(r.path.relative_to(PBC_DIR)) for r, part in zip(pbc, data.split_pbc(pbc))
                if part == "test"}
    for cell in cells:
        folder = DATA_DIR if cell.source == "kaggle" else PBC_DIR
        assert manifest[(folder, cell.original_file)] == cell.sha256, cell.key
        if cell.source == "kaggle":
            assert sources[cell.original_file] == cell.original_id
        else:
            assert cell.original_file in pbc_test, cell.key


@needs_data
def test_the_build_script_rebuilds_the_shipped_folder(capsys):
    from training import build_quiz_set

    assert build_quiz_set.main(["--data-dir", str(DATA_DIR), "--check"]) == 0
    assert "matches a fresh build of 48 images" in capsys.readouterr().out
