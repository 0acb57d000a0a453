"""Parallel executors: local processes (``--jobs N``) and Dask (``--executor dask``).

The unit of work is a *model group* — the cells that share one trained model — so a model
is still trained once. A worker rebuilds the suite from its text (and folder, for local
plugins), runs the group's cells with :func:`harness.runner.executor.run_group` and sends
the outcomes back; only the calling process writes to the store. Scores other than
timings are those of a serial run (every stochastic step is seeded per cell). Each worker's
cells follow the thread policy (:mod:`harness.runner.threads`) within a budget of the
usable cores ÷ workers, unless the suite sets ``threads``; the executor is
stored with the run, so timings of parallel runs are not compared with serial ones, and
the run's stage seconds add up the workers' (they can exceed the wall time).

The per-cell timeout (``SIGALRM``) works in local worker processes; Dask runs tasks in
worker threads, where it cannot apply. Local workers exit when their parent dies; a Dask
run stops with a message when its scheduler cannot be reached or has lost every worker.
Dask pickles the tasks it sends (suite text, cell ids, arrays): that is by design, between
processes of one user.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.records import CellRecord, ScoreRecord
from harness.runner.cache import CacheError, ResultCache
from harness.runner.cell import models_trained_for, resolve_device, train_into_cache
from harness.runner.executor import (
    CellOutcome,
    GroupWork,
    LocalExecutor,
    model_groups,
    run_group,
)
from harness.runner.plan import plan
from harness.runner.progress import ProgressReporter, SilentProgress
from harness.runner.threads import thread_budget, usable_cores
from harness.runner.timing import STAGES, CellTimeout, StageClock
from harness.suite import Suite, parse_suite

#: What a worker gets: suite text, suite path, seeds, cell ids, references, its thread budget
#: and the cache folder (None: no cache).
Payload = tuple[str, str | None, list[int], list[str], dict[str, np.ndarray], int, str | None]
#: What a worker returns: (cell id, record, scores, arrays) per cell, and stage seconds.
Returned = tuple[
    list[tuple[str, CellRecord, list[ScoreRecord], dict[str, np.ndarray]]], dict[str, float]
]
#: One model to train into the cache: suite text, suite path, seeds, the id of a cell that
#: needs it, the by-design explainer that builds it (None: the black box), the worker's
#: thread budget and the cache folder.
TrainingPayload = tuple[str, str | None, list[int], str, str | None, int, str]


def run_group_in_worker(payload: Payload) -> Returned:
    """Worker side: rebuild the suite, run one group's cells, return their outcomes."""
    text, path, seeds, cell_ids, references, budget, cache_folder = payload
    suite = parse_suite(text, path=Path(path) if path else None, seeds=seeds)
    wanted = set(cell_ids)
    cells = [c for c in plan(suite) if c.cell_id in wanted]
    clock = StageClock()
    cache = ResultCache(cache_folder) if cache_folder else None
    ran = run_group(suite, cells, references, clock, SilentProgress(), cache=cache, budget=budget)
    outcomes = [(cell.cell_id, record, scores, arrays) for cell, record, scores, arrays in ran]
    return outcomes, clock.seconds


def train_in_worker(payload: TrainingPayload) -> dict[str, float]:
    """Worker side: train one model into the cache (:func:`~harness.runner.cell.
    train_into_cache`); return the stage seconds. A model that cannot be trained is left
    out — its cells train it again and report why — except a cache that cannot be written,
    which stops the run as it would a serial one."""
    text, path, seeds, cell_id, design_id, budget, folder = payload
    suite = parse_suite(text, path=Path(path) if path else None, seeds=seeds)
    cell = next(c for c in plan(suite) if c.cell_id == cell_id)
    design = None if design_id is None else suite.explainer(design_id)
    clock = StageClock()
    with clock.time("train"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cells record their own warnings
        try:
            train_into_cache(cell, design, suite, ResultCache(folder), budget)
        except CacheError:
            raise
        except (Exception, CellTimeout):
            pass
    return clock.seconds


def training_units(suite: Suite, work: list[GroupWork]) -> list[list[tuple[str, str | None]]]:
    """Per group of ``work``, the models its cells train, each once: (the id of the first
    cell needing it, the by-design explainer id building it, None for the black box)."""
    units: list[list[tuple[str, str | None]]] = []
    for cells, _ in work:  # a group's cells share one dataset, recipe and seed
        first_needing: dict[str | None, str] = {}
        for cell in cells:
            for design in models_trained_for(cell, suite):
                first_needing.setdefault(None if design is None else design.id, cell.cell_id)
        units.append([(cell_id, design_id) for design_id, cell_id in first_needing.items()])
    return units


#: Model groups per worker below which a run that trains no image model stays serial: a
#: table's group takes about a second, a worker about 5 s to start (it imports torch) —
#: the default suite (6 groups) ran 8.4–8.9 s serial and 9.3–9.9 s on 2 workers.
GROUPS_PER_WORKER = 8


def automatic_jobs(suite: Suite, cache: bool) -> int:
    """``--jobs auto``: how many local worker processes pay for this suite.

    Each worker runs its cells on the suite's fixed ``threads`` (1 under the thread
    policy, which gives a table or a small image one thread); as many workers as the
    usable cores hold (:func:`~harness.runner.threads.usable_cores`), no more than there
    are tasks to share — model groups, and with a cache each model to train. Serial (1)
    when the workers would not pay for their start: no image model to train and fewer
    than :data:`GROUPS_PER_WORKER` groups per worker; and on a CUDA device, which workers
    would share, or with ``threads = "torch"`` (every core per cell). Scores other than
    timings do not depend on it when ``threads`` is fixed (every stochastic step is seeded
    per cell).
    """
    options = suite.spec.execution
    if options.threads == "torch" or resolve_device(options.device).type == "cuda":
        return 1
    workers = usable_cores() // (options.threads if isinstance(options.threads, int) else 1)
    cells = [c for c in plan(suite) if not c.skip_reason]
    work: list[GroupWork] = [(group, {}) for group in model_groups(cells)]
    trains_images = any(
        c.dataset.component.modality == "image" and models_trained_for(c, suite) for c in cells
    )
    if not trains_images and len(work) < GROUPS_PER_WORKER * workers:
        return 1
    tasks = len(work)
    if cache:
        tasks = max(tasks, sum(len(models) for models in training_units(suite, work)))
    return max(1, min(workers, tasks))


def _suite_payload(suite: Suite) -> tuple[str, str | None, list[int]]:
    """What a worker rebuilds the suite from: its text, its path (local plugins) and seeds."""
    return suite.text, str(suite.path) if suite.path else None, suite.spec.seeds


def _payloads(
    suite: Suite, work: list[GroupWork], workers: int, cache: ResultCache | None
) -> list[Payload]:
    threads = thread_budget(workers)
    folder = str(cache.folder) if cache is not None else None
    return [
        (*_suite_payload(suite), [c.cell_id for c in cells], refs, threads, folder)
        for cells, refs in work
    ]


def _outcomes(
    work: list[GroupWork], returned: Returned, clock: StageClock
) -> Iterator[CellOutcome]:
    by_id = {cell.cell_id: cell for cells, _ in work for cell in cells}
    outcomes, seconds = returned
    for stage in STAGES:
        clock.seconds[stage] += seconds.get(stage, 0.0)
    for cell_id, record, scores, arrays in outcomes:
        yield by_id[cell_id], record, scores, arrays


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker as soon as its parent process is gone.

    A worker whose parent was killed (SIGKILL leaves no chance to clean up) is adopted
    by another process; a daemon thread notices the new parent id and exits at once, so
    no orphan keeps computing — or holding memory — after the run is gone.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


#: How often a worker checks that its parent is alive, in seconds.
PARENT_POLL_SECONDS = 0.5


class ProcessExecutor(LocalExecutor):
    """Model groups on ``jobs`` local processes (started fresh: ``spawn``). Workers exit
    when the parent dies; when the run stops early (Ctrl-C, SIGTERM, an error) they are
    terminated rather than waited for."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def describe(self) -> dict[str, Any]:
        return {"kind": "processes", "jobs": self.jobs}

    def run(
        self,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]:
        pool = ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )
        finished = False
        try:
            yield from self._scheduled(pool, suite, work, clock, progress, cache)
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # do not wait for groups nobody will store
                workers = list((pool._processes or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    worker.join(timeout=5)

    def _scheduled(
        self,
        pool: ProcessPoolExecutor,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]:
        """Keep every worker busy: with a cache, each model is first trained into it as a
        task of its own (a group waits for its models, then loads them), so a group's
        trainings spread over the workers; groups whose models are ready go first. Without
        a cache, a group trains its models itself."""
        payloads = _payloads(suite, work, self.jobs, cache)
        units = training_units(suite, work) if cache is not None else [[] for _ in work]
        budget, folder = thread_budget(self.jobs), str(cache.folder) if cache else ""
        trainings = deque(
            (group, cell_id, design_id)
            for group, models in enumerate(units)
            for cell_id, design_id in models
        )
        waiting = [len(models) for models in units]
        ready = deque(group for group, count in enumerate(waiting) if count == 0)
        running: dict[Future[Any], tuple[str, int]] = {}
        while trainings or ready or running:
            while len(running) < self.jobs and (ready or trainings):
                if ready:
                    group = ready.popleft()
                    running[pool.submit(run_group_in_worker, payloads[group])] = ("cells", group)
                    progress.stage(work[group][0][0].cell_id, "explaining and scoring")
                else:
                    group, cell_id, design_id = trainings.popleft()
                    training = (*_suite_payload(suite), cell_id, design_id, budget, folder)
                    running[pool.submit(train_in_worker, training)] = ("train", group)
                    progress.stage(_trained_model_id(cell_id, design_id), "training")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                kind, group = running.pop(future)
                returned = _result(future)
                if kind == "cells":
                    yield from _outcomes(work, returned, clock)
                    continue
                for stage, seconds in returned.items():
                    clock.seconds[stage] += seconds
                waiting[group] -= 1
                if waiting[group] == 0:
                    ready.append(group)


def _trained_model_id(cell_id: str, design_id: str | None) -> str:
    """``dataset/model/<the by-design explainer, or black box>/seed=N``: what the training
    task for ``cell_id``'s model ``design_id`` trains, as progress shows it."""
    parts = cell_id.split("/")
    if len(parts) == 4:
        parts[2] = design_id or "black box"
    return "/".join(parts)


def _result(future: Future[Any]) -> Any:
    """A worker's result; a worker that died is one message saying how to go on."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise HarnessError(
            f"a worker process died while running cells ({exc}); killed by the system, out "
            "of memory? The cells finished so far are stored: continue with --resume "
            "(perhaps with fewer --jobs)"
        ) from exc


class DaskExecutor:
    """Model groups as Dask tasks: on the scheduler at ``address``, or on a
    ``LocalCluster`` of ``workers`` single-threaded processes when no address is given.
    With ``gpus`` > 1 (a local cluster for a suite on ``cuda``/``auto``), the local
    cluster has one worker per GPU instead, each seeing only its own GPU
    (``CUDA_VISIBLE_DEVICES``, so its ``cuda`` is that GPU) — what dask-cuda's
    ``LocalCUDACluster`` does, without the extra package.

    Reaching the scheduler takes at most ``connect_timeout`` seconds; when every worker
    is gone for ``worker_timeout`` seconds while groups are unfinished, the run stops
    with a message (the finished cells are stored; ``--resume`` continues).
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int = 2,
        *,
        connect_timeout: float = 10.0,
        worker_timeout: float = 120.0,
        gpus: int = 0,
    ) -> None:
        self.address = address
        self.gpus = gpus if address is None and gpus > 1 else 0
        self.workers = self.gpus or workers
        self.connect_timeout = connect_timeout
        self.worker_timeout = worker_timeout
        self._client: Any = None
        self._cluster: Any = None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "dask",
            "scheduler": self.address or "LocalCluster",
            "jobs": self.workers,
            "workers_pinned_to_gpus": self.gpus > 0,
        }

    def open(self) -> None:
        from dask.distributed import Client, LocalCluster

        if self.gpus:
            self._cluster = gpu_pinned_cluster(self.gpus)
            self._client = Client(self._cluster)
            return
        if self.address is None:
            self._cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
            )
            self._client = Client(self._cluster)
            return
        try:
            self._client = Client(self.address, timeout=self.connect_timeout)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise HarnessError(
                f"--scheduler {self.address!r}: cannot reach a Dask scheduler there ({exc}); "
                "start one (`dask scheduler`) and pass its address, e.g. "
                "tcp://127.0.0.1:8786, or leave --scheduler out for a local cluster"
            ) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def _worker_count(self) -> int:
        try:
            return len(self._client.scheduler_info().get("workers", {}))
        except (OSError, TimeoutError) as exc:
            raise HarnessError(
                f"lost the Dask scheduler {self.address} ({exc}); the cells finished so far "
                "are stored: continue with --resume once it is back"
            ) from None

    def run(
        self,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]:
        from dask.distributed import KilledWorker, wait

        assert self._client is not None, "open() the executor first (run_suite does)"
        workers = max(1, self._worker_count())
        pending = [
            self._client.submit(run_group_in_worker, payload, pure=False)
            for payload in _payloads(suite, work, workers, cache)
        ]
        alone_since: float | None = None
        try:
            while pending:
                try:
                    wait(pending, timeout=WAIT_POLL_SECONDS, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    alone_since = self._check_workers(alone_since, len(pending))
                    continue
                done = [future for future in pending if future.done()]
                pending = [future for future in pending if not future.done()]
                for future in done:
                    try:
                        returned = future.result()
                    except KilledWorker as exc:
                        raise HarnessError(
                            f"Dask workers died running a group of cells ({exc}); the cells "
                            "finished so far are stored: continue with --resume"
                        ) from None
                    yield from _outcomes(work, returned, clock)
        finally:
            if pending:  # stopped early: nobody will store these
                self._client.cancel(pending)

    def _check_workers(self, alone_since: float | None, unfinished: int) -> float | None:
        """None while workers are there; else since when there were none — and past
        ``worker_timeout`` seconds without any, stop the run."""
        if self._worker_count():
            return None
        now = time.monotonic()
        if alone_since is None:
            return now
        if now - alone_since > self.worker_timeout:
            raise HarnessError(
                f"the Dask scheduler {self.address or 'LocalCluster'} has had no worker for "
                f"{self.worker_timeout:g} s with {unfinished} groups of cells unfinished; "
                "the cells finished so far are stored: start workers, then continue with "
                "--resume"
            )
        return alone_since


def gpu_pinned_cluster(gpus: int) -> Any:
    """A local Dask cluster of ``gpus`` single-threaded worker processes, worker ``i``
    seeing only GPU ``i`` (``CUDA_VISIBLE_DEVICES=i``)."""
    from dask.distributed import Nanny, Scheduler, SpecCluster

    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}
    workers = {
        f"gpu-{i}": {
            "cls": Nanny,
            "options": {
                "nthreads": 1,
                "host": "127.0.0.1",
                "env": {"CUDA_VISIBLE_DEVICES": str(i)},
            },
        }
        for i in range(gpus)
    }
    return SpecCluster(workers=workers, scheduler=scheduler)


#: How long one wait for Dask results lasts before the workers are checked, in seconds.
WAIT_POLL_SECONDS = 1.0
