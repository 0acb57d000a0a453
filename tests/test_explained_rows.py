"""Which test rows are explained (a seeded, class-stratified sample by default), which
the gallery shows (every class), and validate's warning when none has ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from harness import load_results, run_suite
from harness.datasets.explained_rows import explained_rows, gallery_rows
from harness.store import load_arrays
from tests.conftest import cli
from tests.test_image_datasets import make_folder

labels_strategy = st.lists(st.integers(0, 4), min_size=1, max_size=300).map(np.array)


@settings(max_examples=300, deadline=None)
@given(labels=labels_strategy, fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_a_stratified_sample_has_every_class_in_proportion(
    labels: np.ndarray, fraction: float, seed: int
) -> None:
    wanted = max(1, round(fraction * len(labels)))
    rows = explained_rows(labels, wanted, "stratified", seed)
    assert len(rows) == min(wanted, len(labels)) == len(np.unique(rows))
    assert np.all(np.diff(rows) > 0) and rows.min() >= 0 and rows.max() < len(labels)
    np.testing.assert_array_equal(rows, explained_rows(labels, wanted, "stratified", seed))
    classes, counts = np.unique(labels, return_counts=True)
    drawn = np.array([(labels[rows] == k).sum() for k in classes])
    if wanted >= len(classes):
        assert drawn.min() >= 1  # every class present is explained
    share = wanted * counts / counts.sum()
    if share.min() >= 1:  # no class needs the one-each floor: proportional to ±1 row
        assert np.abs(drawn - share).max() < 1 + 1e-9


def test_first_keeps_the_first_rows_and_a_covering_count_keeps_all() -> None:
    labels = np.array([0] * 10 + [1] * 10)
    np.testing.assert_array_equal(explained_rows(labels, 5, "first"), np.arange(5))
    np.testing.assert_array_equal(explained_rows(labels, 50, "stratified", 3), np.arange(20))
    stratified = explained_rows(labels, 6, "stratified", 0)
    assert (labels[stratified] == 1).sum() == 3  # the first 6 rows are all class 0
    assert not np.array_equal(stratified, explained_rows(labels, 6, "stratified", 1))


@given(labels=labels_strategy, count=st.integers(1, 12))
def test_the_gallery_shows_every_class_in_turn(labels: np.ndarray, count: int) -> None:
    shown = gallery_rows(labels, count)
    assert len(shown) == min(count, len(labels)) and np.all(np.diff(shown) > 0)
    present = np.unique(labels)
    assert len(np.unique(labels[shown])) == min(len(present), len(shown))
    per_class = np.array([(labels[shown] == k).sum() for k in present])
    available = np.array([(labels == k).sum() for k in present])
    assert per_class.max() - per_class[per_class < available].min(initial=per_class.max()) <= 1


def _folder_suite(tmp_path: Path, execution: str = "") -> Path:
    """An image folder whose classes sort healthy-first, with masks for the lesion test
    images only, explained 3 rows of 6."""
    make_folder(tmp_path / "images")
    for i in range(3):
        mask = np.zeros((40, 40), dtype=np.uint8)
        mask[10:20, 20:30] = 255
        (tmp_path / "images/masks/test/lesion").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(tmp_path / f"images/masks/test/lesion/testlesion{i}.png")
    suite = tmp_path / "folder.toml"
    suite.write_text(
        'name = "folder"\nseeds = [0]\nmetrics = ["accuracy", "pointing_game"]\n'
        f"[execution]\nexplain_rows = 3\n{execution}\n"
        '[[datasets]]\nname = "image_folder"\n'
        'params = { root = "images", masks = "masks", size = 32, workers = 0 }\n'
        '[[models]]\nname = "small_cnn"\nparams = { channels = [4], epochs = 1 }\n'
        '[[explainers]]\nname = "oracle"\n'
    )
    return suite


def test_a_folder_read_class_by_class_gets_both_classes_explained(tmp_path: Path) -> None:
    suite = _folder_suite(tmp_path)
    run_suite(suite, tmp_path / "out")
    scores = load_results(tmp_path / "out").set_index("metric")
    assert scores.loc["pointing_game", "status"] == "ok"
    assert scores.loc["pointing_game", "value"] == 1.0  # the oracle's map is the mask
    (labels,) = load_arrays(tmp_path / "out", "gallery_labels").values()
    (shown,) = load_arrays(tmp_path / "out", "gallery_rows").values()
    (explained,) = load_arrays(tmp_path / "out", "rows").values()
    assert set(labels) == {"healthy", "lesion"} and set(shown) <= set(explained)


def test_validate_warns_when_no_explained_image_has_ground_truth(tmp_path: Path) -> None:
    suite = _folder_suite(tmp_path, 'explain_sample = "first"')
    result = cli("validate", str(suite))
    assert result.exit_code == 0
    assert (
        "warning: dataset 'image_folder': none of the 3 explained (seed 0) has ground truth"
        in " ".join(result.output.split())
    )
    assert "explain_sample = 'stratified'" in " ".join(result.output.split())
    stratified = cli("validate", str(_folder_suite(tmp_path / "default")))
    assert stratified.exit_code == 0 and "warning" not in stratified.output


def test_validate_estimates_the_cost_from_each_explainers_per_row_cost(tmp_path: Path) -> None:
    from tests.suite_builder import suite

    text = suite(
        "costly", seeds=[0, 1], execution={"explain_rows": 20},
        datasets=[("synthetic_tabular", {"n_samples": 200, "n_features": 8, "n_informative": 3})],
        models=[("mlp", {"hidden": [8], "epochs": 1})],
        explainers=[("shap_kernel", {"nsamples": 100, "background_size": 10}),
                    ("integrated_gradients", {"n_steps": 16}), "oracle"],
    )  # fmt: skip
    (tmp_path / "costly.toml").write_text(text)
    result = cli("validate", str(tmp_path / "costly.toml"))
    assert result.exit_code == 0
    # by hand: 2 seeds × 20 rows × (100 coalitions × 10 background rows) = 40,000 for
    # KernelSHAP; 2 × 20 × (16 steps × forward + backward) = 1,280 for IG; the oracle 0
    assert (
        "estimated cost: 2 models to train; explaining ≈ 41 k model evaluations "
        "(shap_kernel 40 k, 97%; integrated_gradients 1.3 k, 3%)"
    ) in " ".join(result.output.split())
    listing = cli("list", "suites", env={"COLUMNS": "200"})
    quick = next(line for line in listing.output.splitlines() if line.startswith("quick "))
    assert "6 models, 120 k evals" in quick  # 2 datasets × 3 seeds; 200 rows × 2 × 50 steps × 6
