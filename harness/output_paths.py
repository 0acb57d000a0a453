"""Checks of the folders and files a command will write, made before it starts.

A path option that points at the wrong kind of thing (a file where a folder is wanted,
a folder where a file is wanted, a place that cannot be written) is a one-line
:class:`HarnessError` naming the option — before any run is stored or any work done.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.errors import HarnessError


def writable_folder(path: Path, option: str) -> Path:
    """``path`` as a folder this process can write in (created when missing)."""
    if path.exists() and not path.is_dir():
        raise HarnessError(f"{option} {path} is a file, not a folder; pass a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise HarnessError(
            f"{option} {path}: cannot write there ({exc.strerror or exc}); pass {option} with a "
            "writable folder"
        ) from None
    return path


def writable_file(path: Path, option: str) -> Path:
    """``path`` as a file that can be (over)written: not a folder, in a writable folder."""
    if path.is_dir():
        raise HarnessError(
            f"{option} {path} is a folder; pass a file path, e.g. {path / 'claims.xml'}"
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise HarnessError(
            f"{option} {path}: cannot write there ({path.parent} is a file); pass a file "
            "path inside a folder"
        )
    writable_folder(path.parent, option)
    return path
