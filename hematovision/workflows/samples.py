"""The built-in sample images that ship in ``samples/``.

Each file is named ``<class>-<n>.<ext>`` (e.g. ``neutrophil-2.jpeg``); the class in the
name is the label the image carries in its source data set, not a prediction.
Where each one came from is recorded in ``samples/README.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hematovision.model.classifier import CLASS_NAMES, PROJECT_ROOT, display_name
from hematovision.model.imaging import SUPPORTED_SUFFIXES

SAMPLES_DIR = PROJECT_ROOT / "samples"
_NAME = re.compile(r"^(?P<cls>[a-z]+)-(?P<num>\d+)$")


@dataclass(frozen=True)
class Sample:
    """One built-in image and the class its source data set gives it."""

    path: Path
    class_name: str  # e.g. "NEUTROPHIL"
    number: int

    @property
    def key(self) -> str:
        """Stable identifier, e.g. 'neutrophil-2' (the file stem)."""
        return self.path.stem

    @property
    def title(self) -> str:
        """Human label, e.g. 'Neutrophil 2'."""
        return f"{display_name(self.class_name)} {self.number}"

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


def list_samples(directory: str | Path | None = None) -> list[Sample]:
    """All sample images, ordered by class (as in CLASS_NAMES) and then by number.

    Files whose name does not follow ``<class>-<n>.<ext>`` with a known class and a
    supported image suffix are ignored, so a README or a stray file never shows up.
    """
    folder = Path(directory) if directory is not None else SAMPLES_DIR
    if not folder.is_dir():
        return []
    found: list[Sample] = []
    for path in folder.iterdir():
        if not path.is_file() or path.suffix.lower() not in SUPPORTED_SUFFIXES:
            continue
        match = _NAME.match(path.stem.lower())
        if not match:
            continue
        class_name = match["cls"].upper()
        if class_name not in CLASS_NAMES:
            continue
        found.append(Sample(path=path, class_name=class_name, number=int(match["num"])))
    found.sort(key=lambda s: (CLASS_NAMES.index(s.class_name), s.number, s.path.name))
    return found


def find_sample(key: str, directory: str | Path | None = None) -> Sample | None:
    """The sample whose key (file stem) is ``key``, or None."""
    for sample in list_samples(directory):
        if sample.key == key:
            return sample
    return None
