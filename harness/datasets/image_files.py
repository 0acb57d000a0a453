"""Images that stay on disk: an array-like split decoded a batch at a time.

:class:`ImageFiles` stands where a dataset holds an array of images (images, channels,
height, width; float32 in [0, 1]): indexing it with an integer, a slice or an index array
decodes just those files (Pillow; converted to grey or RGB, resized bilinearly to
``size``) and returns a numpy array, so memory follows the batch, not the dataset.
Sequential passes (:meth:`ImageFiles.batches`) go through a torch ``DataLoader`` with
worker processes (none inside a harness worker process, see
:meth:`ImageFiles.loader_workers`).
Statistics over a whole split (:func:`rows_mean`, :func:`channel_moments`) are
accumulated batch by batch in float64, the same way for arrays in memory, so both paths
give the same numbers; :func:`take` selects rows of either kind without
decoding. ``np.asarray`` of an :class:`ImageFiles` decodes everything: the harness
avoids it on whole splits.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.batching import rows_per_batch


def decode(path: Path, channels: int, size: int | None) -> np.ndarray:
    """One image file → (channels, height, width) float32 in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            converted = picture.convert("L" if channels == 1 else "RGB")
            if size is not None:
                converted = converted.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"cannot read image {path} ({error})") from error
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


class ImageFiles:
    """A split of images kept as files, decoded when indexed (see the module)."""

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(
        self, paths: Sequence[Path], channels: int, height: int, width: int, size: int | None,
        workers: int = 2, digests: Sequence[bytes] | None = None,
    ) -> None:  # fmt: skip
        self.paths = list(paths)
        self.channels, self.size, self.workers = channels, size, workers
        self.shape = (len(self.paths), channels, height, width)
        #: SHA-256 of each file, when its reader already took them (else read for it)
        self.digests = None if digests is None else list(digests)
        #: Σ x and Σ x² per position, once computed (:func:`pixel_sums`)
        self.sums: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, tuple):  # rows first, then within the decoded images
            rows, *rest = index
            within = tuple(rest) if isinstance(rows, int | np.integer) else (slice(None), *rest)
            return self[rows][within]
        if isinstance(index, int | np.integer):
            return decode(self.paths[int(index)], self.channels, self.size)
        chosen = np.arange(len(self))[index]
        out = np.empty((len(chosen), *self.shape[1:]), dtype=np.float32)
        for i, row in enumerate(chosen):
            out[i] = decode(self.paths[int(row)], self.channels, self.size)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)

    def loader_workers(self) -> int:
        """Decoding processes for a ``DataLoader``: ``workers`` in the main process, none
        inside a worker process (``--jobs``, Dask): the cores are shared among those
        already, and a process tree within each was measured 7× slower (2 cores)."""
        return self.workers if multiprocessing.parent_process() is None else 0

    def subset(self, rows: np.ndarray) -> ImageFiles:
        """The files of ``rows`` (in that order), still on disk."""
        _, _, height, width = self.shape
        digests = None if self.digests is None else [self.digests[int(r)] for r in rows]
        return ImageFiles([self.paths[int(r)] for r in rows], self.channels, height, width,
                          self.size, self.workers, digests)  # fmt: skip

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive batches of decoded images, read ahead by worker processes."""
        from torch.utils.data import DataLoader

        loader = DataLoader(decoded(self), batch_size=size, num_workers=self.loader_workers(),
                            collate_fn=np.stack)  # fmt: skip
        yield from loader

    def fingerprint(self, digest: Any) -> None:
        """Feed the files' names and contents, and how they are decoded, to ``digest``."""
        digest.update(repr((self.channels, self.size, self.shape)).encode())
        digests = self.digests or [hashlib.sha256(p.read_bytes()).digest() for p in self.paths]
        for path, content in zip(self.paths, digests, strict=True):
            digest.update(path.name.encode())
            digest.update(content)


class _Decoded:
    """``ImageFiles`` as a map-style torch dataset (picklable for worker processes)."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.files[index]


def decoded(files: ImageFiles) -> Any:
    """``files`` as a torch map-style dataset of decoded images."""
    return _Decoded(files)


def stacked_tensor(images: list[np.ndarray]) -> Any:
    """A ``DataLoader`` batch: decoded images stacked into one torch tensor (allocated by
    torch, aligned as an indexed in-memory batch is, so kernels and results match)."""
    import torch

    return torch.stack([torch.from_numpy(image) for image in images])


Rows = np.ndarray | ImageFiles


def take(x: Rows, rows: np.ndarray) -> Rows:
    """Rows ``rows`` of ``x``: an array's rows, or the files' subset (nothing decoded)."""
    return x.subset(rows) if isinstance(x, ImageFiles) else x[rows]


def in_batches(x: Rows, size: int | None = None) -> Iterator[np.ndarray]:
    """``x`` in consecutive batches (default: :func:`~harness.batching.rows_per_batch`
    rows), decoded ahead by workers for files."""
    size = size or rows_per_batch(tuple(x.shape[1:]))
    if isinstance(x, ImageFiles):
        yield from x.batches(size)
    else:
        for start in range(0, len(x), size):
            yield x[start : start + size]


def pixel_sums(x: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Σ x and Σ x² over the rows, per input position, in float64, batch by batch — the
    same for arrays and files (so both give the same numbers). One pass; for files it is
    kept with them, so the mean image and the channel statistics share it."""
    if isinstance(x, ImageFiles) and x.sums is not None:
        return x.sums
    total = np.zeros(x.shape[1:], dtype=np.float64)
    squares = np.zeros(x.shape[1:], dtype=np.float64)
    for batch in in_batches(x):
        values = batch.astype(np.float64)
        total += values.sum(axis=0)
        squares += (values**2).sum(axis=0)
    if isinstance(x, ImageFiles):
        x.sums = (total, squares)
    return total, squares


def rows_mean(x: Rows) -> np.ndarray:
    """The mean row (float32), from :func:`pixel_sums`."""
    total, _ = pixel_sums(x)
    return (total / len(x)).astype(np.float32)


def channel_moments(x: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over images and pixels (population sd),
    from :func:`pixel_sums`."""
    total, squares = pixel_sums(x)
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total.sum(axis=(1, 2)) / count
    variance = np.maximum(squares.sum(axis=(1, 2)) / count - mean**2, 0)
    return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)
