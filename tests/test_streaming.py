"""Images streamed from disk (``ImageFiles``) give what the same images in memory give:
indexing, splits, statistics, training, explaining and scoring."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.datasets import dataset_registry
from harness.datasets.base import with_validation_split
from harness.datasets.image_files import ImageFiles
from harness.datasets.streamed_images import channel_moments, rows_mean
from harness.explainers import ExplainContext, explainer_registry
from harness.metrics import Evidence, metric_registry
from harness.models import model_registry

CPU = torch.device("cpu")


def write_folder(root: Path, images: int = 48, side: int = 24) -> None:
    """RGB images of two classes (a bright square on the 'lesion' ones) and masks."""
    rng = np.random.default_rng(0)
    for split, count in (("train", images), ("test", images // 2)):
        for i in range(count):
            klass = ("healthy", "lesion")[i % 2]
            pixels = rng.integers(0, 120, (side, side, 3), dtype=np.uint8)
            mask = np.zeros((side, side), np.uint8)
            if klass == "lesion":
                r, c = rng.integers(0, side - 8, 2)
                pixels[r : r + 8, c : c + 8] = 250
                mask[r : r + 8, c : c + 8] = 255
            for folder, array in ((root / split / klass, pixels),
                                  (root / "masks" / split / klass, mask)):  # fmt: skip
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(folder / f"{split}{i}.png")


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    write_folder(root)
    source = dataset_registry.get("image_folder")(root=str(root), size=16, masks="masks")
    return source.load(0)


@pytest.fixture(scope="module")
def in_memory(streamed):
    return replace(streamed, x_train=np.asarray(streamed.x_train),
                   x_test=np.asarray(streamed.x_test))  # fmt: skip


def test_the_splits_stay_on_disk_and_index_like_arrays(streamed, in_memory):
    files, array = streamed.x_train, in_memory.x_train
    assert isinstance(files, ImageFiles) and files.shape == array.shape == (48, 3, 16, 16)
    for index in (5, slice(3, 9), np.array([7, 1, 30]), (4, 0), (slice(0, 3), 1, 2)):
        np.testing.assert_array_equal(files[index], array[index])
    np.testing.assert_array_equal(np.concatenate(list(files.batches(10))), array)
    np.testing.assert_array_equal(files.subset(np.array([9, 2]))[:], array[[9, 2]])


def test_statistics_are_accumulated_batch_by_batch(streamed, in_memory):
    np.testing.assert_array_equal(rows_mean(streamed.x_train), rows_mean(in_memory.x_train))
    np.testing.assert_allclose(rows_mean(streamed.x_train), in_memory.x_train.mean(axis=0),
                               rtol=1e-6, atol=1e-7)  # fmt: skip
    mean, std = channel_moments(streamed.x_train)
    np.testing.assert_allclose(mean, in_memory.x_train.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, in_memory.x_train.std(axis=(0, 2, 3)), rtol=1e-5)
    assert streamed.fingerprint != in_memory.fingerprint  # files hash their content


def test_a_validation_split_holds_out_the_same_images(streamed, in_memory):
    lazy = with_validation_split(streamed, 0.25, seed=3)
    eager = with_validation_split(in_memory, 0.25, seed=3)
    assert isinstance(lazy.x_val, ImageFiles)
    np.testing.assert_array_equal(lazy.x_val[:], eager.x_val)
    np.testing.assert_array_equal(lazy.y_train, eager.y_train)


@pytest.mark.parametrize("workers", [0, 2])
def test_training_explaining_and_scoring_equal_the_in_memory_path(streamed, in_memory, workers):
    lazy = replace(streamed, x_train=replace_workers(streamed.x_train, workers))
    recipe = model_registry.get("small_cnn")(channels=[4, 8], epochs=2, batch_size=8,
                                             checkpoint="best")  # fmt: skip
    models = [recipe.fit(data, 1, CPU) for data in (lazy, in_memory)]
    probabilities = [m.predict_proba(data.x_test) for m, data in zip(models, (lazy, in_memory),
                                                                       strict=True)]  # fmt: skip
    np.testing.assert_array_equal(*probabilities)
    rows = np.arange(8)
    maps = []
    for model, data in zip(models, (lazy, in_memory), strict=True):
        context = ExplainContext(data, 1, rows)
        targets = model.predict(data.x_test[rows])
        explainer = explainer_registry.get("grad_cam")()
        maps.append(explainer.explain(model, data.x_test[rows], targets, context).local)
    np.testing.assert_array_equal(*maps)
    scores = []
    for model, data, local in zip(models, (lazy, in_memory), maps, strict=True):
        evidence = Evidence(attributions=local, inputs=data.x_test[rows],
                            targets=model.predict(data.x_test[rows]),
                            predict_proba=model.predict_proba, masks=data.ground_truth.masks[rows],
                            train_mean=data.train_mean)  # fmt: skip
        names = ("deletion_auc", "pointing_game", "activation_precision")
        scores.append([metric_registry.get(name)().compute(evidence).value for name in names])
    assert scores[0] == scores[1]


def replace_workers(files: ImageFiles, workers: int) -> ImageFiles:
    copy = files.subset(np.arange(len(files)))
    copy.workers = workers
    return copy


def _workers_in_a_child(files: ImageFiles, answer) -> None:
    answer.put(files.loader_workers())


def test_no_decoding_processes_inside_a_worker_process(streamed):
    """Regression: DataLoader workers inside each --jobs worker made a 2-job image run 7×
    slower on 2 cores (43.8 s against 6.1 s); decoding happens in the worker itself."""
    import multiprocessing

    files = replace_workers(streamed.x_train, 2)
    assert files.loader_workers() == 2  # the main process reads ahead with 2
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=_workers_in_a_child, args=(files, answer))
    child.start()
    child.join(60)
    assert answer.get(timeout=5) == 0
