"""The ``xai-harness`` command line: one module per command (or group), each importing
what it needs only when it runs — so ``--help``, ``list``, ``validate``, ``show``,
``report`` and ``check`` never import the explainer libraries, and the readers not torch.
"""

from __future__ import annotations

import sys

from harness.cli import check, listing, report, rescore, run, show, validate  # noqa: F401
from harness.cli.app import app, err
from harness.cli.run import optional_resume_value

__all__ = ["app", "main", "optional_resume_value"]


def main() -> None:
    """Console-script entry point. A command line click cannot parse (an unknown option,
    ``--jobs 0``) is one ``error:`` line and exit code 2, like every other user error."""
    import typer

    # click's UsageError, whether typer vendors click or uses it
    usage_error: type[Exception] = next(
        c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
    )
    try:
        code = app(args=optional_resume_value(sys.argv[1:]), standalone_mode=False)
    except usage_error as exc:
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "xai-harness"
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        if message:  # none when the help was printed instead (no command given)
            err.print(f"error: {message}; see `{command} --help`", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
