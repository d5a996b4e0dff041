"""The model card: one module reads and writes it, and every reader sees typed fields."""

from __future__ import annotations

import json

import pytest

from hematovision.model.classifier import CLASS_NAMES
from hematovision.model.model_card import (
    CARD_PATH_ENV,
    MODEL_CARD_PATH,
    MODELS_DIR,
    ModelCard,
    Share,
    load_model_card,
)
from hematovision.model.trust import TrustModel
from tests.app.driver import start

pytestmark = pytest.mark.skipif(not MODEL_CARD_PATH.is_file(), reason="models/model-card.json not written yet")


@pytest.fixture
def shipped() -> dict:
    return json.loads(MODEL_CARD_PATH.read_text())


def write(tmp_path, card: dict):
    path = tmp_path / "model-card.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def test_the_shipped_card_reads_into_the_fields_a_user_sees(shipped):
    card = load_model_card(MODEL_CARD_PATH)
    assert card.problems == ()
    assert card.class_names == CLASS_NAMES == ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
    assert card.model_sha256 == shipped["model_sha256"]
    assert card.trust.temperature == shipped["trust"]["temperature"]
    assert card.trust.abstain.threshold == shipped["trust"]["abstain"]["threshold"]
    assert card.trust.abstain.target_accuracy == shipped["trust"]["abstain"]["target_accuracy"]
    assert card.trust.ood_file == "ood-reference.npz" and card.trust.other_types_file == "other-types.npz"
    test_image = card.evaluation.splits["test_image"]
    assert test_image.accuracy == shipped["evaluation"]["splits"]["test_image"]["accuracy"]
    assert test_image.accuracy_ci95 == tuple(shipped["evaluation"]["splits"]["test_image"]["accuracy_ci95"])
    assert list(test_image.per_class) == list(CLASS_NAMES)
    assert card.available_splits() == ["test_image", "test_cell", "test_simple", "pbc_test"]
    confident = shipped["evaluation"]["splits"]["lisc"]["statuses"]["confident"]
    assert card.evaluation.splits["lisc"].status("confident") == Share(
        confident["count"], confident["n"], confident["rate"], tuple(confident["ci95"]))
    assert card.training.sources == ("kaggle", "pbc")
    assert card.training.colour_normalisation == "background"


def test_the_classifier_takes_its_thresholds_from_the_card():
    card = load_model_card(MODEL_CARD_PATH)
    trust = TrustModel.from_card(card.trust, MODELS_DIR)
    assert (trust.temperature, trust.abstain_threshold) == (card.trust.temperature, card.trust.abstain.threshold)
    assert trust.ood is not None and trust.other_types is not None
    assert TrustModel.from_card(None, MODELS_DIR) == TrustModel()


def test_a_card_saved_unchanged_is_byte_identical(tmp_path):
    copy = tmp_path / "copy.json"
    load_model_card(MODEL_CARD_PATH).save(copy)
    assert copy.read_bytes() == MODEL_CARD_PATH.read_bytes()
    assert load_model_card(copy).to_json() == MODEL_CARD_PATH.read_text()


def test_a_card_from_before_issue_12_still_loads(tmp_path, shipped):
    # Older cards say only whether Reinhard stain normalisation was on, and name no sources.
    settings = {k: v for k, v in shipped["training"]["settings"].items() if k != "colour_normalisation"}
    training = {k: v for k, v in shipped["training"].items() if k != "sources"}
    old = {**shipped, "training": {**training, "settings": {**settings, "stain_normalise": True}}}
    card = load_model_card(write(tmp_path, old))
    assert card.training.colour_normalisation == "reinhard"
    assert card.training.sources == ("kaggle",)
    plain = {**old, "training": {**training, "settings": settings}}
    assert load_model_card(write(tmp_path, plain)).training.colour_normalisation == "none"


def test_a_card_without_a_previous_model_loads_and_the_page_leaves_it_out(tmp_path, monkeypatch, shipped):
    card = load_model_card(write(tmp_path, {k: v for k, v in shipped.items() if k != "previous_model"}))
    assert card.previous_model is None and card.problems == ()
    monkeypatch.setenv(CARD_PATH_ENV, str(card.path))
    at = start("app_pages/model.py")
    assert not at.exception, at.exception
    [lisc] = [t.value for t in at.dataframe if "Macro recall" in t.value.columns and "Model" in t.value.columns]
    assert list(lisc["Model"]) == ["This model"]
    models = {model for t in at.dataframe if "Model" in t.value.columns for model in t.value["Model"]}
    assert not any(str(model).startswith("Previous model") for model in models)


def test_a_card_without_calibration_still_shows_the_lab_it_never_saw(tmp_path, monkeypatch, shipped):
    path = write(tmp_path, {k: v for k, v in shipped.items() if k not in ("trust", "trust_int8")})
    monkeypatch.setenv(CARD_PATH_ENV, str(path))
    at = start("app_pages/model.py")
    assert not at.exception, at.exception
    assert any("no calibration section" in w.value for w in at.warning)
    assert "On labs it never saw" in [h.value for h in at.header]


def test_calibrating_again_keeps_the_other_type_detector(tmp_path, shipped):
    card = load_model_card(write(tmp_path, shipped))
    calibrated = card.with_calibration({"temperature": 2.0, "abstain": {"threshold": 0.5}})
    assert calibrated.trust.temperature == 2.0 and calibrated.trust.abstain.threshold == 0.5
    assert calibrated.trust.other_types_file == "other-types.npz"
    assert calibrated.raw["trust"]["other_types"] == shipped["trust"]["other_types"]
    assert card.trust.temperature == shipped["trust"]["temperature"]  # the card read is not changed


def test_the_int8_network_reads_its_own_trust_section(tmp_path, shipped):
    card = load_model_card(write(tmp_path, shipped))
    assert card.trust_for("f32") is card.trust and card.trust_for("bf16") is card.trust
    int8 = card.with_calibration({"temperature": 1.7, "ood_file": "ood-reference.int8.npz"}, "trust_int8")
    assert int8.trust_for("int8").temperature == 1.7 and int8.trust_for("int8").ood_file == "ood-reference.int8.npz"
    assert int8.trust_for("f32").temperature == shipped["trust"]["temperature"]  # f32's is untouched
    fitted = int8.with_other_type_detector({"threshold": 0.4}, "other-types.int8.npz", "0" * 64, "trust_int8")
    assert fitted.trust_for("int8").temperature == 1.7  # the detector adds to the section, keeping calibration
    assert fitted.trust_for("int8").other_types_file == "other-types.int8.npz"
    assert fitted.trust.other_types_file == "other-types.npz"
    without = load_model_card(write(tmp_path, {k: v for k, v in shipped.items() if k != "trust_int8"}))
    assert without.trust_for("int8") is without.trust  # before int8 is fitted, f32's checks stand in


def test_training_a_new_model_drops_the_old_models_evaluation_and_trust(tmp_path, shipped):
    card = load_model_card(write(tmp_path, shipped))
    fields = {k: shipped[k] for k in ("model_file", "class_names", "input_size", "framing", "training", "data",
                                      "limits")}
    trained = card.with_training(**fields, model_sha256="f" * 64)
    assert trained.trust is None and trained.evaluation.splits == {}
    assert trained.trust_int8 is None and "openvino_int8" not in trained.raw  # the old network's quantised copy
    assert trained.evaluation.note.startswith("not evaluated yet")
    trained.save()
    again = load_model_card(card.path)
    assert again.model_sha256 == "f" * 64 and again.available_splits() == []


def test_an_evaluation_is_written_where_the_card_had_it(tmp_path, shipped):
    card = load_model_card(write(tmp_path, shipped))
    evaluated = card.with_evaluation(model_file=shipped["model_file"], model_sha256=shipped["model_sha256"],
                                     evaluation=shipped["evaluation"], comparison=shipped["comparison"])
    assert evaluated.to_json() == MODEL_CARD_PATH.read_text()
    first = ModelCard.blank(tmp_path / "new.json").with_evaluation(
        model_file="m.keras", model_sha256=None, evaluation={"splits": {}}, comparison={})
    assert list(first.raw) == ["model_file", "model_sha256", "evaluation", "comparison"]
