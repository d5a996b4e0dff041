"""Promises about the command line: answers on stdout, clear errors, never a traceback."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hematovision.interfaces.cli import main
from hematovision.model.classifier import CLASS_NAMES
from hematovision.model.trust import STATUSES
from tests.conftest import REPO_ROOT
from tests.synthetic import SMEAR


@pytest.fixture(autouse=True)
def shipped_model_loaded_once(classifier, tensorflow_classifier, monkeypatch):
    """Commands run in this process use the session's classifier: each real run loads the
    model itself (subprocess tests below do), which would only repeat the same load here."""
    from hematovision.interfaces import bench, cli

    real_cli_classifier = cli._classifier
    monkeypatch.setattr(cli, "_classifier", lambda args: classifier if args.model is None
                        and getattr(args, "lab_profile", None) is None else real_cli_classifier(args))
    monkeypatch.setattr(bench, "load_classifier",
                        lambda path=None, backend=None: tensorflow_classifier if backend == "tensorflow" else classifier)


@pytest.fixture()
def smear_png(tmp_path) -> Path:
    path = tmp_path / "smear.png"
    Image.fromarray(SMEAR).save(path)
    return path


@pytest.fixture()
def not_an_image(tmp_path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_json_gives_label_and_all_probabilities(capsys, classifier, smear_png):
    code, out, _ = run_cli(capsys, "predict", str(smear_png), "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert entry["label"] in CLASS_NAMES
    assert set(entry["probabilities"]) == set(CLASS_NAMES)
    assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert entry["confidence"] == max(entry["probabilities"].values())
    assert entry["cell_box"]["cell_found"] is True


def test_predict_reports_a_bad_file_and_still_answers_the_good_one(
    capsys, classifier, smear_png, not_an_image
):
    code, out, _ = run_cli(capsys, "predict", str(smear_png), str(not_an_image), "--json")
    assert code == 1
    good, bad = json.loads(out)
    assert "label" in good
    assert "not an image" in bad["error"]


def test_predict_plain_text_names_the_class(capsys, classifier, smear_png):
    code, out, _ = run_cli(capsys, "predict", str(smear_png))
    assert code == 0
    assert any(name.lower() in out for name in CLASS_NAMES)


def test_predict_missing_file_is_an_error_line_not_a_traceback(capsys, classifier, tmp_path):
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "gone.jpg"))
    assert code == 1
    assert "No such file" in err


def test_module_entry_point_runs_without_traceback(not_an_image):
    result = subprocess.run(
        [sys.executable, "-m", "hematovision", "predict", str(not_an_image)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "not an image" in result.stderr


def test_evaluate_folder_json_reports_accuracy_and_skips_bad_files(capsys, classifier, tmp_path):
    for folder in ("Neutrophils", "eosinophil"):
        (tmp_path / folder).mkdir()
        Image.fromarray(SMEAR).save(tmp_path / folder / "cell.png")
    (tmp_path / "Neutrophils" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code, out, _ = run_cli(capsys, "evaluate", str(tmp_path), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["n"] == 2
    assert report["unreadable_count"] == 1
    assert 0.0 <= report["accuracy"] <= 1.0
    assert np.array(report["confusion_matrix"]).sum() == 2
    assert set(report["folders"]) == {"NEUTROPHIL", "EOSINOPHIL"}


def test_evaluate_plain_text_prints_confusion_matrix(capsys, classifier, tmp_path):
    (tmp_path / "LYMPHOCYTE").mkdir()
    Image.fromarray(SMEAR).save(tmp_path / "LYMPHOCYTE" / "cell.jpg")
    code, out, _ = run_cli(capsys, "evaluate", str(tmp_path))
    assert code == 0
    assert "accuracy" in out and "confusion matrix" in out


def test_evaluate_folder_without_class_folders_is_a_clear_error(capsys, classifier, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path))
    assert code == 1
    assert "No class folders" in err


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_explain_writes_a_png_overlay(capsys, classifier, smear_png, tmp_path, method):
    out = tmp_path / "map.png"
    code, stdout, _ = run_cli(capsys, "explain", str(smear_png), "--method", method,
                              "--out", str(out), "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["explanation"]["method"] == method
    assert summary["explanation"]["evaluations"] >= 1
    with Image.open(out) as written:
        assert written.format == "PNG" and written.width > 224


def test_explain_for_another_class_says_which(capsys, classifier, smear_png, tmp_path):
    out = tmp_path / "map.png"
    code, stdout, _ = run_cli(capsys, "explain", str(smear_png), "--target", "monocytes",
                              "--out", str(out), "--json")
    assert code == 0
    assert json.loads(stdout)["explanation"]["target"] == "MONOCYTE"


def test_explain_unknown_method_is_a_clear_error(capsys, classifier, smear_png, tmp_path):
    code, _, err = run_cli(capsys, "explain", str(smear_png), "--method", "magic",
                           "--out", str(tmp_path / "x.png"))
    assert code == 1
    assert "available: gradcam" in err
    assert not (tmp_path / "x.png").exists()


def test_explain_refuses_a_non_png_output(capsys, classifier, smear_png, tmp_path):
    code, _, err = run_cli(capsys, "explain", str(smear_png), "--out", str(tmp_path / "x.jpg"))
    assert code == 1
    assert ".png" in err


def test_bench_json_reports_speed_against_targets(capsys, classifier):
    code, out, _ = run_cli(capsys, "bench", "--json", "--repeats", "1")
    assert code == 0
    report = json.loads(out)
    assert report["predict_ms_median"] > 0 and report["batch64_images_per_second"] > 0
    assert report["predict_target_ms"] == 30.0
    for method in ("gradcam", "gradcam++", "lime", "shap"):
        entry = report["explainers"][method]
        assert entry["median_seconds"] > 0 and entry["evaluations"] >= 1
        assert isinstance(entry["target_met"], bool)
    four = sum(report["explainers"][m]["median_seconds"] for m in ("gradcam", "gradcam++", "lime", "shap"))
    assert report["all_four_median_seconds"] == pytest.approx(four, rel=0.01)  # one image: a sum
    assert report["all_four_target_met"] == (report["all_four_median_seconds"] <= 4.0)
    assert "reference_agreement" not in report  # slow: only when asked for
    # Issue 15: the backend, and ratios to plain TensorFlow measured in the same run.
    assert (report["backend"], report["precision"]) == ("openvino", "int8")
    ratios = report["versus_tensorflow"]
    assert {"predict_one_image", "batched_per_image", "lime_per_evaluation", "shap_per_evaluation", "lime", "shap",
            "all_four", "all_four_vs_their_evaluations"} <= set(ratios)
    for entry in ratios.values():
        assert entry["ratio"] == pytest.approx(entry["ours"] / entry["tensorflow"], rel=0.01, abs=1e-3)


def test_bench_compare_reference_scores_the_defaults_against_high_budget_runs(
    capsys, classifier, monkeypatch
):
    import hematovision.interfaces.bench as bench

    # A small "reference" budget keeps the test quick; the sums are the same code path.
    monkeypatch.setattr(bench, "REFERENCE_PARAMS", {"lime": {"num_samples": 300},
                                                    "shap": {"max_evals": 300}})
    code, out, _ = run_cli(capsys, "bench", "--json", "--repeats", "1", "--compare-reference",
                           "--reference-images", "2")
    assert code == 0
    report = json.loads(out)
    # Agreement and the speed-up over the libraries' tutorial-style calls, from one run.
    assert report["tutorial_style"]["lime"]["speedup_of_defaults"] > 1
    assert report["tutorial_style"]["shap"]["speedup_of_defaults"] > 1
    agreement = report["reference_agreement"]
    assert set(agreement) == {"lime", "shap"}
    for method, budget in (("lime", "num_samples"), ("shap", "max_evals")):
        entry = agreement[method]
        assert entry["images"] == 2 and entry["reference_params"][budget] == 300
        assert entry["reference_params"]["seed"] not in entry["seeds"]  # independent draws
        assert 0.0 <= entry["iou_vs_reference"] <= 1.0
        low, high = entry["iou_vs_reference_ci95"]
        assert low <= entry["iou_vs_reference"] <= high
        assert entry["target_met"] == (entry["iou_vs_reference"] >= 0.7)
    assert agreement["shap"]["iou_across_seeds"] == 1.0  # Partition SHAP has no randomness


def test_bench_agreement_is_perfect_when_the_reference_is_the_default(classifier, monkeypatch):
    import hematovision.interfaces.bench as bench

    monkeypatch.setattr(bench, "REFERENCE_PARAMS", {"shap": {}})
    (entry,) = bench.run_stability(classifier, bench.sample_images(1), {"shap": [{}]},
                                   seeds=(0,))["shap"]
    assert entry["iou_vs_reference"] == 1.0 and entry["spearman_vs_reference"] == 1.0


def test_bench_refuses_a_zero_image_count(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "--reference-images", "0"])
    assert stopped.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


CSV_COLUMNS = ["file", "label", "confidence", "probability_eosinophil", "probability_lymphocyte",
               "probability_monocyte", "probability_neutrophil", "status", "other_type", "cell_count", "error"]


def read_csv(text: str) -> list[dict]:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == CSV_COLUMNS
    return list(reader)


def test_predict_folder_to_csv_gives_a_row_per_image_and_the_bad_files_error(
    capsys, classifier, tmp_path
):
    folder = tmp_path / "cells"
    (folder / "older").mkdir(parents=True)
    Image.fromarray(SMEAR).save(folder / "a-smear.png")
    sample = REPO_ROOT / "samples" / "neutrophil-1.jpeg"
    (folder / "b-neutrophil.jpeg").write_bytes(sample.read_bytes())
    (folder / "c-notes.png").write_text("not a picture")
    (folder / "readme.txt").write_text("not an image suffix: ignored")
    Image.fromarray(SMEAR).save(folder / "older" / "deeper.png")  # sub-folders are not searched
    out = tmp_path / "predictions.csv"

    code, _, err = run_cli(capsys, "predict", str(folder), "--csv", str(out))
    assert code == 1
    rows = read_csv(out.read_text())
    names = [Path(row["file"]).name for row in rows]
    assert names == ["a-smear.png", "b-neutrophil.jpeg", "c-notes.png"]
    for row in rows[:2]:
        assert row["label"] in CLASS_NAMES and row["error"] == ""
        probabilities = [float(row[f"probability_{name.lower()}"]) for name in CLASS_NAMES]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert float(row["confidence"]) == pytest.approx(max(probabilities))
        assert row["cell_count"] == "1"
        assert row["status"] in STATUSES
    assert rows[1]["label"] == classifier.predict(sample).label
    assert "not an image" in rows[2]["error"] and rows[2]["label"] == ""
    assert "c-notes.png: error:" in err


def test_predict_csv_to_stdout_mixes_files_and_reports_an_empty_folder(
    capsys, classifier, smear_png, tmp_path
):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, _ = run_cli(capsys, "predict", str(smear_png), str(empty), "--csv", "-")
    assert code == 1
    good, missing = read_csv(out)
    assert good["label"] in CLASS_NAMES
    assert missing["file"] == str(empty) and "No images" in missing["error"]


# -- lab profiles: adapt, then --lab-profile ----------------------------------------------

LISC = REPO_ROOT.parent / "shared" / "data" / "lisc"


@pytest.fixture(scope="module")
def lab_folders(tmp_path_factory) -> Path:
    """Five LISC cells per class in class folders, as a lab would lay out its labelled cells."""
    root = tmp_path_factory.mktemp("lab")
    for name in CLASS_NAMES:
        folder = root / name.lower()
        folder.mkdir()
        for path in sorted((LISC / name.lower()).glob("*.png"))[:5]:
            (folder / path.name).write_bytes(path.read_bytes())
    return root


@pytest.fixture(scope="module")
def few_shot_json(lab_folders, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("profile") / "lab.json"
    assert main(["adapt", str(lab_folders), "--out", str(out)]) == 0
    return out


def test_adapt_writes_a_few_shot_profile_and_says_what_it_holds(capsys, lab_folders, tmp_path):
    out = tmp_path / "lab.json"
    code, stdout, _ = run_cli(capsys, "adapt", str(lab_folders), "--out", str(out), "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["kind"] == "few_shot" and summary["out"] == str(out)
    assert summary["labelled"] == {name: 5 for name in CLASS_NAMES}
    assert json.loads(out.read_text())["format"] == "hematovision-lab-profile/1"


def unlabelled_folder(tmp_path):
    """36 LISC images straight in one folder, as a lab's unlabelled batch."""
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in CLASS_NAMES:
        for path in sorted((LISC / name.lower()).glob("*.png"))[5:14]:
            (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_adapt_unlabelled_uses_the_images_in_the_folder(capsys, tmp_path):
    folder = unlabelled_folder(tmp_path)
    code, stdout, _ = run_cli(capsys, "adapt", str(folder), "--unlabelled", "--out", str(tmp_path / "u.json"))
    assert code == 0
    assert "unlabelled" in stdout and (tmp_path / "u.json").is_file()


def test_adapt_unlabelled_with_batch_norm_writes_the_option(capsys, tmp_path):
    out = tmp_path / "bn.json"
    code, stdout, _ = run_cli(capsys, "adapt", str(unlabelled_folder(tmp_path)), "--unlabelled", "--batch-norm", "--out", str(out), "--json")
    assert code == 0
    assert json.loads(stdout)["batch_norm"] is True
    assert json.loads(out.read_text())["settings"]["batch_norm"] == "Conv_1"


def test_adapt_warns_when_the_batch_norm_comes_from_a_lopsided_batch(capsys, tmp_path):
    folder = tmp_path / "neutrophils"
    folder.mkdir()
    for path in sorted((LISC / "neutrophil").glob("*.png")):
        (folder / path.name).write_bytes(path.read_bytes())
    code, _, err = run_cli(capsys, "adapt", str(folder), "--unlabelled", "--batch-norm", "--out", str(tmp_path / "n.json"))
    assert code == 0 and (tmp_path / "n.json").is_file()
    assert "Caution:" in err and "look like neutrophils" in err


def test_adapt_batch_norm_without_unlabelled_is_refused(capsys, lab_folders, tmp_path):
    code, _, err = run_cli(capsys, "adapt", str(lab_folders), "--batch-norm", "--out", str(tmp_path / "b.json"))
    assert code == 1 and "--batch-norm goes with --unlabelled" in err and not (tmp_path / "b.json").exists()


def test_adapt_refuses_a_folder_without_every_class(capsys, lab_folders, tmp_path):
    partial = tmp_path / "partial"
    for name in ("eosinophil", "lymphocyte"):
        (partial / name).mkdir(parents=True)
        for path in (lab_folders / name).iterdir():
            (partial / name / path.name).write_bytes(path.read_bytes())
    code, _, err = run_cli(capsys, "adapt", str(partial), "--out", str(tmp_path / "p.json"))
    assert code == 1
    assert "missing: monocyte, neutrophil" in err and not (tmp_path / "p.json").exists()


def test_adapt_unlabelled_on_class_folders_says_to_drop_the_flag(capsys, lab_folders, tmp_path):
    code, _, err = run_cli(capsys, "adapt", str(lab_folders), "--unlabelled", "--out", str(tmp_path / "u.json"))
    assert code == 1 and "drop --unlabelled" in err


def test_predict_with_a_lab_profile_names_it_in_json_and_csv(capsys, few_shot_json, tmp_path):
    image = sorted((LISC / "monocyte").glob("*.png"))[9]
    sha = hashlib.sha256(few_shot_json.read_bytes()).hexdigest()
    code, stdout, _ = run_cli(capsys, "predict", str(image), "--json", "--lab-profile", str(few_shot_json),
                              "--csv", str(tmp_path / "out.csv"))
    assert code == 0
    [entry] = json.loads(stdout)
    assert entry["lab_profile"] == sha
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert rows[0]["lab_profile"] == sha


def test_evaluate_and_explain_with_a_lab_profile_name_it(capsys, few_shot_json, lab_folders, tmp_path):
    code, stdout, _ = run_cli(capsys, "evaluate", str(lab_folders), "--json", "--lab-profile", str(few_shot_json))
    assert code == 0
    report = json.loads(stdout)
    assert report["lab_profile"]["kind"] == "few_shot" and report["n"] == 20
    image = sorted((LISC / "eosinophil").glob("*.png"))[0]
    code, stdout, _ = run_cli(capsys, "explain", str(image), "--out", str(tmp_path / "map.png"), "--json",
                              "--lab-profile", str(few_shot_json))
    assert code == 0
    assert json.loads(stdout)["lab_profile"]["kind"] == "few_shot" and (tmp_path / "map.png").is_file()


def test_a_bad_lab_profile_is_a_clear_error(capsys, smear_png, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, _, err = run_cli(capsys, "predict", str(smear_png), "--lab-profile", str(broken))
    assert code == 1
    assert "not a lab profile" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "predict", str(smear_png), "--lab-profile", str(tmp_path / "gone.json"))
    assert code == 1 and "No lab profile at" in err
