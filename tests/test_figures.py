"""Figures render from the store alone, carry the run id, and only when they apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from harness import load_results, run_suite
from harness.cli import app
from harness.report.figures import feature_counts, render_figures
from harness.suite import parse_suite

SWEEP = """
name = "sweep"
seeds = [0, 1]
metrics = ["accuracy_gain_pp", "spearman_gt"]

[[datasets]]
id = "irrelevant_2"
name = "synthetic_tabular"
params = { n_samples = 300, n_features = 5, n_informative = 3 }

[[datasets]]
id = "irrelevant_6"
name = "synthetic_tabular"
params = { n_samples = 300, n_features = 10, n_informative = 3, n_redundant = 1 }

[[models]]
name = "mlp"
params = { hidden = [8], epochs = 4 }

[[explainers]]
name = "scores_activation"
[[explainers]]
name = "saliency"
[[explainers]]
name = "oracle"
"""


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sweep")
    summary = run_suite(parse_suite(SWEEP), out)
    assert summary.counts["ok"] == 12
    return out, summary.run_id


def test_feature_counts_come_from_the_resolved_config() -> None:
    config = parse_suite(SWEEP).resolved_config()
    assert feature_counts(config) == {"irrelevant_2": (3, 2), "irrelevant_6": (4, 6)}


def test_every_applicable_figure_is_written_with_the_run_id(sweep_run, tmp_path: Path) -> None:
    out, run_id = sweep_run
    written = render_figures(out, None, tmp_path / "figs")
    names = sorted(p.name for p in written)
    assert names == sorted(
        f"{stem}.{suffix}"
        for stem in (
            "sweep_irrelevant_features",
            "importance_irrelevant_2_mlp",
            "importance_irrelevant_6_mlp",
            "trajectory_irrelevant_2_mlp",
            "trajectory_irrelevant_6_mlp",
            "metric_spearman_gt",  # one point plot per explanation metric
        )
        for suffix in ("png", "pdf")
    )
    for path in written:
        assert path.stat().st_size > 1000
    png = Image.open(tmp_path / "figs" / "sweep_irrelevant_features.png")
    assert png.info["Description"] == f"xai-harness run {run_id}"
    assert png.size[0] > 800


def test_figures_command_defaults_to_the_results_folder(sweep_run) -> None:
    out, run_id = sweep_run
    result = CliRunner().invoke(app, ["figures", "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert str(out / "figures" / run_id / "sweep_irrelevant_features.png") in result.stdout


def test_only_the_figures_that_apply_are_written(tiny_run) -> None:
    out, _ = tiny_run  # one table, no by-design explainer, no images: no sweep, gallery…
    written = render_figures(out, None, out / "figs")
    stems = ["importance_syn_mlp", "runtime", "metric_spearman_gt", "metric_kendall_gt",
             "metric_topk_precision_gt", "control_separation_syn_mlp"]  # fmt: skip
    assert sorted(p.name for p in written) == sorted(
        f"{s}.{x}" for s in stems for x in ("png", "pdf")
    )


def test_a_run_without_applicable_figures_says_so(plugins_on_path: None, tmp_path: Path) -> None:
    text = """
name = "no_truth"
seeds = [0]
metrics = ["accuracy"]
[[datasets]]
name = "sample_plugins:BlobsWithoutTruth"
[[models]]
name = "mlp"
params = { epochs = 1 }
[[explainers]]
name = "saliency"
"""
    run_suite(parse_suite(text), tmp_path)
    result = CliRunner().invoke(app, ["figures", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert "no figure applies to this run" in result.stdout


GALLERY = """
name = "gallery"
seeds = [0]
metrics = ["accuracy", "pointing_game", "deletion_auc", "deletion_auc_random", "insertion_auc"]
[execution]
explain_rows = 12
[[datasets]]
name = "synthetic_lesions"
params = { n_images = 80, size = 32, radius = [1.5, 3.0] }
[[models]]
name = "small_cnn"
params = { channels = [4, 8], epochs = 1 }
[[explainers]]
name = "grad_cam"
[[explainers]]
name = "oracle"
"""


def test_image_runs_store_a_few_maps_and_draw_a_gallery(tmp_path: Path) -> None:
    from harness.store import load_arrays

    run_suite(parse_suite(GALLERY), tmp_path)
    maps = load_arrays(tmp_path, "gallery_maps")
    masks = load_arrays(tmp_path, "gallery_masks")
    oracle = "synthetic_lesions/small_cnn/oracle/seed=0"
    assert maps[oracle].shape == (8, 32, 32) and maps[oracle].dtype == np.float32
    np.testing.assert_array_equal(maps[oracle], masks[oracle].astype(np.float32))
    assert load_arrays(tmp_path, "gallery_images")[oracle].shape == (8, 1, 32, 32)
    written = {p.name for p in render_figures(tmp_path, None, tmp_path / "figs")}
    assert {
        "gallery_synthetic_lesions_small_cnn.png",
        "gallery_synthetic_lesions_small_cnn.pdf",
        "faithfulness_synthetic_lesions_small_cnn.png",
        "accuracy_localisation_synthetic_lesions.png",
    } <= (written)


def test_faithfulness_curves_are_stored_and_their_area_is_the_score(tmp_path: Path) -> None:
    from scipy.integrate import trapezoid

    from harness.store import load_arrays

    run_suite(parse_suite(GALLERY), tmp_path)
    results = load_results(tmp_path).set_index(["cell_id", "metric"])["value"]
    for metric in ("deletion_auc", "deletion_auc_random", "insertion_auc"):
        curves = load_arrays(tmp_path, f"{metric}.curve")
        fractions = load_arrays(tmp_path, f"{metric}.fractions")
        assert set(curves) == {
            f"synthetic_lesions/small_cnn/{e}/seed=0" for e in ("grad_cam", "oracle")
        }
        for cell, curve in curves.items():
            assert curve.shape == (21,) and fractions[cell][0] == 0 and fractions[cell][-1] == 1
            # the stored curve is the mean over images; the area is linear in the curve
            assert trapezoid(curve, fractions[cell]) == pytest.approx(results[(cell, metric)])
    deletion = load_arrays(tmp_path, "deletion_auc.curve")
    insertion = load_arrays(tmp_path, "insertion_auc.curve")
    for cell in deletion:  # both start from / end at the unperturbed image's probability
        assert deletion[cell][0] == pytest.approx(insertion[cell][-1])


PAPER_FIGURES = """
name = "paper_figures"
seeds = [0, 1]
metrics = ["topk_patch_precision", "deletion_patch_auc", "deletion_patch_auc_random"]
[execution]
explain_rows = 10
[[datasets]]
name = "synthetic_lesions"
params = { n_images = 80, size = 32, radius = [1.5, 3.0] }
[[models]]
name = "small_cnn"
params = { channels = [4, 8], epochs = 1 }
[[explainers]]
name = "grad_cam"
params = { relu = false }
[[explainers]]
name = "oracle"
"""


def test_precision_at_k_and_patch_deletion_curves_are_drawn(tmp_path: Path) -> None:
    from scipy.integrate import trapezoid

    from harness.store import load_arrays

    run_suite(parse_suite(PAPER_FIGURES), tmp_path)
    results = load_results(tmp_path).set_index(["cell_id", "metric"])["value"]
    precision = load_arrays(tmp_path, "topk_patch_precision.precision_at_k")
    for cell, curve in precision.items():  # the score is the curve's mean over k
        assert curve.shape == (30,)
        assert np.nanmean(curve) == pytest.approx(results[(cell, "topk_patch_precision")])
    deletion = load_arrays(tmp_path, "deletion_patch_auc.curve")
    for cell, curve in deletion.items():
        assert curve[0] == 1.0  # images predicted as their class before occlusion
        k = np.arange(len(curve)) / (len(curve) - 1)
        assert trapezoid(curve, k) == pytest.approx(results[(cell, "deletion_patch_auc")])
    written = {p.name for p in render_figures(tmp_path, None, tmp_path / "figs")}
    assert {
        "precision_at_k_synthetic_lesions_small_cnn.png",
        "patch_deletion_synthetic_lesions_small_cnn.png",
    } <= written


def test_gallery_keeps_one_colour_map_per_explainer(tmp_path: Path) -> None:
    """A signed explainer is drawn diverging in every row, even where its map happens to
    be all positive; an unsigned one sequential (it used to flip by each map's sign)."""
    import matplotlib.pyplot as plt

    from harness.report.figures import gallery_figure, load_run_data
    from harness.store import ResultsStore

    run_suite(parse_suite(PAPER_FIGURES), tmp_path)
    with ResultsStore(tmp_path, create=False) as store:
        data = load_run_data(store, store.run_with_cells(None)[0])
    cell = "synthetic_lesions/small_cnn/grad_cam/seed=0"
    data.arrays["gallery_maps"][cell] = np.abs(data.arrays["gallery_maps"][cell])  # all ≥ 0
    figure = gallery_figure(data.results, data.arrays, "synthetic_lesions", "small_cnn")
    assert figure is not None
    columns = {"grad_cam": 1, "oracle": 2}
    for explainer, column in columns.items():
        cmaps = {axis.images[0].get_cmap().name for axis in figure.axes[column::3]}
        assert cmaps == ({"RdBu_r"} if explainer == "grad_cam" else {"viridis"}), explainer
    plt.close(figure)
