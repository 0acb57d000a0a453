"""The results store's schema: its tables, their versions, checks and migrations.

Version 1 created the tables below. Every later version is a list of statements that
turn the previous version into it (:data:`MIGRATIONS`). A new store is created at version
1 and migrated like an old one, so new and upgraded stores end with identical table
definitions — which :func:`check` compares against, to refuse a file (or a table) that
another program wrote. Opening a store for writing migrates it; reading an older store
works without changing it (the facts it lacks are filled by :mod:`harness.store_legacy`).
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache
from pathlib import Path

from harness.errors import StoreError

#: The version this harness writes.
SCHEMA_VERSION = 4

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite_name TEXT NOT NULL,
    suite_path TEXT,
    suite_text TEXT NOT NULL,
    config TEXT NOT NULL,
    environment TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    stage_seconds TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    cell_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    explainer TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dataset_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    explainer_name TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    train_seconds REAL,
    explain_seconds REAL,
    score_seconds REAL,
    n_explained INTEGER,
    torch_threads INTEGER,
    warnings TEXT,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (run_id, cell_id)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    value REAL,
    higher_is_better INTEGER NOT NULL,
    unit TEXT NOT NULL,
    conventions TEXT NOT NULL,
    conventions_hash TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (run_id, cell_id, metric),
    FOREIGN KEY (run_id, cell_id) REFERENCES cells(run_id, cell_id)
);
CREATE TABLE IF NOT EXISTS arrays (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, cell_id, name),
    FOREIGN KEY (run_id, cell_id) REFERENCES cells(run_id, cell_id)
);
"""


#: version → the statements that make it from the version before.
MIGRATIONS: dict[int, list[str]] = {
    2: [  # facts on the rows: reports need no plugin registry
        "ALTER TABLE runs ADD COLUMN machine TEXT",
        "ALTER TABLE runs ADD COLUMN git_commit TEXT",
        "ALTER TABLE runs ADD COLUMN source_run TEXT",
        "ALTER TABLE cells ADD COLUMN explainer_role TEXT",
        "ALTER TABLE scores ADD COLUMN kind TEXT",
        "ALTER TABLE scores ADD COLUMN across_seeds INTEGER",
    ],
    3: [  # a metric that fails fails only its own score (NULL: written before, ok);
        # the metric's family and definition version (NULL: written before)
        "ALTER TABLE scores ADD COLUMN status TEXT",
        "ALTER TABLE scores ADD COLUMN family TEXT",
        "ALTER TABLE scores ADD COLUMN metric_version INTEGER",
        "ALTER TABLE scores ADD COLUMN role TEXT",
    ],
    4: [  # the values a metric can take (NULL: unbounded, or written before)
        "ALTER TABLE scores ADD COLUMN range_low REAL",
        "ALTER TABLE scores ADD COLUMN range_high REAL",
    ],
}


def _normalised(sql: str | None) -> str:
    """A table definition with ``IF NOT EXISTS`` and whitespace differences removed."""
    text = re.sub(r"\s+", " ", (sql or "").replace("IF NOT EXISTS ", "")).strip().rstrip(";")
    return text.replace("( ", "(").replace(" )", ")")


def _apply(db: sqlite3.Connection, start: int, end: int) -> None:
    """Bring a store from version ``start`` (0: empty) to ``end``, inside the caller's
    transaction (statement by statement: ``executescript`` would commit it)."""
    if start == 0:
        for statement in filter(None, (s.strip() for s in _TABLES.split(";"))):
            db.execute(statement)
        start = 1
    for version in range(start + 1, end + 1):
        for statement in MIGRATIONS[version]:
            db.execute(statement)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(end),))


def _fresh(version: int) -> sqlite3.Connection:
    """An in-memory store at ``version`` (what :func:`definitions` reads)."""
    db = sqlite3.connect(":memory:")
    db.execute("BEGIN")
    _apply(db, 0, version)
    db.commit()
    return db


@cache
def definitions(version: int) -> dict[str, str]:
    """Each table's (normalised) definition at ``version``, as SQLite records it."""
    db = _fresh(version)
    try:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        return {name: _normalised(sql) for name, sql in rows}
    finally:
        db.close()


@cache
def columns(version: int) -> dict[str, list[str]]:
    """Each table's column names at ``version``."""
    db = _fresh(version)
    try:
        return {
            table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            for table in definitions(version)
        }
    finally:
        db.close()


def check(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of the store behind ``db`` (0 for an empty file). Raises
    :class:`StoreError` for a file of another program, a table defined otherwise than by
    any version of the harness, or a version newer than this harness."""
    found = {
        name: _normalised(sql)
        for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
    }
    ours = found.keys() & definitions(SCHEMA_VERSION).keys()
    if found and not ours:
        raise StoreError(
            f"{path} is an SQLite file of another program (tables: "
            f"{', '.join(sorted(found)[:5])}), not an xai-harness results store; use another "
            "--out folder"
        )
    if not found:
        return 0
    row = (
        db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if ("meta" in found)
        else None
    )
    version = int(row[0]) if row is not None and str(row[0]).isdigit() else 1
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}; this xai-harness reads versions up to "
            f"{SCHEMA_VERSION} — use the harness version that wrote it"
        )
    expected = definitions(version)
    for table in sorted(ours):
        if found[table] != expected.get(table):
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in columns(version)[table] if c not in have]
            what = (
                f"lacks the columns {', '.join(missing)}" if missing else "is defined differently"
            )
            raise StoreError(
                f"{path}: table '{table}' {what}; the file was not written by this version of "
                "xai-harness — use another --out folder"
            )
    return version


def create_or_migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty store, or migrate an older one to the current
    version (its rows get the facts they lack from :mod:`harness.store_legacy`) — under a
    write lock (``BEGIN IMMEDIATE``), re-checking the version inside it, so two processes
    opening a new store at once set it up once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = check(db, path)
        if version != SCHEMA_VERSION:
            _apply(db, version, SCHEMA_VERSION)
            if version >= 1:
                from harness.store_legacy import fill_stored_facts

                fill_stored_facts(db)
        db.commit()
    except BaseException:
        db.rollback()
        raise
