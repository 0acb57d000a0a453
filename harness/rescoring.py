"""Rescoring: compute metrics (new ones, or existing ones with other conventions) from
what a run stored, into a new run linked to it — nothing stored is rewritten.

Every ok cell of a run stores its explanation, the explained rows and classes, its
model's test predictions and the model's cache key (:func:`~harness.runner.cell.
cell_arrays`); the dataset is reloaded from its seed. Metrics that call the model get it
from the cache (when the run kept it), and so do metrics that run the cell's explainer
again (MPRT, robustness; the explainer is the suite's); the rest need neither. The new
run holds every cell of the source run (status, timings, role), the source's scores of
the metrics not rescored, and the rescored ones; its arrays beyond the rescored metrics'
are read from the source run. Across-seeds metrics are computed in the same pass, from
the stored per-seed global importances.

Why explanations live in the store and not only in the cache: the store is append-only
and is what results are published from; the cache is disposable (``--no-cache``, or
deleted to free space). Large arrays are stored zlib-compressed.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from harness.artifacts import GLOBAL_IMPORTANCE, StoredProducts, read_products
from harness.datasets.base import Dataset
from harness.environment import collect_environment
from harness.errors import HarnessError, did_you_mean
from harness.inputs import InputChangedError, check_unchanged
from harness.metrics.base import Metric
from harness.records import CellRecord
from harness.runner.cache import ResultCache
from harness.runner.cell import (
    Memo,
    baseline_of,
    explain_again,
    load_cell_dataset,
    resolve_device,
    untrained_network,
)
from harness.runner.lifecycle import stored_run
from harness.runner.meta_perturbation import score_meta_consistency, score_meta_rows
from harness.runner.plan import Cell, plan
from harness.runner.progress import ProgressReporter, SilentProgress
from harness.runner.run import RunSummary, Tally
from harness.runner.scoring import (
    NOT_KEPT,
    CellProducts,
    evidence_for,
    score_across_seeds,
    score_cell,
    unscored,
)
from harness.store import STORE_FILENAME, ResultsStore, new_run_id
from harness.suite import Resolved, Suite, load_suite, parse_suite

#: The products a cell's stored record gives back as they are (the rest: the model's).
_STORED_PRODUCTS = [
    f.name for f in fields(StoredProducts) if f.name in CellProducts.__dataclass_fields__
]

#: Sections of a suite that define its cells: a rescoring suite must match the run's.
_CELL_SECTIONS = ("seeds", "datasets", "models", "explainers", "execution")


def rescore_run(
    out_dir: str | Path,
    source: str,
    *,
    suite: str | Path | None = None,
    metric_ids: list[str] | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressReporter | None = None,
) -> RunSummary:
    """Rescore stored run ``source`` (an id or unique prefix) of ``out_dir``.

    The metrics come from ``suite`` (a path or bundled name; its cells must be the run's)
    or, without it, from the run's own suite; ``metric_ids`` chooses some of them
    (default: all). Models for metrics that call the model are read from ``cache_dir``
    (default: ``<out_dir>/cache``). Refused when an input of the run (a table file, an
    image folder, a model file) or a cell's data changed since it ran. Returns the new
    run's summary; a rescoring stopped half-way is ``interrupted`` and ``run --resume``
    continues it (:func:`continue_rescoring`).
    """
    started = time.perf_counter()
    with ResultsStore(existing_store(out_dir)) as store:
        source_id, info = store.run_with_cells(source)
        stored = _stored_suite(info)
        if store.cell_statuses(source_id).keys() != {c.cell_id for c in plan(stored)}:
            raise HarnessError(
                f"run {source_id} is incomplete ({info['status']}): continue it with "
                "`xai-harness run SUITE --resume` before rescoring it"
            )
        check_unchanged(info["environment"].get("inputs"), stored, source_id, "rescore")
        metrics_suite = stored if suite is None else _given_suite(info, stored, suite)
        chosen = _chosen(metrics_suite, metric_ids)
        run_id = new_run_id()
        environment = {
            **collect_environment(),
            "rescored": source_id,
            "rescored_metrics": [m.id for m in chosen],
            "executor": {"kind": "serial", "jobs": 1},
            "inputs": info["environment"].get("inputs"),
        }
        begin = functools.partial(
            store.begin_run,
            suite_name=info["suite_name"],
            suite_path=info["suite_path"],
            suite_text=metrics_suite.text,
            config=_merged_config(info["config"], chosen),
            environment=environment,
            run_id=run_id,
            source_run=source_id,
        )
        cache = _cache(out_dir, cache_dir)
        return _complete(
            store, run_id, begin, source_id, metrics_suite, chosen, cache, progress, started
        )


def continue_rescoring(
    out_dir: str | Path,
    run_id: str,
    *,
    cache_dir: str | Path | None = None,
    progress: ProgressReporter | None = None,
) -> RunSummary:
    """Continue rescoring ``run_id`` (stopped half-way): the cells it stored are kept,
    the others rescored with the metrics it was rescoring."""
    started = time.perf_counter()
    with ResultsStore(existing_store(out_dir)) as store:
        info = store.run_info(run_id)
        source_id = str(info["source_run"])
        source_info = store.run_info(source_id)
        check_unchanged(
            source_info["environment"].get("inputs"),
            _stored_suite(source_info),
            source_id,
            "continue the rescoring of",
        )
        path = Path(info["suite_path"]) if info["suite_path"] else None
        metrics_suite = parse_suite(info["suite_text"], path=path, seeds=info["config"]["seeds"])
        chosen = _chosen(metrics_suite, info["environment"].get("rescored_metrics"))
        reopen = functools.partial(store.reopen_run, run_id)
        cache = _cache(out_dir, cache_dir)
        return _complete(
            store, run_id, reopen, source_id, metrics_suite, chosen, cache, progress, started
        )


def existing_store(out_dir: str | Path) -> Path:
    """``out_dir``, which must hold a results store (a rescoring reads one)."""
    folder = Path(out_dir)
    if not (folder / STORE_FILENAME).is_file():
        raise HarnessError(
            f"no results store in {folder} (no {STORE_FILENAME}); pass --out with the folder "
            "of the run to rescore"
        )
    return folder


def _cache(out_dir: str | Path, cache_dir: str | Path | None) -> ResultCache:
    folder = Path(cache_dir) if cache_dir is not None else Path(out_dir) / "cache"
    if folder.exists() and not folder.is_dir():
        raise HarnessError(f"--cache {folder} is a file, not a folder; pass the cache folder")
    return ResultCache(folder)


def _complete(
    store: ResultsStore,
    run_id: str,
    start: Callable[[], object],
    source_id: str,
    suite: Suite,
    chosen: list[Resolved[Metric]],
    cache: ResultCache,
    progress: ProgressReporter | None,
    started: float,
) -> RunSummary:
    """Begin (or reopen, ``start``) rescoring ``run_id``, rescore the cells it has not
    stored yet, then the across-seeds metrics; the run ends ``ok``/``failed``, or
    ``interrupted`` when stopped (:func:`~harness.runner.lifecycle.stored_run`)."""
    cells = plan(_with_metrics(suite, chosen))
    tally = Tally()
    with stored_run(store, run_id, start) as end:
        done = store.cell_statuses(run_id)
        try:
            _rescore_cells(
                store,
                source_id,
                run_id,
                cells,
                chosen,
                suite,
                cache,
                progress or SilentProgress(),
                done,
                tally,
            )
            tally.add_failed_scores(score_across_seeds(chosen, cells, store, run_id))
            score_meta_consistency(chosen, suite.spec.meta_evaluation, cells, store, run_id)
            end.status = "failed" if tally.counts["failed"] or tally.failed_scores else "ok"
            end.completed = True
        finally:
            seconds = {"score": time.perf_counter() - started}
            seconds["total"] = seconds["score"]
            end.stage_seconds = seconds
    return RunSummary(
        run_id,
        store.path,
        tally.counts,
        seconds,
        tally.failures,
        resumed=len(done),
        failed_scores=tally.failed_scores,
    )


def _stored_suite(info: dict[str, Any]) -> Suite:
    """The run's suite, from its stored text (and folder, for local plugins), with the
    seeds it ran; refused when it no longer resolves to the stored configuration."""
    path = Path(info["suite_path"]) if info["suite_path"] else None
    suite = parse_suite(info["suite_text"], path=path, seeds=info["config"]["seeds"])
    now = json.loads(json.dumps(suite.resolved_config()))
    if any(now.get(k) != info["config"].get(k) for k in _CELL_SECTIONS):
        raise HarnessError(
            f"the suite stored with run {info['run_id']} no longer resolves to the cells it "
            "ran (a plugin or a default changed); rescore it with the harness version that "
            "ran it"
        )
    return suite


def _given_suite(info: dict[str, Any], stored: Suite, reference: str | Path) -> Suite:
    """The suite given to take the metrics from; its cells must be the run's."""
    given = load_suite(reference, seeds=stored.spec.seeds)
    config = json.loads(json.dumps(given.resolved_config()))
    differing = [k for k in _CELL_SECTIONS if config.get(k) != info["config"].get(k)]
    if differing:
        raise HarnessError(
            f"suite '{given.name}' defines other cells than run {info['run_id']} "
            f"({', '.join(differing)} differ); a rescoring takes only the metrics from it — "
            "give it the run's datasets, models, explainers, seeds and execution options"
        )
    return given


def _chosen(suite: Suite, metric_ids: list[str] | None) -> list[Resolved[Metric]]:
    """The suite's metrics with those ids (default: all of them); an id the suite does
    not list is taken as the name of a registered metric, at its default parameters
    (its conventions are stored with its scores, as always)."""
    known = {m.id: m for m in suite.metrics}
    chosen = []
    for wanted in metric_ids or list(known):
        if wanted in known:
            chosen.append(known[wanted])
            continue
        from harness.metrics import metric_registry

        try:
            metric_class = metric_registry.get(wanted)
        except HarnessError as exc:
            names = [*known, *metric_registry.names()]
            raise HarnessError(
                f"--metric '{wanted}' is neither a metric of suite '{suite.name}' "
                f"({', '.join(known)}) nor a registered metric{did_you_mean(wanted, names)}"
            ) from exc
        try:
            metric = metric_class()
        except ValidationError as exc:
            raise HarnessError(
                f"--metric '{wanted}' has no default for {len(exc.errors())} parameter(s); "
                "give them in a suite's [metrics] and pass that suite"
            ) from exc
        chosen.append(Resolved(id=wanted, component=metric))
    return chosen


def _with_metrics(suite: Suite, metrics: list[Resolved[Metric]]) -> Suite:
    return replace(suite, metrics=metrics)


def _merged_config(config: dict[str, Any], chosen: list[Resolved[Metric]]) -> dict[str, Any]:
    """The source run's configuration with the rescored metrics in place (same id) or
    appended (new id)."""
    entries = {m.id: {"id": m.id, "name": m.name, "params": m.component.config()} for m in chosen}
    metrics = [entries.pop(e["id"], e) for e in config["metrics"]] + list(entries.values())
    return {**config, "metrics": metrics}


def _rescore_cells(
    store: ResultsStore,
    source_id: str,
    run_id: str,
    cells: list[Cell],
    chosen: list[Resolved[Metric]],
    suite: Suite,
    cache: ResultCache,
    progress: ProgressReporter,
    done: dict[str, tuple[str, str | None]],
    tally: Tally,
) -> None:
    """Store every cell of the source run in the new run (but those it stored already,
    ``done``, counted as they are): its record, the source's scores of the metrics not
    rescored, and the rescored ones; each counted in ``tally``."""
    records = store.cell_records(source_id)
    scores = store.score_records(source_id)
    importances = store.arrays(source_id, GLOBAL_IMPORTANCE)
    rescored = {m.id for m in chosen}
    datasets = Memo()
    device = resolve_device(suite.spec.execution.device)
    meta = suite.spec.meta_evaluation.metrics
    needs_model = any({"model", "reexplain"} & m.component.needs or m.id in meta for m in chosen)
    progress.start(f"rescoring {source_id} ({run_id})", len(cells))
    try:
        for cell in cells:
            record = records[cell.cell_id]
            if cell.cell_id in done:
                tally.counts[done[cell.cell_id][0]] += 1
                progress.cell_done(cell.cell_id, "stored")
                continue
            kept = [
                s
                for s in scores.get(cell.cell_id, [])
                if s.metric not in rescored
                and not (s.kind == "meta" and s.metric.rsplit(":", 1)[0] in rescored)
            ]
            arrays: dict[str, np.ndarray] = {}
            if record.status == "ok":
                dataset: Dataset = datasets.get(
                    (cell.dataset.id, cell.seed),
                    functools.partial(load_cell_dataset, cell, None, suite.spec.execution),
                )
                stored = read_products(store.cell_arrays(source_id, cell.cell_id), cell.cell_id)
                if stored is None:
                    raise HarnessError(
                        f"cell {cell.cell_id} stored no explanation or predictions (it was run "
                        "by an xai-harness before rescoring existed); run the suite again to "
                        "rescore it"
                    )
                _check_same_data(stored, dataset, cell, source_id)
                products, absence = _stored_products(
                    stored, record, cell, dataset, cache, device, needs_model
                )
                references = {
                    other.explainer.id: importances[other.cell_id]
                    for other in cells
                    if other.model_key == cell.model_key
                    and other is not cell
                    and other.cell_id in importances
                }  # the group's other explainers, as stored
                try:
                    evidence = evidence_for(dataset, products, references, suite.spec.execution)
                except ValueError as exc:
                    raise HarnessError(f"cell {cell.cell_id}: {exc}") from exc
                new, arrays = score_cell(cell, chosen, evidence, absence)
                meta_scores, meta_arrays = score_meta_rows(
                    cell, chosen, evidence, suite.spec.meta_evaluation
                )
                new, arrays = new + meta_scores, arrays | meta_arrays
            else:
                new = unscored(chosen, f"cell {record.status}: {record.error}")
            store.record_cell(run_id, record, kept + new, arrays)
            tally.add(record, kept + new)
            progress.cell_done(cell.cell_id, record.status)
    finally:
        progress.finish()


def _check_same_data(stored: StoredProducts, dataset: Dataset, cell: Cell, source_id: str) -> None:
    """Refuse to score stored predictions against data that changed since the run."""
    then = stored.data_fingerprint
    if then is not None and then != dataset.fingerprint:
        raise InputChangedError(
            f"cannot rescore run {source_id}: the data of dataset '{cell.dataset.id}' (seed "
            f"{cell.seed}) differ from those its cells were computed from (content hash "
            f"{then[:12]}… now {dataset.fingerprint[:12]}…); restore the data, or run "
            "the suite again"
        )


def _stored_products(
    stored: StoredProducts,
    record: CellRecord,
    cell: Cell,
    dataset: Dataset,
    cache: ResultCache,
    device: Any,
    needs_model: bool,
) -> tuple[CellProducts, str]:
    """A cell's products as its run stored them — the model from the cache when a
    rescored metric calls it and the run kept it — and, when there is no model, why."""
    model, absence = None, NOT_KEPT
    key = stored.model_cache_key
    if needs_model and key is not None:
        by_design = cell.explainer.component.by_design
        damaged_before = cache.discarded
        untrained = functools.partial(untrained_network, cell, dataset, by_design)
        loaded = cache.load_model(key, cell, dataset, device, untrained)
        if loaded is not None:
            model = loaded[0]
        elif cell.model.component.given and key == cache.model_key(cell, dataset, device, False):
            model = cell.model.component.fit(dataset, cell.seed, device)  # the same file
        elif cache.discarded > damaged_before:
            absence = (
                f"whose copy in the cache {cache.folder} was damaged (removed); run "
                "the suite again to score it"
            )
        else:
            absence = (
                f"which is no longer in the cache {cache.folder} (deleted, or another --cache?)"
            )
    as_stored = {name: getattr(stored, name) for name in _STORED_PRODUCTS}
    return CellProducts(
        **as_stored,
        explain_seconds=float(record.explain_seconds or 0.0),
        train_seconds=float(record.train_seconds or 0.0),
        predict_proba=None if model is None else model.predict_proba,
        network=None if model is None else model.module,
        explain_again=(
            None if model is None else functools.partial(explain_again, cell, model, dataset)
        ),
        input_baseline=functools.partial(baseline_of, cell, dataset),
    ), absence
