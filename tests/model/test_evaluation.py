"""Folder evaluation: class-folder matching, counting, unreadable files, and the model card."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hematovision.model.classifier import (
    CLASS_NAMES,
    DEFAULT_MODEL_PATH,
    MODEL_CARD_PATH,
    ModelOutputs,
)
from hematovision.model.evaluation import evaluate_folder, find_class_folders
from tests.conftest import REPO_ROOT

DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "blood-cells"


def test_folder_names_match_singular_plural_and_case(tmp_path):
    for name in ["neutrophils", "Eosinophil", "LYMPHOCYTES", "monocyte", "basophils", "notes"]:
        (tmp_path / name).mkdir()
    (tmp_path / "readme.txt").write_text("not a folder")
    found = find_class_folders(tmp_path)
    assert {k: v.name for k, v in found.items()} == {
        "NEUTROPHIL": "neutrophils",
        "EOSINOPHIL": "Eosinophil",
        "LYMPHOCYTE": "LYMPHOCYTES",
        "MONOCYTE": "monocyte",
    }


def test_two_folders_for_one_class_is_an_error(tmp_path):
    (tmp_path / "Neutrophil").mkdir()
    (tmp_path / "neutrophils").mkdir()
    with pytest.raises(ValueError):
        find_class_folders(tmp_path)


class ColourClassifier:
    """Stand-in model: the class is decided by the crop's brightest channel."""

    def prepare(self, image):
        return np.asarray(image)[:224, :224], None

    def predict_proba(self, batch):
        means = np.asarray(batch, dtype=np.float32).mean(axis=(1, 2))  # N x 3
        probs = np.zeros((len(batch), 4), np.float32)
        probs[np.arange(len(batch)), means.argmax(axis=1)] = 1.0
        return probs

    def outputs(self, batch):
        means = np.asarray(batch, dtype=np.float32).mean(axis=(1, 2))
        return ModelOutputs(means, means, self.predict_proba(batch))


def write_image(path, colour):
    Image.fromarray(np.full((240, 320, 3), colour, np.uint8)).save(path)


def test_evaluate_folder_counts_and_lists_unreadable(tmp_path):
    red, green, blue = (200, 10, 10), (10, 200, 10), (10, 10, 200)
    for name in ["eosinophils", "Lymphocyte", "NEUTROPHIL"]:
        (tmp_path / name).mkdir()
    write_image(tmp_path / "eosinophils" / "a.png", red)      # predicted EOSINOPHIL: right
    write_image(tmp_path / "eosinophils" / "b.jpg", green)    # predicted LYMPHOCYTE: wrong
    write_image(tmp_path / "Lymphocyte" / "c.png", green)     # right
    write_image(tmp_path / "NEUTROPHIL" / "d.png", blue)      # predicted MONOCYTE: wrong
    (tmp_path / "NEUTROPHIL" / "broken.jpg").write_bytes(b"not really a jpeg")
    calls = []
    result = evaluate_folder(ColourClassifier(), tmp_path, batch_size=2,
                             progress=lambda done, total: calls.append((done, total)))
    assert result["n"] == 4 and result["correct"] == 2
    assert result["accuracy"] == 0.5
    assert result["unreadable_count"] == 1
    assert result["unreadable"][0]["file"].endswith("broken.jpg")
    assert result["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    assert result["per_class"]["LYMPHOCYTE"]["recall"] == 1.0
    assert result["per_class"]["NEUTROPHIL"]["support"] == 1
    assert calls[-1] == (5, 5)


def test_evaluate_folder_with_the_real_model(tmp_path, classifier):
    (tmp_path / "Neutrophils").mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        noise = rng.integers(150, 255, size=(240, 320, 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / "Neutrophils" / f"{index}.png")
    result = evaluate_folder(classifier, tmp_path)
    assert result["n"] == 3 and result["unreadable_count"] == 0
    assert np.asarray(result["confusion_matrix"]).shape == (4, 4)
    assert sum(map(sum, result["confusion_matrix"])) == 3


def _sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_model_card_hash_matches_model_file():
    card = json.loads(MODEL_CARD_PATH.read_text())
    assert card["model_sha256"] == _sha256(DEFAULT_MODEL_PATH)
    assert card["class_names"] == list(CLASS_NAMES)


@pytest.mark.skipif(not (DATA_DIR / "TEST_SIMPLE").is_dir(), reason="dataset not present")
def test_test_simple_accuracy_matches_the_model_card(classifier):
    card = json.loads(MODEL_CARD_PATH.read_text())
    recorded = card["evaluation"]["splits"]["test_simple"]
    result = evaluate_folder(classifier, DATA_DIR / "TEST_SIMPLE")
    assert result["n"] == recorded["n"] == 71
    assert result["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    assert result["confusion_matrix"] == recorded["confusion_matrix"]
    assert result["accuracy"] >= 0.75
