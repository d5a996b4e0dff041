"""The Model page: a synthetic card, no card, a broken card and the real one.

Driven headless through streamlit.testing.v1.AppTest from the real entry point (see
``tests/app/driver.py``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hematovision.model.calibration import (
    apply_temperature,
    coverage_accuracy_curve,
    expected_calibration_error,
    reliability_bins,
)
from hematovision.model.classifier import CLASS_NAMES, MODEL_CARD_PATH
from hematovision.model.metrics import accuracy_summary
from hematovision.model.model_card import CARD_PATH_ENV, load_model_card, validate_model_card
from tests.app.driver import errors, start


def synthetic_split(rng, name: str, n: int, with_trust: bool) -> dict:
    truth = rng.integers(0, 4, n)
    guess = np.where(rng.random(n) < 0.85, truth, rng.integers(0, 4, n))
    split = accuracy_summary(truth, guess, CLASS_NAMES, description=f"synthetic {name}")
    if with_trust:
        probs = np.full((n, 4), 0.02)
        probs[np.arange(n), guess] = 0.94
        calibrated = apply_temperature(probs, 1.8)
        correct = guess == truth
        split.update({
            "ece_before": expected_calibration_error(probs, truth),
            "ece_after": expected_calibration_error(calibrated, truth),
            "reliability_before": reliability_bins(probs, truth),
            "reliability_after": reliability_bins(calibrated, truth),
            "abstain": {"threshold": 0.6, "coverage": 0.9, "accuracy_kept": 0.9},
            "coverage_curve": coverage_accuracy_curve(calibrated.max(axis=1), correct),
            "ood_flag_rate": 0.02,
        })
    return split


def synthetic_card() -> dict:
    rng = np.random.default_rng(1)
    sizes = {"test_image": 400, "test_cell": 71, "test_simple": 71, "pbc_test": 300}
    splits = {name: synthetic_split(rng, name, n, name != "test_cell") for name, n in sizes.items()}
    old = {name: synthetic_split(rng, name, n, False) for name, n in sizes.items()}
    curve = splits["test_image"]["coverage_curve"]
    field = {"fields": 70, "cells_expected": 72, "cells_found": 71, "fields_with_right_count": 69,
             "cells_classified_right": 63, "classified_right_ci95": [0.78, 0.93], "fields_with_two_cells": 2,
             "two_cell_fields_both_found": 1}
    return {
        "model_file": "hematovision-mobilenetv2.keras",
        "model_sha256": "0" * 64,
        "class_names": list(CLASS_NAMES),
        "input_size": 224,
        "framing": "crop around the white cell",
        "training": {
            "command": "python -m training.train",
            "seconds": 600.0,
            "imagenet_weights": "keras",
            "sources": ["kaggle", "pbc"],
            "settings": {"epochs": 3, "learning_rate": 0.001, "stain_normalise": True},
            "validation": {"images": 1400, "accuracy": 0.9},
        },
        "data": {
            "kaggle": {"name": "Blood Cell Images (Kaggle)", "license": "MIT", "images": 9957, "cells": 277},
            "pbc": {"name": "PBC (Acevedo et al. 2020)", "license": "CC BY 4.0", "images": 3633,
                    "test_images": 727, "split": "seeded, stratified"},
        },
        "trust": {
            "command": "python -m training.calibrate --data-dir DATA",
            "temperature": 1.8, "validation_images": 2500, "validation_ece_before": 0.06,
            "validation_ece_after": 0.01,
            "abstain": {"threshold": 0.6, "target_accuracy": 0.98, "coverage": 0.85, "accuracy": 0.98,
                        "reached": True},
            "validation_coverage_curve": curve,
            "ood": {"method": "Mahalanobis", "threshold": 100.0, "target_validation_flag_rate": 0.015},
        },
        "evaluation": {
            "command": "python -m training.evaluate", "date": "2026-11-25", "splits": splits,
            "non_blood": {"n": 100, "flagged": 97, "flag_rate": 0.97,
                          "by_kind": {"natural photo": {"n": 68, "flagged": 67}}, "not_flagged": ["moon"]},
            "fields": {"held_out": field, "how": "Fields of the BCCD originals."},
        },
        "comparison": {"Previous (Kaggle only)": {"splits": old, "trained_on": ["kaggle"],
                                                  "training_command": "python -m training.train --sources kaggle"}},
        "limits": ["Never saw basophils.", "Trained on one lab's stain."],
    }


def test_model_page_renders_a_card(tmp_path, monkeypatch):
    card = synthetic_card()
    path = tmp_path / "model-card.json"
    path.write_text(json.dumps(card))
    assert validate_model_card(card) == []
    monkeypatch.setenv(CARD_PATH_ENV, str(path))
    at = start("app_pages/model.py")
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["TEST, image level"] == f"{100 * card['evaluation']['splits']['test_image']['accuracy']:.1f}%"
    assert set(metrics) == {"TEST, image level", "TEST, cell level", "TEST_SIMPLE", "PBC test split"}
    captions = " ".join(c.value for c in at.caption)
    assert "95% CI" in captions
    # 4 confusion matrices, 3 reliability diagrams, 1 coverage-accuracy curve
    assert len(at.get("plotly_chart")) == 8
    columns = {column for table in at.dataframe for column in table.value.columns}
    # comparison, calibration, abstention, OOD, fields and data tables
    assert {"Trained on", "ECE calibrated", "Accuracy on kept", "White cells found", "Licence"} <= columns
    # The fake sha256 does not match the committed model: the page must say so.
    assert any("does not match" in e for e in errors(at))
    text = " ".join(m.value for m in at.markdown)
    assert "Never saw basophils." in text
    assert "T = 1.80" in text


def test_model_page_without_a_card_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(CARD_PATH_ENV, str(tmp_path / "missing.json"))
    at = start("app_pages/model.py")
    assert not at.exception, at.exception
    assert any("No model card was found" in w.value for w in at.warning)


def test_model_page_with_a_broken_card(tmp_path, monkeypatch):
    path = tmp_path / "model-card.json"
    path.write_text("{not json")
    monkeypatch.setenv(CARD_PATH_ENV, str(path))
    at = start("app_pages/model.py")
    assert not at.exception, at.exception
    assert any("could not be read" in e for e in errors(at))


@pytest.mark.skipif(not MODEL_CARD_PATH.is_file(), reason="models/model-card.json not written yet")
def test_model_page_renders_the_real_card():
    card = load_model_card(MODEL_CARD_PATH)
    at = start("app_pages/model.py")
    assert not at.exception, at.exception
    assert any("matches the SHA-256" in s.value for s in at.success)
    if not card.available_splits():  # trained, not evaluated yet: the page must say so
        assert any("no evaluation results yet" in w.value for w in at.warning)
        return
    assert not card.problems, card.problems
    assert len(at.metric) == 4
    assert len(at.get("plotly_chart")) == 8
    # Issue 12: how it does on a lab it never saw, and on cells of other types, beside the
    # previous model; every status's share on every image set.
    headers = [h.value for h in at.header]
    assert {"On labs it never saw", "Cells that are none of the four types",
            "The same cell at another magnification"} <= set(headers)
    [lisc] = [t.value for t in at.dataframe if "Macro recall" in t.value.columns and "Model" in t.value.columns]
    assert list(lisc["Model"]) == ["This model", "Previous model (issue 3)"]
    lolo = [t for t in at.dataframe if "Tested on" in t.value.columns]
    assert len(lolo) == 1 and {"PBC test split", "Kaggle TEST, per cell"} == set(lolo[0].value["Tested on"])
    statuses = [t for t in at.dataframe if "Another cell type, not one of the four" in t.value.columns]
    assert statuses and "Not blood cells" in set(statuses[0].value["Images"])
    # Issue 14: lab profiles on every unseen lab, each kind beside no profile on the same images.
    if card.lab_profiles:
        assert "Adapting it to your lab: lab profiles" in headers
        [profiles] = [t.value for t in at.dataframe if "Profile" in t.value.columns]
        assert set(profiles["Profile"]) == {"unlabelled", "unlabelled, last batch norm re-estimated",
                                            "unlabelled, last batch norm re-estimated from a differential's mix",
                                            "5-shot", "10-shot"}
        assert len(set(profiles["Unseen lab, model"])) == 3
        assert any("training.lab_profiles" in c.value for c in at.code)
        # How far labelled cells can take a profile: the ceiling, for each lab that has one.
        ceilings = [name for name, source in card.lab_profiles.sources.items() if "refit" in source.ceiling]
        [text] = [m.value for m in at.markdown if "How far labelled cells can take it" in m.value]
        assert ceilings and all(name in text for name in ceilings)


def test_the_model_page_says_which_network_answers(monkeypatch):
    """Issue 15: int8 answers by default; the page says so, puts it beside f32 on every test
    set, and warns when f32 is chosen while the figures describe int8."""
    card = json.loads(MODEL_CARD_PATH.read_text())
    at = start("app_pages/model.py")
    assert not at.exception, at.exception
    assert "Which network gives the answers?" in [h.value for h in at.header]
    assert any("OpenVINO int8" in m.value for m in at.markdown)
    [table] = [t.value for t in at.dataframe if "int8 accuracy" in t.value.columns]
    assert list(table["Data"]) == ["Kaggle TEST images", "PBC test split", "LISC (never seen)"]
    kaggle = card["openvino_int8"]["against_f32"]["sets"]["kaggle_test"]
    assert table["Labels changed"][0] == f"{kaggle['labels_changed']} of {kaggle['int8']['n']}"
    assert table["int8 accuracy"][0].startswith(f"{100 * kaggle['int8']['accuracy']:.1f}%")
    assert not [w for w in at.warning if "describe the int8 network" in w.value]
    assert any("int8: calibrate" in m.value for m in at.markdown)  # how to reproduce int8's checks
    assert any("reads the cell twice" in m.value for m in at.markdown)

    monkeypatch.setenv("HEMATOVISION_PRECISION", "f32")
    from app import caches

    caches.get_classifier.clear()
    try:
        at = start("app_pages/model.py")
        assert any("describe the int8 network, not the OpenVINO f32 one" in w.value for w in at.warning)
    finally:
        caches.get_classifier.clear()  # the next test gets the default network again


def test_model_card_validation_reports_problems():
    card = synthetic_card()
    del card["limits"]
    card["evaluation"]["splits"]["test_cell"]["confusion_matrix"] = [[1, 2]]
    problems = validate_model_card(card)
    assert any("limits" in p for p in problems)
    assert any("test_cell" in p and "confusion_matrix" in p for p in problems)
