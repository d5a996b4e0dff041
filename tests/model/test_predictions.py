"""Promises about what the committed model says on the built-in samples."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hematovision.model.trust import CHECK
from hematovision.workflows.samples import list_samples

SAMPLES = list_samples()


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.path.name for s in SAMPLES])
def test_each_sample_is_right_or_marked_for_checking(classifier, sample):
    # The samples are held-out test cells, not picked for the model: a wrong answer is
    # acceptable only if the model says so itself ("check this cell").
    prediction = classifier.predict(sample.path)
    assert prediction.label == sample.class_name or prediction.status == CHECK, prediction.as_dict()
    assert prediction.box.found  # the white cell was located, not a centre fallback


def test_most_samples_are_right(classifier):
    predictions = classifier.predict_batch([sample.path for sample in SAMPLES])
    right = sum(p.label == s.class_name for p, s in zip(predictions, SAMPLES))
    assert right >= len(SAMPLES) - 2


def test_batch_prediction_matches_one_by_one(classifier):
    paths = [s.path for s in SAMPLES[:4]]
    batch = classifier.predict_batch(paths)
    for path, batched in zip(paths, batch):
        single = classifier.predict(path)
        assert batched.label == single.label
        assert np.allclose(list(batched.probabilities.values()),
                           list(single.probabilities.values()), atol=1e-5)


def test_probabilities_are_a_distribution(classifier):
    prediction = classifier.predict(SAMPLES[0].path)
    values = np.array(list(prediction.probabilities.values()))
    assert np.all(values >= 0) and values.sum() == pytest.approx(1.0, abs=1e-5)
    assert prediction.confidence == values.max()


def test_a_prediction_reads_the_cell_both_ways_up(classifier):
    """A cell on a slide has no up or down: a prediction averages the crop and the crop turned
    180°, so a photo turned upside down gets the same answer."""
    crop = classifier.prepare(SAMPLES[0].path)[0]
    one_way, other_way = (classifier.predict_proba(view[None])[0] for view in (crop, crop[::-1, ::-1]))
    assert not np.allclose(one_way, other_way, atol=1e-4)  # the network alone is not symmetric
    both = classifier.outputs(crop[None]).probabilities[0]
    averaged_logits = np.sqrt(one_way * other_way)  # the geometric mean, renormalised
    assert np.allclose(both, averaged_logits / averaged_logits.sum(), atol=1e-5)
    for sample in SAMPLES[:4]:
        rgb = np.asarray(Image.open(sample.path).convert("RGB"))
        upright, upside_down = classifier.predict(rgb), classifier.predict(np.ascontiguousarray(rgb[::-1, ::-1]))
        assert (upright.label, upright.status) == (upside_down.label, upside_down.status)
        assert abs(upright.confidence - upside_down.confidence) < 0.02
