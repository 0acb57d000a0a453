"""OpenML classification datasets, through the ``openml`` package and its local cache.

The cache folder is, in order: the ``cache_dir`` parameter, ``xai-harness run
--openml-cache DIR``, the ``OPENML_CACHE_DIR`` environment variable (the package's own),
then the package's default (``~/.cache/openml``). A dataset found in the cache loads
without any network access (a name is looked up in the cached descriptions first).
Otherwise the server is probed with a short timeout before ``openml`` is asked to
download — the package has no timeout of its own and deletes a dataset's cache folder
when a download fails — so without network a missing dataset fails within seconds, with
a message naming it and the cache folder. Data are always read from the cached ARFF or
Parquet file by :mod:`harness.datasets.openml_files`, never through openml's pickles.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlparse

from pydantic import Field, model_validator

from harness.component import SuitePath
from harness.datasets.base import Dataset, DatasetCard, DatasetSource, Modality, dataset_registry
from harness.datasets.openml_files import data_file, read_description, read_frame
from harness.datasets.tables import DatasetError, TableParams, table_dataset
from harness.errors import did_you_mean

#: Seconds to wait for the OpenML server before declaring it unreachable.
PROBE_TIMEOUT = 5.0


class OpenMLParams(TableParams):
    data_id: int | None = Field(None, ge=1, description="OpenML dataset id (or give `name`)")
    name: str | None = Field(None, min_length=1, description="OpenML dataset name")
    version: int | None = Field(None, ge=1, description="with `name`: this version")
    target: str | None = Field(None, description="target column (default: the dataset's)")
    cache_dir: SuitePath | None = Field(
        None, description="root of the openml cache (default: OPENML_CACHE_DIR, ~/.cache/openml)"
    )

    @model_validator(mode="after")
    def _one_identifier(self) -> OpenMLParams:
        if (self.data_id is None) == (self.name is None):
            raise ValueError("give exactly one of `data_id` and `name`")
        if self.version is not None and self.name is None:
            raise ValueError("`version` goes with `name` (a data_id names one version)")
        return self


def cache_root(configured: Path | None) -> Path:
    """The openml cache root: the parameter, else ``OPENML_CACHE_DIR``, else the default."""
    if configured is not None:
        return configured.expanduser()
    import openml  # imported when a dataset is loaded, not when a suite is validated

    env = os.environ.get(openml.config.OPENML_CACHE_DIR_ENV_VAR)
    return Path(env).expanduser() if env else Path("~/.cache/openml").expanduser()


def datasets_folder(root: Path) -> Path:
    """Where openml keeps datasets under ``root`` for the configured server."""
    import openml

    host = urlparse(openml.config.server).netloc
    return root.joinpath(*reversed(host.split(".")), "datasets")


def cached_id(root: Path, name: str, version: int | None) -> int | None:
    """The id of a cached dataset called ``name`` (the given or the lowest version)."""
    found: list[tuple[int, int]] = []
    for description in datasets_folder(root).glob("*/description.xml"):
        text = description.read_text(errors="replace")
        names = re.findall(r"<oml:name>(.*?)</oml:name>", text)
        versions = re.findall(r"<oml:version>(\d+)</oml:version>", text)
        matches = names and names[0] == name and versions and description.parent.name.isdigit()
        if matches and (version is None or int(versions[0]) == version):
            found.append((int(versions[0]), int(description.parent.name)))
    return min(found)[1] if found else None


def is_cached(root: Path, data_id: int) -> bool:
    folder = datasets_folder(root) / str(data_id)
    return (folder / "description.xml").is_file() and data_file(folder, data_id) is not None


def server_reachable(timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if the OpenML server accepts a connection within ``timeout``; else why not."""
    import openml

    url = urlparse(openml.config.server)
    try:
        socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout).close()
    except OSError as error:
        return f"{url.hostname} is unreachable ({type(error).__name__}: {error})"
    return None


@dataset_registry.register("openml")
class OpenMLDataset(DatasetSource):
    """An OpenML classification dataset by id or name, from the local cache or the server.

    Categoricals one-hot encoded (importance reported per original column), missing values
    imputed, constant columns and classes without rows dropped, stratified split by seed.
    """

    modality: ClassVar[Modality] = "tabular"
    card = DatasetCard(
        source="OpenML (www.openml.org) through the openml package; the dataset's own page "
        "is stored with each run",
        licence="per dataset (stored with each run)",
        citation="Vanschoren, van Rijn, Bischl & Torgo, 'OpenML: networked science in "
        "machine learning', SIGKDD Explorations 15(2), 2014",
    )
    size = "any OpenML classification dataset (data_id or name)"
    params: OpenMLParams

    def describe(self) -> str:
        p = self.params
        return f"data_id={p.data_id}" if p.data_id is not None else f"name='{p.name}'"

    def input_paths(self) -> dict[str, Path]:
        """The dataset's own folder in the OpenML cache (not the whole cache), when there."""
        p = self.params
        root = cache_root(p.cache_dir)
        data_id = p.data_id if p.data_id is not None else cached_id(root, str(p.name), p.version)
        return {} if data_id is None else {"cache": datasets_folder(root) / str(data_id)}

    def load(self, seed: int) -> Dataset:
        p = self.params
        root = cache_root(p.cache_dir)
        data_id = p.data_id
        if data_id is None:
            assert p.name is not None
            data_id = cached_id(root, p.name, p.version)
        if data_id is None or not is_cached(root, data_id):
            why = server_reachable()
            if why is not None:
                raise DatasetError(
                    f"dataset 'openml' ({self.describe()}): not in the OpenML cache at "
                    f"{datasets_folder(root)} and {why}; connect once to download it, or "
                    "point `cache_dir` / --openml-cache / OPENML_CACHE_DIR at a cache that has it"
                )
            data_id = self._download(root, data_id)
        folder = datasets_folder(root) / str(data_id)
        try:
            description = read_description(folder)
            path = data_file(folder, data_id)
            if path is None:
                raise ValueError(f"no dataset.arff or dataset.pq in {folder}")
            table = read_frame(path)
        except (OSError, ValueError) as error:
            raise DatasetError(
                f"dataset 'openml' ({self.describe()}): cannot read the cached files: {error}; "
                f"delete {folder} to download it again"
            ) from error
        target = p.target or description.default_target
        if not target or "," in target:
            raise DatasetError(
                f"dataset 'openml' ({self.describe()}): no single default target "
                f"({target!r}); set `target` to one of its columns"
            )
        if target not in table.columns:
            raise DatasetError(
                f"dataset 'openml' ({self.describe()}): no column '{target}'"
                f"{did_you_mean(target, map(str, table.columns))} Columns: "
                f"{', '.join(map(str, table.columns[:20]))}"
            )
        labels = table[target]
        frame = table.drop(
            columns=[
                target,
                *(c for c in description.not_features if c in table.columns and c != target),
            ]
        )
        frame.columns = [unquote(str(c)) for c in frame.columns]  # ARFF escapes '/' etc.
        card = DatasetCard(
            source=f"OpenML dataset {description.data_id} '{description.name}' "
            f"v{description.version} (target '{target}'), "
            f"https://www.openml.org/d/{description.data_id}",
            licence=description.licence or "see the OpenML page",
            citation=description.citation or self.card.citation,
        )
        return table_dataset(f"openml:{description.name}", frame, labels, p, seed, card)

    def _download(self, root: Path, data_id: int | None) -> int:
        """Fetch the dataset's files into the cache with openml (only the files: openml's
        parsed pickle is neither made nor read here); returns the dataset id."""
        import openml

        p = self.params
        openml.config.set_root_cache_directory(root)
        openml.config.set_retry_policy("human", 1)
        try:
            remote = openml.datasets.get_dataset(
                data_id if data_id is not None else p.name,  # type: ignore[arg-type]
                version=p.version,
                download_data=True,
                download_qualities=False,
                download_features_meta_data=False,
            )
        except Exception as error:  # openml raises many kinds (server, parsing, missing)
            raise DatasetError(
                f"dataset 'openml' ({self.describe()}): {type(error).__name__}: {error}"
            ) from error
        assert remote.dataset_id is not None
        return int(remote.dataset_id)
