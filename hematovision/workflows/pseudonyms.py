"""Pseudonymous file names for exports: ``image-001``, ``image-002``, … in upload order.

Labs often name image files by patient or accession number, and reports travel by e-mail.
The reports and CSV therefore show a pseudonym in place of each file name unless the user
turns it off; the mapping back to the real names is shown only in the user's own session and
can be downloaded on its own, to be kept apart from the exports.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from typing import Iterable

from hematovision.workflows.batch import BatchCell, Skipped, csv_safe

PREFIX = "image"


@dataclass(frozen=True)
class Pseudonyms:
    """Original file name -> pseudonym, in the order the names were first met."""

    by_name: dict[str, str]

    @classmethod
    def for_names(cls, names: Iterable[str]) -> Pseudonyms:
        by_name: dict[str, str] = {}
        for name in names:
            by_name.setdefault(name, "")
        width = max(3, len(str(len(by_name))))
        return cls({name: f"{PREFIX}-{number:0{width}d}" for number, name in enumerate(by_name, start=1)})

    @classmethod
    def for_batch(cls, cells: list[BatchCell], skipped: list[Skipped] | None = None) -> Pseudonyms:
        return cls.for_names([cell.file for cell in cells] + [item.name for item in skipped or []])

    def __getitem__(self, name: str) -> str:
        return self.by_name[name]

    def cells(self, cells: list[BatchCell]) -> list[BatchCell]:
        """Copies of ``cells`` that carry pseudonyms; the originals (and their reviews) are untouched."""
        return [dataclasses.replace(cell, file=self.by_name[cell.file]) for cell in cells]

    def skipped(self, skipped: list[Skipped]) -> list[Skipped]:
        return [dataclasses.replace(item, name=self.by_name[item.name]) for item in skipped]

    def mapping_csv(self, digests: dict[str, str] | None = None) -> str:
        """The key to the pseudonyms: one row per file, with the image's SHA-256 where known."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["pseudonym", "file_name", "image_sha256"])
        for name, pseudonym in self.by_name.items():
            writer.writerow([pseudonym, csv_safe(name), (digests or {}).get(name, "")])
        return buffer.getvalue()


def batch_digests(cells: list[BatchCell]) -> dict[str, str]:
    """File name -> SHA-256 of its image, for the mapping file."""
    return {cell.file: cell.image_sha256 for cell in cells}
