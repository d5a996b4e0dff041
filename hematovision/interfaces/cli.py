"""Command-line interface: predict, explain, evaluate and bench without the app.

    python -m hematovision predict IMAGE_OR_FOLDER... [--json] [--csv FILE|-]
    python -m hematovision predict FOLDER --csv FILE --engine ray [--address ADDR]   # on Ray, see docs/scale.md
    python -m hematovision explain IMAGE --method gradcam --out map.png
    python -m hematovision evaluate DIR [--json]
    python -m hematovision compare --data-dir DIR --per-class N --methods gradcam,lime --out results/
    python -m hematovision bench [--json]
    python -m hematovision serve [--host 127.0.0.1] [--port 8000]   # JSON HTTP API, see api.py
    python -m hematovision adapt DIR --out PROFILE.json [--per-class 5] [--seed 0]   # DIR/<class>/ images
    python -m hematovision adapt DIR --unlabelled [--batch-norm] --out PROFILE.json  # DIR/ images
    python -m hematovision differential IMAGE_OR_FOLDER... [--json|--csv] [--reviews REVIEW.json]

predict, explain, evaluate and serve take ``--lab-profile PROFILE.json`` (see lab_profile.py).

A bad input never ends in a traceback: it becomes an ``error`` entry (with ``--json``)
or a one-line message on stderr, and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Sequence

from hematovision.model.imaging import ImageError

EXIT_OK = 0
EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2
# Commands that run gradients; predict, evaluate, adapt and serve run on OpenVINO and never
# import TensorFlow (unless --backend tensorflow).
NEEDS_TENSORFLOW = ("explain", "compare", "bench")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command in NEEDS_TENSORFLOW or args.backend in ("tensorflow", "tf"):
        _import_tensorflow_quietly()
    try:
        return args.handler(args)
    except (ImageError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        _fail(str(exc), as_json=getattr(args, "json", False))
        return EXIT_INPUT_ERROR


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up log lines kept off the terminal.

    TensorFlow 2.21 prints oneDNN/CPU-feature notices from C++ before any Python
    setting can silence them; in a CLI they bury the answer.
    """
    import os

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hematovision",
        description="Classify white blood cells and explain the decision.",
    )
    parser.add_argument("--model", help="a .keras model file (default: the committed model)")
    parser.add_argument("--backend", choices=("openvino", "tensorflow", "tf"), default=None,
                        help="what runs the forward passes (default: openvino, or $HEMATOVISION_BACKEND); "
                             "gradient methods always use TensorFlow")
    parser.add_argument("--precision", choices=("f32", "bf16", "int8"), default=None,
                        help="OpenVINO's arithmetic (default: int8 where the model ships a quantised "
                             "network with its own trust checks, else f32; or $HEMATOVISION_PRECISION; "
                             "README, 'Speed', says why)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="classify images; a folder means the images directly in it (not its sub-folders)")
    predict.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                         help="image files, or folders: the images directly in them, not sub-folders")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.add_argument("--csv", metavar="FILE",
                         help="also write one CSV row per image to FILE ('-': print only the CSV)")
    _add_lab_profile(predict)
    _add_engine(predict)
    predict.set_defaults(handler=_predict)

    explain = commands.add_parser("explain", help="write an explanation overlay as PNG")
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument("--method", default="gradcam",
                         help="gradcam, gradcam++, lime, shap, integrated_gradients, occlusion, smoothgrad or scorecam")
    explain.add_argument("--out", required=True, metavar="FILE.png")
    explain.add_argument("--target", help="class to explain (default: the predicted class)")
    explain.add_argument("--cell", type=int, default=1,
                         help="in a field with several white cells, which one (1 = the most strongly stained nucleus; see predict)")
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--opacity", type=float, default=0.6, help="heatmap opacity, 0-1")
    explain.add_argument(
        "--view", choices=["both", "positive", "negative"], default="both",
        help="for LIME and SHAP: evidence for, against, or both",
    )
    explain.add_argument("--json", action="store_true", help="print the explanation's metadata as JSON")
    _add_lab_profile(explain)
    explain.set_defaults(handler=_explain)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy on a folder with one sub-folder per class"
    )
    evaluate.add_argument("data_dir", metavar="DIR")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    _add_lab_profile(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    compare = commands.add_parser(
        "compare", help="score explanation methods over a data set (faithfulness, agreement, sanity check)")
    compare.add_argument("--data-dir", required=True, metavar="DIR", help="DIR/<class>/ images")
    compare.add_argument("--per-class", type=int, default=5, metavar="N", help="images per class (seeded)")
    compare.add_argument("--methods", default=None, help="comma-separated (default: all registered methods)")
    compare.add_argument("--out", required=True, metavar="DIR", help="folder for the CSV, JSON and PNG files")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--steps", type=int, default=20, help="deletion/insertion steps")
    compare.add_argument("--baseline", default="blur(64)", help="replacement for removed pixels: blur(N) or constant(V)")
    compare.add_argument("--sanity-per-class", type=int, default=1, metavar="K",
                         help="first K images of each class also get the model-randomisation check (slow)")
    compare.add_argument("--stability-per-class", type=int, default=2, metavar="K",
                         help="first K images of each class also get the seed-stability check")
    compare.add_argument("--stability-seeds", type=int, default=3, metavar="S",
                         help="seeds per stability check (at least 2)")
    _add_engine(compare)
    compare.set_defaults(handler=_compare)

    bench = commands.add_parser("bench", help="measure load, predict and explanation speed")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--repeats", type=_positive_int, default=5, help="timed runs per measurement")
    bench.add_argument(
        "--compare-tutorial",
        action="store_true",
        help="also time LIME and SHAP the way the libraries' tutorials call them",
    )
    bench.add_argument(
        "--compare-reference",
        action="store_true",
        help="also measure how closely the LIME and SHAP defaults match high-budget "
             "references (LIME 2000 samples, SHAP 2000 evaluations), and time the "
             "tutorial-style calls too: slow, ~1 min per image",
    )
    bench.add_argument("--reference-images", type=_positive_int, default=20, metavar="N",
                       help="cells for --compare-reference (default 20)")
    bench.set_defaults(handler=_bench)

    serve = commands.add_parser(
        "serve",
        help="run the JSON HTTP API (Flask's threaded server: this machine or a small deployment)",
        description="Serve POST /predict, POST /explain and GET /health (see README, 'HTTP API'). "
                    "Listening beyond this machine needs bearer tokens: set "
                    "HEMATOVISION_API_TOKENS_FILE to a file with one token a line. For a shared "
                    "server, run gunicorn behind a TLS proxy instead (docs/security.md).",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; any other "
                            "needs HEMATOVISION_API_TOKENS_FILE)")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
    _add_lab_profile(serve)
    serve.set_defaults(handler=_serve)

    adapt = commands.add_parser(
        "adapt", help="build a lab profile that fits the model to your lab's images",
        description="Few-shot (default): DIR holds one folder per class (eosinophil, lymphocyte, monocyte, "
                    "neutrophil) with a few of your lab's labelled cells; the model's last layer is refitted "
                    "on them. --unlabelled: DIR holds at least 30 of your lab's images directly; only the "
                    "'unfamiliar lab' check is fitted to them, and with --batch-norm also the network's last batch "
                    "norm. Use the profile with --lab-profile.")
    adapt.add_argument("data_dir", metavar="DIR")
    adapt.add_argument("--out", required=True, metavar="PROFILE.json")
    adapt.add_argument("--unlabelled", action="store_true", help="DIR holds unlabelled images directly")
    adapt.add_argument("--batch-norm", action="store_true",
                       help="with --unlabelled: also re-estimate the last batch norm on the images, which changes "
                            "the classes; from images with the four types in similar numbers (not a differential, "
                            "which is mostly neutrophils); the Model page has its numbers")
    adapt.add_argument("--per-class", type=_positive_int, default=5, metavar="K",
                       help="labelled cells used per class (a seeded draw when a folder holds more; default 5)")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--json", action="store_true", help="print the profile's summary as JSON")
    adapt.set_defaults(handler=_adapt)

    differential = commands.add_parser(
        "differential", help="count the white-cell differential of many images, with exact 95%% intervals",
        description="Every white cell of every image is classified and counted, as on the app's Batch page; each "
                    "class gets its count, share and exact (Clopper-Pearson) 95%% interval, and a flag against the "
                    "adult reference range that says whether more cells would tell. With --reviews, a review file "
                    "saved on the Batch page is applied first.")
    differential.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                              help="image files, or folders: the images directly in them, not sub-folders")
    output = differential.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", action="store_true", help="print one CSV row per class")
    differential.add_argument("--reviews", metavar="REVIEW.json",
                              help="a review file saved on the Batch page, for these images and this model")
    _add_lab_profile(differential)
    differential.set_defaults(handler=_differential)
    return parser


def _add_lab_profile(command: argparse.ArgumentParser) -> None:
    command.add_argument("--lab-profile", metavar="PROFILE.json",
                         help="a lab profile made by `adapt` for this model (default: none, the shipped model)")


def _add_engine(command: argparse.ArgumentParser) -> None:
    command.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: this process (default); ray: Ray workers, one classifier each, "
                              "for big folders (an optional extra; see docs/scale.md)")
    command.add_argument("--address", metavar="ADDR",
                         help="with --engine ray: join the Ray cluster at ADDR (default: start Ray here)")
    command.add_argument("--workers", type=_positive_int, metavar="N",
                         help="with --engine ray: how many workers (default: one per CPU, here or of the cluster)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _classifier(args):
    from hematovision.model.classifier import load_classifier

    return load_classifier(args.model, lab_profile=getattr(args, "lab_profile", None), backend=args.backend,
                           precision=args.precision)


def _engine(args) -> str:
    """--engine, once its options are known to fit (and Ray, if asked for, is installed)."""
    if args.engine == "local" and (args.address or args.workers):
        raise ValueError("--address and --workers go with --engine ray.")
    if args.engine == "ray":
        from hematovision.interfaces.ray_engine import import_ray

        import_ray()
    return args.engine


def _run_each(args, work, items: list) -> list:
    """``work(classifier, item)`` for every item, in order: here on one classifier, or with
    ``--engine ray`` on Ray workers that each load their own (progress on stderr)."""
    if _engine(args) == "local":
        classifier = _classifier(args)
        return [work(classifier, item) for item in items]
    from hematovision.interfaces.ray_engine import RayOptions, run_each
    from hematovision.model.backends import chosen_backend, requested_precision

    # Settled here, so $HEMATOVISION_BACKEND and _PRECISION on this machine are what count.
    options = RayOptions(address=args.address, workers=args.workers, model=args.model,
                         backend=chosen_backend(args.backend), precision=requested_precision(args.precision),
                         lab_profile=getattr(args, "lab_profile", None))
    return run_each(work, items, options, progress=lambda line: print(line, file=sys.stderr))


def _adapt(args) -> int:
    from hematovision.model.classifier import CLASS_NAMES
    from hematovision.model.evaluation import find_class_folders, list_images
    from hematovision.model.lab_profile import build_few_shot, build_unlabelled

    folder, out = Path(args.data_dir), Path(args.out)
    if not folder.is_dir():
        raise NotADirectoryError(f"Not a folder: {folder}")
    if out.suffix.lower() != ".json":
        raise ValueError(f"--out must name a .json file, got {out.name}")
    if not out.parent.is_dir():
        raise NotADirectoryError(f"The folder for --out does not exist: {out.parent}")
    if args.batch_norm and not args.unlabelled:
        raise ValueError("--batch-norm goes with --unlabelled: a few-shot profile refits the last layer instead.")
    if args.unlabelled:
        images = list_images(folder)
        if not images and find_class_folders(folder):
            raise ValueError(f"{folder} holds class folders, not images: drop --unlabelled for a few-shot profile.")
        profile = build_unlabelled(_classifier(args), images, batch_norm=args.batch_norm)
        given = len(images)
    else:
        classes = find_class_folders(folder)
        missing = [name.lower() for name in CLASS_NAMES if name not in classes]
        if missing:
            raise ValueError(f"A few-shot profile needs one folder per class in {folder}; missing: "
                             f"{', '.join(missing)}. (For images without labels, add --unlabelled.)")
        labelled = {name: list_images(path) for name, path in classes.items()}
        profile = build_few_shot(_classifier(args), labelled, per_class=args.per_class, seed=args.seed)
        given = sum(min(len(images), args.per_class) for images in labelled.values())
    profile.save(out)
    summary = {**profile.as_dict(), "images_given": given, "out": str(out)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        left_out = given - profile.images
        print(f"Wrote {profile.describe()} to {out}"
              + (f"; {left_out} image(s) left out (unreadable, or not like a stained white cell)" if left_out else ""))
    if profile.caution:
        print(f"Caution: {profile.caution}", file=sys.stderr)
    return EXIT_OK


def _predict(args) -> int:
    from hematovision.workflows.predict_files import predict_file

    if args.csv == "-" and args.json:
        raise ValueError("--csv - and --json both want stdout; write the CSV to a file instead.")
    if args.csv not in (None, "-") and not Path(args.csv).parent.is_dir():
        raise NotADirectoryError(f"The folder for --csv does not exist: {Path(args.csv).parent}")
    listed = _expand_folders(args.images)
    answers = iter(_run_each(args, predict_file, [name for name, problem in listed if problem is None]))
    results = [{"file": name, "error": problem} if problem else next(answers) for name, problem in listed]
    failures = sum("error" in entry for entry in results)
    if args.csv:
        _write_predictions_csv(results, args.csv, with_profile=args.lab_profile is not None)
    if args.csv == "-":
        for entry in results:
            if "error" in entry:
                print(f"{entry['file']}: error: {entry['error']}", file=sys.stderr)
    elif args.json:
        print(json.dumps(results, indent=2))
    else:
        for entry in results:
            if "error" in entry:
                print(f"{entry['file']}: error: {entry['error']}", file=sys.stderr)
            elif len(entry["cells"]) == 1:
                print(f"{entry['file']}: {_cell_line(entry)}")
            else:
                print(f"{entry['file']}: {len(entry['cells'])} white cells")
                for number, cell in enumerate(entry["cells"], 1):
                    box = cell["cell_box"]
                    print(f"  cell {number} at x={box['x']} y={box['y']} ({box['width']} px): {_cell_line(cell)}")
    return EXIT_INPUT_ERROR if failures else EXIT_OK


def _expand_folders(names: Sequence[str]) -> list[tuple[str, str | None]]:
    """(file, problem or None) for each argument, a folder standing for the images directly in it.

    Not recursive, like ``evaluate``'s class folders: a folder of results or thumbnails
    beside the images is not swept in by accident. A folder without images is a problem
    to report, not silence.
    """
    from hematovision.model.evaluation import list_images
    from hematovision.model.imaging import SUPPORTED_SUFFIXES

    expanded: list[tuple[str, str | None]] = []
    for name in names:
        path = Path(name)
        if not path.is_dir():
            expanded.append((name, None))
            continue
        try:
            images = list_images(path)
        except OSError as exc:
            expanded.append((name, f"The folder cannot be read ({exc.strerror or exc})."))
            continue
        if not images:
            suffixes = ", ".join(SUPPORTED_SUFFIXES)
            expanded.append((name, f"No images ({suffixes}) directly in this folder."))
        expanded.extend((str(image), None) for image in images)
    return expanded


def _write_predictions_csv(results: list[dict], destination: str, with_profile: bool = False) -> None:
    """One row per image: its top-level answer, a probability column per class, any error,
    and with a lab profile in use, the profile's SHA-256."""
    from hematovision.model.classifier import CLASS_NAMES

    probability_columns = {name: f"probability_{name.lower()}" for name in CLASS_NAMES}
    columns = ["file", "label", "confidence", *probability_columns.values(),
               "status", "other_type", "cell_count", "error"] + (["lab_profile"] if with_profile else [])
    rows = []
    for entry in results:
        row = {"file": entry["file"], "error": entry.get("error", "")}
        if "error" not in entry:
            row.update({key: entry[key] for key in ("label", "confidence", "status", "cell_count")})
            if with_profile:
                row["lab_profile"] = entry["lab_profile"]
            row["other_type"] = entry.get("other_type") or ""
            row.update({column: entry["probabilities"][name]
                        for name, column in probability_columns.items()})
        rows.append(row)
    if destination == "-":
        _write_csv_rows(sys.stdout, columns, rows)
        return
    try:
        with open(destination, "w", newline="", encoding="utf-8") as handle:
            _write_csv_rows(handle, columns, rows)
    except OSError as exc:
        raise ValueError(f"Cannot write --csv {destination}: {exc.strerror or exc}") from None


def _write_csv_rows(handle, columns: list[str], rows: list[dict]) -> None:
    writer = csv.DictWriter(handle, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)


def _compare(args) -> int:
    from hematovision.explanation.compare import run_comparison
    from hematovision.explanation.explainers import available_methods

    if args.per_class < 1:
        raise ValueError("--per-class must be at least 1.")
    if args.stability_seeds < 2:
        raise ValueError("--stability-seeds must be at least 2.")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else available_methods()
    out = Path(args.out)
    on_ray = _engine(args) == "ray"
    summary = run_comparison(None if on_ray else _classifier(args), Path(args.data_dir), args.per_class, methods,
                             out, seed=args.seed, steps=args.steps, baseline=args.baseline,
                             sanity_per_class=args.sanity_per_class, stability_per_class=args.stability_per_class,
                             stability_seeds=args.stability_seeds, progress=lambda line: print(line, file=sys.stderr),
                             each_image=(lambda work, images: _run_each(args, work, images)) if on_ray else None)
    for method, entry in summary["methods"].items():
        stability = entry["stability_spearman"]["mean"]
        print(f"{method:22s} deletion AUC {entry['deletion_auc']['mean']:.3f}  insertion AUC "
              f"{entry['insertion_auc']['mean']:.3f}  drop {entry['drop']['mean']:.3f}  "
              f"{entry['seconds']['mean']:.2f} s  seed stability "
              f"{'-' if stability is None else f'{stability:.2f}'}  "
              f"sanity {entry['sanity_passed']}/{entry['sanity_checked']}")
    print(f"Wrote per_image.csv, summary.csv, summary.json, agreement.csv, curves.png and figures.html to {out}")
    return EXIT_OK


def _cell_line(cell: dict) -> str:
    """'neutrophil (93.1%) - Confident'. Another cell type leads with the type it looks like,
    since its class among the four is only the nearest of them."""
    from hematovision.model.cell_types import OTHER_TYPE_TEXT
    from hematovision.model.trust import OTHER_CELL_TYPE

    call = f"{cell['label'].lower()} ({cell['confidence']:.1%})"
    if cell.get("status") != OTHER_CELL_TYPE:
        return f"{call} - {cell['status_text']}"
    chance = cell.get("other_type_probability")
    looks = OTHER_TYPE_TEXT.get(cell.get("other_type") or "", "another type")
    return (f"{cell['status_text']}: looks most like {looks}"
            + (f" ({chance:.0%} likely none of the four)" if chance is not None else "")
            + f"; nearest of the four: {call}")


def _explain(args) -> int:
    from hematovision.explanation.explainers import explain
    from hematovision.explanation.overlay import explanation_png

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out.name}")
    if not out.parent.is_dir():
        raise NotADirectoryError(f"The folder for --out does not exist: {out.parent}")
    classifier = _classifier(args)
    cells = classifier.predict_cells(Path(args.image))
    if not 1 <= args.cell <= len(cells):
        raise ValueError(f"--cell {args.cell}: this image has {len(cells)} white cell(s); choose 1 to {len(cells)}.")
    prediction = cells[args.cell - 1]
    explanation = explain(
        classifier, prediction.model_input, method=args.method, target=args.target, seed=args.seed
    )
    out.write_bytes(
        explanation_png(prediction.model_input, explanation, opacity=args.opacity, view=args.view)
    )
    summary = {
        "file": args.image,
        "cell": args.cell,
        "prediction": prediction.as_dict(),
        "explanation": explanation.metadata(),
        "out": str(out),
    }
    if classifier.lab_profile is not None:
        summary["lab_profile"] = classifier.lab_profile.as_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{explanation.label} for {explanation.target.lower()} "
            f"({explanation.seconds:.2f} s, {explanation.evaluations} model evaluations) -> {out}"
        )
    return EXIT_OK


def _differential(args) -> int:
    from hematovision.workflows.batch import Skipped, UploadedImage, classify_batch
    from hematovision.workflows.differential import differential
    from hematovision.workflows.review_file import MAX_REVIEW_BYTES, Review, resume

    review = None
    if args.reviews:
        path = Path(args.reviews)
        if not path.is_file():
            raise FileNotFoundError(f"No review file at {path}")
        if path.stat().st_size > MAX_REVIEW_BYTES:
            raise ValueError(f"{path} is {path.stat().st_size:,} bytes; a review file is at most "
                             f"{MAX_REVIEW_BYTES // 2**20} MB.")
        review = Review.from_bytes(path.read_bytes())
    classifier = _classifier(args)
    if review is not None:
        review.check_model(classifier.model_sha256)
    images, skipped = [], []
    for name, problem in _expand_folders(args.images):
        try:
            if problem is None:
                images.append(UploadedImage(name, Path(name).read_bytes()))
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc})"
        if problem is not None:
            skipped.append(Skipped(name, problem))
    cells, unreadable = classify_batch(classifier, images)
    skipped += unreadable
    applied = {}
    if review is not None:
        resumed = resume(review, cells)
        applied = {"reviews": {"file": args.reviews, "initials": review.initials, "note": review.note,
                                           "created": review.created, "matched": resumed.matched,
                                           "not_found": [saved.describe() for saved in resumed.not_found],
                                           "not_in_file": len(resumed.not_in_file)}}
    answer = {**differential(cells).as_dict(), "images": len(images) - len(unreadable),
              "skipped": [{"file": item.name, "error": item.reason} for item in skipped],
              "model_sha256": classifier.model_sha256,
              "lab_profile": classifier.lab_profile.sha256 if classifier.lab_profile else None, **applied}
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        for item in skipped:
            print(f"{item.name}: error: {item.reason}", file=sys.stderr)
        if args.csv:
            _write_differential_csv(answer)
        else:
            _print_differential(answer)
    return EXIT_INPUT_ERROR if skipped else EXIT_OK


def _write_differential_csv(answer: dict) -> None:
    """One row per class; the cells counted and kept apart repeat on each row, so a sheet needs no second table."""
    rows = [{"class": name, "count": entry["count"], "share": entry["share"],
             "ci95_low": entry["ci95"][0] if entry["ci95"] else "", "ci95_high": entry["ci95"][1] if entry["ci95"] else "",
             "reference_low_percent": entry["reference_percent"][0],
             "reference_high_percent": entry["reference_percent"][1], "flag": entry["flag"],
             "finding": int(entry["finding"]), "more_cells_to_decide": entry["more_cells_to_decide"],
             "flag_text": entry["flag_text"], "cells_counted": answer["cells_counted"],
             "other_cells": answer["other_cells"], "not_blood_cells": answer["not_blood_cells"]}
            for name, entry in answer["classes"].items()]
    _write_csv_rows(sys.stdout, list(rows[0]), rows)


def _print_differential(answer: dict) -> None:
    print(f"{answer['cells_counted']} cells counted of {answer['total_cells']} found in {answer['images']} images "
          f"({answer['other_cells']} other cell types and {answer['not_blood_cells']} non-blood images kept apart)")
    for name, entry in answer["classes"].items():
        interval = "-" if entry["ci95"] is None else f"{entry['ci95'][0]:.1%}-{entry['ci95'][1]:.1%}"
        share = "-" if entry["share"] is None else f"{entry['share']:.1%}"
        print(f"  {name.lower():<11} {entry['count']:>5}  {share:>6}  (95% CI {interval})  {entry['flag_text']}")
    if "reviews" in answer:
        reviews = answer["reviews"]
        print(f"reviews from {reviews['file']} ({reviews['initials'] or 'no initials'}): {reviews['matched']} cells "
              f"matched, {len(reviews['not_found'])} not found, {reviews['not_in_file']} not in the file")


def _evaluate(args) -> int:
    from hematovision.model.evaluation import evaluate_folder

    classifier = _classifier(args)
    report = evaluate_folder(classifier, Path(args.data_dir))
    if classifier.lab_profile is not None:
        report["lab_profile"] = classifier.lab_profile.as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    low, high = report["accuracy_ci95"]
    if classifier.lab_profile is not None:
        print(f"with {classifier.lab_profile.describe()}")
    print(f"images: {report['n']}  accuracy: {report['accuracy']:.2%} (95% CI {low:.1%}-{high:.1%})")
    print("recall per class:")
    for name, scores in report["per_class"].items():
        print(f"  {name.lower():<11} {scores['recall']:.2%}  (n={scores['support']})")
    print("confusion matrix (rows: true, columns: predicted):")
    names = report["class_names"]
    print("      " + "".join(f"{n[:4].lower():>7}" for n in names))
    for name, row in zip(names, report["confusion_matrix"]):
        print(f"  {name[:4].lower():<4}" + "".join(f"{v:>7}" for v in row))
    for entry in report["unreadable"]:
        print(f"skipped {entry['file']}: {entry['error']}", file=sys.stderr)
    return EXIT_OK


def _bench(args) -> int:
    from hematovision.interfaces.bench import run_bench

    # The reference check reports agreement; the tutorial timing beside it, the speed-up.
    results = run_bench(_classifier(args), repeats=args.repeats,
                        compare_tutorial=args.compare_tutorial or args.compare_reference,
                        compare_reference=args.compare_reference,
                        reference_images=args.reference_images)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")
    return EXIT_OK


def _serve(args) -> int:
    import numpy as np

    from hematovision.interfaces.api import create_app
    from hematovision.interfaces.api_security import SecuritySettings, check_bind

    # Settings and address are checked before the model loads: a refusal comes at once.
    security = SecuritySettings.from_environment()
    check_bind(args.host, security)
    classifier = _classifier(args)
    # One throwaway prediction traces the model's graph now, so the first request is not slow.
    side = classifier.input_size
    classifier.predict_cells(np.full((side, side, 3), 220, np.uint8))
    app = create_app(classifier, security=security)
    access = (f"{len(security.tokens.digests)} bearer token(s) accepted" if security.tokens
              else "no tokens: this machine only")
    print(f"HematoVision API on http://{args.host}:{args.port}/ "
          f"(GET /health, POST /predict, POST /explain; {access}); Ctrl+C stops it.", file=sys.stderr)
    if classifier.lab_profile is not None:
        print(f"Using {classifier.lab_profile.describe()}.", file=sys.stderr)
    app.run(host=args.host, port=args.port, threaded=True, debug=False, load_dotenv=False)
    return EXIT_OK


def _fail(message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
