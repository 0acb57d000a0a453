"""Facts that stores written before schema version 2 do not hold on their rows.

Since version 2 every score row carries its metric's kind and whether it is an
across-seeds statistic, every cell row its explainer's role, and every run its machine
and commit: reports read only those. Older rows get them here — the only place below the
command line that consults the plugin registries, and only for such rows: once when a
store is migrated (opened for writing), or in memory when an old store is only read. A
plugin that is no longer installed leaves its facts unknown (NULL), and reports then
treat its metric as an explanation metric and its explainer as post-hoc.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pandas as pd


def metric_facts(metric_name: str) -> tuple[str, bool] | None:
    """(kind, across_seeds) of a registered metric, or None when it is not installed."""
    from harness.errors import HarnessError
    from harness.metrics import metric_registry

    try:
        cls = metric_registry.get(metric_name)
    except HarnessError:
        return None
    return cls.kind, bool(cls.across_seeds)


def explainer_role(explainer_name: str) -> str | None:
    """The role of a registered explainer, or None when it is not installed."""
    from harness.errors import HarnessError
    from harness.explainers import explainer_registry

    try:
        return explainer_registry.get(explainer_name).role()
    except HarnessError:
        return None


def fill_stored_facts(db: sqlite3.Connection) -> None:
    """Write the missing facts into the rows of a store just migrated to version 2 (in
    the caller's transaction)."""
    from harness.store import machine_and_commit

    names = [
        row[0] for row in db.execute("SELECT DISTINCT metric_name FROM scores WHERE kind IS NULL")
    ]
    for name in names:
        facts = metric_facts(name)
        if facts is not None:
            db.execute(
                "UPDATE scores SET kind = ?, across_seeds = ? "
                "WHERE metric_name = ? AND kind IS NULL",
                (facts[0], int(facts[1]), name),
            )
    explainers = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT explainer_name FROM cells WHERE explainer_role IS NULL"
        )
    ]
    for name in explainers:
        role = explainer_role(name)
        if role is not None:
            db.execute(
                "UPDATE cells SET explainer_role = ? "
                "WHERE explainer_name = ? AND explainer_role IS NULL",
                (role, name),
            )
    runs = db.execute("SELECT run_id, environment FROM runs WHERE machine IS NULL").fetchall()
    for run_id, environment in runs:
        try:
            machine, commit = machine_and_commit(json.loads(environment))
        except (TypeError, ValueError):
            continue  # a damaged row: left for the readers to refuse
        db.execute(
            "UPDATE runs SET machine = ?, git_commit = ? WHERE run_id = ?",
            (machine, commit, run_id),
        )


def fill_frame_facts(frame: pd.DataFrame) -> pd.DataFrame:
    """The facts of a results frame read from an old store (which cannot be migrated
    while it is only read), filled in memory."""
    facts: dict[str, Any] = {name: metric_facts(name) for name in frame["metric_name"].unique()}
    missing = frame["metric_kind"].isna()
    frame.loc[missing, "metric_kind"] = frame.loc[missing, "metric_name"].map(
        lambda name: facts[name][0] if facts[name] else None
    )
    missing = frame["across_seeds"].isna()
    frame.loc[missing, "across_seeds"] = frame.loc[missing, "metric_name"].map(
        lambda name: facts[name][1] if facts[name] else None
    )
    roles = {name: explainer_role(name) for name in frame["explainer_name"].unique()}
    missing = frame["explainer_role"].isna()
    frame.loc[missing, "explainer_role"] = frame.loc[missing, "explainer_name"].map(roles)
    return frame
