"""Integrity of stored results (issue 13, points 1–4): damaged cache entries are redone,
ids are validated, a run is ``ok`` only when every planned cell is stored, one writer
per run, and a run without cells is refused clearly."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from harness import load_results, run_suite
from harness.errors import HarnessError
from harness.runner.executor import SerialExecutor
from harness.runner.plan import plan
from harness.store import ResultsStore, run_status
from harness.suite import SuiteError, parse_suite
from tests.conftest import ONE_SEED_SUITE, assert_user_error, cli

#: Scores that do not depend on timing (explain_seconds is re-measured when recomputed).
TIMING = {"explain_seconds"}


def _scores(out: Path, run_id: str) -> pd.Series:
    results = load_results(out, run_id)
    kept = results[~results["metric"].isin(TIMING)]
    return kept.set_index(["cell_id", "metric"])["value"].sort_index()


@pytest.fixture(scope="module")
def undamaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.Series]:
    """A cold run of the one-seed suite with a cache: its folder and its scores."""
    out = tmp_path_factory.mktemp("undamaged")
    summary = run_suite(parse_suite(ONE_SEED_SUITE), out, cache_dir=out / "cache")
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}
    return out / "cache", _scores(out, summary.run_id)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_npz(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    change(arrays)
    path.write_bytes(_npz_bytes(**arrays))


def _nan_weights(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    torch.save(state, path)


def _first(arrays: dict[str, np.ndarray], value: float) -> None:
    name = "local" if "local" in arrays else "global_scores"
    arrays[name] = arrays[name].astype(np.float64)
    arrays[name].flat[0] = value


#: kind of entry, file, damage
DAMAGES: dict[str, tuple[str, str, Callable[[Path], None]]] = {
    "model outputs truncated": ("models", "outputs.npz", _truncate),
    "model outputs foreign": (
        "models", "outputs.npz", lambda p: p.write_bytes(_npz_bytes(other=np.zeros(3)))),
    "model probabilities wrong shape": ("models", "outputs.npz", lambda p: _edit_npz(
        p, lambda a: a.update(test_probabilities=a["test_probabilities"][:5]))),
    "model probabilities above 1": ("models", "outputs.npz", lambda p: _edit_npz(
        p, lambda a: a.update(test_probabilities=a["test_probabilities"] + 7))),
    "model probabilities NaN": ("models", "outputs.npz", lambda p: _edit_npz(
        p, lambda a: a.update(test_probabilities=a["test_probabilities"] * np.nan))),
    "model meta is a list": ("models", "meta.json", lambda p: p.write_text("[]")),
    "model meta lacks a key": ("models", "meta.json", lambda p: p.write_text('{"epochs": 1}')),
    "model meta not JSON": ("models", "meta.json", lambda p: p.write_text("{")),
    "model state truncated": ("models", "state.pt", _truncate),
    "model state foreign": (
        "models", "state.pt", lambda p: torch.save({"weight": torch.zeros(3)}, p)),
    "model state NaN": ("models", "state.pt", _nan_weights),
    "model state missing": ("models", "state.pt", lambda p: p.unlink()),
    "explanation truncated": ("explanations", "arrays.npz", _truncate),
    "explanation foreign": (
        "explanations", "arrays.npz", lambda p: p.write_bytes(_npz_bytes(x=np.ones(2)))),
    "explanation NaN": ("explanations", "arrays.npz",
                        lambda p: _edit_npz(p, lambda a: _first(a, float("nan")))),
    "explanation inf": ("explanations", "arrays.npz",
                        lambda p: _edit_npz(p, lambda a: _first(a, float("inf")))),
    "explanation wrong shape": ("explanations", "arrays.npz", lambda p: _edit_npz(
        p, lambda a: a.update({k: v[..., :-1] for k, v in a.items()}))),
    "explanation meta is a list": ("explanations", "meta.json", lambda p: p.write_text("[]")),
    "explanation meta lacks a key": (
        "explanations", "meta.json", lambda p: p.write_text('{"signed": true}')),
    "explanation seconds negative": ("explanations", "meta.json", lambda p: p.write_text(
        '{"signed": true, "channel_pooling": null, "seconds": -1}')),
    "dataset truncated": ("datasets", "arrays.npz", _truncate),
    "dataset changed (fingerprint)": ("datasets", "arrays.npz", lambda p: _edit_npz(
        p, lambda a: a.update(y_test=1 - a["y_test"]))),
    "dataset meta is a list": ("datasets", "meta.json", lambda p: p.write_text("[]")),
    # the digests themselves (the damages above are checked behind valid digests too)
    "model digests foreign": ("models", "digests.json", lambda p: p.write_text("{}")),
    "explanation digests truncated": ("explanations", "digests.json", _truncate),
    "dataset digests missing": ("datasets", "digests.json", lambda p: p.unlink()),
}  # fmt: skip


def _refresh_digests(entry: Path) -> None:
    """The entry's digests rewritten to match its (damaged) files, so the damage reaches
    the checks behind them — as if the cache itself had written bad content."""
    from harness.inputs import file_digest
    from harness.runner.cache import DIGESTS

    digests = {p.name: file_digest(p) for p in sorted(entry.iterdir()) if p.name != DIGESTS}
    (entry / DIGESTS).write_text(json.dumps(digests))


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_cache_entry_is_recomputed_rewritten_and_scores_stay_right(
    damage: str, undamaged: tuple[Path, pd.Series], tmp_path: Path
) -> None:
    cache, expected = undamaged
    kind, name, spoil = DAMAGES[damage]
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    entries = sorted((copy / kind).glob(f"*/*/{name}"))
    assert entries, f"no {kind} entry to damage"
    for path in entries:
        spoil(path)
        if name != "digests.json":
            _refresh_digests(path.parent)
    out = tmp_path / "out"
    summary = run_suite(parse_suite(ONE_SEED_SUITE), out, cache_dir=copy)
    # every cell is ok, with every planned score stored and equal to the undamaged run's
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}, summary.failures
    results = load_results(out, summary.run_id)
    assert results["value"].notna().all(), results[results["value"].isna()]
    pd.testing.assert_series_equal(_scores(out, summary.run_id), expected)
    # the damaged entries were rewritten: a third run reuses everything
    again = run_suite(parse_suite(ONE_SEED_SUITE), out, cache_dir=copy)
    assert again.reused == {"models": 1, "explanations": 3}


def test_a_cached_nan_explanation_never_makes_an_ok_cell(
    undamaged: tuple[Path, pd.Series], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached explanation passes the checks a fresh one does: NaN fails the cell when
    it cannot be recomputed clean (here the explainer itself returns the same NaN)."""
    from harness.explainers.base import Explanation

    cache, _ = undamaged
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    for path in copy.glob("explanations/*/*/arrays.npz"):
        _edit_npz(path, lambda a: _first(a, float("nan")))
    monkeypatch.setattr(
        "harness.explainers.controls.Oracle.explain",
        lambda self, model, inputs, targets, context: Explanation(
            local=np.full(inputs.shape, np.nan)
        ),
    )
    summary = run_suite(parse_suite(ONE_SEED_SUITE), tmp_path / "out", cache_dir=copy)
    failures = dict(summary.failures)
    assert "NaN or infinite" in failures["syn/mlp/oracle/seed=0"]
    assert summary.counts["ok"] == 2


# --- point 2: identifiers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_id", "message"),
    [
        ("a/b", "must not contain '/'"),
        ("a\\\\b", "must not contain '/'"),
        ("a\\u0000b", "printable"),
        ("tab\\there", "printable"),
        ("..", "'.' or '..'"),
        (" padded", "start or end with a space"),
        ("x" * 101, "at most 100 characters"),
        ("", "must not be empty"),
    ],
)
def test_ids_are_validated_before_anything_runs(
    bad_id: str, message: str, write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    suite = write_suite(ONE_SEED_SUITE.replace('id = "syn"', f'id = "{bad_id}"'))
    out = tmp_path / "out"
    line = assert_user_error(cli("run", str(suite), "--out", str(out)), "datasets[0].id", message)
    assert str(suite) in line
    assert not out.exists()  # nothing was written


def test_colliding_ids_of_the_old_kind_are_refused(
    write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    """Dataset 'syn/mlp' × model 'x' and dataset 'syn' × model 'mlp/x' would both name
    cells 'syn/mlp/x/…': the first run died with an IntegrityError, and --resume then
    called the run ok. Such ids are refused now."""
    text = ONE_SEED_SUITE.replace('id = "syn"', 'id = "syn/mlp"').replace(
        '[[models]]\nname = "mlp"', '[[models]]\nid = "x"\nname = "mlp"'
    )
    out = tmp_path / "out"
    assert_user_error(cli("run", str(write_suite(text)), "--out", str(out)), "must not contain")
    assert not out.exists()


def test_the_plan_refuses_repeated_cell_ids() -> None:
    suite = parse_suite(ONE_SEED_SUITE)
    doubled = dataclasses.replace(suite, explainers=suite.explainers * 2)
    with pytest.raises(SuiteError, match="names 3 cells more than once"):
        plan(doubled)


# --- point 3: ok only when complete; one writer per run ---------------------------------


class _LosesACell(SerialExecutor):
    """Runs everything but never hands back one cell (as a lost worker would)."""

    def run(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for outcome in super().run(*args, **kwargs):
            if outcome[0].explainer.id != "random":
                yield outcome


def test_a_run_missing_a_planned_cell_is_not_ok_and_resume_completes_it(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="1 planned cells were not stored"):
        run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, executor=_LosesACell())
    with ResultsStore(tmp_path, create=False) as store:
        run_id = store.resolve_run_id(None)
        assert store.run_info(run_id)["status"] == "interrupted"
        assert len(store.cell_statuses(run_id)) == 2
    resumed = run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, resume=run_id)
    assert resumed.resumed == 2 and resumed.counts == {"ok": 3, "failed": 0, "skipped": 0}
    with ResultsStore(tmp_path, create=False) as store:
        assert store.run_info(run_id)["status"] == "ok"
        assert len(store.cell_statuses(run_id)) == 3


HOLD_LOCK = """
import sys, time
from harness.run_lock import RunLock
with RunLock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_a_second_writer_of_the_same_run_gets_one_clear_message(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="were not stored"):  # a run to resume
        run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, executor=_LosesACell())
    with ResultsStore(tmp_path, create=False) as store:
        first = store.resolve_run_id(None)
    holder = subprocess.Popen(  # another process resuming the run, still alive
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path), first],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with ResultsStore(tmp_path, create=False) as store:
            before = store.cell_statuses(first)
        result = cli("run", "--resume", first, "--out", str(tmp_path), "--no-cache",
                     _suite_file(tmp_path))  # fmt: skip
        assert_user_error(result, f"run {first} is being written by another process")
        with ResultsStore(tmp_path, create=False) as store:
            assert store.cell_statuses(first) == before  # nothing written by the second
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: the run is resumable, and readers call it interrupted
    resumed = run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, resume=first)
    assert resumed.counts["ok"] == 3


def _suite_file(folder: Path) -> str:
    path = folder / "tiny.toml"
    path.write_text(ONE_SEED_SUITE)
    return str(path)


def test_a_running_run_whose_process_is_gone_reads_as_interrupted(tmp_path: Path) -> None:
    with ResultsStore(tmp_path) as store:
        run_id = store.begin_run(suite_name="tiny", suite_path=None, suite_text="",
                                 config={}, environment={})  # fmt: skip
        info = store.run_info(run_id)
        assert info["status"] == "running"
        assert run_status(store, info) == "interrupted"  # nobody holds its lock


# --- point 4: a run that stored no cell ---------------------------------------------------


@pytest.mark.parametrize("command", ["show", "report", "figures", "check"])
def test_a_run_without_cells_is_refused_with_one_line(
    command: str, write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with ResultsStore(out) as store:  # a run killed before its first cell finished
        run_id = store.begin_run(suite_name="tiny", suite_path=None, suite_text="",
                                 config={}, environment={})  # fmt: skip
    args = [command, "--out", str(out)]
    if command == "check":
        args.insert(1, str(write_suite(ONE_SEED_SUITE)))
    line = assert_user_error(cli(*args), f"run {run_id}", "stored no cell", "--resume")
    assert "interrupted" in line


def test_the_damage_kinds_cover_every_file_of_an_entry(undamaged: tuple[Path, pd.Series]) -> None:
    cache, _ = undamaged
    for kind in ("models", "explanations", "datasets"):
        entry = next((cache / kind).glob("*/*"))
        files = {path.name for path in entry.iterdir()}
        damaged = {name for k, name, _ in DAMAGES.values() if k == kind}
        assert files == damaged, (kind, files, damaged)
        with zipfile.ZipFile(next(entry.glob("*.npz"))):  # the archives are real zips
            pass
    assert json.loads(next(cache.glob("models/*/*/meta.json")).read_text())["epochs"] >= 1
