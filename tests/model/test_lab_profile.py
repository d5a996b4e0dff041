"""Lab profiles: built from a lab's own images, they change what users see, and bad ones are refused.

LISC (``../shared/data/lisc``) stands for a user's own lab here, as in the app: a profile is
built from some of its images and judged on others.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hematovision import load_classifier
from hematovision.explanation.explainers import explain
from hematovision.model.classifier import CLASS_NAMES
from hematovision.model.lab_profile import (
    FEW_SHOT,
    UNLABELLED,
    LabProfile,
    LabProfileError,
    build_few_shot,
    build_unlabelled,
    crop_features,
    unlabelled_from_features,
)
from hematovision.model.trust import NOT_BLOOD_CELL, UNFAMILIAR_SOURCE
from tests.conftest import REPO_ROOT
from training.nonblood import non_blood_images

LISC = REPO_ROOT.parent / "shared" / "data" / "lisc"


def lisc_images() -> dict[str, list]:
    return {name: sorted((LISC / name.lower()).glob("*.png")) for name in CLASS_NAMES}


def interleaved(per_class: dict[str, list]) -> list:
    """All classes mixed, as an unsorted batch from a lab would be."""
    lists = list(per_class.values())
    return [path for group in zip(*lists) for path in group]


@pytest.fixture(scope="module")
def lisc_split():
    """Build on every other image of each type, judge on the rest: both halves hold all four types."""
    per_class = lisc_images()
    return (interleaved({name: paths[0::2] for name, paths in per_class.items()}),
            interleaved({name: paths[1::2] for name, paths in per_class.items()}))


@pytest.fixture(scope="module")
def unlabelled_profile(classifier, lisc_split):
    return build_unlabelled(classifier, lisc_split[0])


def five_per_class() -> dict[str, list]:
    return {name: paths[:5] for name, paths in lisc_images().items()}


@pytest.fixture(scope="module")
def few_shot_profile(classifier):
    return build_few_shot(classifier, five_per_class(), per_class=5, seed=0)


def statuses(classifier, paths) -> list[str]:
    return [classifier.predict(path).status for path in paths]


def test_an_unlabelled_profile_makes_the_labs_own_cells_familiar(classifier, unlabelled_profile, lisc_split):
    adapted = load_classifier(lab_profile=unlabelled_profile)
    held_out = lisc_split[1]
    before, after = statuses(classifier, held_out), statuses(adapted, held_out)
    unfamiliar_before = sum(s in (UNFAMILIAR_SOURCE, NOT_BLOOD_CELL) for s in before)
    unfamiliar_after = sum(s in (UNFAMILIAR_SOURCE, NOT_BLOOD_CELL) for s in after)
    assert unfamiliar_after < unfamiliar_before / 2, (unfamiliar_before, unfamiliar_after)
    # Only the trust checks move: the four-class decision is the shipped model's.
    sample = held_out[:8]
    assert [adapted.predict(p).label for p in sample] == [classifier.predict(p).label for p in sample]
    assert unlabelled_profile.kind == UNLABELLED and unlabelled_profile.images >= 60


def test_with_a_profile_non_blood_images_are_still_called_not_blood(unlabelled_profile):
    adapted = load_classifier(lab_profile=unlabelled_profile)
    images = non_blood_images()[::5]
    called = [adapted.predict(image.rgb).status for image in images]
    assert called.count(NOT_BLOOD_CELL) == len(images), called


def test_a_few_shot_profile_refits_the_head_on_the_labelled_cells(classifier, few_shot_profile):
    assert few_shot_profile.kind == FEW_SHOT
    assert set(few_shot_profile.labelled) == set(CLASS_NAMES)
    assert all(1 <= n <= 5 for n in few_shot_profile.labelled.values())
    adapted = load_classifier(lab_profile=few_shot_profile)
    weights, _ = classifier.head_weights()
    assert not np.allclose(adapted.model.layers[-1].get_weights()[0], weights)
    # It learned from the labelled cells: more of them come out as labelled than before.
    def right(model) -> int:
        return sum(model.predict(path).label == name for name, paths in five_per_class().items() for path in paths)

    assert right(adapted) > right(classifier), (right(adapted), right(classifier))


def test_explanations_use_the_adapted_model(classifier, few_shot_profile):
    adapted = load_classifier(lab_profile=few_shot_profile)
    path = lisc_images()["MONOCYTE"][7]
    prediction = adapted.predict(path)
    adapted_probabilities = adapted.predict_proba(prediction.model_input[None])[0]
    shipped_probabilities = classifier.predict_proba(prediction.model_input[None])[0]
    assert not np.allclose(adapted_probabilities, shipped_probabilities, atol=1e-4)
    # Predictions (and the measurement in training.lab_profiles) apply the profile to the shipped
    # network's outputs; explanations run the adapted network: both give the same probabilities
    # for the crop as it is (a prediction also reads it turned 180°).
    assert np.allclose(adapted.outputs(prediction.model_input[None], turned=False).probabilities[0],
                       adapted_probabilities, atol=1e-5)
    explanation = explain(adapted, prediction.model_input, "gradcam")
    assert explanation.attribution.shape == prediction.model_input.shape[:2]
    assert explanation.target == prediction.label


def test_a_profile_survives_saving_and_loading(tmp_path, few_shot_profile):
    path = few_shot_profile.save(tmp_path / "lab.json")
    assert path.stat().st_size < 1_000_000
    again = LabProfile.load(path)
    assert again.sha256 == few_shot_profile.sha256
    assert np.array_equal(again.head_weights, few_shot_profile.head_weights)
    assert few_shot_profile.short_id in few_shot_profile.describe()


@pytest.fixture(scope="module")
def batch_norm_profile(lisc_split):
    """Built on the f32 network, whose Keras twin explanations run, so the two can be compared closely."""
    return build_unlabelled(load_classifier(precision="f32"), lisc_split[0], batch_norm=True)


def test_the_batch_norm_option_changes_the_classes_and_explanations_see_it(batch_norm_profile, lisc_split):
    assert batch_norm_profile.norm_gains.shape == batch_norm_profile.norm_offsets.shape == (1280,)
    assert "last batch norm re-estimated" in batch_norm_profile.describe()
    again = LabProfile.from_bytes(batch_norm_profile.to_bytes())
    assert np.array_equal(again.norm_gains, batch_norm_profile.norm_gains)
    shipped = load_classifier(precision="f32")
    adapted = shipped.with_lab_profile(again)
    crops = np.stack([shipped.prepare(path)[0] for path in lisc_split[1][:24]])
    before, after = shipped.outputs(crops), adapted.outputs(crops)
    assert np.abs(after.probabilities - before.probabilities).max() > 0.05
    # The trust checks keep reading the shipped network's features (they were fitted to them).
    assert np.array_equal(after.type_features, before.type_features)
    # Gradient explanations run the Keras network with the same batch norm: same probabilities
    # for the crops as they are (a prediction also reads them turned 180°).
    keras_probabilities = adapted.model.predict(crops, verbose=0)
    assert np.allclose(keras_probabilities, adapted.outputs(crops, turned=False).probabilities, atol=2e-3)
    assert explain(adapted, crops[0], "gradcam").attribution.shape == crops.shape[1:3]


def test_a_batch_turned_upside_down_gives_the_same_batch_norm_profile(lisc_split):
    # Predictions read each cell as it is and turned 180°, so the option's statistics come from
    # both views too: a slide has no up or down, and neither has a profile built from it.
    shipped = load_classifier(precision="f32")
    crops = np.stack([shipped.prepare(path)[0] for path in lisc_split[0][:40]])
    as_is, turned = (unlabelled_from_features(shipped, crop_features(shipped, views, [True] * len(views)),
                                              batch_norm=True)
                     for views in (crops, crops[:, ::-1, ::-1]))
    assert np.allclose(as_is.norm_gains, turned.norm_gains, rtol=1e-4, atol=1e-5)
    assert np.allclose(as_is.norm_offsets, turned.norm_offsets, rtol=1e-4, atol=1e-4)
    assert np.allclose(as_is.ood_shift, turned.ood_shift, atol=1e-4)


def test_on_the_int8_default_the_batch_norm_goes_into_the_f32_network(classifier, lisc_split):
    # With the same gains, the int8 network lost macro recall on LISC where f32 gained.
    profile = build_unlabelled(classifier, lisc_split[0], batch_norm=True)
    adapted = classifier.with_lab_profile(profile)
    assert classifier.backend.precision == "int8" and adapted.backend.precision == "f32"
    crops = np.stack([classifier.prepare(path)[0] for path in lisc_split[1][:16]])
    outputs = adapted.outputs(crops)
    # The trust checks still read the int8 network's features, which they were fitted to.
    assert np.array_equal(outputs.type_features, classifier.outputs(crops).type_features)
    assert np.allclose(adapted.model.predict(crops, verbose=0), adapted.outputs(crops, turned=False).probabilities,
                       atol=2e-3)
    # Half of LISC holds the four types in similar numbers: nothing to warn about.
    assert profile.settings["largest_type_share"] <= 0.5 and profile.caution is None


def test_a_batch_norm_profile_from_a_lopsided_batch_carries_a_caution(classifier):
    neutrophils = lisc_images()["NEUTROPHIL"]
    profile = build_unlabelled(classifier, neutrophils, batch_norm=True)
    assert profile.settings["largest_type"] == "NEUTROPHIL" and profile.settings["largest_type_share"] > 0.5
    assert "look like neutrophils" in profile.caution and "similar numbers" in profile.caution
    assert "last batch norm re-estimated on a batch of mostly neutrophils" in profile.describe()
    assert LabProfile.from_bytes(profile.to_bytes()).caution == profile.caution
    assert profile.as_dict()["caution"] == profile.caution
    # A file whose share is not a number (written by something else) loads, without a caution.
    import dataclasses

    odd = LabProfile.from_bytes(dataclasses.replace(profile, settings={**profile.settings,
                                                                       "largest_type_share": "most"}).to_bytes())
    assert odd.caution is None and "mostly" not in odd.describe()
    # Without the option the classes are the shipped ones, so the mix does not matter.
    assert build_unlabelled(classifier, neutrophils).caution is None


def test_a_profile_without_the_option_leaves_the_classes_alone(classifier, unlabelled_profile, lisc_split):
    assert unlabelled_profile.norm_gains is None and "batch norm" not in unlabelled_profile.describe()
    crops = np.stack([classifier.prepare(path)[0] for path in lisc_split[1][:8]])
    assert np.allclose(load_classifier(lab_profile=unlabelled_profile).predict_proba(crops),
                       classifier.predict_proba(crops), atol=1e-6)


# -- bad input: a clear message, and the shipped model stays in use ------------------------

def test_batch_norms_of_the_wrong_size_or_in_a_few_shot_profile_are_refused(batch_norm_profile, few_shot_profile):
    import dataclasses

    wrong_size = dataclasses.replace(batch_norm_profile, norm_gains=batch_norm_profile.norm_gains[:100],
                                     norm_offsets=batch_norm_profile.norm_offsets[:100])
    with pytest.raises(LabProfileError, match="batch-norm statistics have the wrong shape"):
        load_classifier(lab_profile=LabProfile.from_bytes(wrong_size.to_bytes()), precision="f32")
    few_shot = dataclasses.replace(few_shot_profile, norm_gains=batch_norm_profile.norm_gains,
                                   norm_offsets=batch_norm_profile.norm_offsets)
    with pytest.raises(LabProfileError, match="only an unlabelled profile re-estimates batch norms"):
        load_classifier(lab_profile=LabProfile.from_bytes(few_shot.to_bytes()))


def test_a_profile_from_another_model_is_refused(unlabelled_profile):
    other = LabProfile(kind=UNLABELLED, model_sha256="0" * 64, created=unlabelled_profile.created,
                       images=40, ood_shift=unlabelled_profile.ood_shift)
    with pytest.raises(LabProfileError, match="made for another model"):
        load_classifier(lab_profile=other)


def test_a_profile_built_on_int8_is_refused_by_the_f32_network(unlabelled_profile):
    """int8's features sit elsewhere than f32's, so a profile's shift fits only the network it
    was measured on; a profile from before int8 (no "network" setting) counts as f32's."""
    assert unlabelled_profile.network == "int8"  # built by the default classifier
    with pytest.raises(LabProfileError, match="built on the model's int8 network, but the f32 one is loaded.*"
                                              "--precision int8"):
        load_classifier(lab_profile=unlabelled_profile, precision="f32")
    older = LabProfile(kind=UNLABELLED, model_sha256=unlabelled_profile.model_sha256,
                       created=unlabelled_profile.created, images=40, ood_shift=unlabelled_profile.ood_shift)
    assert older.network == "f32"
    load_classifier(lab_profile=older, precision="f32")
    with pytest.raises(LabProfileError, match="built on the model's f32 network, but the int8 one is loaded"):
        load_classifier(lab_profile=older)


def test_a_hand_edited_profile_is_refused(tmp_path, unlabelled_profile):
    stored = json.loads(unlabelled_profile.to_bytes())
    stored["images"] = 5000
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(stored))
    with pytest.raises(LabProfileError, match="changed after it was made"):
        load_classifier(lab_profile=path)


@pytest.mark.parametrize("data, message", [
    (b"", "not a JSON file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a JSON file"),
    (b'{"format": "something else"}', "not a HematoVision lab profile"),
    (b"[1, 2, 3]", "not a HematoVision lab profile"),
])
def test_a_corrupt_profile_is_refused(data, message):
    with pytest.raises(LabProfileError, match=message):
        LabProfile.from_bytes(data)


def test_a_truncated_profile_is_refused(unlabelled_profile):
    data = unlabelled_profile.to_bytes()
    with pytest.raises(LabProfileError, match="not a JSON file"):
        LabProfile.from_bytes(data[: len(data) // 2])


def test_too_few_images_are_refused(classifier):
    with pytest.raises(LabProfileError, match="at least 30 images of white blood cells; 12 of the 12"):
        build_unlabelled(classifier, interleaved(lisc_images())[:12])


def test_a_class_with_no_labelled_cell_is_refused(classifier):
    labelled = lisc_images()
    labelled["MONOCYTE"] = []
    with pytest.raises(LabProfileError, match="at least one labelled monocyte .*none given"):
        build_few_shot(classifier, labelled)


def test_a_folder_of_non_blood_images_is_refused(classifier):
    images = [image.rgb for image in non_blood_images()[:40]]
    with pytest.raises(LabProfileError, match="white blood cells; [0-2] of the 40 given look like one"):
        build_unlabelled(classifier, images)  # (int8 lets one photo through: the rocket, at 97% of its line)


def test_a_profile_is_made_with_the_shipped_model_only(unlabelled_profile, lisc_split):
    adapted = load_classifier(lab_profile=unlabelled_profile)
    with pytest.raises(LabProfileError, match="with the shipped model"):
        build_unlabelled(adapted, lisc_split[0])
