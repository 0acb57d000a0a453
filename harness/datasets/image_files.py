"""Image files decoded a batch at a time (:class:`ImageFiles`).

Each file is opened with Pillow when its row is read, converted to grey or RGB and
resized bilinearly to ``size``; sequential passes go through a torch ``DataLoader`` with
``workers`` reader processes (see :class:`~harness.datasets.streamed_images.StreamedImages`
for the contract and what is computed over it).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # Pillow is imported when images are read
    from PIL import Image

from harness.datasets.streamed_images import StreamedImages

#: Default pixel budget of one image (width × height): Pillow's own bomb limit.
MAX_PIXELS = 89_478_485


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file (or a link to one): a FIFO, a
    device or a link to one is refused without blocking or reading (``ValueError``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise ValueError(f"cannot read image {path} ({error.strerror or error})") from error
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(
                f"cannot read image {path}: not a regular file (a FIFO, a device or a link to "
                "one); image folders hold image files only"
            )
        return handle.read()


def open_image(content: bytes, path: Path, max_pixels: int) -> Image.Image:
    """The image in ``content`` (read from ``path``), its header read but no pixel
    decoded; one over ``max_pixels`` (width × height) refused, naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # the budget below is the check
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(content))
    except Image.DecompressionBombError as error:  # past Pillow's own limit (2 × MAX_PIXELS)
        raise ValueError(
            f"image {path} is over the pixel budget, a decompression bomb? ({error})"
        ) from error
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise ValueError(f"cannot read image {path} ({error})") from error
    width, height = picture.size
    if width * height > max_pixels:
        picture.close()
        raise ValueError(
            f"image {path} is {width}×{height} = {width * height:,} pixels, over the budget "
            f"of {max_pixels:,} (a decompression bomb?); raise `max_pixels` if it is genuine"
        )
    return picture


def decode(path: Path, channels: int, size: int | None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file → (channels, height, width) float32 in [0, 1]."""
    from PIL import Image

    content = read_regular_file(path)
    try:
        with open_image(content, path, max_pixels) as picture:
            converted = picture.convert("L" if channels == 1 else "RGB")
            if size is not None:
                converted = converted.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.float32) / 255.0
    except OSError as error:
        raise ValueError(f"cannot read image {path} ({error})") from error
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


class ImageFiles(StreamedImages):
    """A split of images kept as files, decoded when indexed (see the module)."""

    def __init__(
        self,
        paths: Sequence[Path],
        channels: int,
        height: int,
        width: int,
        size: int | None,
        workers: int = 2,
        digests: Sequence[bytes] | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.paths = list(paths)
        self.max_pixels = max_pixels
        self.channels, self.size, self.workers = channels, size, workers
        self.shape = (len(self.paths), channels, height, width)
        #: SHA-256 of each file, when its reader already took them (else read for it)
        self.digests = None if digests is None else list(digests)

    def image(self, row: int) -> np.ndarray:
        return decode(self.paths[row], self.channels, self.size, self.max_pixels)

    def subset(self, rows: np.ndarray) -> ImageFiles:
        _, _, height, width = self.shape
        digests = None if self.digests is None else [self.digests[int(r)] for r in rows]
        return ImageFiles(
            [self.paths[int(r)] for r in rows],
            self.channels,
            height,
            width,
            self.size,
            self.workers,
            digests,
            self.max_pixels,
        )

    def fingerprint(self, digest: Any) -> None:
        """Feed the files' names and contents, and how they are decoded, to ``digest``."""
        digest.update(repr((self.channels, self.size, self.shape)).encode())
        digests = self.digests or [
            hashlib.sha256(read_regular_file(p)).digest() for p in self.paths
        ]
        for path, content in zip(self.paths, digests, strict=True):
            digest.update(path.name.encode())
            digest.update(content)
