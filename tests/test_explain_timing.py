"""Issue 26: ``explain_seconds`` is the explainer's calls alone — reading (decoding) the
explained images is the run's ``decode`` stage. Checked with a decoder that takes one
second per image on a fake clock, so the test measures what is timed, not how fast."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from harness import load_results, run_suite
from harness.datasets.image_files import ImageFiles
from harness.suite import parse_suite
from tests.suite_builder import suite
from tests.test_image_datasets import make_folder


class FakeClock:
    """``time.perf_counter`` for the cell module: it moves only when an image is decoded."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_decoding_streamed_images_is_not_explain_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.runner.cell as cell_module

    make_folder(tmp_path / "images")
    clock = FakeClock()
    monkeypatch.setattr(cell_module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    decode = ImageFiles.image

    def slow_image(self: ImageFiles, row: int):
        clock.now += 1.0  # a one-second decode, on the fake clock
        return decode(self, row)

    monkeypatch.setattr(ImageFiles, "image", slow_image)
    text = suite("decoding", metrics=["accuracy", "explain_seconds"],
                 execution={"explain_rows": 6, "explain_batch": 2},
                 datasets=[("image_folder", {"root": str(tmp_path / "images"), "size": 16,
                                             "workers": 0})],
                 models=[("small_cnn", {"epochs": 1})], explainers=["random"])  # fmt: skip
    summary = run_suite(parse_suite(text), tmp_path / "out")
    assert summary.counts["ok"] == 1, summary.failures
    stored = load_results(tmp_path / "out").query("metric == 'explain_seconds'")["value"]
    assert stored.tolist() == [0.0]  # the explainer's calls moved no fake second
    assert summary.stage_seconds["decode"] >= 6.0  # the 6 explained images: 6 fake seconds
