"""Compare explanation methods: every method and metric on one image, or over a data set.

One image (the Compare page, or Python)::

    result = compare_image(classifier, prediction.model_input, ["gradcam", "lime"], sanity=True)
    result.as_dict()  # AUCs, curves, drop/increase, agreement, stability, sanity check, parameters

A data set (for papers)::

    python -m hematovision compare --data-dir DIR --per-class N --methods gradcam,lime --out results/

Up to N images per class folder are drawn with a seed. Each image is classified (its
crop is what every method explains, for the predicted class) and compared as above; the
seed-stability and randomisation checks run on the first few images of each class,
since they cost several explanations each. ``compare_output`` writes the per-image rows,
the summary and the figures to ``out``; ``compare_tables`` formats results for the
Compare page.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from hematovision.explanation.compare_output import write_outputs
from hematovision.explanation.explainers import available_methods, explain, method_label
from hematovision.explanation.explainers.base import Target, build_explainer, resolve_target
from hematovision.explanation.faithfulness import (
    CASCADE,
    DEFAULT_BASELINE,
    DEFAULT_KEEP_FRACTION,
    DEFAULT_STEPS,
    agreement,
    deletion_insertion,
    drop_and_increase,
    is_empty,
    randomisation_checks,
    seed_stability,
)
from hematovision.model.classifier import CLASS_NAMES
from hematovision.model.evaluation import find_class_folders, list_images

METRICS = ("deletion_auc", "insertion_auc", "drop", "increase", "seconds", "evaluations")
DEFAULT_STABILITY_SEEDS = 3
Progress = Callable[[float, str], None]  # (share done 0..1, what is running)
# Runs work(classifier, image) for each image and returns the answers in order.
EachImage = Callable[[Callable, list], list]


def check_methods(methods: list[str]) -> list[str]:
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        raise ValueError(f"Unknown method(s) {', '.join(unknown)}; available: {', '.join(available_methods())}.")
    if not methods:
        raise ValueError("Choose at least one explanation method.")
    return list(methods)


@dataclass
class ImageComparison:
    """Every method's map and scores for one image and one target class."""

    target: str
    target_index: int
    probability: float  # the model's probability for the target on this image
    maps: dict[str, np.ndarray]  # (H, W) attribution per method
    methods: dict[str, dict]  # per method: metrics, curves, runtime, parameters, checks
    agreement: dict | None  # pairwise Spearman / top-20% IoU (None for a single method)
    settings: dict

    def as_dict(self) -> dict:
        """Everything except the maps themselves, ready for JSON."""
        return {"target": self.target, "target_probability": round(self.probability, 6),
                "settings": self.settings, "methods": self.methods, "agreement": self.agreement}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def rows(self) -> list[dict]:
        """One flat row per method (the CSV download and the dataset runner's per-image rows)."""
        rows = []
        for method, entry in self.methods.items():
            stability, sanity = entry.get("stability"), entry.get("sanity")
            rows.append({
                "method": method, "target": self.target,
                "deletion_auc": entry["deletion_auc"], "insertion_auc": entry["insertion_auc"],
                "drop": entry["drop"], "increase": int(entry["increase"]),
                "seconds": entry["seconds"], "evaluations": entry["evaluations"],
                "empty_map": int(entry["empty_map"]),
                "stability_spearman": "" if stability is None else stability["spearman"],
                "stability_top_iou": "" if stability is None else stability["top_iou"],
                "sanity_passed": "" if sanity is None or sanity["passed"] is None else int(sanity["passed"]),
                "sanity_final_spearman": "" if sanity is None else sanity["final_spearman"],
                "params": json.dumps(entry["params"], sort_keys=True),
            })
        return rows

    def to_csv(self) -> str:
        buffer = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()


def compare_image(
    classifier,
    image: np.ndarray,
    methods: list[str],
    target: Target = None,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    baseline: str = DEFAULT_BASELINE,
    keep_fraction: float = DEFAULT_KEEP_FRACTION,
    stability_seeds: int = 0,
    sanity: bool = False,
    cascade: tuple[str, ...] = CASCADE,
    progress: Progress | None = None,
) -> ImageComparison:
    """Explain ``image`` (the model input) with each method and score every map.

    ``stability_seeds`` >= 2 re-runs each method with seeds seed, seed+1, ... and reports
    how much the maps agree; ``sanity`` runs the cascading randomisation check (the most
    expensive part: one randomised network per cascade step, every method on each).
    """
    methods = check_methods(methods)
    if stability_seeds == 1 or stability_seeds < 0:
        raise ValueError("stability_seeds is 0 (off) or at least 2.")
    # The target as the prediction picks it (the crop read both ways up, Classifier.outputs).
    probabilities = classifier.outputs(np.asarray(image, np.float32)[None], features=False).probabilities[0]
    index = resolve_target(target, probabilities)
    units = len(methods) * (1 + (stability_seeds > 1)) + (len(cascade) if sanity else 0)
    done = 0

    def report(text: str) -> None:
        if progress:
            progress(min(1.0, done / units), text)

    maps, results = {}, {}
    for method in methods:
        report(f"{method_label(method)}: explaining and scoring")
        explanation = explain(classifier, image, method, target=index, seed=seed)
        maps[method] = explanation.attribution
        curve = deletion_insertion(classifier.predict_proba, image, explanation.attribution, index, steps, baseline)
        kept = drop_and_increase(classifier.predict_proba, image, explanation.attribution, index, keep_fraction,
                                 baseline)
        results[method] = {
            "label": explanation.label, "signed": explanation.signed,
            "deletion_auc": curve["deletion_auc"], "insertion_auc": curve["insertion_auc"],
            "drop": kept["drop"], "increase": kept["increase"], "probability_kept": kept["probability_kept"],
            "seconds": round(explanation.seconds, 4), "evaluations": explanation.evaluations,
            "empty_map": is_empty(explanation.attribution),
            "params": explanation.params, "details": explanation.details,
            "curves": {key: curve[key] for key in ("fractions", "deletion", "insertion")},
            "stability": None, "sanity": None,
        }
        done += 1
    if stability_seeds > 1:
        seeds = tuple(range(seed, seed + stability_seeds))
        for method in methods:
            report(f"{method_label(method)}: {stability_seeds} seeds")
            results[method]["stability"] = seed_stability(
                lambda s, m=method: maps[m] if s == seed else explain(classifier, image, m, target=index,
                                                                      seed=s).attribution, seeds)
            done += 1
    if sanity:
        def step_done(number: int, total: int) -> None:
            nonlocal done
            done += 1
            report(f"Randomisation check: {number}/{total} networks")

        report(f"Randomisation check: 0/{len(cascade)} networks")
        checks = randomisation_checks(
            classifier, image,
            {m: lambda model, picture, t, m=m: build_explainer(model, m)(picture, target=t, seed=seed).attribution
             for m in methods},
            index, cascade=cascade, seed=seed, progress=step_done)
        for method in methods:
            results[method]["sanity"] = checks[method]
    if progress:
        progress(1.0, "Done")
    settings = {"target": CLASS_NAMES[index], "seed": seed, "steps": steps, "baseline": baseline,
                "keep_fraction": keep_fraction, "stability_seeds": stability_seeds, "sanity": sanity,
                "agreement_top_fraction": 0.2}
    return ImageComparison(target=CLASS_NAMES[index], target_index=index, probability=float(probabilities[index]),
                           maps=maps, methods=results, agreement=agreement(maps) if len(maps) > 1 else None,
                           settings=settings)


# -- a whole data set ------------------------------------------------------------------

def pick_images(data_dir: Path, per_class: int, seed: int) -> list[tuple[Path, str, int]]:
    """(path, class, rank within its class) for up to ``per_class`` images per class folder, seeded."""
    rng = np.random.default_rng(seed)
    picked = []
    for name, folder in find_class_folders(data_dir).items():
        files = list_images(folder)
        count = min(per_class, len(files))
        picked += [(files[i], name, rank) for rank, i in enumerate(sorted(rng.choice(len(files), count,
                                                                                       replace=False)))]
    if not picked:
        raise ValueError(f"No images found in the class folders of {data_dir}.")
    return picked


def mean_ci(values: list[float]) -> dict:
    """Mean with a Student-t 95% interval (NaN bounds for a single value; None for no values)."""
    from scipy import stats

    if not values:
        return {"mean": None, "ci95": [None, None], "n": 0}
    array = np.asarray(values, float)
    mean = float(array.mean())
    sem = float(stats.sem(array)) if len(array) > 1 else float("nan")
    # t.interval wants a positive scale: identical values have a zero-width interval.
    low, high = (mean, mean) if sem == 0 else stats.t.interval(0.95, len(array) - 1, loc=mean, scale=sem)
    return {"mean": round(mean, 6), "ci95": [round(float(low), 6), round(float(high), 6)], "n": len(array)}


def run_comparison(classifier, data_dir: Path, per_class: int, methods: list[str], out: Path, seed: int = 0,
                   steps: int = DEFAULT_STEPS, baseline: str = DEFAULT_BASELINE,
                   keep_fraction: float = DEFAULT_KEEP_FRACTION, sanity_per_class: int = 1,
                   stability_per_class: int = 2, stability_seeds: int = DEFAULT_STABILITY_SEEDS,
                   progress: Callable[[str], None] | None = None, each_image: EachImage | None = None) -> dict:
    """Compare ``methods`` on up to ``per_class`` images per class folder of ``data_dir``,
    write the files of ``compare_output`` to ``out`` and return the summary.

    ``each_image(work, images)`` runs ``work(classifier, image)`` for every picked image
    and returns the answers in order, each on a classifier of its own (the Ray engine;
    ``classifier`` is then unused). Without it, this process does the work on
    ``classifier`` and tells ``progress`` after each image."""
    methods = check_methods(methods)
    out.mkdir(parents=True, exist_ok=True)
    images = pick_images(Path(data_dir), per_class, seed)
    work = partial(compare_file, data_dir=Path(data_dir), methods=methods, seed=seed, steps=steps,
                   baseline=baseline, keep_fraction=keep_fraction, sanity_per_class=sanity_per_class,
                   stability_per_class=stability_per_class, stability_seeds=stability_seeds)
    if each_image is not None:
        answers = each_image(work, images)
    else:
        answers = []
        for number, picked in enumerate(images):
            answers.append(work(classifier, picked))
            if progress:
                progress(f"{number + 1}/{len(images)} {picked[0].name}")
    rows = [row for image_rows, _ in answers for row in image_rows]
    settings = {"data_dir": str(data_dir), "per_class": per_class, "images": len(images), "seed": seed,
                "steps": steps, "baseline": baseline, "keep_fraction": keep_fraction, "target": "predicted class",
                "sanity_per_class": sanity_per_class, "stability_per_class": stability_per_class,
                "stability_seeds": stability_seeds, "cascade": list(CASCADE)}
    summary = summarise(methods, [comparison for _, comparison in answers], settings)
    write_outputs(out, rows, summary)
    return summary


def compare_file(classifier, picked: tuple[Path, str, int], data_dir: Path, methods: list[str], seed: int,
                 steps: int, baseline: str, keep_fraction: float, sanity_per_class: int,
                 stability_per_class: int, stability_seeds: int) -> tuple[list[dict], ImageComparison]:
    """One image of ``pick_images``: its rows for ``per_image.csv`` and its comparison.

    The first few images of each class (by rank) also get the stability and randomisation
    checks. The maps are dropped: the summary needs only the scores, and thousands of maps
    would fill the memory of whoever gathers them."""
    path, true_class, rank = picked
    prediction = classifier.predict(path)
    comparison = compare_image(classifier, prediction.model_input, methods, seed=seed, steps=steps,
                               baseline=baseline, keep_fraction=keep_fraction,
                               stability_seeds=stability_seeds if rank < stability_per_class else 0,
                               sanity=rank < sanity_per_class)
    rows = [{"file": str(path.relative_to(data_dir)), "true_class": true_class, "predicted": prediction.label, **row}
            for row in comparison.rows()]
    return rows, replace(comparison, maps={})


def summarise(methods: list[str], comparisons: list[ImageComparison], settings: dict) -> dict:
    """Per-method means with 95% CIs, check tallies, mean curves and mean pairwise agreement."""
    per_method = {}
    for method in methods:
        entries = [c.methods[method] for c in comparisons]
        summary = {metric: mean_ci([float(e[metric]) for e in entries]) for metric in METRICS}
        stabilities = [e["stability"] for e in entries if e["stability"]]
        summary["stability_spearman"] = mean_ci([s["spearman"] for s in stabilities])
        summary["stability_top_iou"] = mean_ci([s["top_iou"] for s in stabilities])
        summary["stability_identical"] = sum(s["identical"] for s in stabilities)
        checks = [e["sanity"] for e in entries if e["sanity"]]
        judged = [check for check in checks if check["passed"] is not None]
        summary["sanity_passed"] = sum(check["passed"] for check in judged)
        summary["sanity_checked"] = len(judged)
        summary["sanity_not_assessable"] = len(checks) - len(judged)  # empty original map
        summary["sanity_final_spearman"] = [check["final_spearman"] for check in judged]
        summary["empty_maps"] = sum(e["empty_map"] for e in entries)
        summary["label"] = entries[0]["label"]
        summary["params"] = entries[0]["params"]
        summary["mean_curves"] = {
            "fractions": entries[0]["curves"]["fractions"],
            **{kind: np.mean([e["curves"][kind] for e in entries], axis=0).round(6).tolist()
               for kind in ("deletion", "insertion")}}
        per_method[method] = summary
    pairs = {}
    agreements = [c.agreement for c in comparisons if c.agreement]
    if agreements:
        names = agreements[0]["methods"]
        rho = np.mean([a["spearman"] for a in agreements], axis=0)
        iou = np.mean([a["top_iou"] for a in agreements], axis=0)
        for i, first in enumerate(names):
            for j in range(i + 1, len(names)):
                pairs[f"{first} vs {names[j]}"] = {"spearman": round(float(rho[i, j]), 6),
                                                   "top20_iou": round(float(iou[i, j]), 6)}
    return {"settings": settings, "methods": per_method, "agreement": pairs}
