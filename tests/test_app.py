"""The Streamlit app, driven headless through streamlit.testing.v1.AppTest.

Every test starts from ``streamlit_app.py`` (the real entry point with st.navigation) and
moves with ``AppTest.switch_page``, so the pages run exactly as they do under
``streamlit run``.

Uploads: AppTest in Streamlit 1.67 drives ``st.file_uploader`` itself
(``at.file_uploader[0].set_value((name, bytes, mime))``, then ``run()``); the bytes go
through Streamlit's in-memory upload manager and the page's on_change callback, as in a
browser. What it does not exercise is the browser side: the ``type=`` extension filter
and ``server.maxUploadSize`` are enforced by the front end and upload endpoint, so a
wrong-extension or oversized file is not tested here (AppTest delivers whatever it is given).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app.explanations import ExplainSettings, explanation_key
from app.images import draw_cell_boxes
from app.state import CELL_INDEX, CURRENT_IMAGE, EXPLAIN_SETTINGS, OPACITY, SIGN_VIEW, sample_image
from hematovision import ImageError, load_image
from hematovision.model.cells import CellBox
from hematovision.model.classifier import CLASS_NAMES, MODEL_CARD_PATH, display_name
from hematovision.model.calibration import (apply_temperature, coverage_accuracy_curve, expected_calibration_error,
                                      reliability_bins)
from hematovision.model.imaging import clean_display_name
from hematovision.model.metrics import accuracy_summary
from hematovision.model.model_card import CARD_PATH_ENV, load_model_card, validate_model_card
from hematovision.workflows.samples import find_sample, list_samples
from hematovision.model.trust import STATUS_TEXT
from tests.app_driver import TIMEOUT, errors, predicted_label, start
from tests.conftest import REPO_ROOT

PAGES = ["app_pages/home.py", "app_pages/classify.py", "app_pages/batch.py", "app_pages/explain.py",
         "app_pages/compare.py", "app_pages/atlas.py", "app_pages/quiz.py",
         "app_pages/model.py"]
FAST_EXPLAIN = ExplainSettings(lime_samples=50, shap_evals=60)


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def evaluation_count(caption: str) -> int:
    """'1.2 s · 51 model evaluations' -> 51."""
    return int(caption.split("·")[1].split("model evaluation")[0].strip().replace(",", ""))


def expected_message(data: bytes) -> str:
    with pytest.raises(ImageError) as info:
        load_image(data)
    return str(info.value)


@pytest.fixture(autouse=True)
def no_real_card_override(monkeypatch):
    # The Model page reads $HEMATOVISION_MODEL_CARD when set; tests choose explicitly.
    monkeypatch.delenv(CARD_PATH_ENV, raising=False)


# ---------------------------------------------------------------------------
# Every page runs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_an_image(page):
    at = start(page)
    assert not at.exception, at.exception
    assert at.title, f"{page} shows no title"


def test_home_describes_the_four_cells_and_the_disclaimer():
    at = start()
    text = " ".join(m.value for m in at.markdown) + " ".join(i.value for i in at.info)
    for name in CLASS_NAMES:
        assert display_name(name) in text
    assert "not a diagnosis" in text.lower()


def test_explain_without_an_image_offers_a_sample():
    at = start("app_pages/explain.py")
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    assert any("No image has been chosen yet" in i.value for i in at.info)
    at.button(key="explain_use_sample").click().run()
    assert not at.exception, at.exception
    assert at.session_state[CURRENT_IMAGE] is not None


# ---------------------------------------------------------------------------
# Classify
# ---------------------------------------------------------------------------
def test_sample_shows_prediction_crop_and_chart(classifier):
    sample = find_sample("neutrophil-1")
    at = start("app_pages/classify.py")
    at.button(key=f"sample_{sample.key}").click().run()
    assert not at.exception, at.exception
    assert not errors(at)
    expected = classifier.predict(sample.read_bytes())
    assert predicted_label(at) == display_name(expected.label)
    assert len(at.get("plotly_chart")) == 1
    captions = " ".join(c.value for c in at.caption)
    assert "Data-set label for this sample" in captions
    image = at.session_state[CURRENT_IMAGE]
    assert image.source == "sample" and image.sample_key == sample.key
    # The calibrated confidence and the status are shown plainly beside the result.
    assert any(f"Calibrated probability **{100 * expected.confidence:.1f}%**" in m.value for m in at.markdown)
    statuses = [m.value for m in at.success] + [m.value for m in at.warning]
    assert any(expected.status_text in value for value in statuses), statuses
    # Beside it, what each of the five statuses means; the shipped model makes every check.
    [guide] = [e for e in at.expander if e.label == "What the statuses mean"]
    guide_text = " ".join(m.value for m in guide.markdown)
    assert all(f"**{text}.**" in guide_text for text in STATUS_TEXT.values())
    assert "does not make this check yet" not in guide_text


def test_the_status_box_gives_each_status_its_own_advice(monkeypatch):
    """Five hand-made predictions through the app's status box (no model needed)."""
    from app import caches
    from hematovision.model.trust import TrustModel

    class Model:
        trust = TrustModel(abstain_threshold=0.6, target_accuracy=0.95)

    monkeypatch.setattr(caches, "get_classifier", lambda: Model())

    def page():
        import numpy as np

        from app import widgets
        from hematovision.model.cells import CellBox
        from hematovision.model.classifier import Prediction
        from hematovision.model.trust import STATUS_TEXT, STATUSES

        for status in STATUSES:
            widgets.status_message(Prediction(
                "LYMPHOCYTE", 0.9, {"LYMPHOCYTE": 0.9}, CellBox(0, 0, 10, True), np.zeros((4, 4, 3), np.uint8),
                status=status, status_text=STATUS_TEXT[status],
                other_type="erythroblast" if status == "other_cell_type" else None))

    at = AppTest.from_function(page, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [m.value.split(".**")[0] for m in at.success] == ["**Confident"]
    assert [m.value.split(".**")[0] for m in at.error] == ["**Does not look like a blood-cell image"]
    warnings = [m.value for m in at.warning]
    assert [w.split(".**")[0].strip("*") for w in warnings] == [
        STATUS_TEXT["check"], STATUS_TEXT["unfamiliar_source"], STATUS_TEXT["other_cell_type"]]
    assert "below 60%" in warnings[0]
    assert "stain, microscope or camera is unlike the labs" in warnings[1]
    assert "looks most like an erythroblast (nucleated red cell)" in warnings[2]
    assert "95% of the time" in at.success[0].value


def test_non_blood_image_is_called_out(classifier):
    noise = np.random.default_rng(3).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("noise.png", png_bytes(noise), "image/png")).run()
    assert not at.exception, at.exception
    assert any("Does not look like a blood-cell image" in e for e in errors(at)), errors(at)


def test_field_with_two_cells_lists_both_and_switches_between_them(classifier):
    from tests.test_fields import two_cell_field

    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("field.png", png_bytes(two_cell_field()), "image/png")).run()
    assert not at.exception, at.exception
    assert any("2 white cells" in m.value for m in at.markdown)
    [table] = [t for t in at.dataframe if "Status" in t.value.columns]
    assert len(table.value) == 2
    first_crop = at.session_state[CURRENT_IMAGE]
    at.radio(key="hv_cell_radio").set_value(1).run()
    assert not at.exception, at.exception
    assert at.session_state[CELL_INDEX] == 1
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    at.switch_page("app_pages/explain.py").run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert at.selectbox(key="hv_cell_select").value == 1
    assert first_crop is at.session_state[CURRENT_IMAGE]


def test_good_upload_gives_a_prediction(classifier):
    rgb = load_image(find_sample("lymphocyte-1").path)
    data = png_bytes(rgb)
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("../../etc/cell.png", data, "image/png")).run()
    assert not at.exception, at.exception
    assert not errors(at)
    assert predicted_label(at) == display_name(classifier.predict(data).label)
    image = at.session_state[CURRENT_IMAGE]
    assert image.source == "upload"
    assert image.data == data  # held in memory as bytes
    assert image.name == "cell.png"  # display name only, folders stripped


def _truncated_jpeg() -> bytes:
    data = find_sample("monocyte-1").read_bytes()
    return data[: len(data) // 2]


BAD_UPLOADS = {
    "random-bytes": np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
    "truncated-jpeg": _truncated_jpeg(),
    "empty": b"",
    "too-small": png_bytes(np.zeros((8, 8, 3), np.uint8)),
}


@pytest.mark.parametrize("kind", sorted(BAD_UPLOADS))
def test_bad_upload_shows_the_specific_error_and_the_app_keeps_working(kind):
    data = BAD_UPLOADS[kind]
    message = expected_message(data)
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value((f"{kind}.jpg", data, "image/jpeg")).run()
    assert not at.exception, at.exception
    assert any(message in e for e in errors(at)), errors(at)
    assert predicted_label(at) is None
    assert at.session_state[CURRENT_IMAGE] is None
    # ...and the app still works: a sample classifies normally afterwards.
    at.button(key="sample_eosinophil-1").click().run()
    assert not at.exception, at.exception
    assert not errors(at)
    assert predicted_label(at) is not None


def test_image_without_a_white_cell_is_flagged():
    blank = png_bytes(np.full((120, 160, 3), 230, np.uint8))  # decodes fine, no nucleus anywhere
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("blank.png", blank, "image/png")).run()
    assert not at.exception, at.exception
    assert predicted_label(at) is not None  # the model still answers...
    assert any("No white-cell nucleus was found" in w.value for w in at.warning)  # ...with a warning


def test_classify_another_clears_the_image_and_the_uploader():
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("a.jpeg", find_sample("monocyte-2").read_bytes(), "image/jpeg")).run()
    assert predicted_label(at) is not None
    at.button(key="classify_another").click().run()
    assert not at.exception, at.exception
    assert predicted_label(at) is None
    assert at.session_state[CURRENT_IMAGE] is None
    assert at.file_uploader[0].value is None


def test_removing_the_uploaded_file_clears_the_result():
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("b.jpeg", find_sample("neutrophil-3").read_bytes(), "image/jpeg")).run()
    assert predicted_label(at) is not None
    at.file_uploader[0].clear().run()
    assert not at.exception, at.exception
    assert predicted_label(at) is None
    assert at.session_state[CURRENT_IMAGE] is None


def test_current_image_survives_a_trip_to_another_page():
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("c.jpeg", find_sample("lymphocyte-3").read_bytes(), "image/jpeg")).run()
    label = predicted_label(at)
    at.switch_page("app_pages/model.py").run()
    at.switch_page("app_pages/classify.py").run()
    assert not at.exception, at.exception
    assert predicted_label(at) == label  # the uploader is empty again, the image is kept


def test_explain_button_opens_the_explain_page():
    at = start("app_pages/classify.py")
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    at.button(key="sample_lymphocyte-2").click().run()
    at.button(key="go_explain").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert at.title[0].value == "Explain the decision"


# ---------------------------------------------------------------------------
# Explain
# ---------------------------------------------------------------------------
def open_explain_page(sample_key: str) -> AppTest:
    """The app with a sample as the current image, switched to Explain (fast LIME/SHAP)."""
    sample = find_sample(sample_key)
    at = start()
    at.session_state[CURRENT_IMAGE] = sample_image(sample.read_bytes(), sample.key, sample.title)
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    return at.switch_page("app_pages/explain.py").run(timeout=TIMEOUT * 2)


def test_explain_renders_all_four_methods_and_caches_them(explain_calls):
    calls = explain_calls

    at = open_explain_page("eosinophil-2")
    assert not at.exception, at.exception
    assert not errors(at), errors(at)

    headings = " ".join(m.value for m in at.markdown)
    for title in ("Grad-CAM", "Grad-CAM++", "LIME", "SHAP"):
        assert f"#### {title}" in headings
    runtime_captions = [c.value for c in at.caption if "model evaluation" in c.value]
    assert len(runtime_captions) == 4, runtime_captions  # Grad-CAM, Grad-CAM++, LIME, SHAP
    evaluations = [evaluation_count(c) for c in runtime_captions]
    assert evaluations[2] == 50 + 1  # LIME: its samples plus the target's forward pass
    assert 1 < evaluations[3] <= 60 + 1  # SHAP: at most its budget plus that pass
    assert len(at.get("download_button")) == 4
    assert sorted(calls) == sorted(["gradcam", "gradcam++", "lime", "shap"])

    # Display-only controls reuse the cached maps.
    at.slider(key=OPACITY).set_value(0.8).run()
    at.radio(key=SIGN_VIEW).set_value("positive").run()
    assert not at.exception, at.exception
    assert len(calls) == 4, calls


def test_after_explaining_the_model_and_explainers_are_hidden_from_the_garbage_collector():
    """Streamlit runs a full gc.collect() after every run; scanning TensorFlow, the model and
    shap's numba code made each click 0.35 s slower (app.caches.freeze_long_lived_objects)."""
    import gc

    from app import caches
    from hematovision.explanation.explainers import get_explainer

    at = open_explain_page("neutrophil-2")
    assert not at.exception, at.exception
    classifier = caches.get_classifier()
    long_lived = [classifier, classifier.model, get_explainer(classifier, "shap")]
    tracked = {id(obj) for obj in gc.get_objects()}  # the permanent generation is not listed
    assert not [obj for obj in long_lived if id(obj) in tracked]
    assert gc.get_freeze_count() > 100_000


def test_explain_settings_form_changes_target_and_samples():
    at = open_explain_page("monocyte-1")
    assert not at.exception, at.exception
    at.selectbox[0].set_value("LYMPHOCYTE")
    at.select_slider[0].set_value(100)
    at.select_slider[1].set_value(100)
    (features,) = [r for r in at.radio if r.label == "SHAP: features"]
    features.set_value("pixels")
    submit = [b for b in at.button if b.label == "Apply settings"]
    assert submit, [b.label for b in at.button]
    submit[0].click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    assert at.session_state[EXPLAIN_SETTINGS] == ExplainSettings(100, 100, "LYMPHOCYTE",
                                                                 shap_features="pixels")
    assert any("**Explaining:** Lymphocyte" in m.value for m in at.markdown)
    captions = [c.value for c in at.caption if "model evaluation" in c.value]
    assert evaluation_count(captions[2]) == 100 + 1, captions
    assert evaluation_count(captions[3]) == 100 + 1, captions  # pixel blocks use the whole budget


def test_explain_target_class_can_be_changed():
    sample = find_sample("neutrophil-2")
    at = start()
    at.session_state[CURRENT_IMAGE] = sample_image(sample.read_bytes(), sample.key, sample.title)
    at.session_state[EXPLAIN_SETTINGS] = ExplainSettings(lime_samples=50, shap_evals=60, target="MONOCYTE")
    at.switch_page("app_pages/explain.py").run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    assert any("**Explaining:** Monocyte" in m.value for m in at.markdown)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------
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
    [lisc] = [t.value for t in at.dataframe if "Macro recall" in t.value.columns]
    assert list(lisc["Model"]) == ["This model", "Previous model (issue 3)"]
    lolo = [t for t in at.dataframe if "Tested on" in t.value.columns]
    assert len(lolo) == 1 and {"PBC test split", "Kaggle TEST, per cell"} == set(lolo[0].value["Tested on"])
    statuses = [t for t in at.dataframe if "Another cell type, not one of the four" in t.value.columns]
    assert statuses and "Not blood cells" in set(statuses[0].value["Images"])


# ---------------------------------------------------------------------------
# Pure helpers behind the pages
# ---------------------------------------------------------------------------
def test_samples_cover_every_class_and_are_readable():
    samples = list_samples()
    per_class = {name: sum(s.class_name == name for s in samples) for name in CLASS_NAMES}
    assert all(2 <= count <= 3 for count in per_class.values()), per_class
    for sample in samples:
        assert load_image(sample.path).shape[2] == 3
    assert (REPO_ROOT / "samples" / "README.md").is_file()


def test_clean_display_name_never_keeps_a_path():
    assert clean_display_name("../../etc/passwd") == "passwd"
    assert clean_display_name("C:\\Users\\me\\cell.png") == "cell.png"
    assert clean_display_name("a\x00b\nc.jpg") == "abc.jpg"
    assert clean_display_name("") == "uploaded image"
    assert len(clean_display_name("x" * 500 + ".png")) <= 60


def test_the_cached_decode_refuses_bad_bytes_with_the_loader_message():
    from app.caches import decoded_image

    data = BAD_UPLOADS["random-bytes"]
    with pytest.raises(ImageError) as info:
        decoded_image("random-bytes", data)
    assert str(info.value) == expected_message(data)


def test_draw_cell_boxes_marks_the_box_only():
    rgb = np.full((100, 120, 3), 255, np.uint8)
    boxed = draw_cell_boxes(rgb, [CellBox(10, 20, 50, True)])
    assert boxed.shape == rgb.shape
    assert (boxed[20, 30] != 255).any()  # top edge
    assert (boxed[45, 35] == 255).all()  # inside untouched
    assert (rgb == 255).all()  # input not modified


def test_explanation_key_depends_on_everything_that_changes_the_result():
    base = explanation_key("abc", "lime", None, {"num_samples": 50})
    assert base == explanation_key("abc", "lime", None, {"num_samples": 50})
    assert base != explanation_key("abc", "lime", None, {"num_samples": 100})
    assert base != explanation_key("abc", "lime", "MONOCYTE", {"num_samples": 50})
    assert base != explanation_key("abd", "lime", None, {"num_samples": 50})


def test_model_card_validation_reports_problems():
    card = synthetic_card()
    del card["limits"]
    card["evaluation"]["splits"]["test_cell"]["confusion_matrix"] = [[1, 2]]
    problems = validate_model_card(card)
    assert any("limits" in p for p in problems)
    assert any("test_cell" in p and "confusion_matrix" in p for p in problems)


# ---------------------------------------------------------------------------
# Compare page
# ---------------------------------------------------------------------------
RUN_COMPARISON = "FormSubmitter:compare_settings-Run the comparison"


def test_compare_page_scores_the_chosen_methods_checks_them_and_keeps_the_result(monkeypatch):
    from app import caches

    calls = []
    real = caches.compare_image

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(caches, "compare_image", counting)
    at = start("app_pages/compare.py")
    at.selectbox(key="hv_compare_sample").set_value("neutrophil-2").run()
    at.button(key="hv_compare_use_sample").click().run()
    assert at.session_state[CURRENT_IMAGE].sample_key == "neutrophil-2"
    at.multiselect[0].set_value(["gradcam", "gradcam++"])
    at.checkbox[1].check()  # the randomisation check
    at.button(key=RUN_COMPARISON).click().run()
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    table = at.dataframe[0].value
    assert sorted(table["Method"]) == ["Grad-CAM", "Grad-CAM++"]
    assert list(table["Deletion AUC ↓"]) == sorted(table["Deletion AUC ↓"])
    assert all(text.startswith("passed") for text in table["Randomisation check"])  # Grad-CAM passes (see test_faithfulness)
    assert all(text.endswith("(deterministic)") for text in table["Seed stability (Spearman / IoU)"])
    assert sum("passes" in message.value for message in at.success) == 2
    assert any("most faithful by deletion AUC" in m.value for m in at.markdown)
    assert [b.proto.label for b in at.get("download_button")][:2] == [
        "Download CSV", "Download JSON (with curves and parameters)"]
    assert calls == [["gradcam", "gradcam++"]]
    # Coming back to the same image and settings reuses the result.
    at.switch_page("app_pages/model.py").run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert sorted(at.dataframe[0].value["Method"]) == ["Grad-CAM", "Grad-CAM++"]
    assert len(calls) == 1


def test_compare_page_shows_the_committed_benchmark():
    from hematovision.explanation.compare_tables import load_benchmark

    at = start("app_pages/compare.py")
    assert not at.exception, at.exception
    benchmark = load_benchmark()
    assert benchmark is not None, "docs/xai-benchmark/summary.json is missing"
    table = at.dataframe[0].value
    assert len(table) == len(benchmark["methods"]) >= 8
    assert table["Deletion AUC ↓"].iloc[0].startswith(f"{min(e['deletion_auc']['mean'] for e in benchmark['methods'].values()):.3f}")


def test_compare_page_refuses_a_bad_upload_with_the_loader_message():
    data = BAD_UPLOADS["random-bytes"]
    at = start("app_pages/compare.py")
    at.file_uploader[0].set_value(("cell.png", data, "image/png")).run()
    assert not at.exception, at.exception
    assert any(expected_message(data) in e for e in errors(at)), errors(at)
    assert at.session_state[CURRENT_IMAGE] is None


def test_explain_page_shows_the_extra_methods_on_request():
    at = open_explain_page("lymphocyte-2")
    at.multiselect[0].set_value(["occlusion", "scorecam"])
    at.button(key="FormSubmitter:explain_settings-Apply settings").click().run()
    assert at.session_state[EXPLAIN_SETTINGS].extra_methods == ("occlusion", "scorecam")
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    headings = " ".join(m.value for m in at.markdown)
    for title in ("Grad-CAM", "LIME", "SHAP", "Score-CAM", "Occlusion"):
        assert f"#### {title}" in headings
    assert "#### Integrated Gradients" not in headings
    assert len(at.get("download_button")) == 6


# ---------------------------------------------------------------------------
# Batch differential
# ---------------------------------------------------------------------------
def twenty_cells() -> list[tuple[str, bytes, str]]:
    """The 12 samples as loose files plus 8 colour-shifted copies in a zip with folders, and a bad file."""
    import zipfile

    samples = list_samples()
    files = [(s.path.name, s.read_bytes(), "image/jpeg") for s in samples]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, sample in enumerate(samples[:8]):
            rgb = np.clip(load_image(sample.path).astype(np.int16) + number + 1, 0, 255).astype(np.uint8)
            archive.writestr(f"slide-2/field {number}/{sample.path.stem}-copy.png", png_bytes(rgb))
    files.append(("slide-2.zip", buffer.getvalue(), "application/zip"))
    files.append(("not-a-cell.png", b"this is text, not a picture", "image/png"))
    return files


def differential_counts(at: AppTest) -> dict[str, int]:
    table = at.dataframe[-1].value if "Cell type" in at.dataframe[-1].value else at.dataframe[0].value
    return dict(zip(table["Cell type"], table["Count"]))


def test_batch_page_classifies_twenty_cells_and_a_review_changes_the_differential():
    at = start("app_pages/batch.py")
    at.file_uploader[0].set_value(twenty_cells()).run()
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert [m.value for m in at.metric][:1] == ["20"]  # 12 + 8 white cells
    skipped = at.dataframe[0].value
    assert list(skipped["File"]) == ["not-a-cell.png"] and "not an image" in skipped["Reason"][0]
    before = {row: count for row, count in zip(at.dataframe[1].value["Cell type"], at.dataframe[1].value["Count"])}
    assert sum(before.values()) <= 20
    batch = at.session_state["hv_batch"]
    neutrophil = next(c for c in batch["cells"] if c.predicted == "NEUTROPHIL" and c.prediction.status == "confident")
    lymphocyte = next(c for c in batch["cells"] if c.predicted == "LYMPHOCYTE" and c.prediction.status == "confident")
    at.selectbox(key=f"hv_review_{batch['id']}_{neutrophil.key}").set_value("MONOCYTE").run()
    at.selectbox(key=f"hv_review_{batch['id']}_{lymphocyte.key}").set_value("NOT_CLASSED").run()
    assert not at.exception, at.exception
    after = {row: count for row, count in zip(at.dataframe[1].value["Cell type"], at.dataframe[1].value["Count"])}
    assert after["Neutrophil"] == before["Neutrophil"] - 1 and after["Monocyte"] == before["Monocyte"] + 1
    assert after["Lymphocyte"] == before["Lymphocyte"] - 1
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reviewed"] == "2 / 20" and metrics["Changed by you"] == "2"
    # The report is prepared on request and offered as PDF and HTML.
    at.button(key="hv_batch_prepare").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Download CSV of all cells", "Download PDF report", "Download HTML report"} <= set(labels)
    # Reviews survive a trip to another page.
    at.switch_page("app_pages/model.py").run()
    at.switch_page("app_pages/batch.py").run()
    assert {m.label: m.value for m in at.metric}["Reviewed"] == "2 / 20"


def test_batch_page_lists_other_cells_apart_and_warns_about_an_unfamiliar_lab(monkeypatch):
    """A batch of hand-made predictions (no model needed): one of each status."""
    from app import caches
    from hematovision.model.trust import TrustModel
    from tests.test_statuses import one_of_each

    class Model:
        trust = TrustModel()

    monkeypatch.setattr(caches, "get_classifier", lambda: Model())
    cells = one_of_each()
    at = start()
    at.session_state["hv_batch"] = {"cells": cells, "skipped": [], "id": "synthetic", "images": {}}
    at.switch_page("app_pages/batch.py").run()
    assert not at.exception, at.exception
    assert differential_counts(at) == {"Eosinophil": 1, "Lymphocyte": 1, "Monocyte": 0, "Neutrophil": 2}
    assert {m.label: m.value for m in at.metric}["Counted"] == "4"
    [warning] = [w.value for w in at.warning if "unlike the labs" in w.value]
    assert "check each one" in warning and "planned but not built yet" in warning
    assert "Other cells, review" in [h.value for h in at.subheader]
    assert any("Looks most like **an erythroblast (nucleated red cell)** (91% that it is none of the four)"
               in m.value for m in at.markdown)
    assert at.button(key=f"hv_batch_other_explain_{cells[3].key}")  # opens the cell on the Explain page
    table = at.dataframe[-1].value
    assert list(table["Counted as"]) == ["Neutrophil", "Neutrophil", "Lymphocyte", "other cell, review",
                                         "not classed", "Eosinophil"]


def test_batch_explain_button_opens_that_cell_on_the_explain_page():
    at = start("app_pages/batch.py")
    at.file_uploader[0].set_value(twenty_cells()[12:13]).run()  # the zip: 8 cells
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    cell = at.session_state["hv_batch"]["cells"][3]
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    at.button(key=f"hv_batch_explain_{cell.key}").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert at.session_state[CURRENT_IMAGE].name == cell.file
    assert any(f"**Predicted:** {display_name(cell.predicted)}" in m.value for m in at.markdown)


def test_classify_page_offers_a_single_image_report():
    at = start("app_pages/classify.py")
    at.button(key="sample_lymphocyte-1").click().run()
    at.button(key="hv_prepare_image_report").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download PDF report" in labels and "Download HTML report" in labels
