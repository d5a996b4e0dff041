"""Faithfulness metrics on a hand-made model whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from hematovision.explanation.faithfulness import (
    agreement,
    deletion_insertion,
    drop_and_increase,
    spearman,
    top_iou,
)

SIZE = 64


def corner_model(batch: np.ndarray) -> np.ndarray:
    """Looks only at the top-left 16x16 corner: class 0 is 'the corner is bright'."""
    corner = np.asarray(batch, np.float32)[:, :16, :16].mean(axis=(1, 2, 3)) / 255.0
    p = 1 / (1 + np.exp(-12 * (corner - 0.75)))
    return np.stack([p, 1 - p], axis=1)


def bright_corner_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(40, 90, (SIZE, SIZE, 3), dtype=np.uint8)  # dark, textured
    image[:16, :16] = 240
    return image


def right_map() -> np.ndarray:
    attribution = np.zeros((SIZE, SIZE))
    attribution[:16, :16] = 1.0
    return attribution


@pytest.mark.parametrize("baseline", ["blur(64)", "constant(128)"])
def test_the_right_map_beats_a_random_map_on_deletion_and_insertion(baseline):
    image = bright_corner_image()
    random_map = np.random.default_rng(1).random((SIZE, SIZE))
    right = deletion_insertion(corner_model, image, right_map(), target=0, steps=16, baseline=baseline)
    chance = deletion_insertion(corner_model, image, random_map, target=0, steps=16, baseline=baseline)
    assert right["deletion_auc"] < chance["deletion_auc"] - 0.3
    assert right["insertion_auc"] > chance["insertion_auc"] + 0.3
    assert len(right["deletion"]) == len(right["insertion"]) == 17
    assert right["deletion"][0] == pytest.approx(right["insertion"][-1])  # both the intact image
    assert right["params"]["baseline"] == baseline and right["params"]["steps"] == 16


def test_keeping_the_right_region_keeps_the_confidence():
    image = bright_corner_image()
    right = drop_and_increase(corner_model, image, right_map(), target=0, keep_fraction=0.0625, baseline="blur(64)")
    wrong = drop_and_increase(corner_model, image, 1 - right_map(), target=0, keep_fraction=0.0625,
                              baseline="blur(64)")
    assert right["drop"] < 0.05
    assert wrong["drop"] > 0.5 and not wrong["increase"]


def test_agreement_of_identical_opposite_and_unrelated_maps():
    base = np.arange(SIZE * SIZE, dtype=float).reshape(SIZE, SIZE)
    assert spearman(base, base) == pytest.approx(1.0)
    assert spearman(base, -base) == pytest.approx(-1.0)
    assert top_iou(base, base) == 1.0
    assert top_iou(base, -base) == 0.0
    table = agreement({"a": base, "b": -base, "c": np.random.default_rng(2).random((SIZE, SIZE))})
    assert table["methods"] == ["a", "b", "c"]
    assert np.allclose(np.diag(table["spearman"]), 1.0)
    assert abs(table["spearman"][0][2]) < 0.1
    assert table["spearman"][0][1] == table["spearman"][1][0]


def test_top_iou_takes_exactly_the_top_fraction_and_breaks_ties_in_raster_order():
    wide = np.zeros((10, 10))
    wide[:4] = 1.0  # 40 pixels tied at the top: the top 20% is the first 20 of them
    narrow = np.zeros((10, 10))
    narrow[:2] = 1.0  # exactly those 20 pixels
    assert top_iou(wide, narrow) == 1.0  # a quantile cut-off would take all 40: IoU 0.5
    shifted = np.zeros((10, 10))
    shifted[2:6] = 1.0  # the same 40-pixel region two rows lower
    assert top_iou(wide, shifted) == 0.0  # rows 0-1 against rows 2-3
    ramp = -np.arange(100.0).reshape(10, 10)  # pixel 0 first
    assert top_iou(ramp, np.roll(ramp, 5), fraction=0.15) == 0.5  # pixels 0-14 against 5-19
    assert top_iou(ramp, -ramp, fraction=0.001) == 0.0  # never fewer than one pixel
    assert top_iou(np.zeros((10, 10)), np.full((10, 10), 3.0)) == 1.0  # constant maps: raster order
    with pytest.raises(ValueError, match="different shapes"):
        top_iou(np.zeros((10, 10)), np.zeros((5, 20)))


def test_spearman_ranks_every_pixel_with_average_ranks_for_ties():
    from scipy import stats

    # Ranks 1, 2, 3, 4 against 1.5, 1.5, 3, 4: rho = 4.5 / sqrt(5 * 4.5) = sqrt(0.9).
    ties = spearman(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 1.0], [2.0, 3.0]]))
    assert ties == pytest.approx(np.sqrt(0.9), abs=1e-12)
    # Opposite everywhere except on the 4x grid, where the two agree: every pixel counts.
    first = np.arange(64.0).reshape(8, 8)
    second = -first
    second[::4, ::4] = 1000 * first[::4, ::4]
    assert spearman(first, second) < -0.8
    rng = np.random.default_rng(3)
    noisy = rng.random((32, 32))
    blocky = np.kron(rng.integers(0, 4, (4, 4)), np.ones((8, 8)))  # flat regions: many ties
    # The textbook statistic: scipy gives the same value to rounding.
    for a, b in ((noisy, noisy + rng.random((32, 32))), (blocky, noisy), (blocky, blocky.T)):
        expected = stats.spearmanr(a.ravel(), b.ravel()).statistic
        assert spearman(a, b) == pytest.approx(expected, abs=1e-12)


def test_a_constant_map_agrees_only_with_another_constant_map():
    flat, ramp = np.zeros((8, 8)), np.arange(64.0).reshape(8, 8)
    assert spearman(flat, np.full((8, 8), 5.0)) == 1.0
    assert spearman(flat, ramp) == 0.0 and spearman(ramp, flat) == 0.0


def test_bench_measures_agreement_with_the_same_definitions():
    import hematovision.interfaces.bench as bench

    wide, narrow = np.zeros((10, 10)), np.zeros((10, 10))
    wide[:4], narrow[:2] = 1.0, 1.0
    assert bench._agreement(wide, narrow, 0.2) == (top_iou(wide, narrow), spearman(wide, narrow))
    assert bench._agreement(wide, np.zeros((10, 10)), 0.2)[1] == 0.0


def test_a_map_of_the_wrong_size_or_an_unknown_baseline_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        deletion_insertion(corner_model, bright_corner_image(), np.zeros((8, 8)), target=0)
    with pytest.raises(ValueError, match="Unknown baseline"):
        deletion_insertion(corner_model, bright_corner_image(), right_map(), target=0, baseline="zeros")


def test_real_gradcam_beats_its_inverse_on_the_shipped_model(classifier):
    from hematovision.explanation.explainers import explain
    from hematovision.workflows.samples import find_sample

    prediction = classifier.predict(find_sample("eosinophil-1").path)
    target = prediction.class_index
    attribution = explain(classifier, prediction.model_input, method="gradcam").attribution
    forward = deletion_insertion(classifier.predict_proba, prediction.model_input, attribution, target, steps=10)
    backward = deletion_insertion(classifier.predict_proba, prediction.model_input, -attribution, target, steps=10)
    assert forward["deletion_auc"] < backward["deletion_auc"]
    assert forward["insertion_auc"] > backward["insertion_auc"]


def test_randomisation_check_fails_a_model_independent_map_and_passes_gradcam(classifier):
    from scipy import ndimage

    from hematovision.explanation.explainers.base import build_explainer
    from hematovision.explanation.faithfulness import randomisation_check
    from hematovision.workflows.samples import find_sample

    crop = classifier.predict(find_sample("neutrophil-1").path).model_input

    def edges(_classifier, image, _target):  # looks only at the image: an "explanation" of nothing
        return np.hypot(ndimage.sobel(image.mean(axis=2), 0), ndimage.sobel(image.mean(axis=2), 1))

    def gradcam(model, image, target):
        return build_explainer(model, "gradcam")(image, target=target).attribution

    cascade = ("predictions", "Conv_1", "block_16_", "block_15_")
    independent = randomisation_check(classifier, crop, edges, target=3, cascade=cascade)
    assert independent["passed"] is False
    assert all(step["spearman"] == pytest.approx(1.0) for step in independent["steps"])
    dependent = randomisation_check(classifier, crop, gradcam, target=3, cascade=cascade)
    assert dependent["passed"] is True
    assert [s["randomised_down_to"] for s in dependent["steps"]] == ["predictions", "Conv_1", "block_16", "block_15"]
    # The classifier itself is untouched.
    assert classifier.predict(find_sample("neutrophil-1").path).label == "NEUTROPHIL"


def test_compare_cli_writes_every_file_for_a_small_set(tmp_path, capsys, classifier):
    import csv
    import json
    import shutil

    from hematovision.interfaces.cli import main
    from hematovision.workflows.samples import list_samples

    data = tmp_path / "cells"
    for sample in list_samples()[::3]:  # one image of each class
        (data / sample.class_name.lower()).mkdir(parents=True, exist_ok=True)
        shutil.copy(sample.path, data / sample.class_name.lower() / sample.path.name)
    out = tmp_path / "results"
    code = main(["compare", "--data-dir", str(data), "--per-class", "1", "--methods", "gradcam,gradcam++",
                 "--out", str(out), "--steps", "8", "--sanity-per-class", "1", "--stability-per-class", "1",
                 "--stability-seeds", "2"])
    assert code == 0
    for name in ("per_image.csv", "summary.csv", "summary.json", "agreement.csv", "curves.png", "figures.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    with open(out / "per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["images"] == 4 and summary["settings"]["steps"] == 8
    gradcam = summary["methods"]["gradcam"]
    assert gradcam["sanity_checked"] == 4  # the first image of each class
    assert gradcam["stability_spearman"]["n"] == 4 and gradcam["stability_spearman"]["mean"] == 1.0  # no randomness
    assert len(gradcam["mean_curves"]["deletion"]) == 9
    assert "gradcam vs gradcam++" in summary["agreement"]
    assert "gradcam" in capsys.readouterr().out


def test_seed_stability_is_one_for_a_deterministic_map_and_low_for_noise():
    from hematovision.explanation.faithfulness import seed_stability

    fixed = seed_stability(lambda seed: right_map(), seeds=(0, 1, 2))
    assert fixed["spearman"] == 1.0 and fixed["top_iou"] == 1.0 and fixed["identical"]
    noise = seed_stability(lambda seed: np.random.default_rng(seed).random((SIZE, SIZE)), seeds=(0, 1, 2))
    assert abs(noise["spearman"]) < 0.05 and not noise["identical"]
    assert noise["top_iou"] == pytest.approx(0.2 / 1.8, abs=0.03)  # two random top-20% sets
    assert noise["params"] == {"seeds": [0, 1, 2], "top_fraction": 0.2}
    with pytest.raises(ValueError, match="two seeds"):
        seed_stability(lambda seed: right_map(), seeds=(0,))


def test_compare_image_scores_every_method_and_exports_csv_and_json(classifier):
    import csv
    import io
    import json

    from hematovision.explanation.compare import compare_image
    from hematovision.explanation.compare_tables import comparison_table, most_faithful
    from hematovision.workflows.samples import find_sample

    crop = classifier.predict(find_sample("lymphocyte-1").path).model_input
    shares = []
    result = compare_image(classifier, crop, ["gradcam", "lime"], target="MONOCYTE", steps=10, stability_seeds=2,
                           progress=lambda share, text: shares.append(share))
    assert result.target == "MONOCYTE" and set(result.maps) == {"gradcam", "lime"}
    assert result.maps["lime"].shape == (224, 224)
    for entry in result.methods.values():
        assert len(entry["curves"]["deletion"]) == 11 and 0 <= entry["deletion_auc"] <= 1
        assert entry["sanity"] is None
    # Grad-CAM has no randomness; LIME samples, so another seed gives a (somewhat) different map.
    assert result.methods["gradcam"]["stability"]["identical"]
    assert not result.methods["lime"]["stability"]["identical"]
    assert 0 < result.methods["lime"]["stability"]["spearman"] < 1
    assert result.agreement["methods"] == ["gradcam", "lime"]
    assert shares[-1] == 1.0 and shares == sorted(shares)
    parsed = json.loads(result.to_json())
    assert parsed["target"] == "MONOCYTE" and parsed["settings"]["steps"] == 10
    assert parsed["methods"]["lime"]["params"]["num_samples"] == 150  # exact parameters travel with the numbers
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert [row["method"] for row in rows] == ["gradcam", "lime"]
    table = comparison_table(result)
    assert [row["Deletion AUC ↓"] for row in table] == sorted(row["Deletion AUC ↓"] for row in table)
    best, second, margin = most_faithful(result.methods)
    assert {best, second} == {"gradcam", "lime"}
    assert margin == pytest.approx(abs(result.methods["gradcam"]["deletion_auc"] - result.methods["lime"]["deletion_auc"]))


def test_maps_figure_puts_every_map_on_one_scale():
    from hematovision.charts import agreement_figure, maps_figure, scaled_map

    rng = np.random.default_rng(0)
    maps = {"weak": rng.normal(0, 0.01, (224, 224)), "strong": rng.normal(0, 50, (224, 224))}
    for attribution in maps.values():
        scaled = scaled_map(attribution)
        assert scaled.shape == (112, 112) and np.abs(scaled).max() == pytest.approx(1.0)
    figure = maps_figure(np.zeros((224, 224, 3), np.uint8), maps, {"weak": "Weak", "strong": "Strong"})
    heatmaps = [trace for trace in figure.data if trace.type == "heatmap"]
    assert len(heatmaps) == 2 and all(trace.coloraxis == "coloraxis" for trace in heatmaps)
    assert (figure.layout.coloraxis.cmin, figure.layout.coloraxis.cmax) == (-1, 1)
    matrix = agreement({"a": right_map(), "b": -right_map()})
    assert len(agreement_figure(matrix).data) == 2


def test_empty_maps_rank_alike_and_cannot_be_judged_by_the_randomisation_check(classifier):
    from hematovision.explanation.faithfulness import is_empty, randomisation_check
    from hematovision.workflows.samples import find_sample

    empty = np.zeros((SIZE, SIZE))
    assert is_empty(empty) and not is_empty(right_map())
    assert spearman(empty, empty) == 1.0 and spearman(empty, right_map()) == 0.0
    crop = classifier.predict(find_sample("monocyte-1").path).model_input
    check = randomisation_check(classifier, crop, lambda model, image, t: np.zeros(image.shape[:2]), target=2,
                                cascade=("predictions",))
    assert check["passed"] is None  # an empty map neither passes nor fails
