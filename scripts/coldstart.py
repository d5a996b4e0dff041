"""Cold start: seconds from process start to the first prediction, for the CLI and the app.

    .venv/bin/python scripts/coldstart.py [--backend openvino|tensorflow] [--repeats 3]

* CLI: wall-clock of `python -m hematovision predict SAMPLE`, a fresh process each time.
* App: from launching `streamlit run` to the "Predicted type" of an uploaded sample showing
  in headless Chromium (the browser is started before the server, so its own start-up is
  not counted). Prints JSON; run it on a quiet machine, and compare backends in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.loadtest import CHROMIUM, VIEWPORT, streamlit_server  # noqa: E402

SAMPLE = REPO_ROOT / "samples" / "neutrophil-1.jpeg"


def cli_seconds(backend: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "hematovision", "--backend", backend, "predict", str(SAMPLE)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    return time.monotonic() - started


def app_seconds(browser) -> float:
    started = time.monotonic()
    with streamlit_server(REPO_ROOT / "test-artifacts" / "coldstart" / "streamlit.log") as (url, _server):
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(300_000)
        page.goto(url)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Classify").click()
        page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(SAMPLE)
        page.get_by_test_id("stMetric").filter(has_text="Predicted type").wait_for()
        seconds = time.monotonic() - started
        page.context.close()
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("openvino", "tensorflow"), default=None,
                        help="default: both, one after the other")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    backends = [args.backend] if args.backend else ["openvino", "tensorflow"]
    report = {"load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()], "sample": SAMPLE.name}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            for backend in backends:
                os.environ["HEMATOVISION_BACKEND"] = backend  # the app's server inherits it
                cli = [cli_seconds(backend) for _ in range(args.repeats)]
                app = [app_seconds(browser) for _ in range(args.repeats)]
                report[backend] = {"cli_first_prediction_s": round(statistics.median(cli), 2),
                                   "app_first_prediction_s": round(statistics.median(app), 2),
                                   "cli_runs_s": [round(v, 2) for v in cli], "app_runs_s": [round(v, 2) for v in app]}
        finally:
            browser.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
