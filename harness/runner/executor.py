"""How groups of cells run: the :class:`Executor` protocol and the serial executor.

The unit of work is a *model group* — consecutive cells that share one trained model —
so a model is trained once. Executors yield cell outcomes in any order; only the run
(:mod:`harness.runner.run`) writes them to the store. Parallel executors:
:mod:`harness.runner.parallel`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from harness.artifacts import GLOBAL_IMPORTANCE, STAGE_SECONDS
from harness.records import CellRecord, ScoreRecord
from harness.runner.cache import ResultCache
from harness.runner.cell import CellContext, Memo, distinct_warnings, resolve_device, run_cell
from harness.runner.plan import Cell
from harness.runner.progress import ProgressReporter
from harness.runner.threads import thread_budget
from harness.runner.timing import StageClock
from harness.suite import Suite

#: One cell's outcome, as a run stores it.
CellOutcome = tuple[Cell, CellRecord, list[ScoreRecord], dict[str, np.ndarray]]
#: Cells of one model group still to run, with the global importance of the group's
#: explainers already known (references for ``spearman_ref``).
GroupWork = tuple[list[Cell], dict[str, np.ndarray]]


class Executor(Protocol):
    """Runs groups of cells and yields their outcomes, in any order."""

    def describe(self) -> dict[str, Any]:
        """How cells run (stored with the run, so parallel timings are told apart)."""
        ...

    def open(self) -> None:
        """Acquire what running needs (a cluster); called before the run is stored."""
        ...

    def close(self) -> None:
        """Release what :meth:`open` acquired (called however the run ends)."""
        ...

    def run(
        self,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]: ...


def model_groups(cells: list[Cell]) -> list[list[Cell]]:
    """Consecutive cells that share a trained model (the plan orders them so)."""
    groups: list[list[Cell]] = []
    for cell in cells:
        if groups and groups[-1][0].model_key == cell.model_key:
            groups[-1].append(cell)
        else:
            groups.append([cell])
    return groups


def run_group(
    suite: Suite,
    cells: list[Cell],
    references: dict[str, np.ndarray],
    clock: StageClock,
    progress: ProgressReporter,
    memos: tuple[Memo, Memo] | None = None,
    cache: ResultCache | None = None,
    budget: int | None = None,
) -> Iterator[CellOutcome]:
    """Run one model group's cells in order in this process (the model is trained once),
    each on the threads the policy gives it within ``budget`` (default: every core this
    process may use; :mod:`harness.runner.threads`)."""
    datasets, models = memos or (Memo(), Memo())
    device = resolve_device(suite.spec.execution.device)
    budget = budget if budget is not None else thread_budget()
    context = CellContext(suite, device, datasets, models, clock, progress, cache, budget)
    references = dict(references)
    for cell in cells:
        before = dict(clock.seconds)
        with warnings.catch_warnings(record=True) as caught:
            record, scores, arrays = run_cell(cell, context, references)
        if record.status != "skipped":
            arrays[STAGE_SECONDS] = clock.since(before)
        if caught:
            record = replace(record, warnings=distinct_warnings(caught))
        if GLOBAL_IMPORTANCE in arrays:
            references[cell.explainer.id] = arrays[GLOBAL_IMPORTANCE]
        yield cell, record, scores, arrays


class LocalExecutor:
    """An executor that needs nothing acquired before a run: :meth:`open` and
    :meth:`close` do nothing."""

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class SerialExecutor(LocalExecutor):
    """Every cell in this process, one after another (the default)."""

    def describe(self) -> dict[str, Any]:
        return {"kind": "serial", "jobs": 1}

    def run(
        self,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]:
        memos = (Memo(), Memo())  # consecutive groups share a dataset load
        for cells, references in work:
            yield from run_group(suite, cells, references, clock, progress, memos, cache)
