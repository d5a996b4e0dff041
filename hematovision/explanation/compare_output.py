"""The files a ``compare`` run over a data set leaves in its output folder.

* ``per_image.csv`` - one row per image and method,
* ``agreement.csv`` - mean Spearman and top-20% IoU for every pair of methods,
* ``summary.csv`` / ``summary.json`` - per method: mean and 95% CI of each metric,
  runtime, evaluations, seed stability and randomisation-check passes, mean curves, and
  every parameter used,
* ``curves.png`` and ``figures.html`` - mean deletion and insertion curves, agreement.

``hematovision.explanation.compare.run_comparison`` computes the rows and the summary.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_outputs(out: Path, rows: list[dict], summary: dict) -> None:
    """Write every file above to ``out`` (which must exist)."""
    from hematovision.charts import (
        agreement_figure,
        benchmark_curves_figure,
        benchmark_curves_png,
        summary_agreement,
    )

    with open(out / "per_image.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # Every metric the runner summarised as a mean with an interval, in its order.
    first = next(iter(summary["methods"].values()))
    columns = [name for name, value in first.items() if isinstance(value, dict) and "ci95" in value]
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
    (out / "curves.png").write_bytes(benchmark_curves_png(summary))
    figures = [benchmark_curves_figure(summary)]
    if summary["agreement"]:
        figures.append(agreement_figure(summary_agreement(summary)))
    with open(out / "figures.html", "w") as handle:
        handle.write("<!doctype html><meta charset='utf-8'><title>Explanation benchmark</title>\n")
        for number, figure in enumerate(figures):
            # plotly.js is loaded once, from plotly's CDN, to keep the file small.
            handle.write(figure.to_html(full_html=False, include_plotlyjs="cdn" if number == 0 else False))

