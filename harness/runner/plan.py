"""Planning: expand a suite into cells and decide, before running, what is impossible."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.datasets.base import DatasetSource
from harness.explainers.base import Explainer
from harness.metrics.base import Metric
from harness.models.base import TRAITS, ModelRecipe
from harness.suite import Resolved, Suite, SuiteError

#: Ground-truth evidence names and what a dataset must provide for them.
_GROUND_TRUTH_NEEDS = {
    "importance": "ground-truth feature importance",
    "masks": "ground-truth masks",
    "suppressors": "suppressor features",
}


@dataclass(frozen=True)
class Cell:
    """One (dataset, model recipe, explainer, seed).

    ``skip_reason`` is set when the cell cannot run at all; ``metric_skips`` maps the id
    of each metric that cannot be computed for this cell to the reason.
    """

    dataset: Resolved[DatasetSource]
    model: Resolved[ModelRecipe]
    explainer: Resolved[Explainer]
    seed: int
    skip_reason: str | None = None
    metric_skips: dict[str, str] = field(default_factory=dict)

    @property
    def cell_id(self) -> str:
        return f"{self.dataset.id}/{self.model.id}/{self.explainer.id}/seed={self.seed}"

    @property
    def model_key(self) -> tuple[str, str, int]:
        """Cells with the same key share one trained model."""
        return (self.dataset.id, self.model.id, self.seed)


def cell_skip_reason(
    dataset: Resolved[DatasetSource], model: Resolved[ModelRecipe], explainer: Resolved[Explainer]
) -> str | None:
    """Why this combination cannot run, or None if it can."""
    source, recipe, method = dataset.component, model.component, explainer.component
    modality = source.modality
    if modality not in recipe.modalities:
        return (
            f"model '{model.id}' takes {'/'.join(sorted(recipe.modalities))} data; "
            f"dataset '{dataset.id}' is {modality}"
        )
    if modality not in method.modalities:
        return (
            f"explainer '{explainer.id}' handles {'/'.join(sorted(method.modalities))} data; "
            f"dataset '{dataset.id}' is {modality}"
        )
    if method.needs_gradients and not recipe.has_gradients():
        return f"explainer '{explainer.id}' needs gradients; model '{model.id}' has none"
    reason = method.recipe_skip_reason(type(recipe))
    if reason is not None:
        return f"explainer '{explainer.id}' cannot use model '{model.id}': {reason}"
    for trait in sorted(method.requires_traits - recipe.model_traits()):
        return f"explainer '{explainer.id}' needs a model that {TRAITS.get(trait, trait)}"
    wanted = method.requires_any_traits
    if wanted and not wanted & recipe.model_traits():
        needs = " or ".join(TRAITS.get(t, t) for t in sorted(wanted))
        return f"explainer '{explainer.id}' needs a model that {needs}"
    for trait in sorted(recipe.model_traits() & method.incompatible_traits.keys()):
        return (
            f"explainer '{explainer.id}' cannot explain model '{model.id}': "
            f"{method.incompatible_traits[trait]}"
        )
    truth = method.needs_ground_truth.get(modality)
    if truth is not None and truth not in source.ground_truth_kinds():
        return (
            f"explainer '{explainer.id}' needs {_GROUND_TRUTH_NEEDS.get(truth, truth)}; "
            f"dataset '{dataset.id}' has none"
        )
    return None


def metric_skip_reason(
    metric: Resolved[Metric], dataset: Resolved[DatasetSource], explainer: Resolved[Explainer]
) -> str | None:
    """Why ``metric`` cannot be computed for this dataset and explainer, or None."""
    needs = metric.component.needs
    modality = dataset.component.modality
    if modality not in metric.component.modalities:
        kinds = "/".join(sorted(metric.component.modalities))
        return f"metric '{metric.id}' applies to {kinds} data; dataset '{dataset.id}' is {modality}"
    missing = sorted((needs & _GROUND_TRUTH_NEEDS.keys()) - dataset.component.ground_truth_kinds())
    if missing:
        what = " and ".join(_GROUND_TRUTH_NEEDS[m] for m in missing)
        return f"metric '{metric.id}' needs {what}; dataset '{dataset.id}' has none"
    if "attributions" in needs and explainer.component.scope != "local":
        return f"metric '{metric.id}' needs local attributions; '{explainer.id}' is global only"
    # the next two reasons name no explainer, so a leaderboard shows each as one footnote
    if explainer.id in metric.component.references():
        return f"metric '{metric.id}': this explainer is the reference"
    if "twin" in needs and not explainer.component.by_design:
        return (
            f"metric '{metric.id}' compares a by-design model with its black-box twin; "
            "post-hoc explainers explain the twin itself"
        )
    return None


def plan(suite: Suite) -> list[Cell]:
    """All cells, ordered so each (dataset, seed) loads once and each model trains once.

    Within a (dataset, model, seed) group, explainers that a metric uses as its reference
    run first, so their results are there when the others are scored.
    """
    referenced = {ref for metric in suite.metrics for ref in metric.component.references()}
    explainers = sorted(suite.explainers, key=lambda e: e.id not in referenced)
    cells = []
    for seed in suite.spec.seeds:
        for dataset in suite.datasets:
            for model in suite.models:
                for explainer in explainers:
                    reason = cell_skip_reason(dataset, model, explainer)
                    metric_skips = {
                        metric.id: why
                        for metric in suite.metrics
                        if (why := metric_skip_reason(metric, dataset, explainer)) is not None
                    }
                    cells.append(Cell(dataset, model, explainer, seed, reason, metric_skips))
    repeated = [cell_id for cell_id, n in Counter(c.cell_id for c in cells).items() if n > 1]
    if repeated:  # ids are validated and unique per section, so this is a guard
        raise SuiteError(
            f"suite '{suite.name}': cell id '{repeated[0]}' names {len(repeated)} cells more "
            "than once; give the datasets, models and explainers distinct ids"
        )
    return cells
