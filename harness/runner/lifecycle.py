"""A stored run's lifecycle, one for ``run`` and ``rescore``: hold its lock, begin it (or
reopen it to continue), and finish it as ``ok``, ``failed`` or ``interrupted`` however
the work ends — an exception, Ctrl-C, SIGTERM or a full disk. No command leaves a run
``running`` when it stops; a process killed outright cannot finish it, and its run is
read as ``interrupted`` once its lock is free (:mod:`harness.run_lock`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.errors import StoreError
from harness.run_lock import RunLock
from harness.store import ResultsStore


@dataclass
class RunEnd:
    """How the run ends, set by the work as it goes: its status (``interrupted`` until
    the work completes), wall seconds per stage, and whether the work ran to its end."""

    status: str = "interrupted"
    stage_seconds: dict[str, float] = field(default_factory=dict)
    completed: bool = False


@contextmanager
def stored_run(store: ResultsStore, run_id: str, start: Callable[[], object]) -> Iterator[RunEnd]:
    """Run ``run_id`` of ``store``: its lock held, ``start`` called (``begin_run`` or
    ``reopen_run``), then the block's :class:`RunEnd` stored when the block ends. When
    storing the end fails too (the disk is still full) while another error is on its
    way out, that error is the one to report."""
    with RunLock(store.folder, run_id):
        start()
        end = RunEnd()
        try:
            yield end
        finally:
            try:
                store.finish_run(run_id, status=end.status, stage_seconds=end.stage_seconds)
            except StoreError:
                if end.completed:
                    raise
