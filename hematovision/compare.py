"""Compare explanation methods over a data set: every method, every metric, per image.

    python -m hematovision compare --data-dir DIR --per-class N --methods gradcam,lime --out results/

Up to N images per class folder are drawn with a seed. Each image is classified (its
crop is what every method explains, for the predicted class); each method's map is
scored with deletion/insertion AUC and average drop/increase (``faithfulness``); the
maps of one image are compared pairwise; and on the first ``sanity_images`` images each
method goes through the model-parameter randomisation check. Written to ``out``:

* ``per_image.csv`` - one row per image and method,
* ``agreement.csv`` - mean Spearman and top-20% IoU for every pair of methods,
* ``summary.csv`` / ``summary.json`` - per method: mean and 95% CI of each metric,
  runtime, evaluations and randomisation-check passes, with every parameter used,
* ``curves.png`` - mean deletion and insertion curves per method.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from hematovision.evaluation import find_class_folders, list_images
from hematovision.explainers import available_methods, explain
from hematovision.explainers.base import build_explainer
from hematovision.faithfulness import (DEFAULT_BASELINE, DEFAULT_KEEP_FRACTION, DEFAULT_STEPS, agreement,
                                       deletion_insertion, drop_and_increase, randomisation_check)

METRICS = ("deletion_auc", "insertion_auc", "drop", "increase", "seconds", "evaluations")


def pick_images(data_dir: Path, per_class: int, seed: int) -> list[tuple[Path, str]]:
    """Up to ``per_class`` images from each class folder, drawn with ``seed``, in class order."""
    rng = np.random.default_rng(seed)
    picked = []
    for name, folder in find_class_folders(data_dir).items():
        files = list_images(folder)
        count = min(per_class, len(files))
        picked += [(files[i], name) for i in sorted(rng.choice(len(files), count, replace=False))]
    if not picked:
        raise ValueError(f"No images found in the class folders of {data_dir}.")
    return picked


def mean_ci(values: list[float]) -> dict:
    """Mean with a Student-t 95% interval (NaN bounds for a single value)."""
    from scipy.stats import t

    array = np.asarray(values, float)
    mean = float(array.mean())
    n = len(array)
    half = float(t.ppf(0.975, n - 1)) * float(array.std(ddof=1)) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": round(mean, 6), "ci95": [round(mean - half, 6), round(mean + half, 6)], "n": len(array)}


def run_comparison(classifier, data_dir: Path, per_class: int, methods: list[str], out: Path, seed: int = 0,
                   steps: int = DEFAULT_STEPS, baseline: str = DEFAULT_BASELINE,
                   keep_fraction: float = DEFAULT_KEEP_FRACTION, sanity_images: int = 3,
                   progress: Callable[[str], None] | None = None) -> dict:
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        raise ValueError(f"Unknown method(s) {', '.join(unknown)}; available: {', '.join(available_methods())}.")
    out.mkdir(parents=True, exist_ok=True)
    images = pick_images(Path(data_dir), per_class, seed)
    rows, curves, agreements = [], {m: {"deletion": [], "insertion": []} for m in methods}, []
    sanity = {m: [] for m in methods}
    for number, (path, true_class) in enumerate(images):
        prediction = classifier.predict(path)
        crop, target = prediction.model_input, prediction.class_index
        maps = {}
        for method in methods:
            result = explain(classifier, crop, method, target=target, seed=seed)
            maps[method] = result.attribution
            curve = deletion_insertion(classifier.predict_proba, crop, result.attribution, target, steps, baseline)
            kept = drop_and_increase(classifier.predict_proba, crop, result.attribution, target, keep_fraction,
                                     baseline)
            curves[method]["deletion"].append(curve["deletion"])
            curves[method]["insertion"].append(curve["insertion"])
            rows.append({"file": str(path.relative_to(data_dir)), "true_class": true_class,
                         "predicted": prediction.label, "method": method,
                         "deletion_auc": curve["deletion_auc"], "insertion_auc": curve["insertion_auc"],
                         "drop": kept["drop"], "increase": int(kept["increase"]),
                         "seconds": round(result.seconds, 4), "evaluations": result.evaluations,
                         "params": json.dumps(result.params, sort_keys=True)})
            if number < sanity_images:
                check = randomisation_check(
                    classifier, crop, lambda model, image, t, m=method: build_explainer(model, m)(
                        image, target=t, seed=seed).attribution, target, seed=seed)
                sanity[method].append(check)
        if len(methods) > 1:
            agreements.append(agreement(maps))
        if progress:
            progress(f"{number + 1}/{len(images)} {path.name}")
    summary = _summarise(methods, rows, sanity, agreements, curves, {
        "data_dir": str(data_dir), "per_class": per_class, "images": len(images), "seed": seed,
        "steps": steps, "baseline": baseline, "keep_fraction": keep_fraction, "target": "predicted class",
        "sanity_images": min(sanity_images, len(images))})
    _write(out, rows, summary, curves)
    return summary


def _summarise(methods, rows, sanity, agreements, curves, settings) -> dict:
    per_method = {}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        entry = {metric: mean_ci([row[metric] for row in mine]) for metric in METRICS}
        checks = sanity[method]
        entry["sanity_passed"] = sum(check["passed"] for check in checks)
        entry["sanity_checked"] = len(checks)
        entry["sanity_final_spearman"] = [check["steps"][-1]["spearman"] for check in checks]
        entry["params"] = json.loads(mine[0]["params"]) if mine else {}
        per_method[method] = entry
    pairs = {}
    if agreements:
        names = agreements[0]["methods"]
        rho = np.mean([a["spearman"] for a in agreements], axis=0)
        iou = np.mean([a["top_iou"] for a in agreements], axis=0)
        for i, first in enumerate(names):
            for j in range(i + 1, len(names)):
                pairs[f"{first} vs {names[j]}"] = {"spearman": round(float(rho[i, j]), 6),
                                                   "top20_iou": round(float(iou[i, j]), 6)}
    return {"settings": settings, "methods": per_method, "agreement": pairs}


def _write(out: Path, rows, summary, curves) -> None:
    with open(out / "per_image.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method"] + [f"{m}_{part}" for m in METRICS for part in ("mean", "ci_low", "ci_high")]
                        + ["sanity_passed", "sanity_checked"])
        for method, entry in summary["methods"].items():
            values = [v for m in METRICS for v in (entry[m]["mean"], *entry[m]["ci95"])]
            writer.writerow([method] + values + [entry["sanity_passed"], entry["sanity_checked"]])
    with open(out / "agreement.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pair", "spearman", "top20_iou"])
        for pair, values in summary["agreement"].items():
            writer.writerow([pair, values["spearman"], values["top20_iou"]])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot_curves(out / "curves.png", curves, summary["settings"]["steps"])


def _plot_curves(path: Path, curves, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = np.linspace(0, 1, steps + 1)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for method, curve in curves.items():
        for axis, kind in zip(axes, ("deletion", "insertion")):
            axis.plot(fractions, np.mean(curve[kind], axis=0), label=method)
    for axis, kind in zip(axes, ("Deletion (lower is better)", "Insertion (higher is better)")):
        axis.set_title(kind)
        axis.set_xlabel("share of pixels removed / revealed, by attribution")
        axis.set_ylabel("probability of the predicted class")
        axis.set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

