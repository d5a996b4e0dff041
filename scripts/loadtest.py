"""Load test: many people using the app at once, and one person rerunning Explain for a long time.

Two measurements, printed as one JSON object:

* ``concurrent``: one ``streamlit run streamlit_app.py`` server on a free localhost port and
  N browser contexts (N separate Streamlit sessions) in one headless Chromium, driven at the
  same time with async Playwright. Each session uploads its own sample on Classify, waits for
  the prediction, opens Explain and waits for all four overlays. Per session: success, the
  errors the page showed, time to prediction, time to the four overlays. For the server: its
  resident memory (its own and its children's VmRSS) idle, after one warm-up session
  ("before"), at peak (sampled every 0.5 s) and 5 s after the sessions closed ("after";
  Streamlit keeps a closed session's state for server.disconnectedSessionTTL, 120 s).
  ``--rounds 2`` runs the N sessions twice on the same server, to see whether memory
  levels off.
* ``reruns``: the Explain page rerun many times in one AppTest session in this process,
  with the process's RSS before and after, and how many classifiers and explainers were
  built (none may be, once the page has warmed up).

    .venv/bin/python scripts/loadtest.py [--sessions 8] [--rounds 1] [--reruns 500]
                                         [--only concurrent|reruns] [--no-warmup]

Playwright drives Debian's /usr/bin/chromium and never downloads a browser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # app/ and hematovision/ live at the root
    sys.path.insert(0, str(REPO_ROOT))

APP = REPO_ROOT / "streamlit_app.py"
SAMPLES = REPO_ROOT / "samples"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "load"
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1400, "height": 3000}  # tall enough that the four maps are in view
MAP_TITLES = ("Grad-CAM", "Grad-CAM++", "LIME", "SHAP")
# The pictures the browser finished with but could not show.
BROKEN_IMAGES = "imgs => imgs.filter(img => img.complete && img.naturalWidth === 0).map(img => img.src)"
# Resolves, once the browser is done with an <img> (loaded or broken), to its pixel width, 0 if
# broken. "Visible" is not enough: an <img> is visible as soon as it has a size, and under load
# its bytes can arrive later than the caption beside it.
IMAGE_WIDTH_WHEN_SETTLED = """img => img.complete ? img.naturalWidth : new Promise(resolve => {
    const settled = () => resolve(img.naturalWidth);
    img.addEventListener("load", settled, {once: true});
    img.addEventListener("error", settled, {once: true});
})"""
CLASS_TITLES = re.compile(r"^(Eosinophil|Lymphocyte|Monocyte|Neutrophil)$")
MB = 2**20

# Generous on purpose: the sessions queue for 2 shared cores, and LIME and SHAP take a
# few seconds per image each, one image at a time per method.
SERVER_START_S = 180
STEP_S = 300  # one page step (navigation, classification) while the other sessions explain
EXPLAIN_S = 900  # all four overlays, behind up to N-1 other sessions' LIME and SHAP
SETTLE_S = 5.0  # after the last session closes, before the "after" memory reading
SAMPLE_EVERY_S = 0.5


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    """pid and every process below it (Streamlit starts none today; a child would count)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in (task / "children").read_text().split())
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of the process and its children, in bytes (0 for a process that is gone)."""
    total = 0
    for process in _descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024  # reported in kB
    return total


class PeakSampler:
    """Samples a process tree's RSS in a thread, so a short spike between readings is seen."""

    def __init__(self, pid: int, every_s: float = SAMPLE_EVERY_S) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------
def free_port() -> int:
    """A port nobody listens on now: the kernel picks it for a socket bound to port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run streamlit_app.py` on a free port; (url, process), stopped whatever happens."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as log_file:
        server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/_stcore/health", server, log, SERVER_START_S)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def stop_group(server: subprocess.Popen, timeout_s: float = 60) -> None:
    """Stop a server started with ``start_new_session=True`` and every process it forked
    (gunicorn's workers): SIGTERM to the group, SIGKILL if it has not gone by ``timeout_s``."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def wait_until_answering(url: str, server: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; RuntimeError, with the end of the server's ``log``,
    if the server exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer {url} within {timeout_s} s:\n{log.read_text()[-4000:]}")


# ---------------------------------------------------------------------------
# One browser session
# ---------------------------------------------------------------------------
def sample_order() -> list[Path]:
    """The samples with the classes interleaved (eosinophil-1, lymphocyte-1, ...), so any
    first N sessions cover as many classes and distinct images as there are."""
    def number(path: Path) -> int:
        tail = path.stem.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    return sorted(SAMPLES.glob("*.jpeg"), key=lambda p: (number(p), p.name))


def tagged_jpeg(data: bytes, tag: str) -> bytes:
    """The same JPEG with a comment segment after its start marker: identical pixels, new bytes.

    The app caches predictions and maps by the upload's SHA-256, so a tagged copy costs the
    server as much as a new photo would; an untagged repeat would be served from the cache.
    """
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    text = tag.encode()
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


def uploads(count: int, offset: int, ordered: list[Path], tag: str) -> list[tuple[str, bytes]]:
    """(file name, bytes) for ``count`` sessions; copies are tagged once the samples run out."""
    chosen = []
    for slot in range(offset, offset + count):
        path = ordered[slot % len(ordered)]
        data = path.read_bytes()
        if slot >= len(ordered):
            data = tagged_jpeg(data, f"{tag}-{slot}")
        chosen.append((path.name, data))
    return chosen


async def _page_errors(page) -> list[str]:
    """What the page shows as failures: st.error boxes and exceptions."""
    texts = []
    for test_id in ("stAlertContentError", "stException"):
        with contextlib.suppress(Exception):
            texts += [t.strip() for t in await page.get_by_test_id(test_id).all_inner_texts()]
    return texts


async def run_session(browser, url: str, upload: tuple[str, bytes], name: str) -> dict[str, Any]:
    """Classify ``upload`` (file name, bytes) on Classify, then wait for its four overlays on
    Explain, in a fresh browser context (a new Streamlit session); never raises."""
    from playwright.async_api import expect

    file_name, data = upload
    result: dict[str, Any] = {"session": name, "file": file_name, "success": False, "errors": [],
                              "prediction": None, "time_to_prediction_s": None,
                              "time_to_overlays_s": None, "session_s": None, "media_not_found": []}
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(STEP_S * 1000)
    page.on("pageerror", lambda error: result["errors"].append(f"browser: {error}"))

    def note_unserved_picture(response) -> None:
        # Streamlit drops a run's pictures once the next run has replaced them, so a request
        # still in flight from a view the user has just left can get 404. Noted here; it is an
        # error only if a picture on the page at the end is broken (checked below).
        if response.status >= 400 and "/media/" in response.url:
            result["media_not_found"].append(f"{response.status} {response.url}")

    page.on("response", note_unserved_picture)
    started = time.monotonic()
    step = "open the app"
    try:
        await page.goto(url)
        await expect(page.get_by_test_id("stSidebarNav")).to_be_visible(timeout=STEP_S * 1000)
        step = "open Classify"
        await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Classify").click()
        await expect(page.get_by_role("heading", name="Classify a white blood cell")).to_be_visible(
            timeout=STEP_S * 1000)

        step = "classify the upload"
        uploaded = time.monotonic()
        await page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(
            {"name": file_name, "mimeType": "image/jpeg", "buffer": data})
        value = page.get_by_test_id("stMetric").filter(has_text="Predicted type").get_by_test_id(
            "stMetricValue")
        await expect(value).to_have_text(CLASS_TITLES, timeout=STEP_S * 1000)
        await expect(page.get_by_role("heading", name=f"Result: {file_name}")).to_be_visible(
            timeout=STEP_S * 1000)
        result["time_to_prediction_s"] = round(time.monotonic() - uploaded, 2)
        result["prediction"] = (await value.inner_text()).strip()

        step = "open Explain"
        clicked = time.monotonic()
        await page.get_by_role("button", name="Explain this image").click()
        await expect(page.get_by_role("heading", name="Explain the decision")).to_be_visible(
            timeout=STEP_S * 1000)
        for title in MAP_TITLES:
            step = f"wait for the {title} overlay"
            heading = page.get_by_role("heading", name=title, exact=True)
            card = page.get_by_test_id("stColumn").filter(has=heading)
            image = card.get_by_test_id("stImage").locator("img")
            await expect(image).to_be_visible(timeout=EXPLAIN_S * 1000)
            await expect(card).to_contain_text("model evaluation", timeout=EXPLAIN_S * 1000)
            if not await asyncio.wait_for(image.evaluate(IMAGE_WIDTH_WHEN_SETTLED), STEP_S):
                source = await image.get_attribute("src")
                raise AssertionError(f"the {title} overlay is a broken image ({source})")
        result["time_to_overlays_s"] = round(time.monotonic() - clicked, 2)
        step = "check every picture on the page"
        broken = await page.eval_on_selector_all("img", BROKEN_IMAGES)
        if broken:
            raise AssertionError(f"broken pictures on the page: {broken}")
    except Exception as exc:  # a failed session is a result to report, not a crash
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        result["errors"].append(f"{step}: {type(exc).__name__}: {first_line}")
        with contextlib.suppress(Exception):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=ARTIFACTS / f"{name}-failed.png", full_page=True)
    result["errors"] += await _page_errors(page)
    result["session_s"] = round(time.monotonic() - started, 2)
    result["success"] = result["time_to_overlays_s"] is not None and not result["errors"]
    await context.close()
    return result


async def _drive(url: str, pid: int, sessions: int, rounds: int, warmup: bool) -> dict[str, Any]:
    """Optional warm-up session, then ``rounds`` times N sessions at once, sampling the
    server's RSS throughout and reading it SETTLE_S after each round's sessions close."""
    from playwright.async_api import async_playwright

    ordered = sample_order()
    if not ordered:
        raise FileNotFoundError(f"no *.jpeg samples in {SAMPLES}")
    # The warm-up takes a tagged copy, so every one of the sessions below is a cache miss too.
    warm_upload = (ordered[-1].name, tagged_jpeg(ordered[-1].read_bytes(), "warmup"))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            warm = await run_session(browser, url, warm_upload, "warmup") if warmup else None
            before = rss_bytes(pid)
            results, walls, after = [], [], []
            with PeakSampler(pid) as sampler:
                for number in range(rounds):
                    started = time.monotonic()
                    batch = uploads(sessions, number * sessions, ordered, f"round{number + 1}")
                    done = await asyncio.gather(*(
                        run_session(browser, url, upload, f"r{number + 1}-session-{i + 1}")
                        for i, upload in enumerate(batch)))
                    walls.append(round(time.monotonic() - started, 2))
                    results += [{"round": number + 1, **r} for r in done]
                    await asyncio.sleep(SETTLE_S)
                    after.append(rss_bytes(pid))
            return {"warmup": warm, "before_rss": before, "results": results, "wall_s": walls,
                    "peak_rss": sampler.peak, "after_rss": after, "rss_samples": sampler.samples}
        finally:
            await browser.close()


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"median": round(statistics.median(values), 2) if values else None,
            "max": round(max(values), 2) if values else None}


def concurrent_sessions(sessions: int = 8, rounds: int = 1, warmup: bool = True) -> dict[str, Any]:
    """N simultaneous browser sessions (``rounds`` times) against one fresh server.

    With ``warmup`` one session runs first, alone, so that loading the model and compiling
    shap's partition tree are not counted as load, and "before" is the memory of a server
    that has already served one user. Every session uploads different bytes (see
    ``tagged_jpeg``), so none is served from another's cache.
    """
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: apt-get install chromium")
    started = time.monotonic()
    with streamlit_server(ARTIFACTS / "streamlit.log") as (url, server):
        server_start_s = time.monotonic() - started
        idle = rss_bytes(server.pid)
        run = asyncio.run(_drive(url, server.pid, sessions, rounds, warmup))
        alive = server.poll() is None
    results = run["results"]
    return {
        "sessions": sessions,
        "rounds": rounds,
        "succeeded": sum(r["success"] for r in results),
        "server_alive_at_end": alive,
        "server_start_s": round(server_start_s, 1),
        "warmup_session": run["warmup"],
        "wall_s": run["wall_s"],
        "time_to_prediction_s": _spread([r["time_to_prediction_s"] for r in results
                                         if r["time_to_prediction_s"] is not None]),
        "time_to_overlays_s": _spread([r["time_to_overlays_s"] for r in results
                                       if r["time_to_overlays_s"] is not None]),
        "server_rss_mb": {
            "idle": round(idle / MB), "before": round(run["before_rss"] / MB),
            "peak": round(run["peak_rss"] / MB), "after": round(run["after_rss"][-1] / MB),
            "after_each_round": [round(value / MB) for value in run["after_rss"]],
        },
        "rss_samples": run["rss_samples"],
        "after_measured_s_after_close": SETTLE_S,
        "per_session": results,
    }


# ---------------------------------------------------------------------------
# Reruns in one session (in-process, streamlit.testing)
# ---------------------------------------------------------------------------
def own_rss_bytes() -> int:
    gc.collect()  # count what is still referenced, not garbage waiting for the collector
    return rss_bytes(os.getpid())


@contextlib.contextmanager
def construction_counts() -> Iterator[dict[str, int]]:
    """Count, while active: classifiers built, load_classifier() calls from the app,
    explainers built and explanations computed (the app's cache misses)."""
    from app import caches
    from hematovision.explanation.explainers.base import Explainer
    from hematovision.model.classifier import Classifier

    counts = {"classifiers_built": 0, "load_classifier_calls": 0, "explainers_built": 0,
              "explanations_computed": 0}
    saved = (Classifier.__init__, Explainer.__init__, caches.load_classifier,
             caches.explain)

    def counted(key, function):
        def wrapper(*args, **kwargs):
            counts[key] += 1
            return function(*args, **kwargs)
        return wrapper

    Classifier.__init__ = counted("classifiers_built", saved[0])
    Explainer.__init__ = counted("explainers_built", saved[1])
    caches.load_classifier = counted("load_classifier_calls", saved[2])
    caches.explain = counted("explanations_computed", saved[3])
    try:
        yield counts
    finally:
        (Classifier.__init__, Explainer.__init__, caches.load_classifier,
         caches.explain) = saved


def _check_explain_page(at, where: str) -> None:
    """The page ran cleanly and still shows four finished maps."""
    if at.exception:
        raise RuntimeError(f"{where}: the page raised {[e.value for e in at.exception]}")
    if at.error:
        raise RuntimeError(f"{where}: the page shows errors {[e.value for e in at.error]}")
    finished = [c.value for c in at.caption if "model evaluation" in c.value]
    if len(finished) != len(MAP_TITLES):
        raise RuntimeError(f"{where}: {len(finished)} of {len(MAP_TITLES)} maps finished")


def rerun_explain(reruns: int = 500, sample_key: str = "neutrophil-1", trace_every: int = 50,
                  opacities: tuple[float, ...] = (0.8, 0.5)) -> dict[str, Any]:
    """Rerun Explain ``reruns`` times in one session, moving the opacity slider each time.

    The warm-up is the first run (four explanations at the app's defaults) plus one run at
    each opacity the loop uses, so every cache the loop relies on is already filled;
    "before" is measured after it. Any later growth is memory the reruns keep.
    """
    from streamlit.testing.v1 import AppTest

    from app.caches import explainers_built
    from app.state import CURRENT_IMAGE, OPACITY, sample_image
    from hematovision.workflows.samples import find_sample

    sample = find_sample(sample_key)
    if sample is None:
        raise FileNotFoundError(f"sample {sample_key} is missing")
    with construction_counts() as counts:
        warm_started = time.monotonic()
        at = AppTest.from_file(str(APP), default_timeout=600).run()
        at.session_state[CURRENT_IMAGE] = sample_image(sample.read_bytes(), sample.key, sample.title)
        at.switch_page("app_pages/explain.py").run()
        _check_explain_page(at, "warm-up")
        for opacity in opacities:
            at.slider(key=OPACITY).set_value(opacity).run()
            _check_explain_page(at, "warm-up")
        warmup_s = time.monotonic() - warm_started
        warm_counts = dict(counts)
        warm_instances = explainers_built()
        before = own_rss_bytes()

        trace = [round(before / MB)]
        started = time.monotonic()
        for run in range(1, reruns + 1):
            at.slider(key=OPACITY).set_value(opacities[run % len(opacities)]).run()
            if run % trace_every == 0 or run == reruns:
                _check_explain_page(at, f"rerun {run}")
                trace.append(round(own_rss_bytes() / MB))
        loop_s = time.monotonic() - started
        after = own_rss_bytes()
        _check_explain_page(at, "last rerun")
        final_counts = dict(counts)
        final_instances = explainers_built()

    return {
        "reruns": reruns,
        "sample": sample_key,
        "warmup_s": round(warmup_s, 1),
        "seconds_per_rerun": round(loop_s / max(reruns, 1), 3),
        "rss_mb": {"before": round(before / MB), "after": round(after / MB)},
        "rss_growth_pct": round(100 * (after - before) / before, 2),
        "rss_trace_mb": trace,
        "trace_every": trace_every,
        "after_warmup": warm_counts,
        "during_reruns": {key: final_counts[key] - warm_counts[key] for key in final_counts},
        "explainer_instances": {"after_warmup": warm_instances, "at_end": final_instances},
    }


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="simultaneous browser sessions")
    parser.add_argument("--reruns", type=int, default=500, help="reruns of Explain in one session")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the simultaneous sessions this many times on the same server")
    parser.add_argument("--only", choices=("concurrent", "reruns"), help="run one of the two parts")
    parser.add_argument("--no-warmup", action="store_true",
                        help="no warm-up browser session: the first sessions also load the model")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    if args.only in (None, "concurrent"):
        report["concurrent"] = concurrent_sessions(args.sessions, args.rounds,
                                                   warmup=not args.no_warmup)
    if args.only in (None, "reruns"):
        report["reruns"] = rerun_explain(args.reruns)
    print(json.dumps(report, indent=2))
    concurrent_ok = "concurrent" not in report or (
        report["concurrent"]["succeeded"] == args.sessions * args.rounds)
    reruns = report.get("reruns")
    reruns_ok = reruns is None or (reruns["rss_growth_pct"] <= 10
                                   and not any(reruns["during_reruns"].values()))
    return 0 if concurrent_ok and reruns_ok else 1  # the targets of issue 6


if __name__ == "__main__":
    sys.exit(main())
