"""How faithful is an attribution map to the model? Numbers, not pictures.

All metrics treat the model as a function ``predict(batch) -> probabilities`` over
model-size RGB images (``Classifier.predict_proba``), so they work for any explanation
method and run in batches.

* Deletion / insertion (Petsiuk et al. 2018, RISE): remove (or reveal) pixels in order
  of attribution and follow the target probability. A faithful map makes it fall fast
  (low deletion AUC) and rise fast (high insertion AUC).
* Average drop / increase in confidence (Chattopadhay et al. 2018, Grad-CAM++): keep
  only the top-k% attributed pixels and see how much of the probability survives.
* Agreement between maps: Spearman rank correlation and the IoU of their top-k% pixels.
  These are the project's only definitions (``bench`` uses them too): Spearman over
  every pixel with average ranks for ties; top-k% as exactly round(k * N) pixels taken in
  ``pixel_order``, the same pixels a deletion curve removes first.
* Seed stability: the agreement of one method's maps under different random seeds.
* Model-parameter randomisation (Adebayo et al. 2018): a faithful map changes when the
  weights it claims to explain are replaced by random ones.

"Removed" pixels take a replacement image (explainers.maskers): ``"blur(N)"``, the same
box-blurred copy LIME, SHAP and the perturbation explainers hide regions with (default
N = 64; keeps colour, removes detail), or ``"constant(V)"``, plain grey level V. Every
result records the parameters it was computed with, since they change rankings.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hematovision.explanation.explainers.maskers import (
    DEFAULT_BASELINE,
    baseline_image,
    masked_batch,
)

Predict = Callable[[np.ndarray], np.ndarray]
DEFAULT_STEPS = 20
DEFAULT_KEEP_FRACTION = 0.15


def replacement_image(image: np.ndarray, baseline: str = DEFAULT_BASELINE) -> np.ndarray:
    """What a removed pixel becomes, in uint8 like the image: ``"blur(N)"`` (box blur) or
    ``"constant(V)"`` (grey V)."""
    hidden = baseline_image(image, baseline, kinds=("blur", "constant"))
    return np.clip(np.round(hidden), 0, 255).astype(np.uint8)


def pixel_order(attribution: np.ndarray) -> np.ndarray:
    """Flat pixel indices, most attributed first; ties keep raster order (reproducible)."""
    return np.argsort(-np.asarray(attribution, np.float64).ravel(), kind="stable")


def _top_pixels(attribution: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(len(counts), H, W) masks: each count's most attributed pixels, by ``pixel_order``."""
    rank = np.empty(np.size(attribution), np.int64)
    rank[pixel_order(attribution)] = np.arange(rank.size)
    return rank.reshape(np.shape(attribution))[None] < np.asarray(counts)[:, None, None]


def _auc(fractions: np.ndarray, scores: np.ndarray) -> float:
    return float(np.trapezoid(scores, fractions))


def deletion_insertion(
    predict: Predict,
    image: np.ndarray,
    attribution: np.ndarray,
    target: int,
    steps: int = DEFAULT_STEPS,
    baseline: str = DEFAULT_BASELINE,
) -> dict:
    """Deletion and insertion curves of one map, and their areas (fraction axis 0..1).

    Step k removes (deletion) or reveals on the replacement image (insertion) the top
    k/steps of pixels by attribution. Both curves are returned with their AUCs; all
    2 * (steps + 1) images go to ``predict`` as one batch.
    """
    image = np.asarray(image, np.uint8)
    height, width = image.shape[:2]
    if np.asarray(attribution).shape != (height, width):
        raise ValueError(f"Attribution map {np.asarray(attribution).shape} does not match the image {(height, width)}.")
    if steps < 1:
        raise ValueError("steps must be at least 1.")
    replacement = replacement_image(image, baseline)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    chosen = _top_pixels(attribution, np.round(fractions * height * width).astype(int))
    batch = np.concatenate([masked_batch(replacement, image, chosen),  # deletion
                            masked_batch(image, replacement, chosen)])  # insertion
    probabilities = np.asarray(predict(batch))[:, target]
    deletion, insertion = probabilities[: steps + 1], probabilities[steps + 1 :]
    return {
        "fractions": fractions.round(6).tolist(),
        "deletion": deletion.round(6).tolist(),
        "insertion": insertion.round(6).tolist(),
        "deletion_auc": round(_auc(fractions, deletion), 6),
        "insertion_auc": round(_auc(fractions, insertion), 6),
        "params": {"steps": steps, "baseline": baseline},
    }


def drop_and_increase(
    predict: Predict,
    image: np.ndarray,
    attribution: np.ndarray,
    target: int,
    keep_fraction: float = DEFAULT_KEEP_FRACTION,
    baseline: str = DEFAULT_BASELINE,
) -> dict:
    """Keep only the top ``keep_fraction`` of pixels (the rest replaced) and compare.

    ``drop`` is max(0, p - p_kept) / p, averaged over images it is Average Drop (lower is
    better); ``increase`` is whether p_kept > p, averaged it is Increase in Confidence.
    """
    if not 0 < keep_fraction <= 1:
        raise ValueError("keep_fraction must be in (0, 1].")
    image = np.asarray(image, np.uint8)
    replacement = replacement_image(image, baseline)
    keep = _top_pixels(attribution, [int(round(keep_fraction * attribution.size))])[0]
    kept = masked_batch(image, replacement, keep)
    original, masked = np.asarray(predict(np.stack([image, kept])))[:, target]
    return {
        "probability": round(float(original), 6),
        "probability_kept": round(float(masked), 6),
        "drop": round(float(max(0.0, original - masked) / max(original, 1e-12)), 6),
        "increase": bool(masked > original),
        "params": {"keep_fraction": keep_fraction, "baseline": baseline},
    }


def spearman(first: np.ndarray, second: np.ndarray) -> float:
    """Rank correlation of two maps over all pixels (ties get average ranks).

    A constant (empty) map has no ranking: two of them rank alike (1.0); one of them
    against a real map shares nothing with it (0.0).
    """
    from scipy.stats import rankdata

    a, b = rankdata(np.ravel(first)), rankdata(np.ravel(second))
    if a.std() == 0 or b.std() == 0:
        return 1.0 if a.std() == b.std() == 0 else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def top_iou(first: np.ndarray, second: np.ndarray, fraction: float = 0.2) -> float:
    """Intersection over union of the two maps' top ``fraction`` of pixels.

    Each top set is exactly round(fraction * N) pixels (at least one) by ``pixel_order``:
    a map of a few flat regions (LIME, SHAP) or a constant map then counts as many pixels
    as any other, instead of every pixel tied at the cut-off joining the set.
    """
    if np.shape(first) != np.shape(second):
        raise ValueError(f"Maps of different shapes: {np.shape(first)} and {np.shape(second)}.")
    count = max(1, int(round(fraction * np.size(first))))
    top_a = set(pixel_order(first)[:count].tolist())
    top_b = set(pixel_order(second)[:count].tolist())
    return len(top_a & top_b) / len(top_a | top_b)


def is_empty(attribution: np.ndarray) -> bool:
    """True for a constant map (e.g. Score-CAM when every weighted channel is negative):
    it ranks no pixel above another, so deletion/insertion fall back to raster order."""
    values = np.asarray(attribution)
    return bool(values.size == 0 or np.ptp(values) == 0)


def agreement(maps: dict[str, np.ndarray], fraction: float = 0.2) -> dict:
    """Spearman correlation and top-``fraction`` IoU for every pair of named maps."""
    names = list(maps)
    rho = np.eye(len(names))
    iou = np.eye(len(names))
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            second = names[j]
            rho[i, j] = rho[j, i] = spearman(maps[first], maps[second])
            iou[i, j] = iou[j, i] = top_iou(maps[first], maps[second], fraction)
    return {"methods": names, "spearman": rho.round(6).tolist(), "top_iou": iou.round(6).tolist(),
            "params": {"top_fraction": fraction}}


# -- sanity check: model parameter randomisation (Adebayo et al. 2018) -----------------

# Cascading randomisation from the top: each step re-draws the weights of these layers
# (by name prefix) in addition to all steps before it. Batch-norm layers keep theirs, as
# in the paper's Inception runs, so the randomised networks still give finite outputs.
CASCADE = ("predictions", "Conv_1", "block_16_", "block_15_", "block_14_", "block_13_", "block_12_",
           "block_11_", "block_10_")
PASS_SIMILARITY = 0.5


def _randomise(layer, rng: np.random.Generator) -> None:
    """New random weights with each original tensor's own spread (kernels and biases)."""
    if "BN" in layer.name or layer.name.endswith("_bn") or not layer.weights:
        return
    layer.set_weights([rng.normal(0.0, float(np.std(w)) or 0.01, w.shape).astype(w.dtype)
                       for w in layer.get_weights()])


def randomisation_checks(
    classifier,
    image: np.ndarray,
    explain_maps: dict[str, Callable],
    target: int,
    cascade: tuple[str, ...] = CASCADE,
    seed: int = 0,
    top_fraction: float = 0.2,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict]:
    """How much does each method's map change as the weights are replaced top-down?

    ``explain_maps[name](classifier, image, target) -> 2-D map``. Similarity to the
    original map is the Spearman correlation of absolute values (sign flips do not count
    as change) and the top-``top_fraction`` IoU. A method whose map still resembles the
    original (Spearman >= PASS_SIMILARITY) once the top blocks are random does not depend
    on what the model learned there: it fails the check. An empty original map cannot be
    judged: ``passed`` is None for it. Every method sees the same
    randomised networks (one per cascade step, built once); ``progress(done, total)``
    is called after each step.
    """
    import keras

    from hematovision.model.classifier import Classifier

    originals = {name: np.abs(np.asarray(fn(classifier, image, target), np.float64))
                 for name, fn in explain_maps.items()}
    model = keras.models.clone_model(classifier.model)
    model.set_weights(classifier.model.get_weights())
    rng = np.random.default_rng(seed)
    steps: dict[str, list] = {name: [] for name in explain_maps}
    for number, prefix in enumerate(cascade, 1):
        for layer in model.layers:
            if layer.name == prefix or layer.name.startswith(prefix):
                _randomise(layer, rng)
        randomised = Classifier(model, colour_normalisation=classifier.colour_normalisation)
        for name, fn in explain_maps.items():
            current = np.abs(np.asarray(fn(randomised, image, target), np.float64))
            steps[name].append({"randomised_down_to": prefix.rstrip("_"),
                                "spearman": round(spearman(originals[name], current), 6),
                                "top_iou": round(top_iou(originals[name], current, top_fraction), 6)})
        if progress:
            progress(number, len(cascade))
    params = {"cascade": list(cascade), "seed": seed, "top_fraction": top_fraction,
              "pass_if_final_spearman_below": PASS_SIMILARITY}
    results = {}
    for name, mine in steps.items():
        final = mine[-1]["spearman"] if mine else 1.0
        results[name] = {"steps": mine, "final_spearman": final, "params": params,
                         "passed": None if is_empty(originals[name]) else bool(final < PASS_SIMILARITY)}
    return results


def randomisation_check(classifier, image: np.ndarray, explain_map: Callable, target: int,
                        cascade: tuple[str, ...] = CASCADE, seed: int = 0, top_fraction: float = 0.2) -> dict:
    """``randomisation_checks`` for a single method."""
    return randomisation_checks(classifier, image, {"map": explain_map}, target, cascade, seed,
                                top_fraction)["map"]


# -- stability under the random seed ---------------------------------------------------

def seed_stability(explain_map: Callable[[int], np.ndarray], seeds: tuple[int, ...] = (0, 1, 2),
                   top_fraction: float = 0.2) -> dict:
    """Mean pairwise Spearman and top-``top_fraction`` IoU of the maps made with each seed.

    ``explain_map(seed) -> 2-D map``. A deterministic method scores exactly 1; a method
    whose map is mostly sampling noise scores near 0 (Spearman) or ``top_fraction`` / (2 -
    ``top_fraction``) (IoU of two random top sets).
    """
    if len(seeds) < 2:
        raise ValueError("Seed stability needs at least two seeds.")
    maps = [np.asarray(explain_map(int(seed)), np.float64) for seed in seeds]
    pairs = [(i, j) for i in range(len(maps)) for j in range(i + 1, len(maps))]
    return {
        "spearman": round(float(np.mean([spearman(maps[i], maps[j]) for i, j in pairs])), 6),
        "top_iou": round(float(np.mean([top_iou(maps[i], maps[j], top_fraction) for i, j in pairs])), 6),
        "identical": bool(all(np.array_equal(maps[0], other) for other in maps[1:])),
        "params": {"seeds": [int(s) for s in seeds], "top_fraction": top_fraction},
    }
