"""Compare explanation methods: every method and metric on one image, or over a data set.

One image (the Compare page, or Python)::

    result = compare_image(classifier, prediction.model_input, ["gradcam", "lime"], sanity=True)
    result.as_dict()  # AUCs, curves, drop/increase, agreement, stability, sanity check, parameters

A data set (for papers)::

    python -m hematovision compare --data-dir DIR --per-class N --methods gradcam,lime --out results/

Up to N images per class folder are drawn with a seed. Each image is classified (its
crop is what every method explains, for the predicted class) and compared as above; the
seed-stability and randomisation checks run on the first few images of each class,
since they cost several explanations each. Written to ``out``:

* ``per_image.csv`` - one row per image and method,
* ``agreement.csv`` - mean Spearman and top-20% IoU for every pair of methods,
* ``summary.csv`` / ``summary.json`` - per method: mean and 95% CI of each metric,
  runtime, evaluations, seed stability and randomisation-check passes, mean curves, and
  every parameter used,
* ``curves.png`` and ``figures.html`` - mean deletion and insertion curves, agreement.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hematovision.classifier import CLASS_NAMES
from hematovision.evaluation import find_class_folders, list_images
from hematovision.explainers import available_methods, explain, method_label
from hematovision.explainers.base import Target, build_explainer, resolve_target
from hematovision.faithfulness import (CASCADE, DEFAULT_BASELINE, DEFAULT_KEEP_FRACTION, DEFAULT_STEPS, agreement,
                                       deletion_insertion, drop_and_increase, is_empty, randomisation_checks,
                                       seed_stability)

METRICS = ("deletion_auc", "insertion_auc", "drop", "increase", "seconds", "evaluations")
STABILITY_METRICS = ("stability_spearman", "stability_top_iou")
DEFAULT_STABILITY_SEEDS = 3
Progress = Callable[[float, str], None]  # (share done 0..1, what is running)


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
    probabilities = classifier.predict_proba(np.asarray(image, np.float32)[None])[0]
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
                   progress: Callable[[str], None] | None = None) -> dict:
    methods = check_methods(methods)
    out.mkdir(parents=True, exist_ok=True)
    images = pick_images(Path(data_dir), per_class, seed)
    rows, comparisons = [], []
    for number, (path, true_class, rank) in enumerate(images):
        prediction = classifier.predict(path)
        comparison = compare_image(classifier, prediction.model_input, methods, seed=seed, steps=steps,
                                   baseline=baseline, keep_fraction=keep_fraction,
                                   stability_seeds=stability_seeds if rank < stability_per_class else 0,
                                   sanity=rank < sanity_per_class)
        comparisons.append(comparison)
        rows += [{"file": str(path.relative_to(data_dir)), "true_class": true_class, "predicted": prediction.label,
                  **row} for row in comparison.rows()]
        if progress:
            progress(f"{number + 1}/{len(images)} {path.name}")
    settings = {"data_dir": str(data_dir), "per_class": per_class, "images": len(images), "seed": seed,
                "steps": steps, "baseline": baseline, "keep_fraction": keep_fraction, "target": "predicted class",
                "sanity_per_class": sanity_per_class, "stability_per_class": stability_per_class,
                "stability_seeds": stability_seeds, "cascade": list(CASCADE)}
    summary = summarise(methods, comparisons, settings)
    _write(out, rows, summary)
    return summary


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


def _write(out: Path, rows, summary) -> None:
    from hematovision.figures import agreement_figure, benchmark_curves_figure, summary_agreement

    with open(out / "per_image.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    columns = METRICS + STABILITY_METRICS
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method"] + [f"{m}_{part}" for m in columns for part in ("mean", "ci_low", "ci_high")]
                        + ["sanity_passed", "sanity_checked", "sanity_not_assessable", "empty_maps"])
        for method, entry in summary["methods"].items():
            values = [v for m in columns for v in (entry[m]["mean"], *entry[m]["ci95"])]
            writer.writerow([method] + ["" if v is None else v for v in values]
                            + [entry["sanity_passed"], entry["sanity_checked"], entry["sanity_not_assessable"],
                               entry["empty_maps"]])
    with open(out / "agreement.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pair", "spearman", "top20_iou"])
        for pair, values in summary["agreement"].items():
            writer.writerow([pair, values["spearman"], values["top20_iou"]])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot_curves(out / "curves.png", summary)
    figures = [benchmark_curves_figure(summary)]
    if summary["agreement"]:
        figures.append(agreement_figure(summary_agreement(summary)))
    with open(out / "figures.html", "w") as handle:
        handle.write("<!doctype html><meta charset='utf-8'><title>Explanation benchmark</title>\n")
        for number, figure in enumerate(figures):
            # plotly.js is loaded once, from plotly's CDN, to keep the file small.
            handle.write(figure.to_html(full_html=False, include_plotlyjs="cdn" if number == 0 else False))


def _plot_curves(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for method, entry in summary["methods"].items():
        curves = entry["mean_curves"]
        for axis, kind in zip(axes, ("deletion", "insertion")):
            axis.plot(curves["fractions"], curves[kind], label=entry["label"])
    for axis, kind in zip(axes, ("Deletion (lower is better)", "Insertion (higher is better)")):
        axis.set_title(kind)
        axis.set_xlabel("share of pixels removed / revealed, by attribution")
        axis.set_ylabel("probability of the predicted class")
        axis.set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# -- tables for people -----------------------------------------------------------------

BENCHMARK_DIR = Path(__file__).resolve().parent.parent / "docs" / "xai-benchmark"


def load_benchmark(folder: Path = BENCHMARK_DIR) -> dict | None:
    """The committed benchmark's summary.json (None when it is not installed)."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _number(value, digits: int = 3) -> str:
    return "–" if value is None or value == "" else f"{float(value):.{digits}f}"


def _interval(entry: dict, digits: int = 3) -> str:
    if entry["mean"] is None:
        return "–"
    low, high = entry["ci95"]
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return _number(entry["mean"], digits)
    return f"{entry['mean']:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def sanity_text(check: dict | None) -> str:
    if not check:
        return "not run"
    if check["passed"] is None:
        return "not assessable (empty map)"
    return f"{'passed' if check['passed'] else 'FAILED'} (ρ {check['final_spearman']:.2f})"


def comparison_table(result: ImageComparison) -> list[dict]:
    """One display row per method for one image, best deletion AUC first."""
    rows = []
    for method, entry in sorted(result.methods.items(), key=lambda item: item[1]["deletion_auc"]):
        stability = entry["stability"]
        rows.append({
            "Method": entry["label"] + (" (empty map)" if entry["empty_map"] else ""),
            "Deletion AUC ↓": round(entry["deletion_auc"], 3),
            "Insertion AUC ↑": round(entry["insertion_auc"], 3),
            "Drop when keeping top pixels ↓": round(entry["drop"], 3),
            "Confidence rose": "yes" if entry["increase"] else "no",
            "Seconds": round(entry["seconds"], 2),
            "Model evaluations": entry["evaluations"],
            "Seed stability (Spearman / IoU)": "not run" if stability is None else
            f"{stability['spearman']:.2f} / {stability['top_iou']:.2f}" + (" (deterministic)" if stability["identical"]
                                                                          else ""),
            "Randomisation check": sanity_text(entry["sanity"]),
        })
    return rows


def benchmark_table(summary: dict) -> list[dict]:
    """One display row per method of a ``compare`` run (mean and 95% CI), best deletion AUC first."""
    rows = []
    for method, entry in sorted(summary["methods"].items(), key=lambda item: item[1]["deletion_auc"]["mean"]):
        rows.append({
            "Method": entry.get("label", method),
            "Deletion AUC ↓": _interval(entry["deletion_auc"]),
            "Insertion AUC ↑": _interval(entry["insertion_auc"]),
            "Average drop ↓": _interval(entry["drop"]),
            "Increase rate": _number(entry["increase"]["mean"], 2),
            "Seconds": _number(entry["seconds"]["mean"], 2),
            "Model evaluations": int(round(entry["evaluations"]["mean"])),
            "Seed stability (Spearman)": _interval(entry["stability_spearman"], 2)
            if entry.get("stability_spearman") else "–",
            "Randomisation check passed": f"{entry['sanity_passed']}/{entry['sanity_checked']}"
            + (f" ({entry['sanity_not_assessable']} empty)" if entry.get("sanity_not_assessable") else ""),
            "Empty maps": entry.get("empty_maps", 0),
        })
    return rows


def most_faithful(methods: dict, metric: str = "deletion_auc") -> tuple[str, str, float] | None:
    """(best method, runner-up, margin) by a metric; lower is better except for insertion AUC."""
    def value(entry):
        number = entry[metric]
        return number["mean"] if isinstance(number, dict) else number

    if len(methods) < 2:
        return None
    reverse = metric == "insertion_auc"
    ranked = sorted(methods, key=lambda m: value(methods[m]), reverse=reverse)
    best, second = ranked[0], ranked[1]
    return best, second, abs(value(methods[best]) - value(methods[second]))
