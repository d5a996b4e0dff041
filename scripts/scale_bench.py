"""Throughput of `predict` on the local engine and on Ray with 1 and 2 local workers, in one run.

    .venv/bin/python scripts/scale_bench.py [--images 400] [--rounds 3] [--out docs/bench/DATE-scale.json]

On a folder of Kaggle TEST images (the same number from each class, in name order, linked
into a temporary folder), for each engine and round:

* **steady images/s**: the per-image work once the model is loaded and Ray is up. Local:
  ``predict_file`` over the folder on one classifier, the first image left out. Ray:
  ``ray_engine.run_each`` with N workers, from the first finished chunk to the last
  (timed by its progress reports).
* **the command**: wall-clock of `python -m hematovision predict FOLDER --csv FILE
  [--engine ray --workers N]` in a fresh process, start-up included; its CSV's labels are
  compared with the local engine's.

Rounds are interleaved and the best of each is kept, since other processes on a shared
machine only ever slow a run down. Prints JSON (and writes it with --out), each Ray
figure also as a ratio to the local one measured in the same run: ``steady_vs_local``
divides rates (above 1: faster), ``command_vs_local`` divides times (above 1: slower).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from hematovision.interfaces.ray_engine import RayOptions, import_ray, run_each  # noqa: E402
from hematovision.model.classifier import load_classifier  # noqa: E402
from hematovision.workflows.predict_files import predict_file  # noqa: E402

TEST_IMAGES = REPO_ROOT.parent / "shared" / "data" / "blood-cells" / "TEST"
ENGINES = {"local": None, "ray-1-worker": 1, "ray-2-workers": 2}  # engine: Ray workers
PROGRESS = re.compile(r"(\d+)/\d+ images")


def link_images(source: Path, count: int, folder: Path) -> list[str]:
    """``count`` images, the same number from each class folder, linked into ``folder``."""
    classes = sorted(path for path in source.iterdir() if path.is_dir())
    for number, class_folder in enumerate(classes):
        share = count // len(classes) + (number < count % len(classes))
        for image in sorted(class_folder.glob("*.jpeg"))[:share]:
            (folder / f"{class_folder.name.lower()}-{image.name}").symlink_to(image)
    return sorted(str(path) for path in folder.iterdir())


def local_rate(names: list[str]) -> float:
    classifier = load_classifier()
    predict_file(classifier, names[0])  # the first image pays one-off costs
    started = time.perf_counter()
    for name in names[1:]:
        predict_file(classifier, name)
    return (len(names) - 1) / (time.perf_counter() - started)


def ray_rate(names: list[str], workers: int) -> float:
    ray = import_ray()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    marks = []  # (time, images done) at each finished chunk

    def mark(line: str) -> None:
        found = PROGRESS.search(line)
        if found:
            marks.append((time.perf_counter(), int(found.group(1))))

    try:
        run_each(predict_file, names, RayOptions(workers=workers), progress=mark)
    finally:
        ray.shutdown()
    (first_time, first_done), (last_time, last_done) = marks[0], marks[-1]
    return (last_done - first_done) / (last_time - first_time)


def command_seconds(folder: Path, csv_path: Path, workers: int | None) -> float:
    engine = [] if workers is None else ["--engine", "ray", "--workers", str(workers)]
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "hematovision", "predict", str(folder), "--csv", str(csv_path), *engine],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    return time.monotonic() - started


def labels(csv_path: Path) -> dict[str, str]:
    with open(csv_path, newline="") as handle:
        return {row["file"]: row["label"] for row in csv.DictReader(handle)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400, help="images in the folder (default 400)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per engine; the best is kept (default 3)")
    parser.add_argument("--data", type=Path, default=TEST_IMAGES, help="a folder of class folders of .jpeg images")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    report = {"command": "python -m hematovision predict FOLDER --csv FILE [--engine ray --workers N]",
              "cpus": os.cpu_count(), "load_average_before_1_5_15min": [round(v, 2) for v in os.getloadavg()]}
    rates = {engine: [] for engine in ENGINES}
    seconds = {engine: [] for engine in ENGINES}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        names = link_images(args.data, args.images, folder)
        for _ in range(args.rounds):
            for engine, workers in ENGINES.items():
                rates[engine].append(local_rate(names) if workers is None else ray_rate(names, workers))
                seconds[engine].append(command_seconds(folder, Path(scratch) / f"{engine}.csv", workers))
        local_labels = labels(Path(scratch) / "local.csv")
        engines = {}
        for engine in ENGINES:
            best_rate, best_seconds = max(rates[engine]), min(seconds[engine])
            engines[engine] = {"steady_images_per_s": round(best_rate, 1),
                               "command_s": round(best_seconds, 2),
                               "command_images_per_s": round(len(names) / best_seconds, 1),
                               "steady_runs_images_per_s": [round(v, 1) for v in rates[engine]],
                               "command_runs_s": [round(v, 2) for v in seconds[engine]]}
            if engine != "local":
                local = engines["local"]
                engines[engine]["steady_vs_local"] = round(best_rate / local["steady_images_per_s"], 2)
                engines[engine]["command_vs_local"] = round(best_seconds / local["command_s"], 2)
                same = sum(labels(Path(scratch) / f"{engine}.csv").get(name) == label
                           for name, label in local_labels.items())
                engines[engine]["labels_same_as_local"] = f"{same}/{len(local_labels)}"
    report["load_average_after_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    report["images"] = len(names)
    report["engines"] = engines
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
