"""Evaluate the committed model on TEST and TEST_SIMPLE and record it in the model card.

    python -m training.evaluate --data-dir ../shared/data/blood-cells

The model is loaded with ``hematovision.load_classifier`` and every image goes through
load_image -> frame_cell -> model, exactly as in the app. Nothing here feeds back into
training: these splits are only ever reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path


from hematovision.classifier import CLASS_NAMES, DEFAULT_MODEL_PATH, MODEL_CARD_PATH, load_classifier
from hematovision.evaluation import predict_folder
from hematovision.metrics import accuracy_summary, majority_vote
from hematovision.model_card import file_sha256
from training import data

COMMAND = "python -m training.evaluate --data-dir ../shared/data/blood-cells"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--card", type=Path, default=MODEL_CARD_PATH)
    return parser.parse_args(argv)


def cell_of_each_file(data_dir: Path, split: str) -> dict[str, str]:
    """'CLASS/file.jpeg' -> original cell, from TEST_SOURCES.csv."""
    return {f"{r.path.parent.name}/{r.path.name}": r.cell for r in data.read_sources(data_dir, split)}


def cell_level(result, cells_by_file: dict[str, str]) -> dict:
    """One vote per original cell: majority of its images' predictions (ties: mean probability)."""
    cells = [cells_by_file[f"{p.parent.name.upper()}/{p.name}"] for p in result.paths]
    votes = majority_vote(cells, result.probabilities)
    truth = {}
    for cell, label in zip(cells, result.labels):
        truth[cell] = label
    order = sorted(votes)
    return accuracy_summary(
        [truth[c] for c in order], [votes[c] for c in order], CLASS_NAMES,
        "TEST grouped by original cell (TEST_SOURCES.csv); a cell's prediction is the majority "
        "of its augmented copies' predictions, ties broken by the highest mean probability",
    )


def evaluate(args) -> dict:
    classifier = load_classifier(args.model)
    splits = {}
    started = time.time()
    test = predict_folder(classifier, args.data_dir / "TEST")
    splits["test_image"] = accuracy_summary(
        test.labels, test.predicted, CLASS_NAMES,
        "TEST images (augmented copies of 71 held-out cells), each counted once")
    splits["test_cell"] = cell_level(test, cell_of_each_file(args.data_dir, "TEST"))
    simple = predict_folder(classifier, args.data_dir / "TEST_SIMPLE")
    splits["test_simple"] = accuracy_summary(
        simple.labels, simple.predicted, CLASS_NAMES,
        "TEST_SIMPLE: the held-out cells' un-augmented images (69 distinct cells, 71 files)")
    unreadable = test.unreadable + simple.unreadable
    evaluation = {
        "command": COMMAND,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.time() - started, 1),
        "unreadable": unreadable,
        "splits": splits,
    }
    write_card(args, evaluation)
    return evaluation


def write_card(args, evaluation: dict) -> None:
    """Replace the evaluation section and the model hash; keep everything else."""
    card = json.loads(args.card.read_text()) if args.card.is_file() else {}
    card["model_file"] = args.model.name
    card["model_sha256"] = file_sha256(args.model)
    card["evaluation"] = evaluation
    args.card.write_text(json.dumps(card, indent=2) + "\n")


def main(argv=None) -> None:
    args = parse_args(argv)
    evaluation = evaluate(args)
    for name, split in evaluation["splits"].items():
        low, high = split["accuracy_ci95"]
        recalls = ", ".join(f"{c[:3]} {v['recall']:.2f}" for c, v in split["per_class"].items())
        print(f"{name:12s} {split['correct']}/{split['n']} = {split['accuracy']:.4f} "
              f"(95% CI {low:.3f}-{high:.3f}); recall {recalls}")
    print(f"Wrote the evaluation into {args.card}")


if __name__ == "__main__":
    main()
