"""MedMNIST .npz files and image folders (masks tree, boxes CSV), on fixtures made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import load_results, run_suite
from harness.datasets import dataset_registry
from harness.datasets.mapped_images import MappedImages
from harness.datasets.medmnist_source import medmnist_file
from harness.datasets.tables import DatasetError
from harness.suite import parse_suite
from tests.conftest import assert_user_error, cli


def write_medmnist(
    root: Path, flag: str, size: int, *, rgb: bool = False, labels: int = 1, compressed: bool = True
):
    """A small file with the official keys and dtypes (uint8 images, N×1 integer labels)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 4), ("test", 10)):
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n * labels).reshape(n, labels) % 2).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    save(medmnist_file(root, flag, size), **arrays)
    return arrays


def channels_first(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W[, C]) → float32 (N, C, H, W) in [0, 1], computed independently."""
    x = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return x.astype(np.float32) / 255.0


@pytest.mark.parametrize(("size", "rgb", "compressed"),
                         [(28, False, True), (64, True, True), (28, True, False)])  # fmt: skip
def test_medmnist_npz_with_the_official_keys(
    tmp_path: Path, size: int, rgb: bool, compressed: bool
) -> None:
    arrays = write_medmnist(tmp_path, "pneumoniamnist", size, rgb=rgb, compressed=compressed)
    data = dataset_registry.get("medmnist")(root=tmp_path, size=size).load(0)
    channels = 3 if rgb else 1
    assert isinstance(data.x_train, MappedImages)  # memory-mapped, read per batch
    assert data.x_train.shape == (20, channels, size, size) and data.x_train.dtype == np.float32
    assert data.x_test.shape == (10, channels, size, size)
    expected = channels_first(arrays["train_images"])
    np.testing.assert_array_equal(np.asarray(data.x_train), expected)
    for index in (3, slice(2, 9), np.array([7, 0, 19]), (4, 0)):
        np.testing.assert_array_equal(data.x_train[index], expected[index])
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"][:, 0])
    assert data.ground_truth.masks is None and data.class_names == ["0", "1"]
    # compressed archives are extracted once beside the file; stored ones are mapped in place
    assert (tmp_path / "extracted").exists() == compressed


def test_medmnist_limits_subsets_and_a_changed_file(tmp_path: Path) -> None:
    write_medmnist(tmp_path, "pneumoniamnist", 28)
    source = dataset_registry.get("medmnist")(root=tmp_path, max_train=8, max_test=4)
    data = source.load(0)
    assert data.x_train.shape == (8, 1, 28, 28) and len(data.y_train) == 8
    picked = data.x_train.subset(np.array([5, 1]))
    np.testing.assert_array_equal(np.asarray(picked), np.asarray(data.x_train)[[5, 1]])
    before = data.fingerprint
    assert dataset_registry.get("medmnist")(root=tmp_path, max_train=8, max_test=4).load(
        0).fingerprint == before  # fmt: skip
    # a new file with other pixels: extracted again, and the cache key changes
    rng = np.random.default_rng(5)
    arrays = dict(np.load(medmnist_file(tmp_path, "pneumoniamnist", 28)))
    arrays["train_images"] = rng.integers(0, 256, arrays["train_images"].shape, dtype=np.uint8)
    np.savez_compressed(medmnist_file(tmp_path, "pneumoniamnist", 28), **arrays)
    changed = source.load(0)
    assert changed.fingerprint != before
    np.testing.assert_array_equal(np.asarray(changed.x_train),
                                  channels_first(arrays["train_images"][:8]))  # fmt: skip


def test_a_damaged_extraction_is_extracted_again(tmp_path: Path) -> None:
    arrays = write_medmnist(tmp_path, "pneumoniamnist", 28)
    dataset_registry.get("medmnist")(root=tmp_path).load(0)
    (extracted,) = (tmp_path / "extracted").glob("*train_images*.npy")
    extracted.write_bytes(extracted.read_bytes()[:500])  # cut short, as by a full disk
    data = dataset_registry.get("medmnist")(root=tmp_path).load(0)
    np.testing.assert_array_equal(np.asarray(data.x_train),
                                  channels_first(arrays["train_images"]))  # fmt: skip
    assert extracted.stat().st_size > 500


def test_medmnist_extraction_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    write_medmnist(tmp_path, "pneumoniamnist", 28)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the extraction folder would be")
    source = dataset_registry.get("medmnist")(root=tmp_path, extract_dir=blocker / "x")
    with pytest.raises(DatasetError, match=r"extract its images to .*set `extract_dir`"):
        source.load(0)


def test_medmnist_problems_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"breastmnist_128\.npz not found; put the official"):
        dataset_registry.get("medmnist")(flag="breastmnist", size=128, root=tmp_path).load(0)
    write_medmnist(tmp_path, "chestmnist", 28, labels=3)
    with pytest.raises(DatasetError, match="multi-label targets"):
        dataset_registry.get("medmnist")(flag="chestmnist", root=tmp_path).load(0)
    (tmp_path / "dermamnist.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match=r"cannot read .*dermamnist\.npz"):
        dataset_registry.get("medmnist")(flag="dermamnist", root=tmp_path).load(0)


MEDMNIST_SUITE = """
name = "med"
seeds = [0]
metrics = ["accuracy", "pointing_game"]
[execution]
explain_rows = 4
[[datasets]]
name = "medmnist"
params = {{ root = "{root}" }}
[[models]]
name = "small_cnn"
params = {{ channels = [4], epochs = 1 }}
[[explainers]]
name = "grad_cam"
"""


def test_medmnist_runs_and_localisation_is_skipped_for_want_of_masks(tmp_path: Path) -> None:
    write_medmnist(tmp_path / "data", "pneumoniamnist", 28)
    run_suite(parse_suite(MEDMNIST_SUITE.format(root=tmp_path / "data")), tmp_path / "out")
    scores = load_results(tmp_path / "out").set_index("metric")
    assert scores.loc["accuracy", "status"] == "ok"
    assert np.isnan(scores.loc["pointing_game", "value"])
    assert "mask" in scores.loc["pointing_game", "note"]


def make_folder(root: Path, *, grey: bool = True, side: int = 40) -> None:
    """train/test × {healthy, lesion}; every test 'lesion' image has a bright square."""
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("test", 3)):
        for klass in ("healthy", "lesion"):
            folder = root / split / klass
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 100, (side, side), dtype=np.uint8)
                if klass == "lesion":
                    pixels[10:20, 20:30] = 255
                picture = Image.fromarray(pixels, "L")
                (picture if grey else picture.convert("RGB")).save(
                    folder / f"{split}{klass}{i}.png"
                )


def test_image_folder_with_a_mask_tree_resized_in_step(tmp_path: Path) -> None:
    make_folder(tmp_path)
    for i in range(3):
        mask = np.zeros((40, 40), dtype=np.uint8)
        mask[10:20, 20:30] = 255
        (tmp_path / "masks/test/lesion").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(tmp_path / f"masks/test/lesion/testlesion{i}.png")
    data = dataset_registry.get("image_folder")(root=tmp_path, size=20, masks="masks").load(0)
    assert data.x_train.shape == (12, 1, 20, 20) and data.class_names == ["healthy", "lesion"]
    masks = data.ground_truth.masks
    assert masks.shape == (6, 20, 20)
    assert not masks[:3].any()  # healthy test images have no mask file: empty masks
    expected = np.zeros((20, 20), dtype=bool)
    expected[5:10, 10:15] = True  # 40 → 20 px halves the square's coordinates
    for i in range(3, 6):
        np.testing.assert_array_equal(masks[i], expected)
        # the bright square sits in its mask (antialiased edges blend with the background)
        assert data.x_test[i, 0][6:9, 11:14].min() == pytest.approx(1.0)
        assert data.x_test[i, 0][expected].mean() > 2 * data.x_test[i, 0][~expected].mean()


def test_boxes_csv_with_two_boxes_on_one_image(tmp_path: Path) -> None:
    make_folder(tmp_path, grey=False)
    (tmp_path / "boxes.csv").write_text(
        "patientId,x,y,width,height,Target\n"
        "testlesion0,20,10,10,10,1\n"
        "testlesion0,0,0,4,6,1\n"
        "testhealthy0,,,,,0\n"
        "trainlesion1,20,10,10,10,1\n"
    )
    data = dataset_registry.get("image_folder")(
        root=tmp_path, size=40, boxes=tmp_path / "boxes.csv"
    ).load(0)
    assert data.x_train.shape[1] == 3  # RGB files, three channels
    masks = data.ground_truth.masks
    first_lesion = 3  # test images: healthy 0–2, lesion 3–5
    expected = np.zeros((40, 40), dtype=bool)
    expected[10:20, 20:30] = True
    expected[0:6, 0:4] = True
    np.testing.assert_array_equal(masks[first_lesion], expected)
    assert masks.sum() == expected.sum()  # negatives and training boxes add nothing


def test_points_csv_rasterised_as_discs(tmp_path: Path) -> None:
    make_folder(tmp_path)  # 40×40 images
    (tmp_path / "points.csv").write_text(
        "image_id,x,y\n"
        "testlesion0,20.5,10.5\n"  # a disc of radius 4 original pixels → 2 at 20 px
        "testhealthy0,,\n"  # no point: a negative
        "trainlesion1,5,5\n"  # a training image's point: not needed
    )
    data = dataset_registry.get("image_folder")(
        root=tmp_path, size=20, points=tmp_path / "points.csv", point_radius=4
    ).load(0)
    masks = data.ground_truth.masks
    rows, cols = np.mgrid[0:20, 0:20] + 0.5
    expected = (cols - 10.25) ** 2 + (rows - 5.25) ** 2 <= 2**2  # centre and radius halved
    np.testing.assert_array_equal(masks[3], expected)
    assert masks.sum() == expected.sum() == 2 + 4 + 4 + 3  # pixel centres within 2 px, by column
    (tmp_path / "points.csv").write_text("image_id,x,y\ntestlesion0,3,three\n")
    with pytest.raises(DatasetError, match=r"points\.csv line 2: y = 'three' is not a number"):
        dataset_registry.get("image_folder")(root=tmp_path, points=tmp_path / "points.csv").load(0)
    (tmp_path / "points.csv").write_text("image_id,x\ntestlesion0,3\n")
    with pytest.raises(DatasetError, match=r"points\.csv lacks the columns y"):
        dataset_registry.get("image_folder")(root=tmp_path, points=tmp_path / "points.csv").load(0)
    with pytest.raises(ValueError, match="not boxes and points"):
        dataset_registry.get("image_folder")(
            root=tmp_path, boxes=tmp_path / "points.csv", points=tmp_path / "points.csv"
        )


def test_image_folder_problems_are_named(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "masks/test/lesion").mkdir(parents=True)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(
        tmp_path / "masks/test/lesion/testlesion0.png"
    )
    with pytest.raises(
        DatasetError, match=r"mask .*testlesion0\.png is 30×30 but its image .* is 40×40"
    ):
        dataset_registry.get("image_folder")(root=tmp_path, masks="masks").load(0)
    (tmp_path / "boxes.csv").write_text("image_id,x,y,width,height\nnowhere,1,1,2,2\n")
    with pytest.raises(DatasetError, match=r"boxes\.csv line 2 refers to image 'nowhere'"):
        dataset_registry.get("image_folder")(root=tmp_path, boxes=tmp_path / "boxes.csv").load(0)
    (tmp_path / "train/healthy/broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken\.png"):
        dataset_registry.get("image_folder")(root=tmp_path).load(0)


def test_image_folder_runs_in_a_suite_with_localisation(tmp_path: Path) -> None:
    make_folder(tmp_path / "images")
    (tmp_path / "boxes.csv").write_text(
        "image_id,x,y,width,height\n" + "".join(f"testlesion{i},20,10,10,10\n" for i in range(3))
    )
    suite = tmp_path / "folder.toml"
    suite.write_text(
        'name = "folder"\nseeds = [0]\nmetrics = ["accuracy", "pointing_game"]\n'
        '[[datasets]]\nname = "image_folder"\n'
        'params = { root = "images", boxes = "boxes.csv", size = 32 }\n'  # beside the suite
        '[[models]]\nname = "small_cnn"\nparams = { channels = [4], epochs = 1 }\n'
        '[[explainers]]\nname = "oracle"\n'
    )
    run_suite(suite, tmp_path / "out")
    scores = load_results(tmp_path / "out").set_index("metric")
    assert scores.loc["pointing_game", "value"] == 1.0  # the oracle map is the box mask
    assert "3 of 6 images left out (empty mask)" in scores.loc["pointing_game", "note"]


def test_a_mistyped_masks_folder_is_an_error_at_validate(tmp_path: Path) -> None:
    make_folder(tmp_path / "images")
    (tmp_path / "images/masks/test/lesion").mkdir(parents=True)
    suite = tmp_path / "folder.toml"
    suite.write_text(
        'name = "folder"\nseeds = [0]\nmetrics = ["accuracy", "pointing_game"]\n'
        '[[datasets]]\nname = "image_folder"\n'
        'params = { root = "images", masks = "mask", size = 32 }\n'
        '[[models]]\nname = "small_cnn"\nparams = { channels = [4], epochs = 1 }\n'
        '[[explainers]]\nname = "oracle"\n'
    )
    for command in ("validate", "run"):
        extra = ["--out", str(tmp_path / "out")] if command == "run" else []
        result = cli(command, str(suite), *extra)
        line = assert_user_error(result, "datasets[0].params.masks: no folder 'mask' in")
        assert "did you mean 'masks'?" in line and "Folders there: masks, test, train" in line
    assert not (tmp_path / "out").exists()  # nothing ran
