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
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from hematovision.model.classifier import CLASS_NAMES
from hematovision.workflows.samples import list_samples
from hematovision.workflows.teaching import QUIZ_DIR, QUIZ_MANIFEST, QUIZ_MANIFEST_FIELDS
from training import data

PER_CLASS = 12
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

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def atlas_hashes() -> set[str]:
    return {sha256(sample.path) for sample in list_samples()}


def kaggle_candidates(data_dir: Path) -> list[Candidate]:
    """TEST_SIMPLE, one file per original, without the Atlas's originals or ones seen in TRAIN."""
    records = data.read_sources(data_dir, "TEST_SIMPLE")
    atlas = atlas_hashes()
    atlas_originals = {r.cell for r in records if sha256(r.path) in atlas}
    if len(atlas_originals) != len(atlas):
        raise SystemExit(f"Only {len(atlas_originals)} of the {len(atlas)} Atlas images were found "
                         f"in {data_dir}/TEST_SIMPLE; is --data-dir the Kaggle set?")
    first_per_original: dict[str, data.Record] = {}
    for record in records:  # sorted by path, so the first file of an original is stable
        first_per_original.setdefault(record.cell, record)
    return [
        Candidate(r.path, CLASS_NAMES[r.label], KAGGLE_SOURCE, "TEST_SIMPLE",
                  str(r.path.relative_to(data_dir)), r.cell, KAGGLE_LICENCE)
        for original, r in sorted(first_per_original.items())
        if original not in atlas_originals and original not in SEEN_IN_TRAIN
    ]


def pbc_candidates(pbc_dir: Path) -> list[Candidate]:
    records = data.read_pbc(pbc_dir)
    return [
        Candidate(r.path, CLASS_NAMES[r.label], PBC_SOURCE, "test",
                  str(r.path.relative_to(pbc_dir)), r.path.stem, PBC_LICENCE)
        for r, part in zip(records, data.split_pbc(records)) if part == "test"
    ]


def choose(kaggle: list[Candidate], pbc: list[Candidate], per_class: int, seed: int) -> list[Candidate]:
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
    return f"{candidate.class_name.lower()}-{candidate.source}-{number}{candidate.path.suffix.lower()}"


def manifest_rows(chosen: list[Candidate]) -> list[dict[str, str]]:
    rows, numbers = [], {}
    for candidate in chosen:
        group = (candidate.class_name, candidate.source)
        numbers[group] = numbers.get(group, 0) + 1
        row = asdict(candidate)
        del row["path"], row["class_name"]
        rows.append({"file": file_name(candidate, numbers[group]), "class": candidate.class_name,
                     **row, "sha256": candidate.sha256})
    return [{field: row[field] for field in QUIZ_MANIFEST_FIELDS} for row in rows]


def manifest_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=QUIZ_MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def check_held_out(rows: list[dict[str, str]], kaggle_dir: Path) -> None:
    """Refuse a quiz set that holds an Atlas image or cell, or an image from a training split."""
    atlas = atlas_hashes()
    records = data.read_sources(kaggle_dir, "TEST_SIMPLE")
    atlas_originals = {r.cell for r in records if sha256(r.path) in atlas}
    for row in rows:
        if row["sha256"] in atlas:
            raise SystemExit(f"{row['file']} is an Atlas image.")
        if row["original_id"] in atlas_originals | SEEN_IN_TRAIN:
            raise SystemExit(f"{row['file']} shows an Atlas cell or one seen in training ({row['original_id']}).")
        if (row["source"], row["split"]) not in {(KAGGLE_SOURCE, "TEST_SIMPLE"), (PBC_SOURCE, "test")}:
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

    chosen = choose(kaggle_candidates(args.data_dir), pbc_candidates(pbc_dir), args.per_class, args.seed)
    rows = manifest_rows(chosen)
    check_held_out(rows, args.data_dir)
    text = manifest_text(rows)

    if args.check:
        manifest = args.output / QUIZ_MANIFEST
        same = manifest.is_file() and manifest.read_text() == text and all(
            (args.output / row["file"]).is_file() and sha256(args.output / row["file"]) == row["sha256"]
            for row in rows)
        print(f"{args.output}: {'matches' if same else 'differs from'} a fresh build of {len(rows)} images")
        return 0 if same else 1

    args.output.mkdir(parents=True, exist_ok=True)
    expected = {row["file"] for row in rows} | {QUIZ_MANIFEST, "README.md"}
    for stale in args.output.iterdir():
        if stale.name not in expected:
            stale.unlink()
    for candidate, row in zip(chosen, rows):
        (args.output / row["file"]).write_bytes(candidate.path.read_bytes())
    (args.output / QUIZ_MANIFEST).write_text(text)
    total = sum((args.output / row["file"]).stat().st_size for row in rows)
    by_source = {source: sum(row["source"] == source for row in rows) for source in (KAGGLE_SOURCE, PBC_SOURCE)}
    print(f"Wrote {len(rows)} images ({total / 1024:.0f} KiB; {by_source}) and {QUIZ_MANIFEST} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
