"""Whole smear fields: every white cell is found, framed and classified on its own."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hematovision.interfaces.cli import main
from hematovision.model.cells import locate_white_cells
from tests.conftest import DATA_DIR
from tests.synthetic import synthetic_smear

ORIGINALS = DATA_DIR / "ORIGINAL" / "JPEGImages"


def two_cell_field() -> np.ndarray:
    field = synthetic_smear(640, 480, nucleus_at=(150, 120))
    second = synthetic_smear(640, 480, nucleus_at=(470, 330))
    yy, xx = np.mgrid[:480, :640]
    near_second = (yy - 330) ** 2 + (xx - 470) ** 2 < 32**2
    field[near_second] = second[near_second]
    return field


def test_two_separate_nuclei_give_two_boxes_around_them():
    boxes = locate_white_cells(two_cell_field())
    assert len(boxes) == 2
    centres = sorted((b.x + b.side / 2, b.y + b.side / 2) for b in boxes)
    assert centres[0] == pytest.approx((150, 120), abs=6)
    assert centres[1] == pytest.approx((470, 330), abs=6)


def test_one_cell_image_gives_one_box_the_same_as_single_cell_framing():
    from hematovision.model.cells import locate_white_cell

    smear = synthetic_smear()
    assert locate_white_cells(smear) == [locate_white_cell(smear)]


def test_image_without_a_nucleus_still_gives_one_centre_box():
    [box] = locate_white_cells(np.full((200, 300, 3), 230, np.uint8))
    assert box.found is False


def test_predict_json_lists_each_cell_with_box_prediction_and_status(capsys, classifier, tmp_path):
    path = tmp_path / "field.png"
    Image.fromarray(two_cell_field()).save(path)
    assert main(["predict", str(path), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["cell_count"] == 2
    assert len(entry["cells"]) == 2
    for cell in entry["cells"]:
        assert {"label", "confidence", "probabilities", "status", "status_text", "cell_box"} <= set(cell)
        assert cell["cell_box"]["cell_found"] is True
    assert entry["cells"][0]["cell_box"] == entry["cell_box"]  # the top level is the biggest cell


@pytest.mark.skipif(not ORIGINALS.is_dir(), reason="dataset not present")
def test_real_field_with_two_neutrophils_gives_two_neutrophils(classifier):
    # labels.csv row 31: "NEUTROPHIL,NEUTROPHIL" (a training field, used here for counting only)
    cells = classifier.predict_cells(ORIGINALS / "BloodImage_00031.jpg")
    assert len(cells) == 2
    boxes = [c.box for c in cells]
    assert not (boxes[0].x == boxes[1].x and boxes[0].y == boxes[1].y)


def test_explain_can_pick_the_second_cell_of_a_field(capsys, classifier, tmp_path):
    path = tmp_path / "field.png"
    Image.fromarray(two_cell_field()).save(path)
    out = tmp_path / "cell2.png"
    assert main(["explain", str(path), "--method", "gradcam", "--cell", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    box = summary["prediction"]["cell_box"]
    second = locate_white_cells(two_cell_field())[1]
    assert (box["x"], box["y"], box["width"]) == (second.x, second.y, second.side)
    assert out.read_bytes().startswith(b"\x89PNG")
    assert main(["explain", str(path), "--cell", "3", "--out", str(out)]) == 1
    assert "has 2 white cell(s)" in capsys.readouterr().err
