"""Build the quiz's held-out cells in ``samples/quiz/`` from the shared data sets.

    python -m training.build_quiz_set --data-dir ../shared/data/blood-cells

The quiz must not be answerable by looking the cell up in the Atlas, and the model must
never have trained on its cells. So every quiz image comes from a split that training
never reads, and no quiz cell is an Atlas cell:

* Kaggle ``TEST_SIMPLE`` (BCCD, MIT): one file per original smear photo, leaving out the
  originals the Atlas shows (found by sha256 in ``TEST_SOURCES.csv``) and the two whose
  repeat photograph lies in TRAIN (the data set's README, "How the splits were made");
* the PBC test split (Acevedo et al. 2020, CC BY 4.0): ``training.data.split_pbc``.

LISC is left out: its README gives no licence and asks not to redistribute it.

Per class, half the cells come from Kaggle where it has enough held-out cells, the rest
from PBC, each drawn with one seeded generator. Files are copied byte for byte (they are
8-20 kB each), so their sha256 matches the data sets' MANIFEST files. ``manifest.csv``
records, for each file, its class, source, split, original file and id, sha256 and
licence. ``--check`` rebuilds in memory and fails if the folder differs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hematovision.model.classifier import CLASS_NAMES
from hematovision.workflows.samples import list_samples
from hematovision.workflows.teaching import QUIZ_DIR, QUIZ_MANIFEST, QUIZ_MANIFEST_FIELDS
from training import data

PER_CLASS = 12
QUIZ_FILE = re.compile(r"^[a-z]+-(kaggle|pbc)-\d+\.jpe?g$")
SEED = 2026
# BCCD originals in TEST whose repeat photograph (the same cell, shifted) lies in TRAIN;
# blood-cells/README.md found them by SIFT matching.
SEEN_IN_TRAIN = {"BloodImage_00257", "BloodImage_00277"}

KAGGLE_LICENCE = "MIT (BCCD Dataset, Copyright (c) 2017 shenggan)"
KAGGLE_SOURCE = "kaggle"
PBC_LICENCE = ("CC BY 4.0 (Acevedo et al., Data in Brief 30 (2020) 105474, "
               "doi 10.1016/j.dib.2020.105474)")
PBC_SOURCE = "pbc"


@dataclass(frozen=True)
class Candidate:
    """A held-out image the quiz may use, and where it came from."""

    path: Path
    class_name: str
    source: str
    split: str
    original_file: str  # path inside its data set
    original_id: str  # the cell: BCCD smear photo, or the PBC file's stem
    licence: str


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def atlas_hashes() -> set[str]:
    return {sha256(sample.path) for sample in list_samples()}


def atlas_originals(kaggle_dir: Path) -> set[str]:
    """The BCCD smear photos the Atlas's images were cut from (all Atlas images are TEST_SIMPLE)."""
    atlas = atlas_hashes()
    records = data.read_sources(kaggle_dir, "TEST_SIMPLE")
    originals = {record.cell for record in records if sha256(record.path) in atlas}
    if len(originals) != len(atlas):
        raise SystemExit(f"Only {len(originals)} of the {len(atlas)} Atlas images were found in "
                         f"{kaggle_dir}/TEST_SIMPLE; is --data-dir the Kaggle set?")
    return originals


def kaggle_candidates(data_dir: Path) -> list[Candidate]:
    """TEST_SIMPLE, one file per original, without the Atlas's originals or ones seen in TRAIN."""
    left_out = atlas_originals(data_dir) | SEEN_IN_TRAIN
    first_per_original: dict[str, data.Record] = {}
    for record in data.read_sources(data_dir, "TEST_SIMPLE"):  # sorted by path: a stable first
        first_per_original.setdefault(record.cell, record)
    return [
        Candidate(r.path, CLASS_NAMES[r.label], KAGGLE_SOURCE, "TEST_SIMPLE",
                  str(r.path.relative_to(data_dir)), r.cell, KAGGLE_LICENCE)
        for original, r in sorted(first_per_original.items()) if original not in left_out
    ]


def pbc_candidates(pbc_dir: Path) -> list[Candidate]:
    records = data.read_pbc(pbc_dir)
    return [
        Candidate(r.path, CLASS_NAMES[r.label], PBC_SOURCE, "test",
                  str(r.path.relative_to(pbc_dir)), r.path.stem, PBC_LICENCE)
        for r, part in zip(records, data.split_pbc(records)) if part == "test"
    ]


def choose(kaggle: list[Candidate], pbc: list[Candidate], per_class: int,
           seed: int) -> list[Candidate]:
    """Per class (in CLASS_NAMES order): up to half from Kaggle, the rest from PBC."""
    rng = random.Random(seed)
    chosen = []
    for name in CLASS_NAMES:
        from_kaggle = [c for c in kaggle if c.class_name == name]
        from_pbc = [c for c in pbc if c.class_name == name]
        n_kaggle = min(per_class // 2, len(from_kaggle))
        chosen += rng.sample(from_kaggle, n_kaggle) + rng.sample(from_pbc, per_class - n_kaggle)
    return chosen


def file_name(candidate: Candidate, number: int) -> str:
    suffix = candidate.path.suffix.lower()
    return f"{candidate.class_name.lower()}-{candidate.source}-{number}{suffix}"


def manifest_rows(chosen: list[Candidate]) -> list[dict[str, str]]:
    """One row per file, in QUIZ_MANIFEST_FIELDS; files numbered per class and source."""
    rows, numbers = [], Counter()
    for c in chosen:
        numbers[c.class_name, c.source] += 1
        rows.append({"file": file_name(c, numbers[c.class_name, c.source]), "class": c.class_name,
                     "source": c.source, "split": c.split, "original_file": c.original_file,
                     "original_id": c.original_id, "sha256": sha256(c.path), "licence": c.licence})
    return rows


def manifest_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=QUIZ_MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def check_held_out(rows: list[dict[str, str]], kaggle_dir: Path) -> None:
    """Refuse a quiz set that holds an Atlas image or cell, or an image from a training split."""
    atlas, left_out = atlas_hashes(), atlas_originals(kaggle_dir) | SEEN_IN_TRAIN
    held_out = {(KAGGLE_SOURCE, "TEST_SIMPLE"), (PBC_SOURCE, "test")}
    for row in rows:
        if row["sha256"] in atlas:
            raise SystemExit(f"{row['file']} is an Atlas image.")
        if row["original_id"] in left_out:
            raise SystemExit(f"{row['file']} shows an Atlas cell or one seen in training "
                             f"({row['original_id']}).")
        if (row["source"], row["split"]) not in held_out:
            raise SystemExit(f"{row['file']} is not from a held-out split.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/blood-cells"),
                        help="the Kaggle Blood Cell Images folder (TEST_SIMPLE, TEST_SOURCES.csv)")
    parser.add_argument("--pbc-dir", type=Path, help="PBC folder (default: pbc/ beside --data-dir)")
    parser.add_argument("--output", type=Path, default=QUIZ_DIR)
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--check", action="store_true",
                        help="rebuild in memory and compare with --output; write nothing")
    args = parser.parse_args(argv)
    pbc_dir = args.pbc_dir or args.data_dir.parent / "pbc"

    chosen = choose(kaggle_candidates(args.data_dir), pbc_candidates(pbc_dir), args.per_class,
                    args.seed)
    rows = manifest_rows(chosen)
    check_held_out(rows, args.data_dir)
    text = manifest_text(rows)

    if args.check:
        manifest = args.output / QUIZ_MANIFEST
        same = manifest.is_file() and manifest.read_text() == text and all(
            (args.output / row["file"]).is_file()
            and sha256(args.output / row["file"]) == row["sha256"] for row in rows)
        verdict = "matches" if same else "differs from"
        print(f"{args.output}: {verdict} a fresh build of {len(rows)} images")
        return 0 if same else 1

    args.output.mkdir(parents=True, exist_ok=True)
    for stale in args.output.iterdir():  # quiz images of an earlier build that left the set
        if QUIZ_FILE.match(stale.name) and stale.name not in {row["file"] for row in rows}:
            stale.unlink()
    for candidate, row in zip(chosen, rows):
        (args.output / row["file"]).write_bytes(candidate.path.read_bytes())
    (args.output / QUIZ_MANIFEST).write_text(text)
    total = sum((args.output / row["file"]).stat().st_size for row in rows)
    by_source = Counter(row["source"] for row in rows)
    print(f"Wrote {len(rows)} images ({total / 1024:.0f} KiB; {dict(by_source)}) and "
          f"{QUIZ_MANIFEST} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
