"""The Classify page: uploads, samples, cells in a field, statuses and the report.

Driven headless through streamlit.testing.v1.AppTest from the real entry point (see
``tests/app/driver.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.state import (
    CELL_INDEX,
    CURRENT_IMAGE,
    EXPLAIN_SETTINGS,
    IMAGE_REPORT,
    PSEUDONYMISE_IMAGE_REPORT,
)
from hematovision import load_image
from hematovision.model.classifier import display_name
from hematovision.model.trust import STATUS_TEXT
from hematovision.workflows.samples import find_sample
from tests.app.driver import TIMEOUT, errors, predicted_label, start
from tests.app.pages import BAD_UPLOADS, FAST_EXPLAIN, expected_message, png_bytes


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
    from tests.model.test_fields import two_cell_field

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


def test_the_single_image_report_pseudonymises_the_file_name_unless_told_not_to():
    data = png_bytes(load_image(find_sample("lymphocyte-1").path))
    at = start("app_pages/classify.py")
    at.file_uploader[0].set_value(("PATIENT-12345.png", data, "image/png")).run()
    assert at.toggle(key=PSEUDONYMISE_IMAGE_REPORT).value  # on by default
    assert any("calls the image **image-001**" in c.value and "PATIENT-12345.png" in c.value for c in at.caption)
    at.button(key="hv_prepare_image_report").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download PDF report" in labels and "Download HTML report" in labels
    _, pdf, html = at.session_state[IMAGE_REPORT]
    assert "image-001" in html and "PATIENT-12345" not in html and b"PATIENT-12345" not in pdf

    at.toggle(key=PSEUDONYMISE_IMAGE_REPORT).set_value(False).run()
    assert not any(b.proto.label == "Download PDF report" for b in at.get("download_button"))  # built for the other name
    at.button(key="hv_prepare_image_report").click().run(timeout=TIMEOUT * 2)
    assert "PATIENT-12345.png" in at.session_state[IMAGE_REPORT][2]

