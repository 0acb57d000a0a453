"""Image files decoded a batch at a time (:class:`ImageFiles`).

Each file is opened with Pillow when its row is read, converted to grey or RGB and
resized bilinearly to ``size``; sequential passes go through a torch ``DataLoader`` with
``workers`` reader processes (see :class:`~harness.datasets.streamed_images.StreamedImages`
for the contract and what is computed over it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.streamed_images import StreamedImages


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


class ImageFiles(StreamedImages):
    """A split of images kept as files, decoded when indexed (see the module)."""

    def __init__(
        self, paths: Sequence[Path], channels: int, height: int, width: int, size: int | None,
        workers: int = 2, digests: Sequence[bytes] | None = None,
    ) -> None:  # fmt: skip
        self.paths = list(paths)
        self.channels, self.size, self.workers = channels, size, workers
        self.shape = (len(self.paths), channels, height, width)
        #: SHA-256 of each file, when its reader already took them (else read for it)
        self.digests = None if digests is None else list(digests)

    def image(self, row: int) -> np.ndarray:
        return decode(self.paths[row], self.channels, self.size)

    def subset(self, rows: np.ndarray) -> ImageFiles:
        _, _, height, width = self.shape
        digests = None if self.digests is None else [self.digests[int(r)] for r in rows]
        return ImageFiles([self.paths[int(r)] for r in rows], self.channels, height, width,
                          self.size, self.workers, digests)  # fmt: skip

    def fingerprint(self, digest: Any) -> None:
        """Feed the files' names and contents, and how they are decoded, to ``digest``."""
        digest.update(repr((self.channels, self.size, self.shape)).encode())
        digests = self.digests or [hashlib.sha256(p.read_bytes()).digest() for p in self.paths]
        for path, content in zip(self.paths, digests, strict=True):
            digest.update(path.name.encode())
            digest.update(content)
