"""Progress reporting: the only way code below the CLI talks to the terminal."""

from __future__ import annotations

from typing import Protocol

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


class RichProgress:
    """A rich progress bar: cells done, the current cell and stage, elapsed and remaining."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", markup=False),
            console=console,
        )
        self._task: TaskID | None = None

    def start(self, title: str, total_cells: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(title, total=total_cells, current="")

    def stage(self, cell_id: str, stage: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, current=f"{stage} {cell_id}")

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
