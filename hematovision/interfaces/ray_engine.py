"""Run ``predict`` and ``compare`` on Ray, for folders too big for one machine.

    python -m hematovision predict DIR --engine ray [--address ADDR] [--workers N] --csv out.csv
    python -m hematovision compare --data-dir DIR ... --engine ray [--address ADDR] [--workers N]

The driver (this process) lists the files and writes the results. Each worker is a Ray
actor with one CPU that loads the classifier once and reads the images itself, by path:
on a cluster every node must see the files, the model and the project at the same paths
(shared storage), and relative paths mean what they meant where the command was run. The
work on each image is the local engine's own function (``predict_file``,
``compare_file``), and the answers come back in the order of the files, so the CSV and
JSON are the local engine's.

Ray is an optional extra (``requirements-ray.txt``). It is imported here only, when
``--engine ray`` asks for it, so the base install runs without it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Callable, Sequence

INSTALL_HINT = ("--engine ray needs Ray, an optional extra that is not installed. Install it with "
                "`.venv/bin/python -m pip install -r requirements-ray.txt` (the pinned Ray and what it "
                "pulls in), or leave out --engine ray to run here.")
CHUNKS_PER_WORKER = 4  # enough chunks to keep every worker busy to the end
MAX_CHUNK = 32  # images per call: each round trip through Ray is shared by many images
IN_FLIGHT_PER_WORKER = 2  # the next chunk waits on the worker while the driver gathers the last
OBJECT_STORE_BYTES = 256 * 2**20  # answers are a few kB per image; Ray's default takes 30% of memory


class RayEngineError(ValueError):
    """A Ray problem the user can fix: not installed, or no cluster at ``--address``.
    A ValueError, so the command line reports it in one line like a bad argument."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a Ray instance on this machine
    workers: int | None = None  # None: one per CPU (of this machine, or of the cluster)
    model: str | None = None  # what each worker passes to load_classifier
    backend: str | None = None
    precision: str | None = None
    lab_profile: str | None = None


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayEngineError(INSTALL_HINT) from None
    return ray


def run_each(work: Callable, items: Sequence, options: RayOptions,
             progress: Callable[[str], None] | None = None) -> list:
    """``work(classifier, item)`` for every item, on Ray workers that each hold a classifier
    loaded with ``options``; the answers in the order of ``items``.

    Uses the Ray instance this process is already connected to, if any, and leaves it
    running; otherwise connects (``options.address``) or starts one, and lets go at the end.
    """
    ray = import_ray()
    if not items:
        return []
    if options.address:
        _check_reachable(options.address)
    connected_here = not ray.is_initialized()
    if connected_here:
        _connect(ray, options)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise RayEngineError("The Ray cluster has no CPU to run a worker on.")
        # A worker asked for beyond the cluster's CPUs would wait for one forever.
        count = min(options.workers or cpus, cpus)
        workers = [ray.remote(num_cpus=1)(ClassifierWorker).remote(os.getcwd(), options) for _ in range(count)]
        try:
            if progress:
                progress(f"Ray: starting {count} worker(s), each loading the classifier")
            nodes = _get(ray, [worker.node.remote() for worker in workers])
            # Each worker's rank among the workers on its node picks the core it keeps to.
            _get(ray, [worker.load.remote(nodes[:number].count(node))
                       for number, (worker, node) in enumerate(zip(workers, nodes))])
            return _gather(ray, workers, work, list(items), progress)
        finally:
            for worker in workers:
                ray.kill(worker)
    finally:
        if connected_here:
            ray.shutdown()


def _connect(ray, options: RayOptions) -> None:
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if options.address is None:
        # "local": a new instance of our own, even where `ray start` left one running.
        ray.init(address="local", num_cpus=options.workers or os.cpu_count(),
                 object_store_memory=OBJECT_STORE_BYTES, **quiet)
        return
    try:
        ray.init(address=options.address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayEngineError(f"Cannot join the Ray cluster at {options.address}: {exc}. If the cluster uses "
                             "token authentication, set RAY_AUTH_MODE=token here and give this machine the "
                             "cluster's token (docs/scale.md).") from None


def _check_reachable(address: str) -> None:
    """Ray waits minutes for a cluster that is not there; one TCP connection says so at once."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", "ray://host:port" and the like: left to Ray
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise RayEngineError(f"No Ray cluster answers at {address} ({exc.strerror or exc}). Start one with "
                             "`ray start --head` and give the address it prints.") from None


class ClassifierWorker:
    """One Ray actor: a classifier, loaded once, and the work run on it."""

    def __init__(self, driver_directory: str, options: RayOptions) -> None:
        self.driver_directory = driver_directory
        self.options = options
        self.classifier = None

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def load(self, rank_on_node: int) -> None:
        from hematovision.model.classifier import load_classifier

        # One core per worker, as Ray counts them. Unpinned, every worker's OpenVINO (and
        # TensorFlow) would start a thread per core of the node and they would fight:
        # 2 workers on 2 cores ran 1.5x faster pinned (docs/scale.md).
        if hasattr(os, "sched_setaffinity"):
            cores = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cores[rank_on_node % len(cores)]})
        # Relative paths (images, model, lab profile) then mean what they meant to the
        # driver: on a cluster, the same folder on shared storage.
        if os.path.isdir(self.driver_directory):
            os.chdir(self.driver_directory)
        self.classifier = load_classifier(self.options.model, lab_profile=self.options.lab_profile,
                                          backend=self.options.backend, precision=self.options.precision)

    def run(self, work: Callable, items: list) -> list:
        return [work(self.classifier, item) for item in items]


def _gather(ray, workers: list, work: Callable, items: list, progress: Callable[[str], None] | None) -> list:
    """Hand out the items in chunks as workers free up; put the answers back in order."""
    size = max(1, min(MAX_CHUNK, len(items) // (len(workers) * CHUNKS_PER_WORKER)))
    chunks = [items[start:start + size] for start in range(0, len(items), size)]
    answers: list[list | None] = [None] * len(chunks)
    pending: dict = {}  # object ref -> (chunk number, worker)
    next_chunk, done, reported = 0, 0, -1

    def hand_out(worker) -> None:
        nonlocal next_chunk
        if next_chunk < len(chunks):
            pending[worker.run.remote(work, chunks[next_chunk])] = (next_chunk, worker)
            next_chunk += 1

    for _ in range(IN_FLIGHT_PER_WORKER):
        for worker in workers:
            hand_out(worker)
    while pending:
        [finished], _ = ray.wait(list(pending), num_returns=1)
        number, worker = pending.pop(finished)
        answers[number] = _get(ray, finished)
        done += len(chunks[number])
        hand_out(worker)
        percent = 100 * done // len(items)
        if progress and percent != reported:  # at most 101 lines, however many images
            reported = percent
            progress(f"Ray, {len(workers)} worker(s): {done}/{len(items)} images ({percent}%)")
    return [answer for chunk in answers for answer in chunk]


def _get(ray, refs):
    """``ray.get``, with a worker's input error (a model or profile that cannot be loaded)
    raised as itself so the command line reports it in one line; anything else keeps
    Ray's remote traceback."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, (FileNotFoundError, NotADirectoryError, ValueError)):
            raise exc.cause from None
        raise
