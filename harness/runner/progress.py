"""Progress reporting: the only way code below the CLI talks to the terminal."""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text


class ProgressReporter(Protocol):
    """Receives run events; implementations decide how (or whether) to show them."""

    def start(self, title: str, total_cells: int) -> None: ...

    def stage(self, cell_id: str, stage: str) -> None: ...

    def cell_done(self, cell_id: str, status: str) -> None: ...

    def finish(self) -> None: ...


class SilentProgress:
    """Reports nothing (library use, tests)."""

    def start(self, title: str, total_cells: int) -> None:
        pass

    def stage(self, cell_id: str, stage: str) -> None:
        pass

    def cell_done(self, cell_id: str, status: str) -> None:
        pass

    def finish(self) -> None:
        pass


def _fixed(width: int) -> Column:
    """A progress column that keeps its width however narrow the terminal."""
    return Column(no_wrap=True, min_width=width)


def current_text(cell_id: str, stage: str) -> str:
    """``explaining softcam_sparse · small_cnn · seed=3 · lesions``: the stage, then the
    cell's parts most specific first, so that a narrow terminal cuts the dataset, not
    the explainer."""
    parts = cell_id.split("/")
    if len(parts) != 4:  # not dataset/model/explainer/seed: as it is
        return f"{stage} {cell_id}"
    dataset, model, explainer, seed = parts
    return f"{stage} {explainer} · {model} · {seed} · {dataset}"


class RichProgress:
    """A rich progress bar: cells done, the current cell and stage, elapsed and remaining.
    The bar, counts and times keep their width at any terminal width (80, 100 columns);
    the title and the current cell are cut with an ellipsis instead."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn(
                "{task.description}",
                style="bold",
                markup=False,
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=28),
            ),
            BarColumn(bar_width=20, table_column=_fixed(20)),
            MofNCompleteColumn(table_column=_fixed(7)),
            TimeElapsedColumn(table_column=_fixed(7)),
            TimeRemainingColumn(table_column=_fixed(7)),
            TextColumn(
                "{task.fields[current]}",
                markup=False,
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
            ),
            console=console,
            expand=True,
        )
        self._task: TaskID | None = None

    def start(self, title: str, total_cells: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(title, total=total_cells, current="")

    def stage(self, cell_id: str, stage: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, current=current_text(cell_id, stage))

    def cell_done(self, cell_id: str, status: str) -> None:
        if self._task is None:
            return
        if status == "failed":
            self._progress.console.print(Text.assemble(("failed", "red"), f" {cell_id}"))
        self._progress.advance(self._task)

    def finish(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, current="")
        self._progress.stop()


class NotebookProgress:
    """A notebook progress bar (tqdm: a widget when ipywidgets is installed, else a text
    bar): cells done, the current cell and stage, elapsed and remaining time."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, title: str, total_cells: int) -> None:
        try:  # the widget needs ipywidgets; without it, the same bar as text
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
        except ImportError:
            from tqdm.std import tqdm

        self._bar = tqdm(total=total_cells, desc=title, unit="cell")

    def stage(self, cell_id: str, stage: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(current_text(cell_id, stage), refresh=True)

    def cell_done(self, cell_id: str, status: str) -> None:
        if self._bar is None:
            return
        if status == "failed":
            self._bar.write(f"failed {cell_id}", file=self._bar.fp)
        self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str("")
            self._bar.close()
            self._bar = None


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell)."""
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def default_progress() -> ProgressReporter:
    """A notebook progress bar in Jupyter, the terminal display (on standard error)
    elsewhere."""
    if in_notebook():
        return NotebookProgress()
    return RichProgress(Console(stderr=True))
