"""uint8 image arrays memory-mapped from ``.npz`` archives (:class:`MappedImages`).

An ``.npz`` member written without compression (``np.savez``) is mapped where it lies in
the archive; a compressed one (``np.savez_compressed``) is first extracted, once, to an
uncompressed ``.npy`` file named by the member's CRC-32 (a changed archive extracts
again, and so does a damaged extraction) and mapped from there. Each time a member is
mapped, the bytes mapped — in the archive or the extraction — are checked against the
CRC-32 the archive records for it: flipped bits are found, not only a wrong size.
Rows are converted to float32 in [0, 1], channels first, when they are read, so memory
follows the batch, not the dataset.
"""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.streamed_images import StreamedImages


class MappedImages(StreamedImages):
    """uint8 images (N, H, W) or (N, H, W, C), e.g. a memory map, read as float32
    (N, C, H, W) in [0, 1]; ``rows`` selects and orders them (default: all);
    ``identity`` names the content for the cache (e.g. the archive member and its CRC)."""

    def __init__(self, pixels: np.ndarray, identity: str, rows: np.ndarray | None = None) -> None:
        if pixels.dtype != np.uint8 or pixels.ndim not in (3, 4):
            raise ValueError(
                f"expected uint8 images (N, H, W[, C]), got {pixels.dtype} {pixels.shape}"
            )
        self.pixels, self.identity = pixels, identity
        self.selected = np.arange(len(pixels)) if rows is None else np.asarray(rows, np.int64)
        channels = 1 if pixels.ndim == 3 else pixels.shape[3]
        self.shape = (len(self.selected), channels, pixels.shape[1], pixels.shape[2])

    def rows(self, chosen: np.ndarray) -> np.ndarray:
        block = np.asarray(self.pixels[self.selected[chosen]], dtype=np.float32) / 255.0
        block = block[:, None] if block.ndim == 3 else block.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(block)

    def image(self, row: int) -> np.ndarray:
        return self.rows(np.array([row]))[0]

    def subset(self, rows: np.ndarray) -> MappedImages:
        return MappedImages(self.pixels, self.identity, self.selected[np.asarray(rows)])

    def fingerprint(self, digest: Any) -> None:
        digest.update(repr((self.identity, self.pixels.shape, self.shape)).encode())
        digest.update(self.selected.tobytes())


def map_member(archive: Path, key: str, extract_dir: Path) -> MappedImages:
    """Member ``key`` of the ``.npz`` ``archive`` as :class:`MappedImages`: mapped in
    place when stored, else extracted into ``extract_dir`` first (see the module).
    Raises ``ValueError`` for a member that is not a plain uint8 ``.npy`` array and
    ``OSError`` when the archive cannot be read or the extraction written."""
    with zipfile.ZipFile(archive) as zipped:
        info = zipped.getinfo(f"{key}.npy")
    identity = f"{archive.name}:{key}:{info.CRC:08x}:{info.file_size}"
    if info.compress_type == zipfile.ZIP_STORED:
        with archive.open("rb") as handle:
            handle.seek(info.header_offset)
            local = handle.read(30)  # the local file header, then name and extra field
            name_length = int.from_bytes(local[26:28], "little")
            extra_length = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_length + extra_length
            if _crc32(handle, start, info.file_size) != info.CRC:
                raise ValueError(
                    f"member {key} of {archive} is damaged (its bytes do not match the CRC-32 "
                    "the archive records); download the file again"
                )
            handle.seek(start)
            dtype, shape, fortran, offset = _npy_header(handle)
        pixels = np.memmap(
            archive,
            dtype=dtype,
            mode="r",
            offset=offset,
            shape=shape,
            order="F" if fortran else "C",
        )
        return MappedImages(pixels, identity)
    target = extract_dir / f"{archive.stem}.{key}.{info.CRC:08x}.npy"
    if target.exists() and not _is_extraction_of(target, info):
        target.unlink()  # damaged (cut short, bits flipped): extract again
    if not target.exists():
        _extract(archive, info, target)  # zipfile checks the CRC-32 as it inflates
    return MappedImages(np.load(target, mmap_mode="r", allow_pickle=False), identity)


def _crc32(handle: Any, start: int, length: int) -> int:
    """CRC-32 of ``length`` bytes of ``handle`` from ``start`` (as zip archives keep)."""
    handle.seek(start)
    crc, left = 0, length
    while left > 0:
        block = handle.read(min(left, 1 << 22))
        if not block:
            return -1  # cut short
        crc, left = zlib.crc32(block, crc), left - len(block)
    return crc


def _is_extraction_of(target: Path, info: zipfile.ZipInfo) -> bool:
    """Whether ``target`` holds exactly member ``info``'s bytes (size and CRC-32)."""
    if target.stat().st_size != info.file_size:
        return False
    with target.open("rb") as handle:
        return _crc32(handle, 0, info.file_size) == info.CRC


def _extract(archive: Path, info: zipfile.ZipInfo, target: Path) -> None:
    """Member ``info`` of ``archive`` written to ``target`` (through a partial file, so
    an interrupted extraction never leaves a complete-looking one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        with (
            zipfile.ZipFile(archive) as zipped,
            zipped.open(info) as source,
            partial.open("wb") as sink,
        ):
            shutil.copyfileobj(source, sink, length=1 << 22)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _npy_header(handle: Any) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """dtype, shape, Fortran order and data offset of the ``.npy`` at ``handle``'s position."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f".npy format version {version} is not read; save with numpy's default")
    if dtype.hasobject:
        raise ValueError("the member holds Python objects; only plain arrays are read")
    return dtype, shape, fortran, handle.tell()
