"""Promises about the HTTP API: the classifier's own answers, clear JSON errors, nothing on disk."""

from __future__ import annotations

import io
import tempfile

import flask
import numpy as np
import pytest
import werkzeug.formparser
from PIL import Image

from hematovision.explanation.explainers import available_methods
from hematovision.interfaces.api import MAX_UPLOAD_BYTES, create_app
from hematovision.interfaces.api_security import SecuritySettings
from hematovision.model.classifier import CLASS_NAMES
from tests.conftest import REPO_ROOT
from tests.model.test_fields import two_cell_field
from tests.synthetic import encode

SAMPLE = REPO_ROOT / "samples" / "neutrophil-1.jpeg"
CELL = SAMPLE.read_bytes()
MULTIPART = "multipart/form-data"


# Open on loopback, as `serve` starts by default; limits high enough for every request here
# (test_api_security.py tests the defaults).
UNLIMITED = SecuritySettings(predict_limit="1000 per minute", explain_limit="1000 per minute")


@pytest.fixture(scope="module")
def client(classifier):
    return create_app(classifier, security=UNLIMITED).test_client()


def post_image(client, url: str, data: bytes, filename: str = "cell.png"):
    return client.post(url, data={"image": (io.BytesIO(data), filename)}, content_type=MULTIPART)


def big_png() -> bytes:
    """A sample upscaled 6x: over Werkzeug's 500 KB spooling threshold, far under the limit."""
    with Image.open(SAMPLE) as image:
        return encode(image.resize((image.width * 6, image.height * 6)), "PNG")


def test_health_names_the_model_classes_methods_and_limit(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["model"] == "hematovision-mobilenetv2.keras"
    assert body["classes"] == list(CLASS_NAMES)
    assert body["explanation_methods"] == available_methods()
    assert body["max_upload_bytes"] == MAX_UPLOAD_BYTES == 20 * 1024 * 1024
    assert body["lab_profile"] is None  # the shipped model, as it is


def test_predict_gives_the_same_answer_as_the_classifier(client, classifier):
    expected = classifier.predict(SAMPLE)
    response = post_image(client, "/predict", CELL, "neutrophil-1.jpeg")
    assert response.status_code == 200
    body = response.get_json()
    assert body["label"] == expected.label
    assert body["confidence"] == pytest.approx(expected.confidence, abs=1e-6)
    assert body["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert body["status"] == expected.status
    assert body["cell_count"] == 1 and len(body["cells"]) == 1


def test_predict_on_a_whole_field_lists_both_cells(client):
    response = post_image(client, "/predict", encode(Image.fromarray(two_cell_field()), "PNG"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["cell_count"] == 2
    assert len(body["cells"]) == 2
    assert body["cells"][0]["cell_box"] != body["cells"][1]["cell_box"]
    assert all(cell["label"] in CLASS_NAMES for cell in body["cells"])


def test_explain_returns_a_png_overlay(client):
    response = post_image(client, "/explain?method=gradcam", CELL)
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    with Image.open(io.BytesIO(response.data)) as picture:
        assert picture.format == "PNG"
        assert picture.width > 224 and picture.height > 224


def test_explain_json_carries_the_map_and_its_settings(client):
    url = "/explain?method=gradcam%2B%2B&format=json&target=monocytes&seed=3"
    response = post_image(client, url, CELL)
    assert response.status_code == 200
    body = response.get_json()
    assert body["explanation"]["method"] == "gradcam++"
    assert body["explanation"]["target"] == "MONOCYTE"
    assert body["explanation"]["params"]["seed"] == 3
    attribution = np.array(body["attribution"])
    assert attribution.shape == (224, 224)
    assert np.isfinite(attribution).all() and attribution.max() > 0


def test_explain_a_chosen_cell_of_a_field(client):
    field = encode(Image.fromarray(two_cell_field()), "PNG")
    cells = post_image(client, "/predict", field).get_json()["cells"]
    response = post_image(client, "/explain?format=json&cell=2", field)
    assert response.status_code == 200
    assert response.get_json()["prediction"]["cell_box"] == cells[1]["cell_box"]


def too_small_png() -> bytes:
    return encode(Image.new("RGB", (16, 16), (200, 150, 200)), "PNG")


@pytest.mark.parametrize(("url", "data", "filename", "status", "message"), [
    ("/predict", b"", "empty.png", 422, "empty"),
    ("/predict", np.random.default_rng(0).bytes(4000), "noise.jpg", 422, "not an image"),
    ("/predict", b"just some notes, not pixels", "notes.png", 422, "not an image"),
    ("/predict", too_small_png(), "tiny.png", 422, "too small (16x16)"),
    ("/explain?method=magic", CELL, "cell.jpeg", 400, "available: gradcam"),
    ("/explain?format=gif", CELL, "cell.jpeg", 400, "accepted: png, json"),
    ("/explain?target=basophil", CELL, "cell.jpeg", 400, "expected one of EOSINOPHIL"),
    ("/explain?cell=0", CELL, "cell.jpeg", 400, "cell must be a whole number >= 1"),
    ("/explain?cell=two", CELL, "cell.jpeg", 400, "cell must be a whole number >= 1"),
    ("/explain?cell=5", CELL, "cell.jpeg", 400, "this image has 1 white cell(s); choose 1 to 1"),
    ("/explain?methd=lime", CELL, "cell.jpeg", 400, "Unknown query parameter(s): methd"),
])
def test_a_bad_upload_or_option_gets_a_specific_json_error(client, url, data, filename, status,
                                                           message):
    response = post_image(client, url, data, filename)
    assert response.status_code == status
    assert response.is_json
    assert message in response.get_json()["error"]


def test_a_request_without_the_image_field_says_how_to_send_it(client):
    response = client.post("/predict", data={"file": (io.BytesIO(CELL), "cell.jpeg")},
                           content_type=MULTIPART)
    assert response.status_code == 400
    assert 'No "image" file' in response.get_json()["error"]
    response = client.post("/predict", data={"image": "cell.jpeg"}, content_type=MULTIPART)
    assert response.status_code == 400
    assert "holds text, not a file" in response.get_json()["error"]


def test_wrong_http_method_and_unknown_url_are_json(client):
    response = client.get("/predict")
    assert response.status_code == 405
    assert response.get_json()["error"] == "GET is not allowed on /predict; use POST."
    assert "POST" in response.headers["Allow"]
    response = client.get("/classify")
    assert response.status_code == 404
    assert "No such endpoint: /classify" in response.get_json()["error"]


def test_a_body_over_the_limit_is_a_json_413(classifier):
    small_limit = create_app(classifier, max_upload_bytes=10_000).test_client()
    response = post_image(small_limit, "/predict", np.random.default_rng(1).bytes(20_000))
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert "upload limit" in error and "10000 bytes" in error
    assert post_image(small_limit, "/predict", CELL).status_code == 200


def test_an_internal_failure_is_a_json_500_without_internals(client, classifier, monkeypatch):
    def broken(image):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(classifier, "predict_cells", broken)
    response = post_image(client, "/predict", CELL)
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert "Internal error" in error
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_large_upload_is_never_written_to_disk(client, monkeypatch):
    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile"):
        monkeypatch.setattr(tempfile, name, no_disk)
    # Werkzeug imported SpooledTemporaryFile by name when it loaded, so patch its copy too.
    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_disk)
    data = big_png()
    assert 500 * 1024 < len(data) < MAX_UPLOAD_BYTES

    # The patch bites: a plain Flask app would spool this upload to a temporary file.
    plain = flask.Flask("plain")
    plain.testing = True
    plain.add_url_rule("/", "upload", lambda: str(len(flask.request.files["image"].read())),
                       methods=["POST"])
    with pytest.raises(AssertionError, match="temporary file"):
        post_image(plain.test_client(), "/", data)

    response = post_image(client, "/predict", data)
    assert response.status_code == 200
    assert response.get_json()["label"] in CLASS_NAMES


def test_a_lab_profile_given_at_start_up_is_named_by_health_and_used_by_predict(classifier):
    from hematovision import load_classifier
    from hematovision.model.lab_profile import build_few_shot

    lisc = REPO_ROOT.parent / "shared" / "data" / "lisc"
    labelled = {name: sorted((lisc / name.lower()).glob("*.png"))[:5] for name in CLASS_NAMES}
    profile = build_few_shot(classifier, labelled)
    adapted = load_classifier(lab_profile=profile)
    profiled = create_app(adapted).test_client()
    assert profiled.get("/health").get_json()["lab_profile"]["sha256"] == profile.sha256
    image = labelled["MONOCYTE"][0].read_bytes()
    answer = post_image(profiled, "/predict", image).get_json()
    assert answer["probabilities"] == pytest.approx(adapted.predict_cells(image)[0].as_dict()["probabilities"])
