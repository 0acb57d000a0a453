"""The ``xai-harness`` command line: one module per command (or group), each importing
what it needs only when it runs — so ``--help``, ``list``, ``validate``, ``show``,
``report`` and ``check`` never import the explainer libraries, and the readers not torch.
"""

from __future__ import annotations

import sys

from harness.cli import check, listing, report, rescore, run, show, validate  # noqa: F401
from harness.cli.app import app
from harness.cli.run import optional_resume_value

__all__ = ["app", "main", "optional_resume_value"]


def main() -> None:
    """Console-script entry point."""
    app(args=optional_resume_value(sys.argv[1:]))
