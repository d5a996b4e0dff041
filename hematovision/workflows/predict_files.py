"""One image file's answer, as ``predict`` reports it: the work each engine repeats.

The command line's ``predict`` runs ``predict_file`` over every file in its own process
(the local engine) or on Ray workers that each hold a classifier
(``interfaces/ray_engine.py``); both call this one function, so their CSV and JSON match.
"""

from __future__ import annotations

from pathlib import Path

from hematovision.model.classifier import Classifier, image_answer
from hematovision.model.imaging import ImageError, load_image


def predict_file(classifier: Classifier, name: str) -> dict:
    """``{"file": name, ...}``: every white cell's prediction, the most strongly stained
    cell's at the top (see ``image_answer``), and the lab profile's SHA-256 when one is in
    use; or ``{"file": name, "error": why}`` for a file that cannot be read as an image."""
    entry = {"file": name}
    try:
        entry.update(image_answer(classifier.predict_cells(load_image(Path(name)))))
        if classifier.lab_profile is not None:
            entry["lab_profile"] = classifier.lab_profile.sha256
    except (ImageError, OSError, ValueError) as exc:
        entry["error"] = str(exc)
    return entry
