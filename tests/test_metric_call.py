"""Issue 31 (part): ``harness.metric(name)`` called as Quantus calls a metric — per-sample
scores equal to Quantus's on the same batches where the conventions agree — and the
public API listed by ``dir(harness)``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import harness
from harness.errors import HarnessError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    quantus = pytest.importorskip(
        "quantus", reason="quantus (the [test] extra) cannot be imported", exc_type=ImportError
    )


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    """Quantus's layout: (samples, 1, H, W) continuous maps (no ties) and box masks."""
    rng = np.random.default_rng(11)
    n = 20
    masks = np.zeros((n, 1, 28, 28))
    for i in range(n):
        r, c = rng.integers(0, 22, size=2)
        masks[i, 0, r : r + rng.integers(2, 7), c : c + rng.integers(2, 7)] = 1
    return {
        "x_batch": rng.random((n, 1, 28, 28)).astype(np.float32),
        "y_batch": np.zeros(n, dtype=int),
        "a_batch": rng.random((n, 1, 28, 28)),
        "s_batch": masks,
    }


#: metrics whose conventions agree with Quantus's (harness id and params, Quantus class):
#: the pointing game without the harness's 15-px tolerance (Quantus has none)
AGREEING = [
    ("relevance_rank_accuracy", {}, "RelevanceRankAccuracy"),
    ("relevance_mass_accuracy", {}, "RelevanceMassAccuracy"),
    ("pointing_game", {"tolerance": 0}, "PointingGame"),
]


@pytest.mark.parametrize(("ours", "params", "reference"), AGREEING, ids=[a[0] for a in AGREEING])
def test_per_sample_scores_equal_quantus_on_its_call(batch, ours, params, reference) -> None:
    theirs = getattr(quantus, reference)(
        normalise=False, abs=False, disable_warnings=True, display_progressbar=False
    )(model=None, channel_first=True, **batch)
    mine = harness.metric(ours, **params)(model=None, channel_first=True, **batch)
    assert mine.shape == (len(batch["a_batch"]),)
    np.testing.assert_allclose(mine, np.asarray(theirs, dtype=float), atol=1e-12)


def test_a_metric_that_calls_the_model_gets_it_and_conventions_are_stated(batch) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))
    call = harness.metric("deletion_auc")
    scores = call(model=model, **batch)
    assert scores.shape == (20,) and np.isfinite(scores).all()
    assert call.conventions == call.metric.conventions() and call.conventions


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("pointing_game", {"s_batch": np.zeros((20, 1, 14, 14))}, "s_batch has shape"),
        ("pointing_game", {"a_batch": np.zeros((20, 3, 28, 28))}, "a_batch has 3 channels"),
        ("pointing_game", {"y_batch": np.zeros(5, dtype=int)}, "y_batch has 5 samples"),
        ("pointing_game", {"a_batch": np.full((20, 1, 28, 28), np.nan)}, "NaN"),
        ("deletion_auc", {}, "calls the model: give model"),
        ("mprt", {}, "needs reexplain"),
        ("spearman_gt", {}, "needs global_importance, importance"),
    ],
)
def test_bad_calls_raise_one_harness_error_saying_what_to_do(batch, name, change, message) -> None:
    with pytest.raises(HarnessError, match=message):
        harness.metric(name)(model=None, **(batch | change))


def test_an_unknown_metric_name_suggests_the_closest() -> None:
    with pytest.raises(HarnessError, match="pointing_game"):
        harness.metric("pointing_gam")


def test_dir_lists_the_public_api_for_tab_completion() -> None:
    names = dir(harness)
    for public in ("run_suite", "load_results", "load_suite", "metric", "metric_registry"):
        assert public in names
    for public in ("evaluate", "Results", "explainer", "load_arrays", "load_importance"):
        assert public in names and getattr(harness, public).__doc__  # Jupyter's `?`
    assert "importlib" not in names and "TYPE_CHECKING" not in names


def test_the_leaderboard_frame_is_public_and_reads_one_run(tiny_run) -> None:
    """``harness.leaderboard(out)``: the latest run's aggregated entries, the frame the
    printed leaderboards come from (means over seeds, intervals, ranks)."""
    from harness.store import ResultsStore

    out, summary = tiny_run
    run_id = summary.run_id
    frame = harness.leaderboard(out, run_id)
    with ResultsStore(out, create=False) as store:  # the folder is shared: the latest run
        latest = store.run_ids()[-1]
    assert harness.leaderboard(out).equals(harness.leaderboard(out, latest))
    entry = frame.query("explainer == 'integrated_gradients' and metric == 'spearman_gt'")
    values = harness.load_results(out, run_id).query(
        "explainer == 'integrated_gradients' and metric == 'spearman_gt'"
    )["value"]
    assert len(entry) == 1 and entry["mean"].iloc[0] == pytest.approx(values.mean())
    assert entry["n"].iloc[0] == len(values) == 2 and not frame["control"].all()
