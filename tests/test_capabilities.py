"""Capability negotiation: impossible cells are skipped with reasons, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from harness import load_results, run_suite
from harness.cli import app
from harness.runner import plan
from harness.suite import parse_suite
from tests.suite_builder import suite

MIXED_SUITE = suite(
    "mixed",
    metrics=["accuracy", "spearman_gt", "explain_seconds"],
    datasets=[("synthetic_tabular", {"n_samples": 300}, "table"), ("digits", {"size": 16})],
    models=["mlp", "small_cnn", "resnet18", "ft_transformer"],
    explainers=["grad_cam", "lime_image", "shap_deep", "shap_gradient", "deeplift", "saliency",
                "oracle", "centre"],
)  # fmt: skip


def reasons() -> dict[tuple[str, str, str], str | None]:
    return {
        (c.dataset.id, c.model.id, c.explainer.id): c.skip_reason
        for c in plan(parse_suite(MIXED_SUITE))
    }


def test_image_explainers_on_tables_are_skipped() -> None:
    found = reasons()
    assert found[("table", "mlp", "grad_cam")] == (
        "explainer 'grad_cam' handles image data; dataset 'table' is tabular"
    )
    assert found[("table", "mlp", "lime_image")] == (
        "explainer 'lime_image' handles image data; dataset 'table' is tabular"
    )
    assert found[("table", "mlp", "centre")].startswith("explainer 'centre' handles image")
    assert found[("table", "small_cnn", "saliency")] == (
        "model 'small_cnn' takes image data; dataset 'table' is tabular"
    )
    assert found[("table", "mlp", "saliency")] is None


def test_explainers_that_cannot_handle_a_resnet_are_skipped() -> None:
    found = reasons()
    assert found[("digits", "resnet18", "shap_deep")] == (
        "explainer 'shap_deep' cannot explain model 'resnet18': shap's backward hooks fail "
        "on in-place residual additions (torchvision ResNet blocks)"
    )
    assert "in-place residual" in found[("digits", "resnet18", "shap_gradient")]
    assert "reuses its ReLU modules" in found[("digits", "resnet18", "deeplift")]
    for explainer in ("grad_cam", "saliency", "lime_image"):
        assert found[("digits", "resnet18", explainer)] is None
    assert found[("digits", "small_cnn", "shap_deep")] is None


def test_deeplift_style_explainers_refuse_attention() -> None:
    found = reasons()
    assert found[("table", "ft_transformer", "shap_deep")].endswith(
        "DeepLIFT (shap's DeepExplainer) has no rule for attention"
    )
    assert found[("table", "ft_transformer", "saliency")] is None
    assert found[("table", "ft_transformer", "shap_gradient")] is None


def test_ground_truth_controls_need_the_ground_truth() -> None:
    found = reasons()
    assert found[("digits", "small_cnn", "oracle")] == (
        "explainer 'oracle' needs ground-truth masks; dataset 'digits' has none"
    )
    assert found[("table", "mlp", "oracle")] is None


def test_validate_shows_the_reasons_and_runs_nothing(tmp_path: Path) -> None:
    suite = tmp_path / "mixed.toml"
    suite.write_text(MIXED_SUITE)
    result = CliRunner().invoke(app, ["validate", str(suite)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "skipped: explainer 'shap_deep' cannot explain model 'resnet18'" in result.stdout
    assert "skipped: explainer 'grad_cam' handles image data" in result.stdout
    assert "metric spearman_gt not computed for digits" in result.stdout
    assert not (tmp_path / "results").exists()


IMAGE_SUITE = suite(
    "images",
    metrics=["accuracy", "spearman_gt", "explain_seconds", "explain_seconds_per_row"],
    execution={"explain_rows": 6},
    datasets=[("digits", {"size": 16})],
    models=[("small_cnn", {"channels": [8, 16], "epochs": 3})],
    explainers=[
        "grad_cam",
        ("integrated_gradients", {"n_steps": 8, "baseline": "blur", "blur_sigma": 1.0}),
        ("lime_image", {"num_samples": 40}),
        ("shap_gradient", {"nsamples": 10, "background_size": 10}),
        "feature_ablation",
        "centre",
        "oracle",
        ("sample_plugins:WarningExplainer", {}, "warns"),
    ],
)


def test_image_suite_runs_end_to_end(plugins_on_path: None, tmp_path: Path) -> None:
    summary = run_suite(parse_suite(IMAGE_SUITE), tmp_path)
    assert summary.counts == {"ok": 7, "failed": 0, "skipped": 1}, summary.failures
    results = load_results(tmp_path).set_index(["explainer", "metric"])
    assert results.loc[("oracle", "accuracy"), "status"] == "skipped"
    assert results.loc[("grad_cam", "spearman_gt"), "note"].startswith(
        "skipped: metric 'spearman_gt' needs ground-truth feature importance"
    )
    per_row = results.loc[("lime_image", "explain_seconds_per_row"), "value"]
    assert per_row * 6 == results.loc[("lime_image", "explain_seconds"), "value"]
    assert results.loc[("warns", "accuracy"), "warnings"] == "UserWarning: heads up from a library"
    assert pd.isna(results.loc[("grad_cam", "accuracy"), "warnings"])
