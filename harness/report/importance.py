"""Global importance per original column, from the store: one table per dataset × model.

Each cell's global importance is normalised to shares of its total |importance| (so
explainers with different scales compare), averaged over seeds, and the columns are
ordered by their mean share over the explainers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness import artifacts
from harness.report.render import markdown_text, pipe_table
from harness.store import ResultsStore


def importance_tables(store: ResultsStore, run_id: str, top: int = 15) -> dict[str, pd.DataFrame]:
    """``"dataset / model"`` → columns × explainers table of mean importance shares (top
    ``top`` columns); tabular cells only (they store ``column_names``)."""
    names = store.arrays(run_id, artifacts.COLUMN_NAMES)
    importance = store.arrays(run_id, artifacts.GLOBAL_IMPORTANCE)
    cells = store.results(run_id).drop_duplicates("cell_id").set_index("cell_id")
    shares: dict[tuple[str, str], dict[str, list[pd.Series]]] = {}
    for cell_id, columns in names.items():
        if cell_id not in importance or cell_id not in cells.index:
            continue
        values = np.abs(np.asarray(importance[cell_id], dtype=float))
        total = values.sum()
        share = pd.Series(values / total if total > 0 else values, index=columns.tolist())
        row = cells.loc[cell_id]
        group = shares.setdefault((row["dataset"], row["model"]), {})
        group.setdefault(row["explainer"], []).append(share)
    tables = {}
    for (dataset, model), by_explainer in shares.items():
        table = pd.DataFrame(
            {
                explainer: pd.concat(seeds, axis=1).mean(axis=1)
                for explainer, seeds in by_explainer.items()
            }
        )
        order = table.mean(axis=1).sort_values(ascending=False).index
        tables[f"{dataset} / {model}"] = table.loc[order[:top]]
    return tables


def importance_frame(store: ResultsStore, run_id: str) -> pd.DataFrame:
    """Each tabular cell's global importance, named: one row per cell × original column
    (columns ``cell_id, dataset, model, explainer, seed, column, importance``), the
    importance as the explainer gave it (not normalised; signed where the explainer is)."""
    names = store.arrays(run_id, artifacts.COLUMN_NAMES)
    importance = store.arrays(run_id, artifacts.GLOBAL_IMPORTANCE)
    cells = store.results(run_id).drop_duplicates("cell_id").set_index("cell_id")
    rows = [
        (cell_id, *cells.loc[cell_id, ["dataset", "model", "explainer", "seed"]], str(c), float(v))
        for cell_id, columns in names.items()
        if cell_id in importance and cell_id in cells.index
        for c, v in zip(columns.tolist(), np.asarray(importance[cell_id]).tolist(), strict=True)
    ]
    columns = ["cell_id", "dataset", "model", "explainer", "seed", "column", "importance"]
    return pd.DataFrame(rows, columns=columns)


def load_importance(out_dir: str | Path = "results", run_id: str | None = None) -> pd.DataFrame:
    """The global importance of every tabular cell of a run (latest by default), with
    its column names: :func:`importance_frame`."""
    with ResultsStore(out_dir, create=False) as store:
        return importance_frame(store, store.resolve_run_id(run_id))


def importance_markdown(title: str, table: pd.DataFrame) -> str:
    """One importance table as a Markdown section (shares with 3 decimals)."""
    rows = [[str(column), *(f"{v:.3f}" for v in values)] for column, values in table.iterrows()]
    lines = pipe_table(["column", *map(str, table.columns)], rows)
    heading = f"### Importance per column (share of total): {markdown_text(title)}"
    return "\n".join([heading, "", *lines])
