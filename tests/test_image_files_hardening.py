"""Issue 25: image readers open regular files only, refuse images over the pixel budget
before decoding (naming the file), and report a reader process's failure in one line; a
forked child never keeps a run's lock after its parent died."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.datasets import dataset_registry
from harness.datasets.image_files import decode
from harness.datasets.streamed_images import read_through
from harness.datasets.tables import DatasetError
from harness.run_lock import RunLock, run_is_live
from tests.test_image_datasets import make_folder


@contextmanager
def _no_hang(seconds: int = 20) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""

    def fail(*_: object) -> None:
        raise AssertionError(f"still reading after {seconds} s: the reader blocked")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _load(root: Path, **params: object):
    return dataset_registry.get("image_folder")(root=root, size=20, **params).load(0)


def test_a_fifo_named_like_an_image_is_refused_without_hanging(tmp_path: Path) -> None:
    make_folder(tmp_path)
    os.mkfifo(tmp_path / "train/healthy/x.png")
    with _no_hang(), pytest.raises(DatasetError, match=r"x\.png: not a regular file"):
        _load(tmp_path)


def test_a_link_to_a_device_is_refused_unread(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "test/lesion/zero.png").symlink_to("/dev/zero")
    with _no_hang(), pytest.raises(DatasetError, match=r"zero\.png: not a regular file"):
        _load(tmp_path)


def test_a_link_to_a_regular_image_is_read(tmp_path: Path) -> None:
    make_folder(tmp_path)
    source = tmp_path / "train/healthy/trainhealthy0.png"
    (tmp_path / "train/healthy/linked.png").symlink_to(source)
    assert _load(tmp_path).x_train.shape[0] == 13


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` × ``height`` grey pixels (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))  # fmt: skip


def test_a_decompression_bomb_is_refused_before_decoding_naming_the_file(tmp_path: Path) -> None:
    make_folder(tmp_path)
    _png_header_only(tmp_path / "train/lesion/bomb.png", 100_000, 100_000)
    with pytest.raises(DatasetError, match=r"bomb\.png is over the pixel budget"):
        _load(tmp_path)
    (tmp_path / "train/lesion/bomb.png").unlink()  # within Pillow's limit, over the default
    _png_header_only(tmp_path / "train/lesion/bomb.png", 10_000, 10_000)
    with pytest.raises(DatasetError, match=r"bomb\.png is 10000×10000 = 100,000,000 pixels, over"):
        _load(tmp_path)


def test_the_pixel_budget_is_a_parameter(tmp_path: Path) -> None:
    make_folder(tmp_path)  # 40 × 40 = 1,600 pixels each
    with pytest.raises(DatasetError, match=r"1,600 pixels, over the budget of 1,000"):
        _load(tmp_path, max_pixels=1_000)
    assert _load(tmp_path, max_pixels=1_600).x_train.shape[0] == 12


def test_decoding_a_batch_checks_the_file_again(tmp_path: Path) -> None:
    """A file replaced after loading (by a FIFO here) is refused when decoded."""
    make_folder(tmp_path)
    path = tmp_path / "train/healthy/trainhealthy0.png"
    path.unlink()
    os.mkfifo(path)
    with _no_hang(), pytest.raises(ValueError, match="not a regular file"):
        decode(path, 1, 20)


class _Failing:
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> object:
        raise ValueError(f"cannot read image /data/x{index}.png (image file is truncated)")


def test_a_reader_process_error_is_one_line() -> None:
    from torch.utils.data import DataLoader

    loader = DataLoader(_Failing(), batch_size=2, num_workers=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as caught:
        list(read_through(loader))
    assert str(caught.value) == "cannot read image /data/x0.png (image file is truncated)"


def test_an_overwritten_image_fails_the_cell_in_one_line(tmp_path: Path) -> None:
    """Images overwritten while a run reads them: the cell's error is the reader's line,
    not torch's many-line "Original Traceback"."""
    from harness import run_suite
    from harness.suite import parse_suite
    from tests.suite_builder import suite

    make_folder(tmp_path / "images")
    text = suite("overwritten", metrics=["accuracy"],
                 datasets=[("image_folder", {"root": str(tmp_path / "images"), "size": 16,
                                             "workers": 1})],
                 models=[("small_cnn", {"epochs": 1})], explainers=["random"])  # fmt: skip
    from harness.datasets.image_folder import ImageFolder

    load = ImageFolder.load

    def load_then_damage(self: ImageFolder, seed: int):
        dataset = load(self, seed)
        (tmp_path / "images/train/lesion/trainlesion0.png").write_bytes(b"\x89PNG cut")
        return dataset

    ImageFolder.load = load_then_damage  # type: ignore[method-assign]
    try:
        summary = run_suite(parse_suite(text), tmp_path / "out")
    finally:
        ImageFolder.load = load  # type: ignore[method-assign]
    ((_, error),) = summary.failures
    assert "trainlesion0.png" in error and "Traceback" not in error and "\n" not in error


def test_a_forked_child_does_not_keep_the_run_lock_after_its_parent_died(tmp_path: Path) -> None:
    """A process holds a run's lock, forks a child (as a DataLoader reader does) and is
    killed: the run is no longer live while the child still runs."""
    script = textwrap.dedent(f"""
        import os, signal, time
        from harness.run_lock import RunLock
        with RunLock({str(tmp_path)!r}, "run"):
            child = os.fork()
            if child == 0:
                time.sleep(30)
                os._exit(0)
            print(child, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())  # the child keeps the pipe open: no EOF to wait for
    parent.wait(timeout=60)
    try:
        os.kill(child, 0)  # the child is alive
        time.sleep(0.2)
        assert not run_is_live(tmp_path, "run")
        with RunLock(tmp_path, "run"):  # and the run can be resumed
            assert run_is_live(tmp_path, "run")
    finally:
        os.kill(child, signal.SIGKILL)
