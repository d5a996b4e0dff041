"""Memory of the HTTP API under gunicorn: RSS and PSS per worker with 1, 2 and 4 workers.

    .venv/bin/python scripts/gunicorn_rss.py [--workers 1 2 4] [--gradcam] [--out docs/bench/DATE-gunicorn-rss.json]

For each worker count, and with the model loaded in each worker after the fork (the
shipped setting) and once before it (``--preload``): start gunicorn on a free loopback
port with a throwaway tokens file, wait for /health, send /predict until every worker has
answered at least one, then read each process's memory from /proc. With ``--gradcam``, then
the same with POST /explain (Grad-CAM, the default method), whose gradients make each
worker import TensorFlow. The reference, in the
same run, is one plain Python process that made the app and answered one /predict.

RSS counts every page a process touches, shared ones included; PSS splits shared pages
between the processes that share them, so the PSS of the master and workers adds up to
what the server really takes. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.loadtest import free_port, stop_group, wait_until_answering  # noqa: E402

SAMPLE = REPO_ROOT / "samples" / "neutrophil-1.jpeg"
GUNICORN = Path(sys.executable).with_name("gunicorn")
STARTUP_TIMEOUT_S = 300
# The same app and the same request, without gunicorn: create_app() and one /predict
# through Flask's test client, in a fresh interpreter.
REFERENCE = """
import io, re
from hematovision.interfaces.api import create_app
client = create_app().test_client()
data = {{"image": (io.BytesIO(open({sample!r}, "rb").read()), "cell.jpeg")}}
assert client.post("/predict", data=data, content_type="multipart/form-data").status_code == 200
print(int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)))
"""


def memory_mb(pid: int) -> dict[str, float]:
    """RSS from /proc/PID/status and PSS from smaps_rollup, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    pss_kb = int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))
    return {"rss_mb": round(rss_kb / 1024, 1), "pss_mb": round(pss_kb / 1024, 1)}


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cell.jpeg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(url: str, token: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.status


def serve_every_worker(url: str, token: str, workers: int, pids: set[int], log_path: Path) -> int:
    """POST ``url`` (``workers`` at a time) until each worker has answered one; returns how many."""
    body, content_type = multipart(SAMPLE.read_bytes())
    path = urllib.parse.urlsplit(url).path
    requests = 0
    served: set[int] = set()
    with ThreadPoolExecutor(workers) as pool:
        while not pids <= served and requests < 40 * workers:
            statuses = list(pool.map(lambda _: post(url, token, body, content_type), range(workers)))
            assert statuses == [200] * workers, statuses
            requests += workers
            time.sleep(0.2)  # let the access log reach the file
            served = {int(pid) for pid, served_path in re.findall(r"served-by <?(\d+)>? (\S+)", log_path.read_text())
                      if served_path == path}
    if not pids <= served:
        raise RuntimeError(f"workers {sorted(pids - served)} never answered {path} in {requests} requests")
    return requests


def server_memory(master: int, pids: set[int]) -> dict:
    workers = [memory_mb(pid) for pid in sorted(pids)]
    master_memory = memory_mb(master)
    return {
        "worker_rss_mb": [m["rss_mb"] for m in workers],
        "worker_pss_mb": [m["pss_mb"] for m in workers],
        "master_rss_mb": master_memory["rss_mb"],
        "total_pss_mb": round(master_memory["pss_mb"] + sum(m["pss_mb"] for m in workers), 1),
    }


def measure(workers: int, preload: bool, gradcam: bool, folder: Path) -> dict:
    token = secrets.token_urlsafe(32)
    tokens_file = folder / "tokens"
    tokens_file.write_text(token + "\n")
    tokens_file.chmod(0o600)
    port = free_port()
    log_path = folder / f"gunicorn-{workers}-{preload}.log"
    command = [str(GUNICORN), "-c", "python:hematovision.interfaces.gunicorn_conf", "-w", str(workers),
               "-b", f"127.0.0.1:{port}", "--access-logfile", "-", "--access-logformat", "served-by %(p)s %(U)s"]
    if preload:
        command.append("--preload")
    env = {**os.environ, "HEMATOVISION_API_TOKENS_FILE": str(tokens_file),
           "HEMATOVISION_API_RATE_LIMIT": "10000 per minute",
           "HEMATOVISION_API_EXPLAIN_RATE_LIMIT": "10000 per minute"}
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    run = {"workers": workers,
           "model_loaded": "once, before the fork (--preload)" if preload else "in each worker, after the fork"}
    try:
        wait_until_answering(f"{url}/health", server, log_path, STARTUP_TIMEOUT_S)
        pids = set(children(server.pid))
        run["predict_requests"] = serve_every_worker(f"{url}/predict", token, workers, pids, log_path)
        run.update(server_memory(server.pid, pids))
        if gradcam:
            run["gradcam_requests"] = serve_every_worker(f"{url}/explain", token, workers, pids, log_path)
            run["after_gradcam"] = server_memory(server.pid, pids)
    finally:
        stop_group(server)
    return run


def reference_rss_mb() -> float:
    open_loopback = {key: value for key, value in os.environ.items() if not key.startswith("HEMATOVISION_API_")}
    result = subprocess.run([sys.executable, "-c", REFERENCE.format(sample=str(SAMPLE))], cwd=REPO_ROOT,
                            env=open_loopback, capture_output=True, text=True, check=True)
    return round(int(result.stdout.split()[-1]) / 1024, 1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--gradcam", action="store_true",
                        help="then also one POST /explain (Grad-CAM: TensorFlow loads) per worker")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "bench" / f"{date.today()}-gunicorn-rss.json")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    reference = reference_rss_mb()
    print(f"reference: one process, create_app() and one /predict without gunicorn: RSS {reference} MB")
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for preload in (False, True):
            for workers in args.workers:
                run = measure(workers, preload, args.gradcam, Path(folder))
                mean_rss = sum(run["worker_rss_mb"]) / workers
                run["mean_worker_rss_vs_reference"] = round(mean_rss / reference, 2)
                runs.append(run)
                print(f"{workers} worker(s), model loaded {run['model_loaded']}: "
                      f"RSS per worker {run['worker_rss_mb']} MB ({run['mean_worker_rss_vs_reference']}x "
                      f"the reference), PSS per worker {run['worker_pss_mb']} MB, master RSS "
                      f"{run['master_rss_mb']} MB, whole server PSS {run['total_pss_mb']} MB")
                if args.gradcam:
                    after = run["after_gradcam"]
                    print(f"  after one Grad-CAM per worker: RSS per worker {after['worker_rss_mb']} MB, "
                          f"whole server PSS {after['total_pss_mb']} MB")
    results = {
        "command": " ".join([".venv/bin/python scripts/gunicorn_rss.py", *(argv or sys.argv[1:])]),
        "reference_single_process_rss_mb": reference,
        "runs": runs,
        "machine": f"{os.cpu_count()} CPUs, load average {load_before:.1f} at the start",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out}")


if __name__ == "__main__":
    main()
