"""Choose a recipe by how well it travels to a lab it did not train on, without test data.

    python -m training.cross_lab --data-dir ../shared/data/blood-cells \
        --model "recipe A, Kaggle only=training/cache/a-kaggle/model.keras" ...

Each model is scored on the VALIDATION parts of both labs (Kaggle TRAIN's validation
cells, by majority vote over each cell's images, and PBC's validation split) and on
LISC. A recipe's leave-one-lab-out score is its Kaggle-only model on PBC validation and
its PBC-only model on Kaggle validation cells; test splits are never read here, and
LISC is reported beside the validation numbers, never used alone to choose.

A model spec may join several paths with "+": their probabilities are averaged (an
ensemble of recipes), and statuses are left out, since no trust layer was fitted to it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.model.classifier import CLASS_NAMES, load_classifier
from hematovision.model.evaluation import predict_files
from hematovision.model.metrics import accuracy_summary, macro_recall, majority_vote, status_mix
from hematovision.model.trust import STATUSES
from training import data

# Kaggle validation cells: this many images per cell (a cell's ~36 images are near-copies).
KAGGLE_PER_CELL = 8


def validation_jobs(data_dir: Path, pbc_dir: Path, lisc_dir: Path) -> dict[str, list[tuple[Path, int, str]]]:
    records = data.read_sources(data_dir, "TRAIN")
    _, val_cells = data.split_cells(records, 0.2, 0)
    kaggle = data.images_per_cell([r for r in records if r.cell in val_cells], KAGGLE_PER_CELL, 0)
    pbc = data.read_pbc(pbc_dir)
    return {
        "kaggle_val": [(r.path, r.label, r.cell) for r in kaggle],
        "pbc_val": [(r.path, r.label, r.cell) for r, part in zip(pbc, data.split_pbc(pbc)) if part == "val"],
        "lisc": [(r.path, r.label, r.cell) for r in data.read_lisc(lisc_dir)],
    }


def score(model_paths: list[Path], jobs: dict) -> dict:
    classifiers = [load_classifier(path) for path in model_paths]
    results = {}
    for name, items in jobs.items():
        runs = [predict_files(c, [(path, label) for path, label, _ in items]) for c in classifiers]
        result = runs[0]
        if len(runs) > 1:
            if any(run.paths != result.paths for run in runs):
                raise SystemExit(f"{name}: the models read different images; cannot average them")
            result.probabilities = np.mean([run.probabilities for run in runs], axis=0)
        summary = accuracy_summary(result.labels, result.predicted, CLASS_NAMES)
        entry = {"accuracy": summary["accuracy"], "n": summary["n"], "macro_recall": macro_recall(summary)}
        if name == "kaggle_val":
            cells = [cell for _, _, cell in items]
            votes = majority_vote(cells, result.probabilities)
            truth = {cell: label for _, label, cell in items}
            entry["cell_accuracy"] = round(float(np.mean([votes[c] == truth[c] for c in votes])), 6)
            entry["cells"] = len(votes)
        if len(classifiers) == 1 and classifiers[0].trust.ood is not None:
            assessed = result.assessments(classifiers[0].trust)
            entry["statuses"] = {k: v["rate"] for k, v in status_mix([a.status for a in assessed], STATUSES).items()}
        results[name] = entry
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH[+PATH...]")
    args = parser.parse_args(argv)
    root = args.data_dir.parent
    jobs = validation_jobs(args.data_dir, root / "pbc", root / "lisc")
    for spec in args.model:
        name, _, path = spec.partition("=")
        print(json.dumps({"model": name, "path": path, **score([Path(p) for p in path.split("+")], jobs)}), flush=True)


if __name__ == "__main__":
    main()
