"""Images that are not held in memory: the array-like contract and what is computed over it.

A :class:`StreamedImages` stands where a dataset holds an array of images (images,
channels, height, width; float32 in [0, 1]): indexing it with an integer, a slice or an
index array produces just those images as a numpy array, so memory follows the batch,
not the dataset. Two kinds exist: image files decoded on demand
(:class:`~harness.datasets.image_files.ImageFiles`) and uint8 arrays memory-mapped from
disk (:class:`~harness.datasets.mapped_images.MappedImages`).

Statistics over a whole split (:func:`rows_mean`, :func:`channel_moments`) are
accumulated batch by batch in float64, the same way for arrays in memory, so both paths
give the same numbers; :func:`take` selects rows of either kind without reading them.
``np.asarray`` of streamed images reads everything: the harness avoids it on whole splits.
"""

from __future__ import annotations

import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from harness.batching import rows_per_batch

T = TypeVar("T")


class StreamedImages(ABC):
    """A split of images read when indexed (see the module). Subclasses read one image
    (:meth:`image`), select rows (:meth:`subset`) and describe their content
    (:meth:`fingerprint`)."""

    ndim = 4
    dtype = np.dtype(np.float32)
    #: (images, channels, height, width)
    shape: tuple[int, int, int, int]
    #: reader processes of a ``DataLoader`` in the main process (0: read in the caller)
    workers: int = 0
    #: Σ x and Σ x² per position, once computed (:func:`pixel_sums`)
    sums: tuple[np.ndarray, np.ndarray] | None = None

    @abstractmethod
    def image(self, row: int) -> np.ndarray:
        """Image ``row`` as (channels, height, width) float32 in [0, 1]."""

    @abstractmethod
    def subset(self, rows: np.ndarray) -> StreamedImages:
        """The images of ``rows`` (in that order), still not read."""

    @abstractmethod
    def fingerprint(self, digest: Any) -> None:
        """Feed the images' content, and how they are read, to ``digest`` (hashlib)."""

    def rows(self, chosen: np.ndarray) -> np.ndarray:
        """Images ``chosen`` (row indices) as one float32 array; one image at a time
        unless a subclass reads several at once."""
        out = np.empty((len(chosen), *self.shape[1:]), dtype=np.float32)
        for i, row in enumerate(chosen):
            out[i] = self.image(int(row))
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, tuple):  # rows first, then within the images read
            rows, *rest = index
            within = tuple(rest) if isinstance(rows, int | np.integer) else (slice(None), *rest)
            return self[rows][within]
        if isinstance(index, int | np.integer):
            return self.image(int(index))
        return self.rows(np.arange(len(self))[index])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)

    def loader_workers(self) -> int:
        """Reader processes for a ``DataLoader``: ``workers`` in the main process, none
        inside a worker process (``--jobs``, Dask): the cores are shared among those
        already, and a process tree within each was measured 7× slower (2 cores)."""
        return self.workers if multiprocessing.parent_process() is None else 0

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive batches of images, read ahead by worker processes when there are."""
        workers = self.loader_workers()
        if workers == 0:
            for start in range(0, len(self), size):
                yield self[start : start + size]
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(
            as_torch_dataset(self), batch_size=size, num_workers=workers, collate_fn=np.stack
        )
        yield from read_through(loader)


def read_through(loader: Iterable[T]) -> Iterator[T]:
    """The batches of a ``DataLoader``; an error in one of its reader processes is raised
    with the reader's own one-line message (torch wraps it in "Caught ValueError in
    DataLoader worker process 0. Original Traceback …", many lines long)."""
    try:
        yield from loader
    except Exception as error:
        text = str(error)
        if "Original Traceback" not in text:
            raise
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        raise ValueError(last.split(": ", 1)[1] if ": " in last else last) from None


class _TorchDataset:
    """Streamed images as a map-style torch dataset (picklable for worker processes)."""

    def __init__(self, images: StreamedImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[index]


def as_torch_dataset(images: StreamedImages) -> Any:
    """``images`` as a torch map-style dataset of float32 images."""
    return _TorchDataset(images)


def stacked_tensor(images: list[np.ndarray]) -> Any:
    """A ``DataLoader`` batch: images stacked into one torch tensor (allocated by torch,
    aligned as an indexed in-memory batch is, so kernels and results match)."""
    import torch

    return torch.stack([torch.from_numpy(image) for image in images])


Rows = np.ndarray | StreamedImages


def take(x: Rows, rows: np.ndarray) -> Rows:
    """Rows ``rows`` of ``x``: an array's rows, or the streamed subset (nothing read)."""
    return x.subset(rows) if isinstance(x, StreamedImages) else x[rows]


def in_batches(x: Rows, size: int | None = None) -> Iterator[np.ndarray]:
    """``x`` in consecutive batches (default: :func:`~harness.batching.rows_per_batch`
    rows), read ahead by workers for streamed images."""
    size = size or rows_per_batch(tuple(x.shape[1:]))
    if isinstance(x, StreamedImages):
        yield from x.batches(size)
    else:
        for start in range(0, len(x), size):
            yield x[start : start + size]


def pixel_sums(x: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Σ x and Σ x² over the rows, per input position, in float64, batch by batch — the
    same for arrays and streamed images (so both give the same numbers). One pass; for
    streamed images it is kept with them, so the mean image and the channel statistics
    share it."""
    if isinstance(x, StreamedImages) and x.sums is not None:
        return x.sums
    total = np.zeros(x.shape[1:], dtype=np.float64)
    squares = np.zeros(x.shape[1:], dtype=np.float64)
    for batch in in_batches(x):
        values = batch.astype(np.float64)
        total += values.sum(axis=0)
        squares += (values**2).sum(axis=0)
    if isinstance(x, StreamedImages):
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
