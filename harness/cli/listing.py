"""``xai-harness list``: one line (or card) per registered component or bundled suite.

Listing imports the plugin modules (light: their libraries — shap, lime, captum, openml,
scikit-learn — are imported only when a component runs) and reads their declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer

from harness.cli.app import app, listing, out, user_errors


class Listable(StrEnum):
    explainers = "explainers"
    datasets = "datasets"
    metrics = "metrics"
    models = "models"
    suites = "suites"


def _explainer_rows() -> list[list[str]]:
    from harness.explainers import explainer_registry

    rows = []
    for name in explainer_registry.names():
        cls = explainer_registry.get(name)
        rows.append([name, "/".join(sorted(cls.modalities)), cls.scope, cls.summary()])
    return rows


def _dataset_cards() -> list[str]:
    """One block per dataset source: its card (size, ground truth, source, licence, citation)."""
    from harness.datasets import dataset_registry

    blocks = []
    for name in dataset_registry.names():
        cls = dataset_registry.get(name)
        card = cls.card
        lines = [
            f"{name} ({cls.modality}) — {cls.summary()}",
            f"  size: {cls.size or 'depends on its parameters'} · ground truth: {cls.ground_truth}",
            f"  source: {card.source or 'not stated'} · licence: {card.licence or 'not stated'}",
        ]
        if card.citation:
            lines.append(f"  cite: {card.citation}")
        blocks.append("\n".join(lines))
    return blocks


def _metric_rows() -> list[list[str]]:
    from harness.metrics import metric_registry

    rows = []
    for name in metric_registry.names():
        cls = metric_registry.get(name)
        direction = "higher is better" if cls.higher_is_better else "lower is better"
        rows.append([name, direction, ", ".join(sorted(cls.needs)), cls.summary()])
    return rows


def _model_rows() -> list[list[str]]:
    from harness.models import model_registry

    rows = []
    for name in model_registry.names():
        cls = model_registry.get(name)
        rows.append([name, "/".join(sorted(cls.modalities)), cls.summary()])
    return rows


def _suite_rows() -> list[list[str]]:
    from harness.runner.plan import plan
    from harness.runner.plan_cost import count_text, plan_cost
    from harness.suite import bundled_suites, load_suite

    rows = []
    for name, path in bundled_suites().items():
        suite = load_suite(path)
        spec, cost = suite.spec, plan_cost(suite, plan(suite))
        claims = str(len(spec.claims)) if spec.claims else "—"
        estimate = f"{cost.trainings} models, {count_text(cost.total_calls)} evals"
        description = spec.description.strip().splitlines()[0].split(". ")[0].rstrip(".") + "."
        rows.append([name, str(len(spec.seeds)), claims, estimate, description])
    return rows


_LISTINGS: dict[Listable, tuple[list[str], Callable[[], list[list[str]]]]] = {
    Listable.explainers: (["explainer", "modality", "scope", "description"], _explainer_rows),
    Listable.metrics: (["metric", "direction", "needs", "description"], _metric_rows),
    Listable.models: (["model recipe", "modality", "description"], _model_rows),
    Listable.suites: (
        ["suite", "seeds", "claims (check)", "cost (est.: trainings, model evals)", "description"],
        _suite_rows,
    ),
}


@app.command("list")
@user_errors
def list_(what: Annotated[Listable, typer.Argument(help="what to list")]) -> None:
    """List registered explainers, datasets, metrics, model recipes or bundled suites."""
    if what is Listable.datasets:
        out.print("\n\n".join(_dataset_cards()), highlight=False)
        return
    columns, rows = _LISTINGS[what]
    out.print(listing(columns, rows()))
