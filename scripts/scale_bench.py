"""Throughput of `predict` on the local engine and on Ray with 1 and 2 local workers, in one run.

    .venv/bin/python scripts/scale_bench.py [--images 400] [--rounds 2] [--out docs/bench/DATE-scale.json]

Each engine runs the real command, a fresh process each time:
`python -m hematovision predict FOLDER --csv FILE [--engine ray --workers N]`, on a folder
of Kaggle TEST images (the first of each class in name order, linked into a temporary
folder) and on a quarter of it. The difference between the two times gives the steady
rate (images/s once the model is loaded and Ray is up), the rest is the fixed start-up;
the best of ``--rounds`` interleaved runs is kept, since other processes on a shared
machine only ever slow a run down. Prints JSON (and writes it with --out), with each
Ray rate as a ratio to the local one, and how many Ray labels match the local run's.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGES = REPO_ROOT.parent / "shared" / "data" / "blood-cells" / "TEST"
ENGINES = {"local": [], "ray-1-worker": ["--engine", "ray", "--workers", "1"],
           "ray-2-workers": ["--engine", "ray", "--workers", "2"]}


def link_images(source: Path, count: int, folder: Path) -> list[Path]:
    """``count`` images, the same number from each class folder, linked into ``folder``."""
    classes = sorted(path for path in source.iterdir() if path.is_dir())
    links = []
    for number, class_folder in enumerate(classes):
        share = count // len(classes) + (number < count % len(classes))
        for image in sorted(class_folder.glob("*.jpeg"))[:share]:
            link = folder / f"{class_folder.name.lower()}-{image.name}"
            link.symlink_to(image)
            links.append(link)
    return links


def run_predict(folder: Path, csv_path: Path, engine_options: list[str]) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "hematovision", "predict", str(folder), "--csv", str(csv_path),
                    *engine_options], cwd=REPO_ROOT, check=True, capture_output=True)
    return time.monotonic() - started


def labels(csv_path: Path) -> dict[str, str]:
    with open(csv_path, newline="") as handle:
        return {row["file"]: row["label"] for row in csv.DictReader(handle)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400, help="images in the big folder (default 400)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per engine and folder; the best is kept")
    parser.add_argument("--data", type=Path, default=TEST_IMAGES, help="a folder of class folders of .jpeg images")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    report = {"command": "python -m hematovision predict FOLDER --csv FILE [--engine ray --workers N]",
              "cpus": os.cpu_count(), "load_average_before_1_5_15min": [round(v, 2) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        big, small = scratch / "big", scratch / "small"
        big.mkdir()
        small.mkdir()
        images = link_images(args.data, args.images, big)
        for image in images[::4]:
            (small / image.name).symlink_to(image.resolve())
        sizes = {"small": len(images[::4]), "big": len(images)}
        times = {engine: {"small": [], "big": []} for engine in ENGINES}
        for _ in range(args.rounds):
            for engine, options in ENGINES.items():
                for size, folder in (("small", small), ("big", big)):
                    times[engine][size].append(run_predict(folder, scratch / f"{engine}-{size}.csv", options))
        local_labels = labels(scratch / "local-big.csv")
        report["load_average_after_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
        report["images"] = sizes
        engines = {}
        for engine in ENGINES:
            small_s, big_s = min(times[engine]["small"]), min(times[engine]["big"])
            rate = (sizes["big"] - sizes["small"]) / (big_s - small_s)
            engines[engine] = {"images_per_s": round(rate, 1),
                               "start_up_s": round(big_s - sizes["big"] / rate, 2),
                               "end_to_end_images_per_s": round(sizes["big"] / big_s, 1),
                               "runs_s": {size: [round(v, 2) for v in runs] for size, runs in times[engine].items()}}
            if engine != "local":
                engines[engine]["images_per_s_vs_local"] = round(rate / engines["local"]["images_per_s"], 2)
                ray_labels = labels(scratch / f"{engine}-big.csv")
                same = sum(ray_labels.get(name) == label for name, label in local_labels.items())
                engines[engine]["labels_same_as_local"] = f"{same}/{len(local_labels)}"
        report["engines"] = engines
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
