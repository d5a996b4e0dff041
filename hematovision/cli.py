"""Command-line interface: predict, explain, evaluate and bench without the app.

    python -m hematovision predict IMAGE... [--json]
    python -m hematovision explain IMAGE --method gradcam --out map.png
    python -m hematovision evaluate DIR [--json]
    python -m hematovision compare --data-dir DIR --per-class N --methods gradcam,lime --out results/
    python -m hematovision bench [--json]

A bad input never ends in a traceback: it becomes an ``error`` entry (with ``--json``)
or a one-line message on stderr, and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from hematovision.imaging import ImageError

EXIT_OK = 0
EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser("predict", help="classify one or more images")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(handler=_predict)

    explain = commands.add_parser("explain", help="write an explanation overlay as PNG")
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument("--method", default="gradcam",
                         help="gradcam, gradcam++, lime, shap, integrated_gradients, occlusion, smoothgrad or scorecam")
    explain.add_argument("--out", required=True, metavar="FILE.png")
    explain.add_argument("--target", help="class to explain (default: the predicted class)")
    explain.add_argument("--cell", type=int, default=1,
                         help="in a field with several white cells, which one (1 = biggest; see predict)")
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--opacity", type=float, default=0.6, help="heatmap opacity, 0-1")
    explain.add_argument(
        "--view", choices=["both", "positive", "negative"], default="both",
        help="for LIME and SHAP: evidence for, against, or both",
    )
    explain.add_argument("--json", action="store_true", help="print the explanation's metadata as JSON")
    explain.set_defaults(handler=_explain)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy on a folder with one sub-folder per class"
    )
    evaluate.add_argument("data_dir", metavar="DIR")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
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
    compare.set_defaults(handler=_compare)

    bench = commands.add_parser("bench", help="measure load, predict and explanation speed")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    bench.add_argument(
        "--compare-tutorial",
        action="store_true",
        help="also time LIME and SHAP the way the libraries' tutorials call them",
    )
    bench.set_defaults(handler=_bench)
    return parser


def _classifier(args):
    from hematovision.classifier import load_classifier

    return load_classifier(args.model)


def _predict(args) -> int:
    from hematovision.imaging import load_image

    classifier = _classifier(args)
    results, failures = [], 0
    for name in args.images:
        entry = {"file": name}
        try:
            cells = classifier.predict_cells(load_image(Path(name)))
            # The biggest cell first: its prediction is also the image's top-level answer,
            # and a whole smear field lists every white cell found.
            entry.update(cells[0].as_dict())
            entry["cell_count"] = sum(cell.box.found for cell in cells)
            entry["cells"] = [cell.as_dict() for cell in cells]
        except ImageError as exc:
            entry["error"] = str(exc)
            failures += 1
        results.append(entry)
    if args.json:
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


def _compare(args) -> int:
    from hematovision.compare import run_comparison
    from hematovision.explainers import available_methods

    if args.per_class < 1:
        raise ValueError("--per-class must be at least 1.")
    if args.stability_seeds < 2:
        raise ValueError("--stability-seeds must be at least 2.")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else available_methods()
    out = Path(args.out)
    summary = run_comparison(_classifier(args), Path(args.data_dir), args.per_class, methods, out, seed=args.seed,
                             steps=args.steps, baseline=args.baseline, sanity_per_class=args.sanity_per_class,
                             stability_per_class=args.stability_per_class, stability_seeds=args.stability_seeds,
                             progress=lambda line: print(line, file=sys.stderr))
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
    return f"{cell['label'].lower()} ({cell['confidence']:.1%}) - {cell['status_text']}"


def _explain(args) -> int:
    from hematovision.explainers import explain
    from hematovision.overlay import explanation_png

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
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{explanation.label} for {explanation.target.lower()} "
            f"({explanation.seconds:.2f} s, {explanation.evaluations} model evaluations) -> {out}"
        )
    return EXIT_OK


def _evaluate(args) -> int:
    from hematovision.evaluation import evaluate_folder

    report = evaluate_folder(_classifier(args), Path(args.data_dir))
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    low, high = report["accuracy_ci95"]
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
    from hematovision.bench import run_bench

    results = run_bench(repeats=args.repeats, compare_tutorial=args.compare_tutorial)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")
    return EXIT_OK


def _fail(message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
