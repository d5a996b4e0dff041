"""What the Compare page shows as tables and text: one image's comparison and the
committed benchmark, formatted for people (``hematovision.explanation.compare`` computes them)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hematovision.explanation.compare import ImageComparison

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "docs" / "xai-benchmark"


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
