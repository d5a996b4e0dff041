"""`--engine ray` writes what the local engine writes: the same predictions CSV, the same
compare files. One local Ray instance with 2 CPUs serves the whole module."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from hematovision import load_classifier
from hematovision.interfaces import cli, ray_engine
from hematovision.interfaces.cli import main
from hematovision.model.classifier import CLASS_NAMES
from tests.conftest import REPO_ROOT
from tests.synthetic import SMEAR

SAMPLES = REPO_ROOT / "samples"
TIMINGS = {"seconds"}  # how long a method took: the one thing a Ray run may change


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the Ray extra is not installed: pip install -r requirements-ray.txt")
    ray.init(address="local", num_cpus=2, object_store_memory=ray_engine.OBJECT_STORE_BYTES,
             include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def local_engine_uses_the_session_classifier(classifier, monkeypatch):
    """The local runs use the session's classifier; the Ray workers load their own."""
    monkeypatch.setattr(cli, "_classifier", lambda args: classifier)


@pytest.fixture(scope="module")
def cells_folder(tmp_path_factory) -> Path:
    """The 12 sample images, a smear field with several cells, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("cells")
    for sample in sorted(SAMPLES.glob("*.jpeg")):
        shutil.copy(sample, folder / sample.name)
    Image.fromarray(SMEAR).save(folder / "field.png")
    (folder / "notes.png").write_text("not a picture")
    return folder


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def parsed(row: dict) -> dict:
    """A CSV row with its numbers as floats, so they compare to within 1e-5."""
    def value(text: str):
        try:
            return float(text)
        except ValueError:
            return text

    return {column: value(text) for column, text in row.items()}


def numbers_match(local, on_ray, where: str = "", tolerance=lambda where: 1e-5) -> None:
    """Equal JSON, numbers to within ``tolerance(where they are)``, timings left out."""
    if isinstance(local, dict):
        assert local.keys() == on_ray.keys(), where
        for key in local.keys() - TIMINGS:
            numbers_match(local[key], on_ray[key], f"{where}/{key}", tolerance)
    elif isinstance(local, list):
        assert len(local) == len(on_ray), where
        for number, (first, second) in enumerate(zip(local, on_ray)):
            numbers_match(first, second, f"{where}[{number}]", tolerance)
    elif isinstance(local, float):
        assert on_ray == pytest.approx(local, abs=tolerance(where), nan_ok=True), where
    else:
        assert on_ray == local, where


def test_ray_predict_writes_the_local_csv(local_ray, cells_folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    local_csv, ray_csv = tmp_path / "local.csv", tmp_path / "ray.csv"
    assert main(["predict", str(cells_folder), str(empty), "--csv", str(local_csv)]) == 1
    capsys.readouterr()
    assert main(["predict", str(cells_folder), str(empty), "--csv", str(ray_csv),
                 "--engine", "ray", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "Ray, 2 worker(s): 14/14 images (100%)" in err  # progress, on stderr
    assert "notes.png: error:" in err

    local, on_ray = read_rows(local_csv), read_rows(ray_csv)
    assert len(local) == 15 and [row["file"] for row in on_ray] == [row["file"] for row in local]
    assert sum(row["label"] in CLASS_NAMES for row in local) == 13  # 12 samples and the smear field
    for local_row, ray_row in zip(local, on_ray):
        assert ray_row["label"] == local_row["label"], local_row["file"]
        numbers_match(parsed(local_row), parsed(ray_row), local_row["file"])  # probabilities within 1e-5
    assert "not an image" in on_ray[-2]["error"] and "No images" in on_ray[-1]["error"]


def test_ray_compare_writes_the_local_summary_and_rows(local_ray, tmp_path, capsys, monkeypatch):
    data = tmp_path / "cells"
    for sample in sorted(SAMPLES.glob("*.jpeg")):
        class_folder = data / sample.stem.split("-")[0]
        class_folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample, class_folder / sample.name)
    # A gradient method (TensorFlow on the workers) and a forward-only one (OpenVINO). f32: a
    # Grad-CAM map's thread-dependent rounding (below) moves int8's deletion curve by its
    # quantisation steps, up to 1.2e-3, which says nothing about the engines.
    full_precision = load_classifier(precision="f32")
    monkeypatch.setattr(cli, "_classifier", lambda args: full_precision)
    options = ["--precision", "f32", "compare", "--data-dir", str(data), "--per-class", "1",
               "--methods", "gradcam,occlusion",
               "--steps", "8", "--sanity-per-class", "0", "--stability-per-class", "0"]
    assert main([*options, "--out", str(tmp_path / "local")]) == 0
    assert main([*options, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    assert "Ray, 2 worker(s): 4/4 images (100%)" in capsys.readouterr().err

    local = json.loads((tmp_path / "local" / "summary.json").read_text())
    on_ray = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert local["settings"]["images"] == 4 and local["methods"]["occlusion"]["deletion_auc"]["n"] == 4
    numbers_match(local, on_ray, tolerance=gradients_looser)
    local_rows, ray_rows = read_rows(tmp_path / "local" / "per_image.csv"), read_rows(tmp_path / "ray" / "per_image.csv")
    assert len(local_rows) == 4 * 2
    for local_row, ray_row in zip(local_rows, ray_rows):
        numbers_match(parsed(local_row), parsed(ray_row), f"{local_row['file']} {local_row['method']}",
                      tolerance=gradients_looser)


def gradients_looser(where: str) -> float:
    """Anything drawn from Grad-CAM's map agrees to 1e-3, the rest to 1e-5. The map sums
    TensorFlow gradients, whose rounding depends on the thread count: a Ray worker keeps to
    one core, and the local engine pinned to one core (taskset -c 0) moves these numbers
    just as much (up to 1.2e-4 here); the forward passes agree to 1e-5 either way."""
    return 1e-3 if "gradcam" in where else 1e-5


def test_a_model_the_workers_cannot_load_is_a_one_line_error(local_ray, cells_folder, tmp_path, capsys):
    missing = tmp_path / "missing.keras"
    assert main(["--model", str(missing), "predict", str(cells_folder), "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert f"error: Model file not found: {missing}" in err and "Traceback" not in err


def test_without_ray_installed_the_message_says_how_to_install_it(cells_folder, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert main(["predict", str(cells_folder), "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --engine ray needs Ray, an optional extra that is not installed.")
    assert "pip install -r requirements-ray.txt" in err and "Traceback" not in err


def test_no_cluster_at_the_address_is_a_one_line_error(cells_folder, capsys):
    pytest.importorskip("ray", reason="the Ray extra is not installed: pip install -r requirements-ray.txt")
    # Port 1 on this machine: nothing listens there, so the connection is refused at once.
    assert main(["predict", str(cells_folder), "--engine", "ray", "--address", "127.0.0.1:1"]) == 1
    assert "No Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err


def test_ray_options_without_the_ray_engine_are_refused(cells_folder, capsys):
    assert main(["predict", str(cells_folder), "--workers", "2"]) == 1
    assert "--address and --workers go with --engine ray" in capsys.readouterr().err
