"""MetaQuantus's perturbations, run per cell, and its scores, per model (``[meta_evaluation]``).

Per post-hoc cell, each meta-evaluated metric is scored **per explained row** (the metric
on that row's evidence alone), then again under ``perturbations`` draws of four tests
(:data:`~harness.meta_consistency.TESTS`):

- model resilience / adversary: a copy of the explained network with every parameter
  multiplied by 1 + σ·N(0, 1) (σ = ``model_noise`` / ``model_adversary``; buffers such
  as batch-norm statistics untouched, as in Quantus's ``sample``); the explainer explains
  the same rows for the same classes on the copy, and metrics that call the model call
  the copy;
- input resilience / adversary: each explained row plus uniform noise of half-width
  ``input_noise`` / ``input_adversary`` times each position's training standard
  deviation (unclipped); the explainer explains the perturbed row on the explained model
  — where MetaQuantus 0.0.5's code scores the *original* explanation on the perturbed
  input, which leaves every metric that reads only the map and the ground truth
  unchanged (NR 1, AR 0 by construction).

Draws are seeded by the cell's seed, the test and the draw (and, for inputs, the test
row), so every explainer of a model meets the same perturbed networks and inputs. Stored
per cell as ``<metric>.meta_q`` (rows), ``<metric>.meta_q_hat`` (tests × draws × rows),
``<metric>.meta_unchanged`` (tests × draws × rows: the predicted class kept its value),
``<metric>.meta_rows`` (the rows' test indices) and ``<metric>.meta_seconds`` (the wall
seconds of its own per-row scoring plus an equal share of the perturbing and re-explaining
the metrics of the cell share).

Once every cell is stored, :func:`score_meta_consistency` reads them per dataset × model
× seed over the post-hoc explainers (those ``explainers`` lists, when it lists some) that
explained the same rows, and appends
``<metric>:nr``, ``:ar`` and ``:mc`` to each of their cells (controls and by-design
explainers are left out: MetaQuantus compares explanation methods of one model).
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections import Counter
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from harness.artifacts import metric_array
from harness.errors import first_line
from harness.meta_consistency import (
    META_SCORES,
    META_SECONDS,
    Q_HAT,
    ROWS,
    TESTS,
    UNCHANGED,
    Q,
    meta_consistency,
    meta_score_id,
)
from harness.metrics.base import Evidence, Metric, conventions_hash
from harness.models.batched import probabilities_of
from harness.records import ScoreRecord, ScoreStatus
from harness.runner.plan import Cell
from harness.store import ResultsStore
from harness.suite import MetaEvaluationSpec, Resolved

#: The arrays the group pass reads.
READ = (Q, Q_HAT, UNCHANGED, ROWS)


def row_values(metric: Metric, evidence: Evidence) -> np.ndarray:
    """The metric's value on each explained row alone (float64; NaN where undefined),
    from the evidence it declared it needs (:meth:`Metric.row_values`)."""
    return metric.row_values(evidence.restricted_to(metric.needs))


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (SHA-256: draws of different tests never coincide)."""
    text = ",".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def perturbed_network(network: nn.Module, sigma: float, seed: int) -> nn.Module:
    """A copy of ``network`` with every parameter multiplied by 1 + σ·N(0, 1), drawn in
    the order of ``parameters()`` from a generator seeded with ``seed``."""
    changed = copy.deepcopy(network)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in changed.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.mul_((1 + sigma * noise).to(parameter.dtype).to(parameter.device))
    return changed


def _perturbed_evidence(
    evidence: Evidence, test: str, draw: int, rows: np.ndarray, meta: MetaEvaluationSpec, seed: int
) -> tuple[Evidence, np.ndarray]:
    """The evidence under one draw of ``test``, and the predicted class of each row."""
    reexplain = evidence.reexplain
    assert reexplain is not None and evidence.inputs is not None and evidence.targets is not None
    index = TESTS.index(test)
    positions = np.arange(len(rows))
    if test.startswith("model"):
        sigma = meta.model_noise if test.endswith("resilience") else meta.model_adversary
        network = perturbed_network(reexplain.network, sigma, _seed(seed, index, draw))
        predict = probabilities_of(network)
        maps = reexplain(evidence.inputs, evidence.targets, positions, network=network)
        changed = replace(
            evidence, attributions=maps, predict_proba=predict, reexplain=reexplain.on(network)
        )
        return changed, predict(evidence.inputs).argmax(axis=1)
    width = meta.input_noise if test.endswith("resilience") else meta.input_adversary
    scale = evidence.train_std if evidence.train_std is not None else np.ones(1)
    inputs = np.stack(
        [
            x
            + width
            * scale
            * np.random.default_rng(_seed(seed, index, draw, int(row))).uniform(-1, 1, x.shape)
            for x, row in zip(evidence.inputs, rows, strict=True)
        ]
    ).astype(evidence.inputs.dtype)
    maps = reexplain(inputs, evidence.targets, positions)
    predict = probabilities_of(reexplain.network)
    return replace(evidence, inputs=inputs, attributions=maps), predict(inputs).argmax(axis=1)


def score_meta_rows(
    cell: Cell, metrics: list[Resolved[Metric]], evidence: Evidence, meta: MetaEvaluationSpec
) -> tuple[list[ScoreRecord], dict[str, np.ndarray]]:
    """A post-hoc cell's per-row arrays of its meta-evaluated metrics (see the module);
    where they cannot be computed, its meta scores instead, without a value and saying
    why (or failed, when a metric raised)."""
    chosen = [m for m in metrics if m.id in meta.metrics and m.id not in cell.metric_skips]
    if not chosen or not meta_evaluated(cell, meta):
        return [], {}
    reexplain = evidence.reexplain
    problem = None
    if reexplain is None:
        problem = "needs the explained model to perturb it, which was not kept"
    elif not any(True for _ in reexplain.network.parameters()):
        problem = "needs a network with parameters to perturb; this model has none"
    elif evidence.inputs is None or evidence.rows is None or not len(evidence.inputs):
        problem = "no explained row to score"
    if problem is not None:
        return _unscored(chosen, meta, cell, f"undefined: the meta-evaluation {problem}"), {}
    try:
        return [], perturbation_arrays(chosen, evidence, meta, cell.seed)
    except Exception as error:  # a metric's failure on a perturbed row, not the cell's
        message = f"meta-evaluation failed: {type(error).__name__}: {first_line(error)}"
        return _unscored(chosen, meta, cell, message, "failed"), {}


def meta_evaluated(cell: Cell, meta: MetaEvaluationSpec) -> bool:
    """Whether the cell's maps are meta-evaluated: a post-hoc explainer, listed in
    ``meta.explainers`` when the suite lists some."""
    listed = meta.explainers is None or cell.explainer.id in meta.explainers
    return listed and cell.explainer.component.role() == "post_hoc"


def _unscored(
    metrics: list[Resolved[Metric]],
    meta: MetaEvaluationSpec,
    cell: Cell,
    note: str,
    status: ScoreStatus = "ok",
) -> list[ScoreRecord]:
    return [
        replace(
            _record(m, which, None, note, meta_conventions(meta, m.component, [cell.explainer.id])),
            status=status,
        )
        for m in metrics
        for which in META_SCORES
    ]


def perturbation_arrays(
    metrics: list[Resolved[Metric]], evidence: Evidence, meta: MetaEvaluationSpec, seed: int
) -> dict[str, np.ndarray]:
    """Each metric's per-row values before and under every perturbation (stored arrays,
    see the module)."""
    assert evidence.reexplain is not None and evidence.inputs is not None
    assert evidence.rows is not None
    rows = evidence.rows
    started = time.perf_counter()
    spent = dict.fromkeys((m.id for m in metrics), 0.0)

    def scored(metric: Resolved[Metric], changed: Evidence) -> np.ndarray:
        begun = time.perf_counter()
        values = row_values(metric.component, changed)
        spent[metric.id] += time.perf_counter() - begun
        return values

    predicted = probabilities_of(evidence.reexplain.network)(evidence.inputs).argmax(axis=1)
    shape = (len(TESTS), meta.perturbations, len(rows))
    q_hat = {m.id: np.full(shape, np.nan) for m in metrics}
    unchanged = np.zeros(shape, dtype=bool)
    q = {m.id: scored(m, evidence) for m in metrics}
    for index, test in enumerate(TESTS):
        for draw in range(meta.perturbations):
            changed, predictions = _perturbed_evidence(evidence, test, draw, rows, meta, seed)
            unchanged[index, draw] = predictions == predicted
            for metric in metrics:
                q_hat[metric.id][index, draw] = scored(metric, changed)
    shared = (time.perf_counter() - started - sum(spent.values())) / len(metrics)
    arrays: dict[str, np.ndarray] = {}
    for metric in metrics:
        arrays |= {
            metric_array(metric.id, Q): q[metric.id],
            metric_array(metric.id, Q_HAT): q_hat[metric.id],
            metric_array(metric.id, UNCHANGED): unchanged.astype(np.uint8),
            metric_array(metric.id, ROWS): np.asarray(rows, dtype=np.int64),
            metric_array(metric.id, META_SECONDS): np.array(spent[metric.id] + shared),
        }
    return arrays


def meta_conventions(meta: MetaEvaluationSpec, metric: Metric, explainers: list[str]) -> dict:
    """What a stored meta score depends on: the perturbations, the metric's conventions
    (by hash) and the explainers compared."""
    return {
        "perturbations": meta.perturbations,
        "model_noise": meta.model_noise,
        "model_adversary": meta.model_adversary,
        "input_noise": meta.input_noise,
        "input_adversary": meta.input_adversary,
        "input_explanation": "perturbed input",
        "input_noise_unit": "training standard deviation",
        "iac": "wilcoxon two-sided, zsplit",
        "metric_conventions": metric.conventions_hash(),
        "explainers": explainers,
    }


def score_meta_consistency(
    metrics: list[Resolved[Metric]],
    meta: MetaEvaluationSpec,
    cells: list[Cell],
    store: ResultsStore,
    run_id: str,
) -> None:
    """Append ``<metric>:nr``, ``:ar`` and ``:mc`` to the post-hoc cells of every model
    (dataset × model × seed) that has not got them yet, from the stored per-row arrays
    (see the module)."""
    chosen = [m for m in metrics if m.id in meta.metrics]
    if not chosen:
        return
    statuses = store.cell_statuses(run_id)
    stored = store.scored(run_id)
    for metric in chosen:
        groups: dict[tuple[str, str, int], list[Cell]] = {}
        for cell in cells:
            if (
                meta_evaluated(cell, meta)
                and statuses.get(cell.cell_id, ("", None))[0] == "ok"
                and metric.id not in cell.metric_skips
            ):
                groups.setdefault(cell.model_key, []).append(cell)
        arrays = {key: store.arrays(run_id, metric_array(metric.id, key)) for key in READ}
        done = meta_score_id(metric.id, "mc")
        for group in groups.values():
            missing = [c for c in group if (c.cell_id, done) not in stored]
            if missing:
                records = _group_scores(metric, meta, group, arrays)
                for cell in missing:
                    store.add_scores(run_id, cell.cell_id, records)


def _group_scores(
    metric: Resolved[Metric],
    meta: MetaEvaluationSpec,
    group: list[Cell],
    arrays: dict[str, dict[str, np.ndarray]],
) -> list[ScoreRecord]:
    """The three meta scores of one metric on one model's post-hoc cells."""
    have = [c for c in group if all(c.cell_id in arrays[key] for key in READ)]
    row_sets = Counter(arrays[ROWS][c.cell_id].tobytes() for c in have)
    note = ""
    if have:
        common, _ = row_sets.most_common(1)[0]
        compared = [c for c in have if arrays[ROWS][c.cell_id].tobytes() == common]
        left_out = [c.explainer.id for c in group if c not in compared]
    else:
        compared, left_out = [], [c.explainer.id for c in group]
    explainers = [c.explainer.id for c in compared]
    conventions = meta_conventions(meta, metric.component, explainers)
    if len(compared) < 2:
        value_note = (
            "undefined: the meta-evaluation compares at least 2 post-hoc explainers of one "
            f"model on the same rows; this model has {len(compared)}"
        )
        return [_record(metric, which, None, value_note, conventions) for which in META_SCORES]
    if left_out:
        note = f"; left out (other rows or no per-row values): {', '.join(left_out)}"
    q = np.stack([arrays[Q][c.cell_id] for c in compared])
    q_hat = np.stack([arrays[Q_HAT][c.cell_id] for c in compared], axis=2)
    unchanged = arrays[UNCHANGED][compared[0].cell_id].astype(bool)
    result = meta_consistency(q, q_hat, unchanged, metric.component.higher_is_better)
    undefined = result.undefined
    records = []
    for which in META_SCORES:
        value = getattr(result, which)
        if math.isnan(value):
            text = (
                f"undefined: no explained row was kept for {', '.join(undefined)} (no "
                "prediction changed under an adversary, or every one under a resilience "
                "test); change the perturbation's size"
            )
            records.append(_record(metric, which, None, text, conventions))
        else:
            text = f"{len(compared)} explainers × {q.shape[1]} rows; {result.text}{note}"
            records.append(_record(metric, which, value, text, conventions))
    return records


def _record(
    metric: Resolved[Metric], which: str, value: float | None, note: str, conventions: dict
) -> ScoreRecord:
    names = {"nr": "noise resilience", "ar": "adversary reactivity", "mc": "meta-consistency"}
    return ScoreRecord(
        metric=meta_score_id(metric.id, which),
        metric_name=f"{names[which]} of {metric.component.name}",
        value=value,
        higher_is_better=True,
        unit="",
        conventions=conventions,
        conventions_hash=conventions_hash(conventions),
        note=note,
        kind="meta",
        across_seeds=False,
        status="ok",
        family="meta",
        metric_version=1,
        role="",
        value_range=(0.0, 1.0),
    )
