"""The card's "from a differential's mix" row is built from a batch shaped like a real differential."""

import numpy as np

from hematovision.model.classifier import CLASS_NAMES
from training.lab_profiles import DIFFERENTIAL, differential_rows


def counts_by_type(labels, rows):
    return {name: int(np.sum(labels[rows] == CLASS_NAMES.index(name))) for name in CLASS_NAMES}


def test_a_differential_batch_is_mostly_neutrophils_and_holds_every_type():
    labels = np.repeat(np.arange(4), 100)  # plenty of each type
    rows = differential_rows(labels, np.arange(len(labels)), np.random.default_rng(0))
    assert len(rows) == len(set(rows.tolist())) == 50
    assert counts_by_type(labels, rows) == {name: round(50 * share) for name, share in DIFFERENTIAL.items()}


def test_the_scarcest_needed_type_limits_the_batch_and_only_given_rows_are_used():
    labels = np.repeat(np.arange(4), [40, 40, 40, 21])  # 21 neutrophils, as in half of LISC
    allowed = np.flatnonzero(np.arange(len(labels)) % 7 != 0)  # some rows are not offered
    rows = differential_rows(labels, allowed, np.random.default_rng(1))
    counts = counts_by_type(labels, rows)
    assert set(rows.tolist()) <= set(allowed.tolist())
    assert counts["NEUTROPHIL"] / len(rows) >= 0.55 and min(counts.values()) >= 1
