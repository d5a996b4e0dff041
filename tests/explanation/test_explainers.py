"""Explainers: one interface, valid and reproducible maps that depend on image and class,
and no side effects on the classifier. Small LIME/SHAP budgets keep this file fast."""

from __future__ import annotations

import numpy as np
import pytest

from hematovision.explanation.explainers import (
    Explanation,
    available_methods,
    explain,
    get_explainer,
)
from hematovision.interfaces.bench import sample_images
from hematovision.model.classifier import CLASS_NAMES

METHODS = ["gradcam", "gradcam++", "integrated_gradients", "lime", "occlusion", "scorecam", "shap", "smoothgrad"]
# Budgets far below the defaults: these tests check behaviour, not map quality.
FAST = {"gradcam": {}, "gradcam++": {}, "integrated_gradients": {"steps": 8}, "lime": {"num_samples": 48},
        "occlusion": {"patch": 56, "stride": 56}, "scorecam": {"max_channels": 8}, "shap": {"max_evals": 64},
        "smoothgrad": {"smooth_samples": 2}}


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Two different model-input crops (samples/, else the test split, else synthetic)."""
    crops = sample_images(2)
    assert not np.array_equal(crops[0], crops[1])
    return crops


def test_registry_lists_every_method():
    assert available_methods() == METHODS


def test_unknown_method_is_a_clear_value_error(classifier, images):
    with pytest.raises(ValueError, match="Unknown explanation method 'rise'.*gradcam"):
        explain(classifier, images[0], method="rise")


def test_unknown_parameter_and_bad_image_are_refused(classifier, images):
    with pytest.raises(ValueError, match="num_samples"):
        explain(classifier, images[0], "gradcam", num_samples=10)
    with pytest.raises(ValueError, match="num_samples must be an integer"):
        explain(classifier, images[0], "lime", num_samples=0)
    with pytest.raises(ValueError, match="baseline"):
        explain(classifier, images[0], "shap", baseline="zeros", max_evals=16)
    with pytest.raises(ValueError, match="224x224x3"):
        explain(classifier, images[0][:100], "gradcam")
    with pytest.raises(ValueError, match="Unknown class"):
        explain(classifier, images[0], "gradcam", target="platelet")


def test_explainers_are_built_once_and_names_are_forgiving(classifier):
    assert get_explainer(classifier, "gradcam++") is get_explainer(classifier, "Grad-CAM++")
    assert get_explainer(classifier, "LIME") is get_explainer(classifier, "lime")


@pytest.mark.parametrize("method", METHODS)
def test_map_is_finite_at_input_resolution_with_metadata(classifier, images, method):
    result = explain(classifier, images[0], method, seed=3, **FAST[method])
    assert isinstance(result, Explanation)
    assert result.attribution.shape == (224, 224)
    assert result.attribution.dtype == np.float32
    assert np.all(np.isfinite(result.attribution))
    assert np.any(result.attribution != 0)
    assert result.method == method and result.label
    assert result.signed == (method in ("integrated_gradients", "lime", "occlusion", "shap"))
    assert result.target in CLASS_NAMES and CLASS_NAMES[result.target_index] == result.target
    assert result.params["seed"] == 3
    assert all(result.params[key] == value for key, value in FAST[method].items())
    assert result.seconds > 0 and result.evaluations >= 1
    assert 0.0 <= result.target_probability <= 1.0
    if method == "lime":
        assert result.evaluations == 48 + 1
    if method == "shap":
        assert 2 <= result.evaluations <= 64 + 1


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_gives_the_same_map(classifier, images, method):
    first = explain(classifier, images[0], method, seed=7, **FAST[method]).attribution
    second = explain(classifier, images[0], method, seed=7, **FAST[method]).attribution
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6 * float(np.abs(first).max()))


def test_lime_seed_changes_the_sampling(classifier, images):
    first = explain(classifier, images[0], "lime", seed=0, **FAST["lime"]).attribution
    second = explain(classifier, images[0], "lime", seed=1, **FAST["lime"]).attribution
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("method", METHODS)
def test_map_depends_on_the_image(classifier, images, method):
    target = "NEUTROPHIL"  # same class for both images: only the image differs
    first = explain(classifier, images[0], method, target=target, **FAST[method]).attribution
    second = explain(classifier, images[1], method, target=target, **FAST[method]).attribution
    assert not np.allclose(first, second)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "lime", "shap"])
def test_map_depends_on_the_target_class(classifier, images, method):
    maps = [explain(classifier, images[0], method, target=index, **FAST[method]).attribution
            for index in range(len(CLASS_NAMES))]
    different_pairs = sum(not np.allclose(a, b) for i, a in enumerate(maps) for b in maps[i + 1:])
    assert different_pairs >= 1
    if method in ("lime", "shap"):  # signed methods: every class gets its own map
        assert different_pairs == 6


@pytest.mark.parametrize("features", ["regions", "pixels"])
def test_shap_values_add_up_to_the_probability_change_blurring_makes(classifier, images, features):
    from hematovision.explanation.explainers.maskers import baseline_image

    result = explain(classifier, images[0], "shap", features=features, max_evals=64)
    full, blurred = classifier.predict_proba(
        np.stack([images[0], baseline_image(images[0], "blur(64)")]))[:, result.target_index]
    assert float(result.attribution.sum()) == pytest.approx(full - blurred, abs=1e-3)


def test_shap_over_superpixels_is_exact_at_the_default_budget(classifier):
    from hematovision.explanation.explainers.maskers import cell_superpixels

    # The first sample crop whose whole tree of superpixels fits in the 160 evaluations allowed
    # (most do: 12-16 superpixels take 109-161 evaluations).
    image, default = next((crop, result) for crop in sample_images(8)
                          if (result := explain(classifier, crop, "shap")).evaluations < 160)
    assert default.params["features"] == "regions"
    # One value per superpixel (LIME's segments), spread evenly over its pixels.
    segments = cell_superpixels(image, 20, 20.0)
    assert default.details["segments"] == segments.max() + 1
    for region in range(segments.max() + 1):
        assert np.ptp(default.attribution[segments == region]) < 1e-6
    # The whole hierarchy fits in the budget, so a far bigger budget changes nothing.
    reference = explain(classifier, image, "shap", max_evals=2000)
    assert reference.evaluations == default.evaluations
    np.testing.assert_allclose(default.attribution, reference.attribution, atol=1e-6)


def test_shap_refuses_an_unknown_feature_set(classifier, images):
    with pytest.raises(ValueError, match="features must be one of regions, pixels"):
        explain(classifier, images[0], "shap", features="patches")


def test_target_by_name_or_index(classifier, images):
    by_name = explain(classifier, images[0], "gradcam", target="neutrophil")
    by_index = explain(classifier, images[0], "gradcam", target=CLASS_NAMES.index("NEUTROPHIL"))
    assert by_name.target == by_index.target == "NEUTROPHIL"
    np.testing.assert_allclose(by_name.attribution, by_index.attribution, rtol=1e-5, atol=1e-7)
    # The target is picked as the prediction picks it, from the crop read both ways up.
    probabilities = classifier.outputs(images[0][None], features=False).probabilities[0]
    for method in ("gradcam", "gradcam++"):
        result = explain(classifier, images[0], method)
        assert result.target_index == int(np.argmax(probabilities))
        assert result.target_probability == pytest.approx(float(probabilities.max()), abs=1e-5)
        assert result.evaluations == 1


def test_explaining_leaves_predictions_unchanged(classifier, images):
    batch = np.stack(images)
    before = classifier.predict_proba(batch)
    for method in METHODS:
        explain(classifier, images[0], method, **FAST[method])
    after = classifier.predict_proba(batch)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-5)  # still a softmax
    assert classifier.model.get_layer("predictions").activation.__name__ == "softmax"


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_split_network_matches_tf_keras_vis_on_the_full_model(classifier, images, method):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    from hematovision.explanation.explainers.gradcam import upsample
    from hematovision.model.classifier import LAST_CONV_LAYER

    visualizer = (Gradcam if method == "gradcam" else GradcamPlusPlus)(
        classifier.model, model_modifier=ReplaceToLinear(), clone=True)
    result = explain(classifier, images[0], method)
    reference = visualizer(CategoricalScore(result.target_index), images[0].astype(np.float32),
                           penultimate_layer=LAST_CONV_LAYER, seek_penultimate_conv_layer=False,
                           expand_cam=False, normalize_cam=False)
    expected = upsample(np.asarray(reference)[0], 224)
    np.testing.assert_allclose(result.attribution, expected, rtol=1e-3,
                               atol=1e-4 * float(np.abs(expected).max()))


def test_fast_lime_sampling_equals_lime_itself(images):
    from lime.lime_image import LimeImageExplainer

    from hematovision.explanation.explainers.lime_explainer import _FastLimeImage
    from hematovision.explanation.explainers.maskers import baseline_image, cell_superpixels

    image = images[0].astype(np.float32)
    segments = cell_superpixels(image, 40, 20.0)
    hidden = baseline_image(image)

    def mean_colour(batch: np.ndarray) -> np.ndarray:  # a cheap stand-in model
        return np.asarray(batch, np.float64).mean(axis=(1, 2)) / 255.0

    ours = _FastLimeImage(random_state=5).data_labels(image, hidden, segments, mean_colour, 20, 8)
    theirs = LimeImageExplainer(random_state=5).data_labels(image, hidden, segments, mean_colour,
                                                            20, 8)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)


def test_integrated_gradients_add_up_to_the_change_in_probability(classifier, images):
    # Completeness (Sundararajan et al. 2017): sum of attributions = p(image) - p(baseline),
    # up to the error of the path integral, which more steps must shrink.
    coarse = explain(classifier, images[0], "integrated_gradients", steps=4).details
    fine = explain(classifier, images[0], "integrated_gradients", steps=48).details
    assert abs(fine["score_change"]) > 0.05
    assert fine["completeness_gap"] <= 0.1 * abs(fine["score_change"]) + 0.01
    assert fine["completeness_gap"] <= coarse["completeness_gap"] + 1e-6


def test_scorecam_prints_no_progress_bars_from_any_thread(classifier, images, capsys):
    """Keras's progress-bar switch is per thread: an explainer built in a Streamlit thread and
    reused from the CLI's main thread must not write bars into its (JSON) output."""
    import threading

    import keras

    from hematovision.explanation.explainers.base import build_explainer

    built = []
    worker = threading.Thread(target=lambda: built.append(build_explainer(classifier, "scorecam")))
    worker.start()
    worker.join()
    explainer = built[0]
    before = keras.utils.is_interactive_logging_enabled()
    explainer(images[1], max_channels=4)
    assert capsys.readouterr().out == ""
    assert keras.utils.is_interactive_logging_enabled() == before  # the switch is put back
