"""The files a suite reads — table files, image folders, MedMNIST archives, given models,
weights — and their content fingerprints.

Each run stores the SHA-256 of every input (``environment["inputs"]``); ``--resume`` and
``rescore`` compute them again and refuse, naming the input, when one changed: the stored
cells were computed from the old content, and new cells or scores from the new would
mix two datasets (or two models) under one run. A folder's fingerprint covers the
relative path and content of every regular file below it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.suite import Resolved, Suite

_BLOCK = 1 << 20


class InputChangedError(HarnessError):
    """An input of a stored run no longer has the content the run was computed from."""


def file_digest(path: Path, digest: Any | None = None) -> str:
    """SHA-256 (hex) of a file's content, fed into ``digest`` when one is given."""
    digest = digest or hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return str(digest.hexdigest())


def path_fingerprint(path: Path) -> str:
    """SHA-256 of a file, or of a folder's regular files (relative path and content, in
    sorted order; links to folders are not followed); ``"missing"`` when absent."""
    if not path.exists():
        return "missing"
    if path.is_file():
        return file_digest(path)
    digest = hashlib.sha256()
    for folder, folders, files in os.walk(path):
        folders.sort()
        for name in sorted(files):
            member = Path(folder) / name
            if not stat.S_ISREG(member.stat().st_mode):
                continue  # FIFOs and devices are no data (image readers refuse them)
            digest.update(str(member.relative_to(path)).encode() + b"\0")
            digest.update(file_digest(member).encode())
    return digest.hexdigest()


def suite_inputs(suite: Suite) -> dict[str, Path]:
    """Every file or folder the suite's components read, keyed ``section.id.what``."""
    sections: dict[str, list[Resolved[Any]]] = {
        "datasets": suite.datasets,
        "models": suite.models,
        "explainers": suite.explainers,
        "metrics": suite.metrics,
    }
    return {
        f"{section}.{entry.id}.{what}": path
        for section, entries in sections.items()
        for entry in entries
        for what, path in entry.component.input_paths().items()
    }


def fingerprints(suite: Suite) -> dict[str, dict[str, str]]:
    """The suite's inputs with their fingerprints: key → {path, sha256}."""
    return {
        key: {"path": str(path), "sha256": path_fingerprint(path)}
        for key, path in suite_inputs(suite).items()
    }


def check_unchanged(stored: dict[str, Any] | None, suite: Suite, run_id: str, action: str) -> None:
    """Raise :class:`InputChangedError` when an input of run ``run_id`` (its stored
    fingerprints) has changed since; ``action`` names what was refused (``resume``,
    ``rescore``). Runs stored before fingerprints were kept (``stored`` None) pass."""
    if stored is None:
        return
    now = fingerprints(suite)
    for key, then in stored.items():
        current = now.get(key, {"path": then.get("path"), "sha256": "missing"})
        if current["sha256"] != then.get("sha256"):
            was, is_ = str(then.get("sha256"))[:12], current["sha256"][:12]
            raise InputChangedError(
                f"cannot {action} run {run_id}: its input {key} ({current['path']}) changed "
                f"since the run (sha256 {was}… now {is_}…); its stored cells were computed "
                "from the old content — restore the file, or start a new run"
            )
