"""``image_folder``: a user's own images, ``root/<split>/<class>/*.png|jpg``, with optional
ground truth as a parallel tree of masks, a CSV of boxes or a CSV of points.

- Classes are the sub-folders of the training split (sorted); the test split may use a
  subset of them. Images are read with Pillow; grayscale (modes L, LA, I, 1) gives one
  channel unless ``channels = 3``; anything else is RGB.
- ``size`` resizes every image to size × size (bilinear); masks follow with nearest
  neighbour and boxes are scaled, so images and ground truth stay aligned. ``size = None``
  keeps the files' size, which must then be the same for all.
- ``masks = "masks"``: ``root/masks/<split>/<class>/<stem>.png`` (any non-zero pixel is
  inside the lesion), the same size as its image; an image without a mask file has an
  empty mask (e.g. a healthy case).
- ``boxes = "boxes.csv"``: RSNA-style rows ``image_id, x, y, width, height`` in the
  original image's pixels (``patientId`` is accepted for ``image_id``; several rows per
  image allowed; rows with empty coordinates are negatives and ignored). ``image_id`` is
  the file name without extension. Boxes are rasterised to masks after scaling.
- ``points = "points.csv"``: rows ``image_id, x, y`` (one lesion point each, e.g. OCT
  drusen, in the original image's pixels), rasterised as discs of ``point_radius``
  original pixels (ellipses after a non-square resize) — the Soft-CAM paper dilates
  point annotations the same way. Same rules as boxes (empty coordinates: ignored).

Ground truth is kept for the test split (the one that is explained).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

if TYPE_CHECKING:  # Pillow is imported when images are read
    from PIL import Image

from harness.component import Params, SuiteFile, SuiteFolder
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
)
from harness.datasets.image_files import MAX_PIXELS, ImageFiles, open_image, read_regular_file
from harness.datasets.tables import DatasetError
from harness.errors import did_you_mean

SUFFIXES = {".png", ".jpg", ".jpeg"}
GREY_MODES = {"L", "LA", "I", "I;16", "1"}


class ImageFolderParams(Params):
    root: SuiteFolder = Field(description="folder with <split>/<class>/ images")
    train_split: str = Field("train", description="training sub-folder")
    test_split: str = Field("test", description="test sub-folder")
    size: int | None = Field(64, ge=4, le=8192, description="resize to size × size (None: keep)")
    channels: Literal[1, 3] | None = Field(None, description="None: 1 if all are grayscale")
    masks: str | None = Field(None, description="sub-folder of root with a parallel mask tree")
    boxes: SuiteFile | None = Field(None, description="CSV of boxes: image_id,x,y,width,height")
    points: SuiteFile | None = Field(None, description="CSV of lesion points: image_id,x,y")
    point_radius: float = Field(
        5.0, gt=0, le=10_000, description="points: disc radius, original image pixels"
    )
    workers: int = Field(
        2, ge=0, le=64, description="processes decoding images ahead (0: in the main one)"
    )
    max_pixels: int = Field(
        MAX_PIXELS,
        ge=1,
        description="largest image (width × height) read; larger ones are "
        "refused before decoding (decompression bombs)",
    )

    @model_validator(mode="after")
    def _one_kind_of_truth(self) -> ImageFolderParams:
        given = [k for k in ("masks", "boxes", "points") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"give one of `masks`, `boxes` and `points`, not {' and '.join(given)}"
            )
        return self


def _reason(error: BaseException, path: Path) -> str:
    """Why ``path`` could not be read, naming it once."""
    return str(error) if str(path) in str(error) else f"cannot read image {path} ({error})"


@dataclass(frozen=True)
class _Header:
    """What an image's header says — (width, height) and Pillow's mode — and the file's
    SHA-256 (the dataset's fingerprint, without reading the file again)."""

    size: tuple[int, int]
    mode: str
    digest: bytes


@dataclass(frozen=True)
class _Entry:
    path: Path
    label: int
    split: str
    klass: str


@dataset_registry.register("image_folder")
class ImageFolder(DatasetSource):
    """Your own images in root/<split>/<class>/, with optional masks, boxes or points."""

    modality: ClassVar[Modality] = "image"
    card = DatasetCard(source="a local image folder", licence="that of the images")
    size = "the folder's images"
    ground_truth = "masks, when a mask tree or a boxes or points CSV is given"

    def input_problems(self) -> list[str]:
        """``masks`` must name a folder of ``root`` (a mistyped name would otherwise give
        every image an empty mask and every localisation score 'undefined')."""
        p = self.params
        if p.masks is None or (p.root / p.masks).is_dir():
            return []
        folders = sorted(f.name for f in p.root.iterdir() if f.is_dir()) if p.root.is_dir() else []
        return [
            f"masks: no folder '{p.masks}' in {p.root}{did_you_mean(p.masks, folders)} "
            f"Folders there: {', '.join(folders) or 'none'}"
        ]

    params: ImageFolderParams

    def test_truth(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Labels and ground-truth presence from the folder listing and the annotation
        files (a mask file, or a box or point row with coordinates, for the image's
        stem); None when the folder cannot be listed or an annotation file read (``run``
        then names the problem)."""
        p = self.params
        if not self.ground_truth_kinds():
            return None
        try:
            test = self._entries(p.test_split, self._classes(p.train_split))
            if p.masks is not None:
                folder = p.root / p.masks / p.test_split
                stems = {f.stem for c in folder.glob("*") if c.is_dir() for f in c.iterdir()}
            else:
                table = pd.read_csv(p.boxes or p.points, keep_default_na=False, na_values=[""])
                table = table.rename(columns={"patientId": "image_id"})
                stems = set(table.dropna()["image_id"].astype(str))
        except (DatasetError, OSError, ValueError, KeyError):
            return None
        labels = np.array([e.label for e in test], dtype=np.int64)
        return labels, np.array([e.path.stem in stems for e in test])

    def ground_truth_kinds(self) -> frozenset[str]:
        p = self.params
        return frozenset({"masks"}) if p.masks or p.boxes or p.points else frozenset()

    @property
    def label(self) -> str:
        return f"dataset 'image_folder' ({self.params.root})"

    def load(self, seed: int) -> Dataset:
        p = self.params
        classes = self._classes(p.train_split)
        entries = {s: self._entries(s, classes) for s in (p.train_split, p.test_split)}
        pictures = {s: [self._header(e.path) for e in entries[s]] for s in entries}
        every = [picture for split in pictures.values() for picture in split]
        channels = p.channels or (1 if all(x.mode in GREY_MODES for x in every) else 3)
        sizes = {x.size for x in every}
        if p.size is None and len(sizes) > 1:
            raise DatasetError(
                f"{self.label}: images differ in size ({len(sizes)} sizes, e.g. "
                f"{sorted(sizes)[:2]}); set `size` to resize them"
            )
        width, height = (p.size, p.size) if p.size is not None else every[0].size
        x = {
            s: ImageFiles(
                [e.path for e in entries[s]],
                channels,
                height,
                width,
                p.size,
                p.workers,
                [h.digest for h in pictures[s]],
                p.max_pixels,
            )
            for s in entries
        }
        y = {s: np.array([e.label for e in entries[s]], dtype=np.int64) for s in entries}
        test = entries[p.test_split]
        truth = GroundTruth()
        if p.masks is not None:
            truth = GroundTruth(
                masks=np.stack(
                    [self._mask_file(e, pictures[p.test_split][i]) for i, e in enumerate(test)]
                )
            )
        elif p.boxes is not None:
            truth = GroundTruth(masks=self._box_masks(test, pictures[p.test_split], entries))
        elif p.points is not None:
            truth = GroundTruth(masks=self._point_masks(test, pictures[p.test_split], entries))
        side_h, side_w = x[p.train_split].shape[2:]
        return Dataset(
            name=f"image_folder:{p.root.name}",
            modality="image",
            x_train=x[p.train_split],
            y_train=y[p.train_split],
            x_test=x[p.test_split],
            y_test=y[p.test_split],
            feature_names=[f"pixel_{r}_{c}" for r in range(side_h) for c in range(side_w)],
            class_names=classes,
            card=DatasetCard(source=f"image folder {p.root}", licence=self.card.licence),
            ground_truth=truth,
        )

    def _classes(self, split: str) -> list[str]:
        folder = self.params.root / split
        if not folder.is_dir():
            raise DatasetError(f"{self.label}: no '{split}' folder; expected root/{split}/<class>/")
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
        if len(classes) < 2:
            raise DatasetError(
                f"{self.label}: {folder} has {len(classes)} class folder(s); a classifier "
                "needs at least two"
            )
        return classes

    def _entries(self, split: str, classes: list[str]) -> list[_Entry]:
        folder = self.params.root / split
        if not folder.is_dir():
            raise DatasetError(f"{self.label}: no '{split}' folder; expected root/{split}/<class>/")
        unknown = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name not in classes)
        if unknown:
            raise DatasetError(f"{self.label}: class '{unknown[0]}' of {split} is not in training")
        entries = [
            _Entry(path, label, split, klass)
            for label, klass in enumerate(classes)
            if (folder / klass).is_dir()
            for path in sorted((folder / klass).iterdir())
            if path.suffix.lower() in SUFFIXES
        ]
        if not entries:
            raise DatasetError(f"{self.label}: no .png/.jpg images under {folder}")
        return entries

    def _read(self, path: Path) -> Image.Image:
        try:
            with open_image(read_regular_file(path), path, self.params.max_pixels) as picture:
                picture.load()
                return picture.copy()
        except (OSError, ValueError) as error:
            raise DatasetError(f"{self.label}: {_reason(error, path)}") from error

    def _header(self, path: Path) -> _Header:
        """An image's size, mode and SHA-256, from one read of the file (the pixels stay
        on disk and are decoded a batch at a time, see :class:`ImageFiles`); a file that
        is not a regular one, that Pillow cannot open, that is over the pixel budget or
        whose pixels are cut short is an error naming it now."""
        try:
            content = read_regular_file(path)
            with open_image(content, path, self.params.max_pixels) as picture:
                picture.verify()  # a truncated file fails here
                return _Header(picture.size, picture.mode, hashlib.sha256(content).digest())
        except (OSError, ValueError, SyntaxError) as error:
            raise DatasetError(f"{self.label}: {_reason(error, path)}") from error

    def _mask_file(self, entry: _Entry, picture: _Header) -> np.ndarray:
        from PIL import Image

        p = self.params
        assert p.masks is not None
        folder = p.root / p.masks / entry.split / entry.klass
        candidates = sorted(folder.glob(f"{entry.path.stem}.*")) if folder.is_dir() else []
        if not candidates:
            return np.zeros(self._shape(picture), dtype=bool)
        mask = self._read(candidates[0])
        if mask.size != picture.size:
            raise DatasetError(
                f"{self.label}: mask {candidates[0]} is {mask.size[0]}×{mask.size[1]} but its "
                f"image {entry.path} is {picture.size[0]}×{picture.size[1]} (width×height); "
                "masks must match their images"
            )
        grey = mask.convert("L")
        if p.size is not None:
            grey = grey.resize((p.size, p.size), Image.Resampling.NEAREST)
        return np.asarray(grey) > 0

    def _shape(self, picture: _Header) -> tuple[int, int]:
        size = self.params.size
        return (size, size) if size is not None else (picture.size[1], picture.size[0])

    def _annotations(
        self, path: Path, kind: str, needed: list[str], entries: dict[str, list[_Entry]]
    ) -> pd.DataFrame:
        """A boxes or points CSV: its rows with every coordinate given, after checking
        the columns, the image ids and that coordinates are numbers (errors name the file
        and the line)."""
        try:  # only an empty cell is missing: "nan", "NA" or "null" are not numbers
            table = pd.read_csv(path, keep_default_na=False, na_values=[""])
        except (OSError, ValueError) as error:
            raise DatasetError(f"{self.label}: cannot read {kind} CSV {path} ({error})") from error
        table = table.rename(columns={"patientId": "image_id"})
        missing = [c for c in ["image_id", *needed] if c not in table.columns]
        if missing:
            raise DatasetError(
                f"{self.label}: {kind} CSV {path} lacks the columns {', '.join(missing)} "
                f"(needs {', '.join(['image_id', *needed])})"
            )
        known = {e.path.stem for split in entries.values() for e in split}
        for line, image_id in enumerate(table["image_id"].astype(str), start=2):
            if image_id not in known:
                raise DatasetError(
                    f"{self.label}: {kind} CSV {path} line {line} refers to image "
                    f"'{image_id}', which is not in the folder"
                )
        for column in needed:
            numbers = pd.to_numeric(table[column], errors="coerce")
            bad = ~np.isfinite(numbers.to_numpy(dtype=float)) & table[column].notna().to_numpy()
            if bad.any():
                line = int(np.flatnonzero(bad)[0]) + 2
                raise DatasetError(
                    f"{self.label}: {kind} CSV {path} line {line}: {column} = "
                    f"'{table[column][bad].iloc[0]}' is not a number"
                )
            table[column] = numbers
        given = table[needed].notna()
        partial = (given.any(axis=1) & ~given.all(axis=1)).to_numpy()
        if partial.any():
            line = int(np.flatnonzero(partial)[0]) + 2
            raise DatasetError(
                f"{self.label}: {kind} CSV {path} line {line}: some coordinates are empty; give "
                f"all of {', '.join(needed)}, or none (a negative image)"
            )
        return table.dropna(subset=needed)

    def _point_masks(
        self, test: list[_Entry], pictures: list[_Header], entries: dict[str, list[_Entry]]
    ) -> np.ndarray:
        p = self.params
        assert p.points is not None
        points = self._annotations(p.points, "points", ["x", "y"], entries)
        masks = np.zeros((len(test), *self._shape(pictures[0])), dtype=bool)
        index = {e.path.stem: i for i, e in enumerate(test)}
        out_h, out_w = masks.shape[1:]
        rows, cols = np.arange(out_h)[:, None] + 0.5, np.arange(out_w)[None] + 0.5
        for row in points.itertuples(index=False):
            i = index.get(str(row.image_id))
            if i is None:  # a training image's point: not needed
                continue
            width, height = pictures[i].size
            sx, sy = out_w / width, out_h / height
            rx, ry = p.point_radius * sx, p.point_radius * sy
            inside = ((cols - row.x * sx) / rx) ** 2 + ((rows - row.y * sy) / ry) ** 2 <= 1
            masks[i] |= inside
        return masks

    def _box_masks(
        self, test: list[_Entry], pictures: list[_Header], entries: dict[str, list[_Entry]]
    ) -> np.ndarray:
        p = self.params
        assert p.boxes is not None
        boxes = self._annotations(p.boxes, "boxes", ["x", "y", "width", "height"], entries)
        masks = np.zeros((len(test), *self._shape(pictures[0])), dtype=bool)
        index = {e.path.stem: i for i, e in enumerate(test)}
        for row in boxes.itertuples(index=False):
            i = index.get(str(row.image_id))
            if i is None:  # a training image's box: not needed
                continue
            width, height = pictures[i].size
            out_h, out_w = masks.shape[1:]
            sx, sy = out_w / width, out_h / height
            x0, y0 = int(np.floor(row.x * sx)), int(np.floor(row.y * sy))
            x1 = int(np.ceil((row.x + row.width) * sx))
            y1 = int(np.ceil((row.y + row.height) * sy))
            masks[i, max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
        return masks
