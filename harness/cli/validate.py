"""``xai-harness validate``: check a suite and print its plan; runs no cell."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from harness.cli.app import SuiteArgument, app, listing, out, user_errors
from harness.datasets.explained_rows import explained_rows

if TYPE_CHECKING:
    from harness.suite import Suite

#: At most this many (dataset, model, explainer) rows are listed; the rest are counted.
MAX_LISTED = 200


@app.command()
@user_errors
def validate(suite: SuiteArgument) -> None:
    """Validate a suite and print its plan (cells to run, cells skipped and why); runs no
    cell. A suite that names "module:Class" imports that module (from the suite's folder
    or PYTHONPATH), which runs its code — as pytest runs a conftest.py: validate only
    suites you trust."""
    from harness.runner.plan import plan
    from harness.runner.plan_cost import plan_cost
    from harness.suite import load_suite

    loaded = load_suite(suite)
    cells = plan(loaded)
    skipped = [c for c in cells if c.skip_reason]
    out.print(
        f"{loaded.name}: {len(cells)} cells = {len(loaded.spec.seeds)} seeds × "
        f"{len(loaded.datasets)} datasets × {len(loaded.models)} models × "
        f"{len(loaded.explainers)} explainers; {len(cells) - len(skipped)} to run, "
        f"{len(skipped)} skipped"
    )
    for section in ("datasets", "models", "explainers"):
        expanded: dict[str, list[str]] = {}
        for entry in getattr(loaded, section):
            if entry.swept:
                expanded.setdefault(entry.base, []).append(entry.id)
        for base, ids in expanded.items():
            swept = ", ".join(
                sorted({k for r in getattr(loaded, section) if r.base == base for k in r.swept})
            )
            out.print(
                f"sweep: {section} '{base}' expands into {len(ids)} entries (over {swept})",
                highlight=False,
            )
    combos: dict[tuple[str, str, str], str | None] = {}
    metric_skips: dict[tuple[str, str], dict[str, str]] = {}
    for cell in cells:
        combos[(cell.dataset.id, cell.model.id, cell.explainer.id)] = cell.skip_reason
        if cell.metric_skips:
            metric_skips[(cell.dataset.id, cell.explainer.id)] = cell.metric_skips
    rows = [
        [dataset, model, explainer, "skipped: " + reason if reason else "run"]
        for (dataset, model, explainer), reason in combos.items()
    ]
    out.print(listing(["dataset", "model", "explainer", "plan (every seed)"], rows[:MAX_LISTED]))
    if len(rows) > MAX_LISTED:  # a large sweep: the plan in counts, not 100,000 lines
        reasons = Counter(reason for reason in combos.values() if reason)
        out.print(
            f"… and {len(rows) - MAX_LISTED:,} more combinations (of {len(rows):,}: "
            f"{len(rows) - sum(reasons.values()):,} to run)",
            highlight=False,
        )
        for reason, count in reasons.most_common():
            out.print(f"skipped ({count:,} combinations): {reason}", highlight=False)
    for (dataset, explainer), skips in metric_skips.items():
        for metric, reason in skips.items():
            out.print(f"metric {metric} not computed for {dataset} × {explainer}: {reason}")
    out.print(f"metrics: {', '.join(m.id for m in loaded.metrics)}")
    out.print(f"estimated cost: {plan_cost(loaded, cells).summary()}", highlight=False)
    for warning in explained_truth_warnings(loaded):
        out.print(f"warning: {warning}", highlight=False)


def explained_truth_warnings(loaded: Suite) -> list[str]:
    """One warning per dataset whose explained images (for some seed and explainer) have
    no ground truth — every localisation score would be undefined — when the dataset
    can tell without being loaded (an image folder's listing)."""
    options = loaded.spec.execution
    counts = sorted({e.explain_rows or options.explain_rows for e in loaded.explainers})
    warnings = []
    for dataset in loaded.datasets:
        known = dataset.component.test_truth()
        if known is None:
            continue
        labels, has_truth = known
        seeds = loaded.spec.seeds if options.data_seed is None else [options.data_seed]
        empty = next(
            (
                (seed, count)
                for seed in seeds
                for count in counts
                if not has_truth[explained_rows(labels, count, options.explain_sample, seed)].any()
            ),
            None,
        )
        if empty is None:
            continue
        seed, count = empty
        where, fixes = "no test image", ""
        if has_truth.any():
            where, fixes = f"none of the {count} explained", ", or explain more rows"
            if options.explain_sample == "first":
                fixes += " or use explain_sample = 'stratified'"
        warnings.append(
            f"dataset '{dataset.id}': {where} (seed {seed}) has ground truth, so every "
            f"localisation score will be undefined; check its masks/boxes/points{fixes}"
        )
    return warnings
