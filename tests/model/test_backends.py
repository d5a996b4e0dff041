"""Forward passes on OpenVINO (the default) or TensorFlow: the same answers, and no TensorFlow
where only predictions are made."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hematovision import load_classifier
from hematovision.model.backends import (
    BACKEND_ENV,
    CACHE_ENV,
    PRECISION_ENV,
    chosen_backend,
    openvino_beside,
)
from hematovision.workflows.samples import list_samples
from tests.conftest import REPO_ROOT


def test_openvino_f32_agrees_with_tensorflow(tensorflow_classifier):
    on_tensorflow, classifier = tensorflow_classifier, load_classifier(precision="f32")
    assert classifier.backend.name == "openvino" and on_tensorflow.backend.name == "tensorflow"
    crops = np.stack([classifier.prepare(sample.path)[0] for sample in list_samples()])
    noise = np.random.default_rng(0).uniform(0, 255, (4, *crops.shape[1:])).astype(np.float32)
    for batch in (crops, noise):
        ours, reference = classifier.outputs(batch), on_tensorflow.outputs(batch)
        assert np.abs(ours.probabilities - reference.probabilities).max() < 1e-4
        assert np.abs(ours.ood_features - reference.ood_features).max() < 1e-3
        assert np.abs(ours.type_features - reference.type_features).max() < 1e-3
    for sample in list_samples():
        a, b = classifier.predict(sample.path), on_tensorflow.predict(sample.path)
        assert (a.label, a.status) == (b.label, b.status)


def test_the_environment_chooses_tensorflow_and_a_wrong_name_is_refused(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "tensorflow")
    assert chosen_backend() == "tensorflow"
    assert chosen_backend("openvino") == "openvino"  # an explicit choice wins
    monkeypatch.setenv(BACKEND_ENV, "cuda")
    with pytest.raises(ValueError, match="Unknown backend 'cuda'; choose one of openvino, tensorflow"):
        chosen_backend()


def test_a_missing_openvino_network_is_converted_once_into_the_cache(tmp_path, monkeypatch, classifier):
    model = tmp_path / "model.keras"
    shutil.copy(REPO_ROOT / "models" / "hematovision-mobilenetv2.keras", model)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert not openvino_beside(model).exists()
    converted = load_classifier(model)
    assert converted.backend.precision == "f32"  # no int8 network was made from this copy
    [xml] = (tmp_path / "cache" / "openvino").glob("*.xml")
    assert json.loads(xml.with_suffix(".json").read_text())["model_sha256"] == converted.model_sha256
    made = xml.stat().st_mtime_ns
    sample = list_samples()[0].path
    assert load_classifier(model).predict(sample).label == classifier.predict(sample).label
    assert xml.stat().st_mtime_ns == made  # the second load used the cached network


NO_TENSORFLOW = """
import json, sys
{body}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & {{"tensorflow", "keras"}})))
"""


def run_without_tensorflow(body: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", NO_TENSORFLOW.format(body=body)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_cli_predicts_without_importing_tensorflow():
    sample = list_samples()[0].path
    loaded = run_without_tensorflow(
        "from hematovision.interfaces.cli import main\n"
        f"assert main(['predict', {str(sample)!r}, '--json']) == 0")
    assert loaded == []


def test_the_api_predicts_without_importing_tensorflow():
    sample = list_samples()[0].path
    loaded = run_without_tensorflow(
        "import io\n"
        "from hematovision.interfaces.api import create_app\n"
        "client = create_app().test_client()\n"
        f"data = {{'image': (io.BytesIO(open({str(sample)!r}, 'rb').read()), 'cell.jpg')}}\n"
        "response = client.post('/predict', data=data, content_type='multipart/form-data')\n"
        "assert response.status_code == 200 and response.get_json()['label'], response.get_data()")
    assert loaded == []


def test_a_few_shot_lab_profile_is_built_without_tensorflow(classifier, tensorflow_classifier, tmp_path):
    """adapt reads the final dense layer from the OpenVINO network's constants."""
    ours, reference = classifier.head_weights(), tensorflow_classifier.head_weights()
    assert all(np.array_equal(a, b) for a, b in zip(ours, reference))
    labelled = tmp_path / "labelled"
    for sample in list_samples():
        (labelled / sample.class_name.lower()).mkdir(parents=True, exist_ok=True)
        shutil.copy(sample.path, labelled / sample.class_name.lower() / sample.path.name)
    out = tmp_path / "profile.json"
    loaded = run_without_tensorflow(
        "from hematovision.interfaces.cli import main\n"
        f"assert main(['adapt', {str(labelled)!r}, '--per-class', '3', '--out', {str(out)!r}]) == 0")
    assert loaded == [] and json.loads(out.read_text())["kind"] == "few_shot"


def test_the_classify_page_predicts_without_importing_tensorflow():
    loaded = run_without_tensorflow(
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('streamlit_app.py', default_timeout=300).run()\n"
        "at.switch_page('app_pages/classify.py').run()\n"
        "at.button(key='sample_neutrophil-1').click().run()\n"
        "assert not at.exception and [m.value for m in at.metric][:1] == ['Neutrophil'], at.exception")
    assert loaded == []


def test_a_precision_can_be_chosen_and_a_wrong_one_is_refused(classifier, monkeypatch):
    assert classifier.backend.precision == "int8"  # the default for the shipped model: README, Speed, says why
    sample = list_samples()[0].path
    reduced = load_classifier(precision="bf16")
    assert reduced.backend.precision == "bf16"
    assert reduced.predict(sample).probabilities.keys() == classifier.predict(sample).probabilities.keys()
    monkeypatch.setenv(PRECISION_ENV, "f32")
    assert load_classifier().backend.precision == "f32"
    assert load_classifier(precision="int8").backend.precision == "int8"  # an explicit choice wins
    with pytest.raises(ValueError, match="Unknown precision 'fp64'; choose one of f32, bf16, int8"):
        load_classifier(precision="fp64")


def test_the_shipped_int8_network_mostly_agrees_with_f32(classifier):
    """The quantised network is measured on the test sets by training.precision; here, on the
    bundled samples, it must give the same labels and probabilities within a few points."""
    full = load_classifier(precision="f32")
    crops = np.stack([classifier.prepare(sample.path)[0] for sample in list_samples()])
    ours, reference = classifier.outputs(crops), full.outputs(crops)
    assert (ours.probabilities.argmax(1) == reference.probabilities.argmax(1)).all()
    assert np.abs(ours.probabilities - reference.probabilities).mean() < 0.05


def test_int8_runs_with_trust_checks_fitted_to_its_own_features(classifier, tensorflow_classifier):
    """Quantisation moves the block-12 features; f32's distances would call three times as many
    Kaggle cells "unfamiliar lab". The int8 network reads its own section and files."""
    card = json.loads((REPO_ROOT / "models" / "model-card.json").read_text())
    int8, f32 = card["trust_int8"], card["trust"]
    assert classifier.trust.temperature == int8["temperature"] != f32["temperature"]
    assert classifier.trust.ood.threshold == pytest.approx(int8["ood"]["threshold"], abs=1e-4)
    assert classifier.trust.other_types.threshold == pytest.approx(int8["other_types"]["threshold"], abs=1e-6)
    for name, sha in ((int8["ood_file"], int8["ood_file_sha256"]),
                      (int8["other_types_file"], int8["other_types_file_sha256"])):
        assert ".int8." in name and hashlib.sha256((REPO_ROOT / "models" / name).read_bytes()).hexdigest() == sha
    assert load_classifier(precision="f32").trust.temperature == f32["temperature"]
    assert tensorflow_classifier.trust.temperature == f32["temperature"]


def test_a_missing_int8_network_is_explained(tmp_path):
    model = tmp_path / "other.keras"
    shutil.copy(REPO_ROOT / "models" / "hematovision-mobilenetv2.keras", model)
    with pytest.raises(FileNotFoundError, match="No int8 network for other.keras.*training.quantize_int8"):
        load_classifier(model, precision="int8")


def test_the_card_records_the_shipped_openvino_networks():
    card = json.loads((REPO_ROOT / "models" / "model-card.json").read_text())
    for section, precision in (("openvino", "f32"), ("openvino_int8", "int8")):
        entry = card[section]
        weights = REPO_ROOT / "models" / entry["weights_file"]
        assert entry["precision"] == precision
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == entry["weights_sha256"]
        assert entry["model_sha256"] == card["model_sha256"]
