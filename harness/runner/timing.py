"""Wall time of a run: the stages it is accounted by, and the per-cell deadline."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

#: Stages whose wall time is accounted for separately; the rest of a run is "overhead".
#: ``decode``: reading the explained rows (decoding streamed images) for the explainer.
STAGES = ("data", "train", "decode", "explain", "score", "store")
#: The stages inside a cell (storing it comes after), in the order of its stored
#: ``stage_seconds`` array.
CELL_STAGES = STAGES[:-1]


@dataclass
class StageClock:
    """Wall seconds spent in each stage (summed over cells; over workers when parallel)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def since(self, before: dict[str, float]) -> np.ndarray:
        """Seconds per :data:`CELL_STAGES` stage spent since the snapshot ``before``
        (a copy of :attr:`seconds`)."""
        return np.array([self.seconds[s] - before.get(s, 0.0) for s in CELL_STAGES])

    def transfer(self, source: str, target: str, seconds: float) -> None:
        """Count ``seconds`` measured inside stage ``source`` as stage ``target``'s."""
        self.seconds[source] -= seconds
        self.seconds[target] = self.seconds.get(target, 0.0) + seconds


class CellTimeout(BaseException):
    """Raised inside a cell when its time is up (a BaseException, so that code under test
    which catches ``Exception`` cannot swallow it)."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` in this (main) thread after ``seconds`` of wall time.

    Uses ``SIGALRM``: Python code, sleeps and blocking I/O are interrupted; a single long
    native call (one torch kernel) finishes first. Without a limit, off the main thread, or
    on a platform without ``SIGALRM``, the block runs unlimited.
    """
    main = threading.current_thread() is threading.main_thread()
    if seconds is None or not hasattr(signal, "setitimer") or not main:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CellTimeout(f"timed out after {seconds:g} s (execution.cell_timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
