"""`python -m hematovision differential`: counts, shares and exact intervals from real images, a saved
review applied, and a clear refusal for a review of another model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil

import pytest
from scipy.stats import binomtest

from hematovision.interfaces.cli import main
from hematovision.model.classifier import CLASS_NAMES
from hematovision.workflows.batch import UploadedImage, classify_batch, set_review
from hematovision.workflows.review_file import review_of
from hematovision.workflows.samples import list_samples

SAMPLES = ["neutrophil-1", "neutrophil-2", "monocyte-1", "lymphocyte-1", "eosinophil-1"]


@pytest.fixture(autouse=True)
def shipped_model_loaded_once(classifier, monkeypatch):
    """The session's classifier instead of a fresh load per command (as in test_cli)."""
    from hematovision.interfaces import cli

    real = cli._classifier
    monkeypatch.setattr(cli, "_classifier", lambda args: classifier if args.model is None
                        and getattr(args, "lab_profile", None) is None else real(args))


@pytest.fixture()
def folder(tmp_path):
    images = tmp_path / "smear"
    images.mkdir()
    for sample in list_samples():
        if sample.key in SAMPLES:
            shutil.copy(sample.path, images / sample.path.name)
    return images


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def model_cells(classifier, folder):
    images = [UploadedImage(str(path), path.read_bytes()) for path in sorted(folder.iterdir())]
    cells, skipped = classify_batch(classifier, images)
    assert not skipped
    return cells


def test_json_gives_each_class_its_count_share_and_exact_interval(capsys, classifier, folder):
    code, out, _ = run(capsys, "differential", str(folder), "--json")
    assert code == 0
    answer = json.loads(out)
    expected = {name: sum(c.final_class == name for c in model_cells(classifier, folder)) for name in CLASS_NAMES}
    assert {name: entry["count"] for name, entry in answer["classes"].items()} == expected
    assert answer["cells_counted"] == sum(expected.values()) == len(SAMPLES)
    assert (answer["other_cells"], answer["not_blood_cells"], answer["images"]) == (0, 0, len(SAMPLES))
    for name, entry in answer["classes"].items():
        assert entry["share"] == pytest.approx(expected[name] / len(SAMPLES))
        exact = binomtest(expected[name], len(SAMPLES)).proportion_ci(method="exact")
        assert entry["ci95"] == pytest.approx([exact.low, exact.high])
    assert all(line.split(":")[0] in ("Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil") for line in answer["flags"])
    assert answer["model_sha256"] == classifier.model_sha256


def test_csv_has_one_row_per_class_with_the_interval(capsys, folder):
    code, out, _ = run(capsys, "differential", str(folder), "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["class"] for row in rows] == list(CLASS_NAMES)
    for row in rows:
        assert float(row["ci95_low"]) <= float(row["share"]) <= float(row["ci95_high"])
        assert row["cells_counted"] == str(len(SAMPLES))


def test_a_saved_review_is_applied_and_another_models_review_is_refused(capsys, classifier, folder, tmp_path):
    cells = model_cells(classifier, folder)
    moved = next(c for c in cells if c.predicted == "NEUTROPHIL")
    set_review(cells, moved.key, "MONOCYTE")
    review = tmp_path / "review.json"
    review.write_bytes(review_of(cells, classifier.model_sha256, initials="JK").to_bytes())
    _, before, _ = run(capsys, "differential", str(folder), "--json")
    code, after, _ = run(capsys, "differential", str(folder), "--json", "--reviews", str(review))
    assert code == 0
    before, after = json.loads(before)["classes"], json.loads(after)
    assert after["classes"]["MONOCYTE"]["count"] == before["MONOCYTE"]["count"] + 1
    assert after["classes"]["NEUTROPHIL"]["count"] == before["NEUTROPHIL"]["count"] - 1
    assert (after["reviews"]["matched"], after["reviews"]["initials"], after["changed"]) == (len(SAMPLES), "JK", 1)

    other = tmp_path / "other-model.json"
    other.write_bytes(review_of(cells, hashlib.sha256(b"another model").hexdigest()).to_bytes())
    code, out, _ = run(capsys, "differential", str(folder), "--json", "--reviews", str(other))
    assert code == 1 and "made with another model" in json.loads(out)["error"]
    code, _, err = run(capsys, "differential", str(folder), "--reviews", str(tmp_path))
    assert code == 1 and err.startswith("error: No review file at")
