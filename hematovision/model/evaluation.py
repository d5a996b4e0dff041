"""Evaluate the classifier on a folder of labelled images (one sub-folder per class).

Images go through the app's own path (load_image -> frame_cell -> model), so the
numbers describe what a user gets. An unreadable file is counted and listed, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hematovision.model.classifier import CLASS_NAMES, class_index
from hematovision.model.imaging import SUPPORTED_SUFFIXES, ImageError, load_image
from hematovision.model.metrics import accuracy_summary

Progress = Callable[[int, int], None]  # (images done, images total)


def find_class_folders(directory: str | Path) -> dict[str, Path]:
    """Map each class name to its sub-folder of ``directory``, matched by name.

    Case is ignored and a trailing 's' is allowed ('neutrophils', 'Neutrophil').
    Classes with no folder are simply missing from the result; two folders for one
    class is an error, since their images would be counted twice or silently dropped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"Not a folder: {directory}")
    found: dict[str, Path] = {}
    for child in sorted(directory.iterdir()):
        if not child.is_dir():
            continue
        try:
            key = CLASS_NAMES[class_index(child.name)]
        except ValueError:
            continue  # not a class folder
        if key in found:
            raise ValueError(f"Two folders for {key}: {found[key].name} and {child.name}")
        found[key] = child
    return found


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), sorted for a stable order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


@dataclass
class FolderPredictions:
    """Per-image results for a labelled set of images.

    ``probabilities`` is the raw softmax (the predicted class is the same after
    calibration); ``features`` are the pooled features the OOD check reads and
    ``type_features`` those the other-type detector reads.
    """

    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, len(CLASS_NAMES))))
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    type_features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    nucleus_found: list[bool] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)

    def assessments(self, trust) -> list:
        """Each image's calibrated confidence and status (``trust.Assessment``), as the app gives them."""
        return trust.assess(self.probabilities, self.features, self.type_features, self.nucleus_found)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1) if len(self.probabilities) else np.zeros(0, int)


def predict_folder(
    classifier, directory: str | Path, batch_size: int = 64, progress: Progress | None = None
) -> FolderPredictions:
    """Run the classifier over every image of every class folder."""
    folders = find_class_folders(directory)
    if not folders:
        raise ValueError(
            f"No class folders in {directory}; expected sub-folders named like "
            + ", ".join(CLASS_NAMES)
        )
    jobs = [(path, CLASS_NAMES.index(name)) for name, folder in folders.items() for path in list_images(folder)]
    return predict_files(classifier, jobs, batch_size, progress)


def predict_files(
    classifier, jobs: list[tuple[Path, int]], batch_size: int = 64, progress: Progress | None = None
) -> FolderPredictions:
    """Run the classifier over (path, true class index) pairs; unreadable files are listed, not fatal."""
    result = FolderPredictions()
    chunks = []
    for start in range(0, len(jobs), batch_size):
        crops = []
        for path, label in jobs[start : start + batch_size]:
            try:
                crop, box = classifier.prepare(load_image(path))
            except (ImageError, OSError, ValueError) as exc:
                result.unreadable.append({"file": str(path), "error": str(exc)})
                continue
            crops.append(crop)
            result.nucleus_found.append(bool(getattr(box, "found", True)))
            result.paths.append(path)
            result.labels.append(label)
        if crops:
            chunks.append(classifier.outputs(np.stack(crops)))
        if progress:
            progress(min(start + batch_size, len(jobs)), len(jobs))
    if chunks:
        result.features = np.concatenate([c.ood_features for c in chunks], axis=0)
        result.type_features = np.concatenate([c.type_features for c in chunks], axis=0)
        result.probabilities = np.concatenate([c.probabilities for c in chunks], axis=0)
    return result


def evaluate_folder(
    classifier, directory: str | Path, batch_size: int = 64, progress: Progress | None = None
) -> dict:
    """Accuracy (with Wilson 95% CI), per-class precision/recall/F1 and confusion matrix.

    Rows of the confusion matrix are true classes, columns predicted, in CLASS_NAMES order.
    """
    directory = Path(directory)
    result = predict_folder(classifier, directory, batch_size, progress)
    summary = accuracy_summary(result.labels, result.predicted, CLASS_NAMES, f"images in {directory}")
    summary.update({
        "class_names": list(CLASS_NAMES),
        "folders": {name: str(path) for name, path in find_class_folders(directory).items()},
        "unreadable_count": len(result.unreadable),
        "unreadable": result.unreadable,
    })
    return summary
