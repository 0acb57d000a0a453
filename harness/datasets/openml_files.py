"""Reading a dataset from the files of an OpenML cache — without unpickling anything.

The ``openml`` package parses a dataset's ARFF or Parquet file once and keeps the result
as a pickle (``dataset.pkl.py3``; with its feather option, a pickled attribute file)
that it unpickles on every later load. A cache folder may be chosen by a suite or an
environment variable, so a file planted there would run code. The harness therefore
reads only the plain files: ``description.xml`` (ElementTree), then ``dataset_<id>.pq``
or ``dataset.pq`` (pyarrow, through pandas) or ``dataset.arff`` (liac-arff, openml's own
ARFF parser). Nominal ARFF attributes become pandas categoricals with their declared
categories, as openml makes them; ``?`` becomes a missing value.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

_NS = "{http://openml.org/openml}"


@dataclass(frozen=True)
class Description:
    """What ``description.xml`` says that loading needs."""

    data_id: int
    name: str
    version: int
    default_target: str | None
    licence: str | None
    citation: str | None
    #: columns that are not features: the row id and the ignored attributes
    not_features: list[str] = field(default_factory=list)


def read_description(folder: Path) -> Description:
    """Parse ``folder/description.xml``; ``ValueError`` naming the file if it is unusable."""
    path = folder / "description.xml"
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path} is not valid XML ({exc})") from None

    def texts(tag: str) -> list[str]:
        return [(e.text or "").strip() for e in root.iter(f"{_NS}{tag}")]

    def text(tag: str) -> str | None:
        found = texts(tag)
        return found[0] if found and found[0] else None

    data_id, name, version = text("id"), text("name"), text("version")
    if not (data_id and data_id.isdigit() and name and version and version.isdigit()):
        raise ValueError(f"{path} lacks a numeric id, a name or a numeric version")
    not_features = [t for t in texts("row_id_attribute") + texts("ignore_attribute") if t]
    return Description(
        data_id=int(data_id),
        name=name,
        version=int(version),
        default_target=text("default_target_attribute"),
        licence=text("licence"),
        citation=text("citation"),
        not_features=not_features,
    )


def data_file(folder: Path, data_id: int) -> Path | None:
    """The dataset's Parquet file (openml's newer or older name) or ARFF file, or None."""
    for name in (f"dataset_{data_id}.pq", "dataset.pq", "dataset.arff"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_frame(path: Path) -> pd.DataFrame:
    """The whole table of a Parquet or ARFF file (features and target together)."""
    if path.suffix == ".pq":
        return pd.read_parquet(path)
    return _read_arff(path)


def _read_arff(path: Path) -> pd.DataFrame:
    import arff  # liac-arff, a dependency of openml

    with path.open(encoding="utf-8", errors="replace") as handle:
        try:
            parsed = arff.load(handle, encode_nominal=False, return_type=arff.DENSE)
        except arff.ArffException as exc:
            raise ValueError(f"{path} is not a valid ARFF file ({exc})") from None
    names = [name for name, _ in parsed["attributes"]]
    frame = pd.DataFrame(parsed["data"], columns=names)
    for name, kind in parsed["attributes"]:
        if isinstance(kind, list):  # nominal: its declared categories, in order
            frame[name] = pd.Categorical(frame[name], categories=kind)
        elif str(kind).upper() in ("REAL", "NUMERIC", "INTEGER"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame
