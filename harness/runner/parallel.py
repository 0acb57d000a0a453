"""Parallel executors: local processes (``--jobs N``) and Dask (``--executor dask``).

The unit of work is a *model group* — the cells that share one trained model — so a model
is still trained once. A worker rebuilds the suite from its text (and folder, for local
plugins), runs the group's cells with :func:`harness.runner.execute.run_group` and sends
the outcomes back; only the calling process writes to the store. Scores other than
timings are those of a serial run (every stochastic step is seeded per cell). Each worker
uses ``cores // workers`` torch threads unless the suite sets ``threads``; the executor is
stored with the run, so timings of parallel runs are not compared with serial ones, and
the run's stage seconds add up the workers' (they can exceed the wall time).

The per-cell timeout (``SIGALRM``) works in local worker processes; Dask runs tasks in
worker threads, where it cannot apply.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.runner.cache import ResultCache
from harness.runner.execute import (
    STAGES,
    CellOutcome,
    GroupWork,
    StageClock,
    run_group,
)
from harness.runner.plan import plan
from harness.runner.progress import ProgressReporter, SilentProgress
from harness.store import CellRecord, ScoreRecord
from harness.suite import Suite, parse_suite

#: What a worker gets: suite text, suite path, seeds, cell ids, references, torch threads
#: and the cache folder (None: no cache).
Payload = tuple[str, str | None, list[int], list[str], dict[str, np.ndarray], int, str | None]
#: What a worker returns: (cell id, record, scores, arrays) per cell, and stage seconds.
Returned = tuple[list[tuple[str, CellRecord, list[ScoreRecord], dict[str, np.ndarray]]],
                 dict[str, float]]  # fmt: skip


def run_group_in_worker(payload: Payload) -> Returned:
    """Worker side: rebuild the suite, run one group's cells, return their outcomes."""
    text, path, seeds, cell_ids, references, threads, cache_folder = payload
    torch.set_num_threads(threads)
    suite = parse_suite(text, path=Path(path) if path else None, seeds=seeds)
    wanted = set(cell_ids)
    cells = [c for c in plan(suite) if c.cell_id in wanted]
    clock = StageClock()
    cache = ResultCache(cache_folder) if cache_folder else None
    ran = run_group(suite, cells, references, clock, SilentProgress(), cache=cache)
    outcomes = [(cell.cell_id, record, scores, arrays) for cell, record, scores, arrays in ran]
    return outcomes, clock.seconds


def _payloads(
    suite: Suite, work: list[GroupWork], workers: int, cache: ResultCache | None
) -> list[Payload]:
    threads = suite.spec.execution.threads or max(1, (os.cpu_count() or 1) // workers)
    path = str(suite.path) if suite.path else None
    folder = str(cache.folder) if cache is not None else None
    return [
        (suite.text, path, suite.spec.seeds, [c.cell_id for c in cells], refs, threads, folder)
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


class ProcessExecutor:
    """Model groups on ``jobs`` local processes (started fresh: ``spawn``)."""

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
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=context) as pool:
            payloads = _payloads(suite, work, self.jobs, cache)
            futures = [pool.submit(run_group_in_worker, payload) for payload in payloads]
            for future in as_completed(futures):
                yield from _outcomes(work, future.result(), clock)


class DaskExecutor:
    """Model groups as Dask tasks: on the scheduler at ``address``, or on a
    ``LocalCluster`` of ``workers`` single-threaded processes when no address is given."""

    def __init__(self, address: str | None = None, workers: int = 2) -> None:
        self.address = address
        self.workers = workers

    def describe(self) -> dict[str, Any]:
        return {"kind": "dask", "scheduler": self.address or "LocalCluster",
                "jobs": self.workers}  # fmt: skip

    def run(
        self,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed

        cluster = None
        if self.address is None:
            cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address=None, host="127.0.0.1",
            )  # fmt: skip
        client = Client(cluster if cluster is not None else self.address)
        try:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            futures = [
                client.submit(run_group_in_worker, payload, pure=False)
                for payload in _payloads(suite, work, workers, cache)
            ]
            for future in dask_completed(futures):
                yield from _outcomes(work, future.result(), clock)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
