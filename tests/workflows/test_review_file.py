"""Review files: a saved review comes back onto the same cells, and a wrong file is refused clearly."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from hematovision.model.cells import CellBox
from hematovision.workflows.batch import NOT_CLASSED, BatchCell, set_review
from hematovision.workflows.differential import differential
from hematovision.workflows.review_file import (
    FORMAT,
    MAX_REVIEW_BYTES,
    Review,
    ReviewFileError,
    resume,
    review_of,
)
from tests.model.test_statuses import one_of_each

MODEL = hashlib.sha256(b"the shipped model").hexdigest()


def batch() -> list[BatchCell]:
    """The six hand-made cells with real-looking image hashes; two share an image, at different boxes."""
    cells = []
    for number, cell in enumerate(one_of_each()):
        image = hashlib.sha256(f"image {min(number, 4)}".encode()).hexdigest()
        box = CellBox(10 + 100 * number, 20, 120, True)
        cells.append(dataclasses.replace(cell, key=f"{image}:{number + 1}",
                                         prediction=dataclasses.replace(cell.prediction, box=box)))
    return cells


def reviewed_batch() -> list[BatchCell]:
    cells = batch()
    set_review(cells, cells[0].key, "MONOCYTE")
    set_review(cells, cells[2].key, "LYMPHOCYTE")
    set_review(cells, cells[3].key, NOT_CLASSED)
    return cells


def test_a_saved_review_resumes_onto_a_fresh_batch_with_the_same_counts_and_changes():
    saved = reviewed_batch()
    data = review_of(saved, MODEL, lab_profile="", initials="AB", note="Smear 12, ward 3").to_bytes()
    content = json.loads(data)
    assert content["format"] == FORMAT and content["reviewer"] == {"initials": "AB", "note": "Smear 12, ward 3"}
    assert content["created"].endswith("+00:00") and content["model_sha256"] == MODEL
    assert content["cells"][0]["box"] == {"x": 10, "y": 20, "side": 120}

    review = Review.from_bytes(data)
    review.check_model(MODEL)
    fresh = batch()  # the same images classified again in a new session: nothing reviewed
    outcome = resume(review, fresh)
    assert (outcome.matched, outcome.not_found, outcome.not_in_file, outcome.other_calls) == (6, [], [], 0)
    assert [c.reviewed for c in fresh] == [c.reviewed for c in saved]
    assert differential(fresh) == differential(saved)
    assert [c.changed for c in fresh] == [c.changed for c in saved] and review.changes == 2
    assert (review.initials, review.note) == ("AB", "Smear 12, ward 3")


def test_cells_that_do_not_match_are_listed_both_ways():
    review = Review.from_bytes(review_of(reviewed_batch(), MODEL).to_bytes())
    fresh = batch()[1:]  # the first image was not uploaded again ...
    moved = fresh[-1]
    fresh[-1] = dataclasses.replace(moved, prediction=dataclasses.replace(moved.prediction, box=CellBox(0, 0, 99, True)))
    outcome = resume(review, fresh)  # ... and one cell was framed differently
    assert outcome.matched == 4
    assert [c.file for c in outcome.not_found] == ["field.png", "field.png"]
    assert outcome.not_found[0].describe() == "field.png, cell at x=10 y=20 (120 px): reviewed as monocyte"
    assert outcome.not_in_file == [fresh[-1]]
    assert outcome.summary() == "4 cells matched, 2 in the file not found in this batch, 1 in this batch not in the file"


def test_a_review_of_another_models_calls_is_refused():
    review = Review.from_bytes(review_of(reviewed_batch(), MODEL).to_bytes())
    other = hashlib.sha256(b"another model").hexdigest()
    with pytest.raises(ReviewFileError, match=f"made with another model \\(sha256 {MODEL[:12]}…\\); this app runs "
                                              f"{other[:12]}…"):
        review.check_model(other)


@pytest.mark.parametrize("data,message", [
    (b"\xff\xfe not text", "not valid JSON"),
    (b"{\"cells\": [", "not valid JSON"),
    (b"[]", "not a HematoVision review file"),
    (json.dumps({"format": "hematovision-lab-profile/1"}).encode(), "not a HematoVision review file"),
    (json.dumps({"format": FORMAT, "cells": []}).encode(), "damaged: an entry is missing"),
    (b" " * (MAX_REVIEW_BYTES + 1), "at most 5 MB"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_malformed_or_oversized_files_get_a_clear_message(data, message):
    with pytest.raises(ReviewFileError, match=message):
        Review.from_bytes(data)


def test_hand_edited_entries_are_refused_not_applied():
    content = json.loads(review_of(reviewed_batch(), MODEL).to_bytes())
    content["cells"][0]["reviewed"] = "BASOPHIL"
    with pytest.raises(ReviewFileError, match="unknown class 'BASOPHIL'"):
        Review.from_bytes(json.dumps(content).encode())
    content["cells"][0].update(reviewed="MONOCYTE", box={"x": "10", "y": 20, "side": 120})
    with pytest.raises(ReviewFileError, match="wrong kind"):
        Review.from_bytes(json.dumps(content).encode())
    content["cells"][0]["box"] = {"x": 10, "y": 20, "side": 120}
    content["reviewer"]["note"] = "x" * 5000
    with pytest.raises(ReviewFileError, match="note is longer than 2000"):
        Review.from_bytes(json.dumps(content).encode())
