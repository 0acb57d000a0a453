"""Issue 26: no valid suite crashes `figures` or `report` — renamed metric ids, one
dataset, seed or explainer, failed cells, sweeps — and the sweep figure reads the
dataset facts (relevant features) from the store."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import run_suite
from harness.report.figures import render_figures
from harness.report.html_report import write_report
from harness.suite import parse_suite
from tests.suite_builder import suite

_counter = itertools.count()


def test_a_renamed_metric_id_draws_its_sweep_panel(tmp_path: Path) -> None:
    text = suite(
        "renamed", seeds=[0], metrics=["accuracy", {"name": "spearman_gt", "id": "rho"}],
        datasets=[("synthetic_tabular", {"n_samples": 200, "n_features": f, "n_informative": 3},
                   f"d{f}") for f in (5, 8)],
        models=[("mlp", {"hidden": [8], "epochs": 2})],
        explainers=[("integrated_gradients", {"n_steps": 4}), "random"],
    )  # fmt: skip
    out = tmp_path / "out"
    run_suite(parse_suite(text), out)
    written = render_figures(out, None, tmp_path / "figures")
    assert (tmp_path / "figures" / "sweep_irrelevant_features.png") in written
    report = write_report(out, None, tmp_path / "report")
    assert report.is_file()


def test_the_sweep_axis_says_how_many_features_are_relevant(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from harness.report.figures import load_run_data, sweep_figure
    from harness.store import ResultsStore

    text = suite(
        "three", seeds=[0], metrics=["spearman_gt"],
        datasets=[("synthetic_tabular", {"n_samples": 200, "n_features": f, "n_informative": 3},
                   f"d{f}") for f in (5, 8)],
        models=[("mlp", {"hidden": [8], "epochs": 2})], explainers=["random"],
    )  # fmt: skip
    run_suite(parse_suite(text), tmp_path)
    with ResultsStore(tmp_path, create=False) as store:
        data = load_run_data(store, store.resolve_run_id(None))
    figure = sweep_figure(data.results, data.config)
    assert figure is not None
    assert figure.axes[0].get_xlabel() == "irrelevant features (3 relevant)"
    plt.close(figure)


@st.composite
def small_suites(draw) -> str:
    """A valid small suite: 1–2 datasets (maybe a sweep), 1–2 seeds, 1–3 explainers (a
    failing plugin among them, sometimes), metrics under their own or other ids."""
    n_datasets = draw(st.integers(1, 2))
    datasets = [("synthetic_tabular", {"n_samples": 120, "n_features": draw(st.integers(4, 7)),
                                       "n_informative": 2}, f"data{i}")
                for i in range(n_datasets)]  # fmt: skip
    if draw(st.booleans()):
        datasets[0][1]["n_samples"] = {"sweep": [120, 160]}
    names = draw(st.lists(st.sampled_from(["random", "oracle", "integrated_gradients",
                                           "sample_plugins:FailingExplainer"]),
                          min_size=1, max_size=3, unique=True))  # fmt: skip
    explainers = [(n, {"n_steps": 4}) if n == "integrated_gradients" else n for n in names]
    metrics: list = []
    for name in draw(st.lists(st.sampled_from(["accuracy", "spearman_gt", "kendall_gt",
                                               "explain_seconds", "deletion_auc"]),
                              min_size=1, max_size=4, unique=True)):  # fmt: skip
        metrics.append({"name": name, "id": f"m_{name}"} if draw(st.booleans()) else name)
    return suite("generated", seeds=list(range(draw(st.integers(1, 2)))), metrics=metrics,
                 datasets=datasets, models=[("mlp", {"hidden": [4], "epochs": 1})],
                 explainers=explainers, execution={"explain_rows": 10})  # fmt: skip


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=small_suites())
def test_figures_and_report_never_crash_on_a_valid_suite(
    text: str, tmp_path_factory: pytest.TempPathFactory, plugins_on_path: None
) -> None:
    folder = tmp_path_factory.mktemp(f"suite{next(_counter)}")
    run_suite(parse_suite(text), folder / "out")
    render_figures(folder / "out", None, folder / "figures")
    assert write_report(folder / "out", None, folder / "report").is_file()


def test_figures_choose_metrics_by_role_and_read_old_runs_by_name(tmp_path: Path) -> None:
    """Renamed ids are found by their stored role; a run stored before roles were kept
    (role NULL) draws the same figures from the metrics' names."""
    import sqlite3
    from contextlib import closing

    text = suite(
        "roles", seeds=[0],
        metrics=[{"name": "accuracy", "id": "acc"}, {"name": "deletion_auc", "id": "del"},
                 {"name": "insertion_auc", "id": "ins"}, "explain_seconds"],
        datasets=[("synthetic_tabular", {"n_samples": 200, "n_features": 5})],
        models=[("mlp", {"hidden": [8], "epochs": 2})],
        explainers=[("integrated_gradients", {"n_steps": 4}), "random"],
    )  # fmt: skip
    out = tmp_path / "out"
    run_suite(parse_suite(text), out)
    by_role = sorted(p.name for p in render_figures(out, None, tmp_path / "a"))
    assert "faithfulness_synthetic_tabular_mlp.png" in by_role and "runtime.png" in by_role
    with closing(sqlite3.connect(out / "harness.sqlite")) as db, db:
        db.execute("UPDATE scores SET role = NULL")
    by_name = sorted(p.name for p in render_figures(out, None, tmp_path / "b"))
    assert by_name == by_role


def test_every_metric_role_is_of_the_closed_set() -> None:
    import typing

    from harness.metrics import metric_registry
    from harness.records import MetricRole

    roles = set(typing.get_args(MetricRole))
    declared = {name: metric_registry.get(name).role for name in metric_registry.names()}
    assert set(declared.values()) <= roles
    assert (
        declared["deletion_auc"] == "deletion_curve" and declared["mprt"] == "randomisation_curve"
    )
    drawn = {role for role in roles if role}
    assert drawn <= set(declared.values())  # every role has its metric
